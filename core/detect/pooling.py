"""Pool several out-of-sample probability estimates into one, with weights learned per project.

Amend has up to three views of "which class is this sample?" that never saw the sample's own
label: the user's model (imported predictions), the cross-validated linear probe on the
vectors, and the labels of the sample's nearest neighbours (the kNN graph never lists a sample
as its own neighbour). Which view is worth most differs from one data set to the next: on 20
Newsgroups / MiniLM the neighbours predict the labels better than the probe, on a sentiment
task the same vectors carry little neighbourhood structure. A fixed weight fitted to one data
set was the reason the earlier combination lost to cleanlab alone on held-out data.

So the weights are fitted on the project's own labels: the linear pool ``sum_j w_j p_j`` with
``w`` on the simplex that maximises the likelihood of the given labels. The log-likelihood of a
linear pool is concave in ``w``, and the classic EM update for mixture weights
(``w_j <- mean_i of w_j p_j(y_i) / sum_k w_k p_k(y_i)``) climbs to its maximum without any step
size. A handful of weights fitted on thousands of rows cannot memorise the label noise, and
every source is out-of-sample, so the fit is honest.

Rows whose label no source ranks first are left out of the fit (a trimmed likelihood): they are
the likely label errors, and letting them vote would reward the source that best agrees with
the noise.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from core.neighbours import KnnGraph

logger = logging.getLogger(__name__)

__all__ = ["Pool", "neighbour_probabilities", "pool", "pool_weights"]

#: Pseudo-count of the class prior mixed into the neighbour vote, so a class none of the k
#: neighbours carries keeps a small probability (a Dirichlet prior, one pseudo-neighbour).
PRIOR_PSEUDO_COUNT = 1.0


@dataclass(frozen=True)
class Pool:
    """Pooled probabilities and how they were made.

    Attributes
    ----------
    probabilities : np.ndarray
        float64 (N, C), rows sum to 1.
    weights : dict
        source name -> weight (sums to 1).
    log_likelihood : dict
        source name -> mean log-probability of the given labels on the rows used for the fit,
        and ``"pooled"`` for the pool (higher is better).
    rows_fitted : int
        Rows the weights were fitted on.
    """

    probabilities: np.ndarray
    weights: dict = field(default_factory=dict)
    log_likelihood: dict = field(default_factory=dict)
    rows_fitted: int = 0


def neighbour_probabilities(graph: KnnGraph, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Class probabilities from the labels of each sample's neighbours (leave-one-out by design).

    The similarity-weighted vote of the k neighbours, smoothed towards the class prior with
    :data:`PRIOR_PSEUDO_COUNT` pseudo-neighbours.

    Returns
    -------
    np.ndarray
        float64 (N, C), rows sum to 1.
    """
    from core.detect.neighbours_vote import vote_shares

    labels = np.asarray(labels, dtype=np.int64)
    shares = vote_shares(graph, labels, n_classes)
    prior = np.bincount(labels, minlength=n_classes) / max(labels.size, 1)
    k = float(graph.k)
    out = (shares * k + PRIOR_PSEUDO_COUNT * prior) / (k + PRIOR_PSEUDO_COUNT)
    return out / out.sum(axis=1, keepdims=True)


def pool_weights(likelihoods: np.ndarray, iterations: int = 500, tol: float = 1e-9) -> np.ndarray:
    """Maximum-likelihood weights of a linear pool by EM.

    Parameters
    ----------
    likelihoods : np.ndarray
        (N, M): source j's probability of row i's given label.

    Returns
    -------
    np.ndarray
        (M,), non-negative, sums to 1.
    """
    lik = np.clip(np.asarray(likelihoods, dtype=np.float64), 1e-12, None)
    if lik.ndim != 2 or lik.shape[1] == 0:
        raise ValueError(f"likelihoods must be (N, M) with M >= 1, got {lik.shape}")
    m = lik.shape[1]
    w = np.full(m, 1.0 / m)
    if lik.shape[0] == 0 or m == 1:
        return w
    previous = -np.inf
    for _ in range(iterations):
        mix = lik * w
        total = mix.sum(axis=1, keepdims=True)
        w = (mix / total).mean(axis=0)
        value = float(np.log(total).mean())
        if value - previous < tol:
            break
        previous = value
    return w / w.sum()


def pool(sources: Mapping[str, np.ndarray], labels: np.ndarray) -> Pool:
    """Pool out-of-sample probability estimates with weights fitted on the given labels.

    Parameters
    ----------
    sources : mapping
        name -> (N, C) probabilities (each row out-of-sample for that row).
    labels : np.ndarray
        int (N,), the labels in force.

    Returns
    -------
    Pool
        With one source, that source unchanged (weight 1).
    """
    if not sources:
        raise ValueError("nothing to pool: no probability source")
    names = list(sources)
    stack = [np.asarray(sources[name], dtype=np.float64) for name in names]
    labels = np.asarray(labels, dtype=np.int64)
    rows = np.arange(labels.size)
    if len(names) == 1:
        return Pool(stack[0], {names[0]: 1.0}, {}, 0)
    # Trimmed fit: rows whose label is some source's first choice (see the module docstring).
    agree = np.zeros(labels.size, dtype=bool)
    for p in stack:
        agree |= p.argmax(axis=1) == labels
    fit_rows = rows[agree] if agree.sum() >= max(10, len(names) * 5) else rows
    lik = np.stack([p[fit_rows, labels[fit_rows]] for p in stack], axis=1)
    w = pool_weights(lik)
    pooled = sum(wj * p for wj, p in zip(w, stack))
    pooled = pooled / pooled.sum(axis=1, keepdims=True)
    loglik = {name: float(np.log(np.clip(lik[:, j], 1e-12, None)).mean()) for j, name in enumerate(names)}
    loglik["pooled"] = float(np.log(np.clip(pooled[fit_rows, labels[fit_rows]], 1e-12, None)).mean())
    weights = {name: round(float(wj), 6) for name, wj in zip(names, w)}
    logger.info("pooled %s with weights %s", names, weights)
    return Pool(pooled, weights, loglik, int(fit_rows.size))
