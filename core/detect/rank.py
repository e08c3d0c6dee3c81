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
from core.detect.result import REGISTRY, DetectorResult
from core.neighbours import KnnGraph

logger = logging.getLogger(__name__)

__all__ = ["Ranking", "combine_scores", "rank", "METHODS", "registry_weights", "suggestion_order", "cut_by_precision",
           "first_of_each_class"]

#: Detectors whose own flags make the flagged set, the first present one (:func:`_flag_set`).
COUNTING_DETECTORS = ("confident", "neighbours_vote", "aum")
#: Combination methods :func:`combine_scores` knows.
METHODS = ("weighted", "mean_rank", "max", "noisy_or")


def registry_weights() -> dict[str, float]:
    """Each registered detector's combination weight (the registry owns them)."""
    return {name: spec.weight for name, spec in REGISTRY.items()}


def suggestion_order() -> list[str]:
    """Registered detectors by suggestion priority (the most direct evidence first)."""
    return [name for name, _ in sorted(REGISTRY.items(), key=lambda kv: (kv[1].suggestion_priority, kv[0]))]


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
    error_probability : np.ndarray or None
        float64 (N,), estimated probability that the label is wrong
        (:func:`core.detect.confident.error_probability`), None without probabilities.
    accept_in_bulk : np.ndarray or None
        bool (N,), flagged samples whose suggestion is the most probable true label given the
        evidence and the given label (:func:`core.detect.confident.true_label_posterior`): the
        ones a bulk acceptance may relabel without a person; None without probabilities (then
        every flagged suggestion qualifies).
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
    error_probability: np.ndarray | None = None
    accept_in_bulk: np.ndarray | None = None


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
        name -> weight for ``"weighted"``; default the registry's (:func:`registry_weights`;
        names the registry does not know weigh 1.0).
    """
    if not scores:
        raise ValueError("nothing to combine: no detector produced scores")
    names = sorted(scores)
    stack = np.stack([np.asarray(scores[n], dtype=np.float64) for n in names])
    if method == "weighted":
        w = registry_weights() if weights is None else dict(weights)
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
    choose_within_class: bool = True,
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
    choose_within_class : bool, default True
        The confident detector counts each class's flags and the combined ranking chooses which
        of the class's samples they are (:func:`first_of_each_class`). False: its own flags as
        they are (``detect`` passes False when the probabilities are the user's alone).

    Returns
    -------
    Ranking
        Flagged: see :func:`_flag_set`.
    """
    labels = np.asarray(labels, dtype=np.int64)
    n = labels.shape[0]
    for name, r in results.items():
        if len(r) != n:
            raise ValueError(f"detector {name!r} scored {len(r)} samples, expected {n}")
    scores = {name: r.scores for name, r in results.items()}
    if method == "weighted":
        weights = _usable_weights(results, weights)
    combined = combine_scores(scores, method, weights)
    fused = _fused(results, weights) if method == "weighted" else []
    fuse_weights = {name: _agreement(scores[name], results) for name in fused}
    if fused:
        # percentile ranks, ties averaged: scale-free, so a margin in logits and a probability
        # count alike (see DetectorSpec.fuse_rank); each weighed by its agreement with the
        # out-of-sample flags, so a run that learned little cannot drag the ranking down
        parts = [rankdata(combined) / n, *(fuse_weights[name] * rankdata(scores[name]) / n for name in fused)]
        combined = np.sum(parts, axis=0) / (1.0 + sum(fuse_weights.values()))
    combined = class_normalise(combined, labels, class_strength)
    decider, decided = _decided_alone(results)
    if decided is not None:
        combined = np.where(decided, decider.scores, combined)
    # Ties are broken by index so equal inputs give one ranking.
    order = np.lexsort((np.arange(n), -combined)).astype(np.int64)
    position = np.empty(n, dtype=np.int64)
    position[order] = np.arange(n)
    flagged, rule = _flag_set(results, labels, position, choose_within_class, decider, decided)
    suggested = np.full(n, -1, dtype=np.int64)
    by = np.full(n, "", dtype=object)
    for name in [*suggestion_order(), *sorted(set(results) - set(REGISTRY))]:
        r = results.get(name)
        if r is None or r.suggested is None:
            continue
        take = (suggested < 0) & (r.suggested >= 0) & (r.suggested != labels)
        if _speaks_when_flagged(name):
            take &= r.flagged  # these only speak where they found something
        suggested[take] = r.suggested[take]
        by[take] = name
    error_probability = accept_in_bulk = None
    evidence = results["confident"].evidence if "confident" in results else {}
    if "error_probability" in evidence:
        error_probability = np.asarray(evidence["error_probability"], dtype=np.float64)
    if "most_likely_label" in evidence:
        # Relabelling a sample is right only when its suggestion is more probable than every
        # other label, the given one included; elsewhere the flag waits for a person. On planted
        # structured noise this halved the relabels and most of the wrong ones (bench/README.md).
        accept_in_bulk = flagged & (suggested >= 0) & (suggested != labels) & (
            np.asarray(evidence["most_likely_label"]) == suggested)
        for name, r in results.items():
            key = REGISTRY[name].decides_bulk_in if name in REGISTRY else None
            if key is None or key not in r.evidence or r.suggested is None:
                continue
            # Inside a region with a structured finding the finding decides what is relabelled:
            # the per-sample posterior there comes from models that learned the region's noise.
            # On planted region noise this fixed more of the flips with fewer other relabels
            # (bench/README.md, "Structured errors fixed as a group").
            inside = np.asarray(r.evidence[key], dtype=bool)
            accept_in_bulk = (accept_in_bulk & ~inside) | (r.flagged & (r.suggested >= 0) & (suggested == r.suggested))
    if decided is not None and error_probability is not None:
        # where one detector decides alone, it gives the estimate and what a bulk acceptance takes
        error_probability = np.where(decided, decider.evidence["error_probability"], error_probability)
        if accept_in_bulk is not None:
            likeliest = flagged & (suggested >= 0) & (suggested == decider.evidence["most_likely_label"])
            accept_in_bulk = np.where(decided, likeliest, accept_in_bulk)
    return Ranking(
        score=combined,
        order=order,
        rank=position,
        flagged=flagged,
        suggested=suggested,
        suggested_by=by,
        support=_support(graph, labels, suggested),
        detector_scores=scores,
        error_probability=error_probability,
        accept_in_bulk=accept_in_bulk,
        params={
            "method": method,
            "weights": registry_weights() if weights is None else dict(weights),
            "class_strength": class_strength,
            "flag_rule": rule,
            "fused_by_rank": {name: round(w, 4) for name, w in fuse_weights.items()},
        },
    )


