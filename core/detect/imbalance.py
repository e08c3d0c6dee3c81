"""Class imbalance guard: flag rate per class next to class frequency, and a per-class
normalisation of scores so rare classes are neither drowned nor over-flagged."""

from __future__ import annotations

import logging

import numpy as np

from core.detect.outliers import within_class_percentile
from core.detect.result import validate_labels

logger = logging.getLogger(__name__)

__all__ = ["class_table", "class_normalise"]


def class_table(
    labels: np.ndarray, flagged: np.ndarray, n_classes: int, class_names: list[str] | None = None
) -> list[dict]:
    """One row per class: count, frequency, flagged count, flag rate, and flag rate / overall rate.

    Parameters
    ----------
    labels : np.ndarray
        int, shape (N,).
    flagged : np.ndarray
        bool, shape (N,).
    n_classes : int
        C.
    class_names : list of str, optional
        Names for the ``class_name`` column; default the index as text.

    Returns
    -------
    list of dict
        Keys ``class``, ``class_name``, ``count``, ``frequency``, ``flagged``, ``flag_rate``,
        ``flag_rate_ratio`` (1.0 = flagged as often as the data set overall; 0 for empty classes).
    """
    labels = validate_labels(labels, n_classes)
    flagged = np.asarray(flagged, dtype=bool)
    counts = np.bincount(labels, minlength=n_classes)
    hits = np.bincount(labels, weights=flagged.astype(np.float64), minlength=n_classes)
    n = max(1, labels.shape[0])
    overall = flagged.mean() if flagged.size else 0.0
    rows = []
    for c in range(n_classes):
        rate = hits[c] / counts[c] if counts[c] else 0.0
        rows.append(
            {
                "class": c,
                "class_name": class_names[c] if class_names else str(c),
                "count": int(counts[c]),
                "frequency": counts[c] / n,
                "flagged": int(hits[c]),
                "flag_rate": float(rate),
                "flag_rate_ratio": float(rate / overall) if overall > 0 else 0.0,
            }
        )
    return rows


def class_normalise(scores: np.ndarray, labels: np.ndarray, strength: float = 0.0) -> np.ndarray:
    """Blend each score with its percentile among the scores of its own class.

    ``(1 - strength) * score + strength * within_class_percentile(score)``: with strength 1 every
    class contributes the same share of the top of the ranking, whatever its size or how hard the
    model finds it; with 0 (default, the measured best on the shared data, whose classes are
    roughly balanced) scores are unchanged.

    Parameters
    ----------
    scores : np.ndarray
        float in [0, 1], shape (N,).
    labels : np.ndarray
        int, shape (N,).
    strength : float, default 0.0
        Weight of the within-class percentile, in [0, 1].
    """
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must lie in [0, 1], got {strength}")
    scores = np.asarray(scores, dtype=np.float64)
    if strength == 0.0:
        return scores
    return (1.0 - strength) * scores + strength * within_class_percentile(scores, np.asarray(labels))
