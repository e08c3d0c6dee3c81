"""Neighbour vote: the nearest neighbours in representation space carry another label."""

from __future__ import annotations

import logging
from typing import Any, Mapping, Optional

import numpy as np


from core.detect.result import DetectInputs, DetectorResult, register, validate_labels
from core.detect.wording import neighbour_counts, number, own_label, suggested_label
from core.neighbours import KnnGraph

logger = logging.getLogger(__name__)

__all__ = ["NAME", "DESCRIPTION", "score", "vote_shares"]

NAME = "neighbours_vote"
DESCRIPTION = "Most of this sample's nearest neighbours (cosine) are labelled differently."


def vote_shares(graph: KnnGraph, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Similarity-weighted share of each class among every row's neighbours.

    Parameters
    ----------
    graph : KnnGraph
        Neighbours of every row.
    labels : np.ndarray
        int, shape (N,).
    n_classes : int
        C.

    Returns
    -------
    np.ndarray
        float64, shape (N, C); rows sum to 1 (uniform where all similarities are <= 0).
    """
    # Negative cosine means "unrelated", not "votes against": clip at 0; a small floor keeps a
    # row of tiny similarities a plain (unweighted) vote instead of 0/0.
    w = np.clip(graph.similarities.astype(np.float64), 0.0, None) + 1e-6
    n = graph.indices.shape[0]
    shares = np.zeros((n, n_classes))
    rows = np.repeat(np.arange(n), graph.k)
    np.add.at(shares, (rows, labels[graph.indices].ravel()), w.ravel())
    return shares / shares.sum(axis=1, keepdims=True)


def score(
    graph: KnnGraph, labels: np.ndarray, n_classes: int, k: int | None = None, threshold: float = 0.5
) -> DetectorResult:
    """Score each sample by the share of its neighbours' vote that goes to other labels.

    Parameters
    ----------
    graph : KnnGraph
        Shared kNN graph.
    labels : np.ndarray
        int, shape (N,).
    n_classes : int
        C.
    k : int, optional
        Neighbours used; default all of the graph's.
    threshold : float, default 0.5
        Flag when the winning other label's share is at least this and beats the own label.

    Returns
    -------
    DetectorResult
        score = 1 - own label's weighted share; suggested = winning other label; evidence
        ``suggested_votes`` / ``own_votes`` (neighbour counts, out of ``k``) and ``support``
        (N, k) neighbour indices carrying the suggested label, -1 padded.
    """
    labels = validate_labels(labels, n_classes)
    if len(graph) != labels.shape[0]:
        raise ValueError(f"graph has {len(graph)} rows but there are {labels.shape[0]} labels")
    g = graph if k is None else graph.truncate(k)
    shares = vote_shares(g, labels, n_classes)
    rows = np.arange(labels.shape[0])
    own = shares[rows, labels]
    others = shares.copy()
    others[rows, labels] = -1.0
    suggested = others.argmax(axis=1).astype(np.int64)
    best = others[rows, suggested]
    neighbour_labels = labels[g.indices]
    carries = neighbour_labels == suggested[:, None]
    support = np.where(carries, g.indices, -1)
    # Left-pack the supporting neighbours (stable, so nearest first).
    order = np.argsort(~carries, axis=1, kind="stable")
    support = np.take_along_axis(support, order, axis=1)
    return DetectorResult(
        name=NAME,
        description=DESCRIPTION,
        scores=np.clip(1.0 - own, 0.0, 1.0),
        flagged=(best >= threshold) & (best > own),
        suggested=np.where(best > 0, suggested, -1),
        params={"k": g.k, "threshold": threshold},
        evidence={
            "suggested_votes": carries.sum(axis=1).astype(np.int64),
            "own_votes": (neighbour_labels == labels[:, None]).sum(axis=1).astype(np.int64),
            "k": g.k,
            "support": support,
            "suggested_share": best.clip(0.0, 1.0),
        },
    )


def explain(row: Mapping[str, Any], context: Mapping[str, Any]) -> Optional[str]:
    """'7 of its 10 nearest neighbours are labelled dog; 2 share its label cat'."""
    k, other, count = neighbour_counts(row)
    suggested = suggested_label(row)
    votes = number(row.get("neighbour_votes_suggested"))
    own_votes = number(row.get("neighbour_votes_own"))
    own = own_label(row)
    sentence = None
    if suggested is not None and votes is not None and k:
        sentence = f"{int(votes)} of its {k} nearest neighbours are labelled {suggested}"
    elif other is not None:
        sentence = f"{count} of its {k} nearest neighbours are labelled {other}"
    elif k:
        sentence = f"all {k} of its nearest neighbours share its label {own}"
    if sentence and own_votes is not None:
        sentence += f"; {int(own_votes)} share its label {own}"
    return sentence


# Weight 0: the neighbours' labels enter the ranking through the pooled probabilities
# (core.detect.pooling), with a weight fitted on each project; this score stays evidence.
@register(
    NAME, DESCRIPTION, needs=("graph",), weight=0.0, suggestion_priority=40, explain=explain,
    evidence_columns={
        "neighbour_votes_suggested": lambda r: np.asarray(r.evidence["suggested_votes"], dtype=np.int64),
        "neighbour_votes_own": lambda r: np.asarray(r.evidence["own_votes"], dtype=np.int64),
    },
)
def run(inputs: DetectInputs, **params) -> DetectorResult:
    """Registry entry: :func:`score` on ``inputs.graph``."""
    return score(inputs.graph, inputs.labels, inputs.n_classes, **params)