def _agreement(score: np.ndarray, results: Mapping[str, DetectorResult]) -> float:
    """How far a rank-fused detector agrees with confident learning's out-of-sample flags:
    2 * AUC - 1 of its score against them, clipped to [0, 1] (0 = no better than chance). 1 when
    there is nothing to compare with (no confident detector, or it flagged none or all)."""
    reference = results.get("confident")
    if reference is None or reference.flagged.all() or not reference.flagged.any():
        return 1.0
    ranks = rankdata(score)
    flagged = reference.flagged
    n_pos, n_neg = int(flagged.sum()), int((~flagged).sum())
    auc = (ranks[flagged].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)  # Mann-Whitney
    return float(np.clip(2.0 * auc - 1.0, 0.0, 1.0))


def _fused(results: Mapping[str, DetectorResult], weights: Mapping[str, float] | None) -> list[str]:
    """Detectors that join by rank, when the weighted combination has something else to rank."""
    fused = sorted(name for name in results if name in REGISTRY and REGISTRY[name].fuse_rank
                   and results[name].params.get("joins_ranking", True))
    w = registry_weights() if weights is None else dict(weights)
    others = [name for name in results if name not in fused and float(w.get(name, 1.0)) > 0]
    return fused if others else []


def _usable_weights(results: Mapping[str, DetectorResult], weights: Mapping[str, float] | None) -> Mapping[str, float] | None:
    """The weights to combine with. When every detector that ran weighs 0 (evidence only, e.g.
    the training-dynamics detectors of a captured run without vectors or probabilities), the
    detector that counts the flagged set (:func:`_flag_set`) ranks alone, so the ranking and the
    flags tell one story."""
    w = registry_weights() if weights is None else dict(weights)
    if any(float(w.get(name, 1.0)) > 0 for name in results):
        return weights
    counted = next((c for c in COUNTING_DETECTORS if c in results), None)
    if counted is None:
        return {name: 1.0 for name in results}
    return {name: float(name == counted) for name in results}


