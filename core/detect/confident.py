"""Confident learning (cleanlab) on out-of-sample probabilities, from the probe or imported."""

from __future__ import annotations

import logging

import numpy as np

from core.detect.result import DetectInputs, DetectorResult, register, validate_labels

logger = logging.getLogger(__name__)

__all__ = ["NAME", "DESCRIPTION", "score", "check_probabilities", "best_other_label"]

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
        },
    )


@register(NAME, DESCRIPTION, needs=("probabilities",))
def run(inputs: DetectInputs, **params) -> DetectorResult:
    """Registry entry: :func:`score` on ``inputs.probabilities``."""
    return score(inputs.labels, inputs.probabilities, inputs.n_classes, **params)
