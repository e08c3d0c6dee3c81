"""Confident learning (cleanlab) on out-of-sample probabilities, from the probe or imported."""

from __future__ import annotations

import logging
from typing import Any, Mapping, Optional

import numpy as np


from core.detect.cleanlab_import import import_cleanlab
from core.detect.result import DetectInputs, DetectorResult, register, validate_labels
from core.detect.wording import number, own_label, percent, suggested_label

logger = logging.getLogger(__name__)

__all__ = ["NAME", "DESCRIPTION", "score", "check_probabilities", "best_other_label", "error_probability",
           "true_label_posterior", "confident_joint"]

NAME = "confident"
DESCRIPTION = "A model that never saw this sample gives its label a low probability (confident learning)."
#: cleanlab label-quality method; "self_confidence" measured best of the three on the shared data
#: (bench/README.md).
DEFAULT_METHOD = "self_confidence"


def check_probabilities(probabilities: np.ndarray, n: int, n_classes: int) -> np.ndarray:
    """Return ``probabilities`` as float64 (N, C) rows summing to 1, or raise a clear error.

    Parameters
    ----------
    probabilities : np.ndarray
        shape (N, C).
    n : int
        Expected rows.
    n_classes : int
        Expected columns.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    if p.shape != (n, n_classes):
        raise ValueError(f"probabilities must have shape ({n}, {n_classes}), got {p.shape}")
    if not np.isfinite(p).all() or (p < 0).any():
        raise ValueError("probabilities must be finite and non-negative")
    sums = p.sum(axis=1)
    if np.abs(sums - 1.0).max() > 1e-3:
        raise ValueError(f"probability rows must sum to 1 (worst row sums to {sums[np.abs(sums - 1).argmax()]:.4f})")
    return p / sums[:, None]


def confident_joint(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Confident learning's joint of (given, true) labels (rows given, summing to 1), counted with
    two guards for labels that are mostly wrong.

    Confident learning counts a sample as a true member of class ``y`` when its probability of
    ``y`` reaches ``y``'s threshold, the mean probability of ``y`` over the samples labelled ``y``
    (its most probable class when several classes reach theirs); the counts are then calibrated to the label
    counts (cleanlab's ``estimate_joint``). When most samples carrying a label are wrong (a rare
    label over-used, a retired label left on a few samples), that threshold falls to a trace of
    probability, and samples of other classes with such a trace fill the label's column of the
    noise matrix. Inverted, that column moved the posterior of many right labels onto the rare
    class: with 20 samples labelled with a class that has no true member, 430 flags for 100 wrong
    labels (bench/README.md, "A label given mostly by mistake"). So:

    - a threshold is never below chance, ``1 / C``: a probability below chance is not a confident one;
    - a sample whose most probable class is its given label is not counted as a member of another
      class: cleanlab's own flags never name such a sample, and the noise matrix should describe
      the same errors.

    Above chance and away from that case the counts are cleanlab's own. On the 52 evaluation
    sets of bench/README.md the first guard never applied and the second moved no flagged F1 by
    more than 0.007.
    """
    import_cleanlab()  # without Datalab's imports
    from cleanlab.count import estimate_joint, get_confident_thresholds

    labels = np.asarray(labels, dtype=np.int64)
    p = np.asarray(probabilities, dtype=np.float64)
    n_classes = p.shape[1]
    thresholds = np.maximum(get_confident_thresholds(labels, p), 1.0 / n_classes)
    confident = p >= thresholds - 1e-6  # cleanlab's tolerance
    how_many = confident.sum(axis=1)
    most_probable = p.argmax(axis=1)
    # cleanlab's rule: the one confident class, or the most probable one when several are
    true_guess = np.where(how_many > 1, most_probable, confident.argmax(axis=1))
    counted = (how_many > 0) & ~((true_guess != labels) & (most_probable == labels))
    counts = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(counts, (labels[counted], true_guess[counted]), 1)
    return estimate_joint(labels, p, confident_joint=counts)


