"""Class outliers: samples far from the rest of their own class in representation space."""

from __future__ import annotations

import logging
from typing import Any, Mapping, Optional

import numpy as np


from core.detect.wording import listed, number, own_label, percent
from core.detect.result import DetectInputs, DetectorResult, register, validate_labels
from core.neighbours import normalise

logger = logging.getLogger(__name__)

__all__ = ["NAME", "DESCRIPTION", "score", "within_class_percentile"]

NAME = "outliers"
DESCRIPTION = "Far from the centre of its own class, compared with the other members of that class."


def within_class_percentile(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Percentile rank of each value among the values of its class, in (0, 1].

    Ties share their average rank; a class of one member gets 0.5 (no evidence either way).
    """
    out = np.empty(values.shape[0])
    for c in np.unique(labels):
        m = np.flatnonzero(labels == c)
        if m.size == 1:
            out[m] = 0.5
            continue
        order = np.argsort(values[m], kind="stable")
        ranks = np.empty(m.size)
        ranks[order] = np.arange(1, m.size + 1)
        # average ranks over ties so the score does not depend on input order
        v = values[m]
        uniq, inv = np.unique(v, return_inverse=True)
        if uniq.size < m.size:
            sums = np.bincount(inv, weights=ranks)
            ranks = (sums / np.bincount(inv))[inv]
        out[m] = ranks / m.size
    return out


#: Rows per block of the float64 arithmetic.
OUTLIER_BLOCK = 65_536


def score(
    vectors: np.ndarray, labels: np.ndarray, n_classes: int, n_mad: float = 3.0
) -> DetectorResult:
    """Score by cosine distance to the own class's centroid (leave-one-out), ranked within class.

    Parameters
    ----------
    vectors : np.ndarray
        shape (N, D); normalised here.
    labels : np.ndarray
        int, shape (N,).
    n_classes : int
        C.
    n_mad : float, default 3.0
        Flag when the distance exceeds the class median by more than this many robust standard
        deviations (1.4826 x MAD), so clean compact classes flag almost nothing.

    Returns
    -------
    DetectorResult
        score = within-class percentile of the distance; suggested = nearest other class centroid
        when it is closer than the own one, else -1; evidence ``distance`` and
        ``nearest_other_distance``.
    """
    labels = validate_labels(labels, n_classes)
    x = normalise(vectors)
    if x.shape[0] != labels.shape[0]:
        raise ValueError(f"{x.shape[0]} vectors but {labels.shape[0]} labels")
    n = x.shape[0]
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    # Everything below in float64 but block by block: whole-matrix float64 copies of the vectors
    # (and of each sample's leave-one-out centroid) were ten times the vectors' size at 1M rows.
    sums = np.zeros((n_classes, x.shape[1]))
    for start in range(0, n, OUTLIER_BLOCK):
        block = slice(start, start + OUTLIER_BLOCK)
        one_hot = np.zeros((labels[block].size, n_classes))
        one_hot[np.arange(labels[block].size), labels[block]] = 1.0
        sums += one_hot.T @ x[block].astype(np.float64)
    sums_sq = np.einsum("ij,ij->i", sums, sums)
    cent_norm = np.sqrt(sums_sq)
    own_sim = np.empty(n)
    sims = np.empty((n, n_classes))
    for start in range(0, n, OUTLIER_BLOCK):
        block = slice(start, start + OUTLIER_BLOCK)
        xb = x[block].astype(np.float64)
        lab = labels[block]
        to_sums = xb @ sums.T  # x . (sum of each class)
        at_own = to_sums[np.arange(lab.size), lab]
        self_sq = np.einsum("ij,ij->i", xb, xb)
        # Leave-one-out own centroid (own class sum minus the sample): a sample must not pull its
        # own class centre towards itself. Its dot product and norm follow from the sums.
        own_dot = at_own - self_sq
        own_norm = np.sqrt(np.maximum(sums_sq[lab] - 2.0 * at_own + self_sq, 0.0))
        own_sim[block] = np.where(own_norm > 0, own_dot / np.where(own_norm > 0, own_norm, 1), 0.0)
        sims[block] = to_sums / np.where(cent_norm > 0, cent_norm, 1)[None, :]
    sims[:, counts == 0] = -np.inf
    rows = np.arange(n)
    sims[rows, labels] = -np.inf
    nearest = sims.argmax(axis=1).astype(np.int64)
    other_sim = sims[rows, nearest]
    distance = 1.0 - own_sim
    other_distance = np.where(np.isfinite(other_sim), 1.0 - other_sim, np.inf)
    flagged = np.zeros(x.shape[0], dtype=bool)
    for c in np.unique(labels):
        m = labels == c
        if m.sum() < 3:
            continue
        d = distance[m]
        med = np.median(d)
        mad = 1.4826 * np.median(np.abs(d - med))
        flagged[m] = d > med + n_mad * max(mad, 1e-12)
    return DetectorResult(
        name=NAME,
        description=DESCRIPTION,
        scores=within_class_percentile(distance, labels),
        flagged=flagged,
        suggested=np.where(other_distance < distance, nearest, -1),
        params={"n_mad": n_mad},
        evidence={"distance": distance, "nearest_other_distance": np.minimum(other_distance, 2.0)},
    )


def explain(row: Mapping[str, Any], context: Mapping[str, Any]) -> Optional[str]:
    """'farther from the centre of class cat than 97% of that class's samples'."""
    score_ = number(row.get(f"det_{NAME}"))
    if score_ is None:
        return None
    own = own_label(row)
    sims = [float(s) for s in listed(row.get("neighbour_similarities"))]
    where = f"; its nearest neighbour is {sims[0]:.2f} similar" if sims else ""
    if score_ >= 0.995:
        return f"the farthest of its class {own} from that class's centre{where}"
    return f"farther from the centre of class {own} than {percent(score_)} of that class's samples{where}"


# Weight 0: outlier scores lowered AUPRC in every measured case (bench/README.md); evidence only.
@register(NAME, DESCRIPTION, needs=("vectors",), weight=0.0, suggestion_priority=50, explain=explain)
def run(inputs: DetectInputs, **params) -> DetectorResult:
    """Registry entry: :func:`score` on ``inputs.vectors``."""
    return score(inputs.vectors, inputs.labels, inputs.n_classes, **params)