def _speaks_when_flagged(name: str) -> bool:
    spec = REGISTRY.get(name)
    return spec is not None and spec.speaks_when_flagged


def _decided_alone(results: Mapping[str, DetectorResult]) -> tuple[DetectorResult | None, np.ndarray | None]:
    """The detector that decides some samples alone (:attr:`DetectorSpec.decides_alone_in`; the
    annotators, where two or more labelled a sample and a model weighed them) and those samples;
    (None, None) when no detector does."""
    for name, r in results.items():
        key = REGISTRY[name].decides_alone_in if name in REGISTRY else None
        if key is None or key not in r.evidence or "error_probability" not in r.evidence:
            continue
        decided = np.asarray(r.evidence[key], dtype=bool)
        if decided.any():
            return r, decided
    return None, None


def _flag_set(results: Mapping[str, DetectorResult], labels: np.ndarray, position: np.ndarray,
              choose_within_class: bool = True, decider: DetectorResult | None = None,
              decided: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """The flagged set: as many as the data's noise estimate says, where it says.

    With the confident detector: per class, as many as the expected number of wrong labels among
    its samples under the data's noise estimate (:func:`_class_quotas`), taken in the order of
    the combined ranking (:func:`first_of_each_class`), and cleanlab's flags that a bulk
    acceptance would take stay (:func:`_sure`); unless ``choose_within_class`` is False: then
    cleanlab's ``find_label_issues`` on the pooled probabilities as it is (it estimates the joint
    of (given, true) labels and, per class pair, flags as many of that pair's samples as the
    joint says are wrong). So the size follows the estimated noise, and the flags
    follow where the noise is: a confusion many samples share (a structured error) gets a large
    cell and many flags. The count stays per class rather than one top n of the whole ranking
    (bench/README.md): on planted structured noise cleanlab's per-pair set fixed far more of the
    planted flips than that top n, and on two-class sets one count moved flags from one class to
    the other. Without probabilities, the neighbour vote's flags; with training dynamics
    alone (a captured run, no vectors), the samples whose area under the margin is below its
    cut. Detectors that speak only
    where they find something (a conflicting near-duplicate, an annotator consensus against the
    label, a structured region) add the samples they flag with a suggestion of another label.
    Without any of these, the union of the detectors' flags. Samples in ``decided``
    (:func:`_decided_alone`, by ``decider``) are flagged only by the detectors that speak when
    flagged and read more than the models' probabilities (the decider, conflicting copies; not a
    structured region, whose evidence the decider's posterior already holds), and the per-class
    counts are made over the other samples.
    """
    counted = next((results[c] for c in COUNTING_DETECTORS if c in results), None)
    if counted is None:
        return np.logical_or.reduce([r.flagged for r in results.values()]), "union of detector flags"
    flagged = counted.flagged.copy()
    chosen = counted.name == "confident" and choose_within_class
    among = None if decided is None else ~decided
    if chosen:
        quotas = _class_quotas(counted, labels, among)
        flagged = first_of_each_class(quotas, labels, position, among) | _sure(counted)
    if decided is not None:
        flagged &= ~decided
    joined = []
    for name, r in results.items():
        if _speaks_when_flagged(name) and r.suggested is not None:
            speaks = r.flagged & (r.suggested >= 0) & (r.suggested != labels)
            if decided is not None and r is not decider and "probabilities" in REGISTRY[name].needs:
                # the decider already weighed the models' probabilities (its prior); a detector
                # that reads only them does not overrule it a second time
                speaks &= ~decided
            flagged |= speaks
            joined.append(name)
    how = {"confident": "per class as many as the estimated noise, first in the ranking, and its sure flags" if chosen
           else "per class pair, as many as the estimated noise",
           "neighbours_vote": "half or more of its neighbours carry one other label",
           "aum": "area under the margin below its cut"}[counted.name]
    rule = f"issues found by {counted.name} ({how})"
    if decided is not None:
        where = decider.params.get("decided_where") or f"{int(decided.sum())} samples"
        rule += f"; on {where}, the {decider.name} detector alone"
    if joined:
        rule += f"; plus the flags of {', '.join(sorted(joined))} that suggest another label"
    return flagged, rule


def _class_quotas(counted: DetectorResult, labels: np.ndarray, among: np.ndarray | None = None) -> np.ndarray:
    """How many of each given label's samples to flag: the expected number of wrong labels
    among them, the sum of their estimated error probabilities
    (:func:`core.detect.confident.error_probability`), rounded; without those, as many as the
    detector flagged with that label.

    Confident learning's own count calls a sample wrong once its probability of another class
    passes that class's threshold, so every sample near a threshold counts in full. On a probe's
    diffuse probabilities that over-counts (CIFAR-10N aggregate, EfficientNet vectors: 907 flags
    for 560 wrong labels); the expectation under the same noise estimate counts such a sample in
    part (656), and the flagged F1 rose on every multi-class evaluation set (bench/README.md,
    "Flags as many as the expected wrong labels"). ``among``: count over these samples only
    (bool (N,); default all)."""
    n_classes = int(labels.max()) + 1 if labels.size else 0
    rows = np.ones(labels.shape[0], dtype=bool) if among is None else among
    expected = counted.evidence.get("error_probability")
    if expected is None:
        return np.bincount(labels[counted.flagged & rows], minlength=n_classes)
    return np.rint(np.bincount(labels[rows], weights=np.asarray(expected, dtype=np.float64)[rows],
                               minlength=n_classes)).astype(np.int64)


def first_of_each_class(quotas: np.ndarray, labels: np.ndarray, position: np.ndarray,
                         among: np.ndarray | None = None) -> np.ndarray:
    """For each given label ``c``, its first ``quotas[c]`` samples in the order of the combined
    ranking (``position``: 0 = first), of the samples in ``among`` (default all).

    The noise estimate says how many of each class's labels are wrong, and that count is what
    it is good at; which of the class's samples confident learning names follows one probability
    margin. The combined ranking orders samples better (higher AUPRC on every evaluation set), so
    within each class it chooses. Per class, not overall: a single top-n across classes loses the
    noise estimate's sense of where the noise is (bench/README.md, "Flags per class").
    """
    flagged = np.zeros(labels.shape[0], dtype=bool)
    rows = np.ones(labels.shape[0], dtype=bool) if among is None else among
    for c in np.flatnonzero(quotas):
        members = np.flatnonzero((labels == c) & rows)
        flagged[members[np.argsort(position[members], kind="stable")[:int(quotas[c])]]] = True
    return flagged


def _sure(counted: DetectorResult) -> np.ndarray:
    """The confident detector's flags whose suggestion is their most probable label: those a
    bulk acceptance relabels. They stay in the queue whatever the ranking chooses, so that
    nothing an expert can accept in bulk is hidden from review (on planted structured noise,
    dropping them left 3-5 % more planted labels wrong; bench/README.md, "Flags per class")."""
    likely = counted.evidence.get("most_likely_label")
    if likely is None or counted.suggested is None:
        return np.zeros(counted.flagged.shape[0], dtype=bool)
    return counted.flagged & (np.asarray(likely) == counted.suggested)


def cut_by_precision(error_probability: np.ndarray, min_precision: float) -> int:
    """How many of a ranked queue to keep so its expected precision stays >= ``min_precision``.

    ``error_probability`` is in queue order (best first); the expected precision of the first m
    is their mean error probability. Returns the largest such m (0 when even the first is below).
    """
    p = np.asarray(error_probability, dtype=np.float64)
    if not 0.0 <= min_precision <= 1.0:
        raise ValueError(f"min_precision must lie in [0, 1], got {min_precision}")
    if p.size == 0:
        return 0
    running = np.cumsum(p) / np.arange(1, p.size + 1)
    keep = np.flatnonzero(running >= min_precision - 1e-12)
    return int(keep.max() + 1) if keep.size else 0
