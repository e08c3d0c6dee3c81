"""Combine detector results into one score in [0, 1], one ranking, one suggestion per sample.

The combination was chosen by measurement on the shared data (bench/README.md, "Detection
quality"); every detector's own score stays in the result as evidence.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
from scipy.stats import rankdata

from core.detect.imbalance import class_normalise
from core.detect.result import DetectorResult
from core.neighbours import KnnGraph

logger = logging.getLogger(__name__)

__all__ = ["Ranking", "combine_scores", "rank", "METHODS", "DEFAULT_WEIGHTS", "PROBE_WEIGHTS", "SUGGESTION_ORDER"]

#: Combination methods :func:`combine_scores` knows.
METHODS = ("weighted", "mean_rank", "max", "noisy_or")
#: Weights of the "weighted" method when the probabilities come from the user's own model. The
#: confident-learning score carries the ranking; the neighbour vote only reorders within it
#: (0.2 and more lost AUPRC on CIFAR-10N and 20news, see bench/README.md). Outliers lowered AUPRC
#: everywhere, so they stay evidence only. Duplicates get a large weight because a conflicting
#: near-duplicate is near-certain evidence.
DEFAULT_WEIGHTS: dict[str, float] = {
    "confident": 1.0,
    "annotators": 1.0,
    "neighbours_vote": 0.1,
    "outliers": 0.0,
    "duplicates": 0.5,
}
#: Weights when the probabilities come from the linear probe on the same vectors: the probe is a
#: weaker model, and the neighbour vote (local, non-linear) adds more; 0.3 measured best or
#: within 0.001 of best on all three vectors-only cases.
PROBE_WEIGHTS: dict[str, float] = {**DEFAULT_WEIGHTS, "neighbours_vote": 0.3}
#: Whose suggestion wins when several detectors suggest a label: the most direct evidence first.
SUGGESTION_ORDER = ("annotators", "duplicates", "confident", "neighbours_vote", "outliers")


@dataclass(frozen=True)
class Ranking:
    """The combined ranking.

    Attributes
    ----------
    score : np.ndarray
        float64 (N,), combined score in [0, 1]; higher = more likely wrong.
    order : np.ndarray
        int64 (N,), sample indices from most to least suspicious (ties by index).
    rank : np.ndarray
        int64 (N,), position of each sample in ``order`` (0 = most suspicious).
    flagged : np.ndarray
        bool (N,).
    suggested : np.ndarray
        int64 (N,), label index or -1.
    suggested_by : np.ndarray
        object (N,), name of the detector whose suggestion was taken, or "".
    support : np.ndarray
        int64 (N, k) neighbour indices carrying the suggested label, -1 padded (k = 0 without a graph).
    detector_scores : dict
        name -> (N,) score of every detector that ran.
    params : dict
        Method, weights and flag rule used.
    """

    score: np.ndarray
    order: np.ndarray
    rank: np.ndarray
    flagged: np.ndarray
    suggested: np.ndarray
    suggested_by: np.ndarray
    support: np.ndarray
    detector_scores: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)


def combine_scores(
    scores: Mapping[str, np.ndarray], method: str = "weighted", weights: Mapping[str, float] | None = None
) -> np.ndarray:
    """One score in [0, 1] from several detector scores.

    Parameters
    ----------
    scores : mapping
        name -> (N,) scores in [0, 1].
    method : str, default "weighted"
        ``"weighted"``: weighted mean (weights renormalised over the detectors present);
        ``"mean_rank"``: mean of percentile ranks; ``"max"``; ``"noisy_or"``: 1 - prod(1 - s).
    weights : mapping, optional
        name -> weight for ``"weighted"``; default :data:`DEFAULT_WEIGHTS` (unknown names 1.0).
    """
    if not scores:
        raise ValueError("nothing to combine: no detector produced scores")
    names = sorted(scores)
    stack = np.stack([np.asarray(scores[n], dtype=np.float64) for n in names])
    if method == "weighted":
        w = dict(DEFAULT_WEIGHTS if weights is None else weights)
        wv = np.array([float(w.get(n, 1.0)) for n in names])
        if wv.sum() <= 0:
            raise ValueError(f"weights of {names} sum to 0")
        out = (wv[:, None] * stack).sum(axis=0) / wv.sum()
    elif method == "mean_rank":
        out = np.mean([rankdata(s) / s.size for s in stack], axis=0)
    elif method == "max":
        out = stack.max(axis=0)
    elif method == "noisy_or":
        out = 1.0 - np.prod(1.0 - stack, axis=0)
    else:
        raise ValueError(f"unknown combination method {method!r}; use one of {METHODS}")
    return np.clip(out, 0.0, 1.0)


def _support(graph: KnnGraph | None, labels: np.ndarray, suggested: np.ndarray) -> np.ndarray:
    n = labels.shape[0]
    if graph is None:
        return np.full((n, 0), -1, dtype=np.int64)
    carries = (labels[graph.indices] == suggested[:, None]) & (suggested[:, None] >= 0)
    support = np.where(carries, graph.indices, -1)
    order = np.argsort(~carries, axis=1, kind="stable")  # nearest supporting neighbours first
    return np.take_along_axis(support, order, axis=1).astype(np.int64)


def rank(
    results: Mapping[str, DetectorResult],
    labels: np.ndarray,
    graph: KnnGraph | None = None,
    method: str = "weighted",
    weights: Mapping[str, float] | None = None,
    class_strength: float = 0.0,
) -> Ranking:
    """Combine detector results into one :class:`Ranking`.

    Parameters
    ----------
    results : mapping
        name -> DetectorResult (at least one).
    labels : np.ndarray
        int (N,), given labels.
    graph : KnnGraph, optional
        To list the neighbours that carry the suggested label.
    method : str, default "weighted"
        See :func:`combine_scores`.
    weights : mapping, optional
        See :func:`combine_scores`.
    class_strength : float, default 0.0
        Per-class normalisation strength (:func:`core.detect.imbalance.class_normalise`).

    Returns
    -------
    Ranking
        Flagged: the top-n of the combined ranking, n = the number flagged by the confident
        detector (cleanlab's estimate of the number of issues) or, without it, by the
        neighbour vote; plus every member of a conflicting near-duplicate group, every
        sample the annotator consensus contradicts, and every sample the neighbour vote flags
        whose model probability also prefers another label. With neither count available, the union of
        what the detectors flagged.
    """
    labels = np.asarray(labels, dtype=np.int64)
    n = labels.shape[0]
    for name, r in results.items():
        if len(r) != n:
            raise ValueError(f"detector {name!r} scored {len(r)} samples, expected {n}")
    scores = {name: r.scores for name, r in results.items()}
    combined = class_normalise(combine_scores(scores, method, weights), labels, class_strength)
    # Ties are broken by index so equal inputs give one ranking.
    order = np.lexsort((np.arange(n), -combined)).astype(np.int64)
    position = np.empty(n, dtype=np.int64)
    position[order] = np.arange(n)
    counted = next((results[c] for c in ("confident", "neighbours_vote") if c in results), None)
    if counted is not None:
        flagged = position < int(counted.flagged.sum())
        for extra in ("duplicates", "annotators"):
            if extra in results:
                flagged |= results[extra].flagged
        if "confident" in results and "neighbours_vote" in results:
            # cleanlab's count is conservative on small or clean data; where the neighbours
            # outvote the label and the model also prefers another label, two independent
            # signals agree.
            c = results["confident"].evidence
            flagged |= results["neighbours_vote"].flagged & (c["suggested_probability"] > c["given_probability"])
        rule = (
            f"top-n, n = flagged by {counted.name}; plus duplicates/annotators flags; plus "
            "neighbour-vote flags where the model also prefers another label"
        )
    else:
        flagged = np.logical_or.reduce([r.flagged for r in results.values()])
        rule = "union of detector flags"
    suggested = np.full(n, -1, dtype=np.int64)
    by = np.full(n, "", dtype=object)
    for name in [*SUGGESTION_ORDER, *sorted(set(results) - set(SUGGESTION_ORDER))]:
        r = results.get(name)
        if r is None or r.suggested is None:
            continue
        take = (suggested < 0) & (r.suggested >= 0) & (r.suggested != labels)
        if name == "annotators" or name == "duplicates":
            take &= r.flagged  # these only speak where they found something
        suggested[take] = r.suggested[take]
        by[take] = name
    return Ranking(
        score=combined,
        order=order,
        rank=position,
        flagged=flagged,
        suggested=suggested,
        suggested_by=by,
        support=_support(graph, labels, suggested),
        detector_scores=scores,
        params={
            "method": method,
            "weights": dict(DEFAULT_WEIGHTS if weights is None else weights),
            "class_strength": class_strength,
            "flag_rule": rule,
        },
    )