def true_label_posterior(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """``P(true label = y | x, given label)`` for every row and class, from the data's own noise estimate.

    Confident learning estimates the joint of (given label, true label) over the data set;
    from it the noise matrix ``T[s, y] = P(given s | true y)``. The out-of-sample probabilities
    were learned on the noisy labels, so they estimate ``P(given | x) = sum_y T[s, y] P(y | x)``:
    inverting ``T`` recovers ``P(true | x)`` (backward correction), and Bayes' rule with the
    given label ``s`` gives ``P(true = y | x, given = s) = P(y | x) T[s, y] / sum_y' P(y' | x) T[s, y']``.
    """
    labels = np.asarray(labels, dtype=np.int64)
    p = np.asarray(probabilities, dtype=np.float64)
    n_classes = p.shape[1]
    # Joint of (given, true) as counts, plus one pseudo-sample per given label spread over the
    # true labels: a pair confident learning saw no example of stays possible, not impossible.
    joint = confident_joint(labels, p) * labels.size + 1.0 / n_classes  # rows: given, columns: true
    column = joint.sum(axis=0, keepdims=True)
    t = np.where(column > 0, joint / np.where(column > 0, column, 1.0), np.eye(n_classes))
    try:
        clean = p @ np.linalg.inv(t).T
    except np.linalg.LinAlgError:
        clean = p
    clean = np.clip(clean, 1e-9, None)
    clean /= clean.sum(axis=1, keepdims=True)
    joint_with_given = clean * t[labels, :]
    return joint_with_given / np.maximum(joint_with_given.sum(axis=1, keepdims=True), 1e-12)


def error_probability(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Estimated probability that each given label is wrong: ``1 - P(true = given | x, given)``
    (:func:`true_label_posterior`).

    Measured on CIFAR-10N (bench/README.md): conservative. In every band the share of real
    errors was at least the estimate (e.g. flags estimated at 0.1-0.3 were 46-95 % real errors),
    so "expected precision >= 0.8" is a cut a reviewer can trust rather than an optimistic one.
    """
    labels = np.asarray(labels, dtype=np.int64)
    posterior = true_label_posterior(labels, probabilities)
    return np.clip(1.0 - posterior[np.arange(labels.size), labels], 0.0, 1.0)


def best_other_label(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The most probable class other than the given one, per row."""
    p = probabilities.copy()
    p[np.arange(p.shape[0]), labels] = -np.inf
    return p.argmax(axis=1).astype(np.int64)


def score(
    labels: np.ndarray,
    probabilities: np.ndarray,
    n_classes: int | None = None,
    method: str = DEFAULT_METHOD,
    filter_by: str = "prune_by_noise_rate",
) -> DetectorResult:
    """Score every sample with cleanlab.

    Parameters
    ----------
    labels : np.ndarray
        int, shape (N,).
    probabilities : np.ndarray
        float, shape (N, C), out-of-sample.
    n_classes : int, optional
        C; defaults to ``probabilities.shape[1]``.
    method : str, default "self_confidence"
        ``cleanlab.rank.get_label_quality_scores`` method; score = 1 - label quality.
    filter_by : str, default "prune_by_noise_rate"
        ``cleanlab.filter.find_label_issues`` filter for the flagged set.

    Returns
    -------
    DetectorResult
        suggested = most probable other class; evidence ``given_probability`` and
        ``suggested_probability``.
    """
    import_cleanlab()  # without Datalab's imports
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    probs = np.asarray(probabilities)
    n_classes = int(n_classes if n_classes is not None else probs.shape[1])
    labels = validate_labels(labels, n_classes)
    probs = check_probabilities(probs, labels.shape[0], n_classes)
    quality = get_label_quality_scores(labels, probs, method=method)
    # n_jobs=1: cleanlab's worker pool costs more than it saves on a few cores, and keeps runs
    # bit-identical.
    flagged = find_label_issues(labels, probs, filter_by=filter_by, n_jobs=1)
    suggested = best_other_label(probs, labels)
    rows = np.arange(labels.shape[0])
    posterior = true_label_posterior(labels, probs)
    return DetectorResult(
        name=NAME,
        description=DESCRIPTION,
        scores=np.clip(1.0 - quality, 0.0, 1.0),
        flagged=np.asarray(flagged, dtype=bool),
        suggested=suggested,
        params={"method": method, "filter_by": filter_by},
        evidence={
            "given_probability": probs[rows, labels],
            "suggested_probability": probs[rows, suggested],
            "error_probability": 1.0 - posterior[rows, labels],
            # The label a person deciding alone from this evidence would choose (Bayes): a bulk
            # acceptance takes a suggestion only where it is this label.
            "most_likely_label": posterior.argmax(axis=1).astype(np.int64),
        },
    )


def explain(row: Mapping[str, Any], context: Mapping[str, Any]) -> Optional[str]:
    """'a cross-validated model gives its label cat only 4% and dog 91%'."""
    p_label = number(row.get("p_label"))
    if p_label is None:
        return None
    sentence = f"a cross-validated model gives its label {own_label(row)} only {percent(p_label)}"
    suggested = suggested_label(row)
    p_suggested = number(row.get("p_suggested"))
    if suggested is not None and p_suggested is not None:
        sentence += f" and {suggested} {percent(p_suggested)}"
    return sentence


@register(NAME, DESCRIPTION, needs=("probabilities",), weight=1.0, suggestion_priority=30, explain=explain)
def run(inputs: DetectInputs, **params) -> DetectorResult:
    """Registry entry: :func:`score` on ``inputs.probabilities``."""
    return score(inputs.labels, inputs.probabilities, inputs.n_classes, **params)
