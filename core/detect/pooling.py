"""Pool several out-of-sample probability estimates into one, with weights learned per project.

Amend has up to three views of "which class is this sample?" that never saw the sample's own
label: the user's model (imported predictions), the cross-validated linear probe on the
vectors, and the labels of the sample's nearest neighbours (the kNN graph never lists a sample
as its own neighbour). Which view is worth most differs from one data set to the next: on 20
Newsgroups / MiniLM the neighbours predict the labels better than the probe, on a sentiment
task the same vectors carry little neighbourhood structure. A fixed weight fitted to one data
set was the reason the earlier combination lost to cleanlab alone on held-out data.

So the weights are fitted on the project's own labels. The pool is logarithmic (a product of
experts): ``p(c) ∝ prod_j p_j(c) ** a_j`` with ``a_j >= 0``, fitted by maximum likelihood of the
given labels. The negative log-likelihood is convex in ``a`` (it is a multinomial logistic
regression on the features ``log p_j``, without intercept), so L-BFGS finds its minimum. A
handful of weights fitted on thousands of rows cannot memorise label noise, and every source is
out-of-sample, so the fit is honest.

The fit is trimmed: a first fit on every row, then the rows confident learning calls label
issues under that pool are left out and the exponents refitted. Those rows are the likely label
errors, and letting them vote would reward whichever source agrees with the noise. (Trimming
to "rows some source ranks first" was measured too and rejected: it credits a source for the
rows it was chosen by, so even a source unrelated to the labels kept weight.) The trimmed fit
is over-confident (it saw only agreeing rows), so a single temperature fitted on every row then
scales the pool back to the confidence the data supports.

Chosen by measurement (bench/README.md, "Detection quality"): against a linear pool (EM
weights, with and without trimming) and the earlier fixed neighbour weight, the trimmed
logarithmic pool ranked best on 20 Newsgroups / MiniLM and on CIFAR-10N aggregate (the sets the
choice was made on) and also on CIFAR-10N random1 and worst (held back to check it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from core.detect.cleanlab_import import import_cleanlab
from core.neighbours import KnnGraph

logger = logging.getLogger(__name__)

__all__ = ["Pool", "neighbour_probabilities", "pool", "pool_weights"]

#: Upper bound of a pool exponent (a guard: the fit never came near it on the measured data).
MAX_EXPONENT = 10.0
#: Probabilities are floored here before taking logs, so one source's zero cannot veto a class.
LOG_FLOOR = 1e-6
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
        source name -> exponent in the logarithmic pool (0 = ignored; their sum sets sharpness).
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


def pool_weights(log_probabilities: list[np.ndarray], labels: np.ndarray) -> np.ndarray:
    """Maximum-likelihood exponents of a logarithmic pool.

    Parameters
    ----------
    log_probabilities : list of np.ndarray
        One (N, C) array of log-probabilities per source.
    labels : np.ndarray
        int (N,), the labels to fit.

    Returns
    -------
    np.ndarray
        (M,) non-negative exponents (not normalised: their size sets how sharp the pool is).
    """
    from scipy.optimize import minimize

    logs = np.stack([np.asarray(lp, dtype=np.float64) for lp in log_probabilities])  # M x N x C
    labels = np.asarray(labels, dtype=np.int64)
    rows = np.arange(labels.size)
    at_label = logs[:, rows, labels]  # M x N

    def objective(a: np.ndarray) -> tuple[float, np.ndarray]:
        z = np.tensordot(a, logs, axes=1)
        z -= z.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(z).sum(axis=1))
        p = np.exp(z - log_norm[:, None])
        nll = float(-(z[rows, labels] - log_norm).mean())
        # d nll / d a_j = mean_i (E_p[log p_j] - log p_j(y_i))
        grad = (np.einsum("mnc,nc->mn", logs, p) - at_label).mean(axis=1)
        return nll, grad

    start = np.ones(logs.shape[0])
    result = minimize(objective, start, jac=True, method="L-BFGS-B", bounds=[(0.0, MAX_EXPONENT)] * logs.shape[0])
    return np.asarray(result.x, dtype=np.float64)


def _combine(a: np.ndarray, logs: list[np.ndarray]) -> np.ndarray:
    z = sum(aj * lp for aj, lp in zip(a, logs))
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=1, keepdims=True)


def _likely_errors(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    import_cleanlab()  # without Datalab's imports
    from cleanlab.filter import find_label_issues

    if np.unique(labels).size < 2:
        return np.zeros(labels.size, dtype=bool)
    return np.asarray(find_label_issues(labels, probabilities, n_jobs=1), dtype=bool)


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
    logs = [np.log(np.clip(p, LOG_FLOOR, 1.0)) for p in stack]
    # Trimmed fit: fit on every row, drop the rows confident learning then calls label issues
    # (the likely errors, which would reward whichever source agrees with the noise), refit.
    a = pool_weights(logs, labels)
    fit_rows = rows[~_likely_errors(_combine(a, logs), labels)]
    if fit_rows.size >= max(10, len(names) * 5):
        a = pool_weights([lp[fit_rows] for lp in logs], labels[fit_rows])
    else:
        fit_rows = rows
    if a.sum() <= 1e-9:
        # No source predicts the labels at all (e.g. labels unrelated to the data): keep the
        # single best source rather than a uniform pool that would rank everything equal.
        best = int(np.argmax([logs[j][fit_rows, labels[fit_rows]].mean() for j in range(len(names))]))
        a = np.eye(len(names))[best]
    # The trimmed fit sets the direction (how much each source counts) but, fitted on rows that
    # agree with the labels, it is over-confident; one temperature fitted on every row brings
    # the pool back to the confidence the data supports (needed for the noise estimate and the
    # error probabilities, which read the probabilities' size, not only their order).
    direction = sum(aj * lp for aj, lp in zip(a, logs))
    a = a * float(pool_weights([direction], labels)[0])
    pooled = _combine(a, logs)
    loglik = {name: float(logs[j][fit_rows, labels[fit_rows]].mean()) for j, name in enumerate(names)}
    loglik["pooled"] = float(np.log(np.clip(pooled[fit_rows, labels[fit_rows]], 1e-300, None)).mean())
    weights = {name: round(float(aj), 6) for name, aj in zip(names, a)}
    logger.info("pooled %s with weights %s", names, weights)
    return Pool(pooled, weights, loglik, int(fit_rows.size))
