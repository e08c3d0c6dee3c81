"""Conflicting near-duplicates: (almost) the same sample carrying different labels."""

from __future__ import annotations

import logging
from typing import Any, Mapping, Optional

import numpy as np


from core.detect.wording import listed, own_label
from core.detect.result import DetectInputs, DetectorResult, register, validate_labels
from core.neighbours import KnnGraph

logger = logging.getLogger(__name__)

__all__ = ["NAME", "DESCRIPTION", "score", "near_duplicate_groups"]

NAME = "duplicates"
DESCRIPTION = "A near-duplicate of this sample carries a different label."
#: Cosine at or above which two samples count as near-duplicates (see bench/README.md).
DEFAULT_THRESHOLD = 0.98


def _find(parent: np.ndarray, i: int) -> int:
    root = i
    while parent[root] != root:
        root = parent[root]
    while parent[i] != root:  # path compression
        parent[i], i = root, parent[i]
    return root


def near_duplicate_groups(graph: KnnGraph, threshold: float = DEFAULT_THRESHOLD) -> list[np.ndarray]:
    """Connected groups (union-find) of rows linked by a graph edge with cosine >= ``threshold``.

    Only edges in the kNN graph are seen, so a group larger than k + 1 is found through chains
    of edges; groups are sorted member lists, ordered by their smallest member.
    """
    rows, cols = np.nonzero(graph.similarities >= threshold)
    if rows.size == 0:
        return []
    a, b = rows, graph.indices[rows, cols]
    parent = np.arange(len(graph))
    for i, j in zip(a.tolist(), b.tolist()):
        ri, rj = _find(parent, i), _find(parent, j)
        if ri != rj:
            # smaller index becomes the root: the grouping does not depend on edge order
            parent[max(ri, rj)] = min(ri, rj)
    members = np.unique(np.concatenate([a, b]))
    roots = np.array([_find(parent, int(m)) for m in members])
    return [members[roots == r] for r in np.unique(roots)]


def score(
    graph: KnnGraph, labels: np.ndarray, n_classes: int, threshold: float = DEFAULT_THRESHOLD,
    probabilities: np.ndarray | None = None,
) -> DetectorResult:
    """Find near-duplicate groups whose members carry more than one label.

    The members of a group are (almost) one sample, so they share one true label, and every label
    but that one is wrong. Which one it is: each label the group carries is a vote (its count),
    weighed by how probable the shared content makes it (the members' mean out-of-sample
    probability of that class, when ``probabilities`` are given).

    Parameters
    ----------
    graph : KnnGraph
        Shared kNN graph.
    labels : np.ndarray
        int, shape (N,).
    n_classes : int
        C.
    threshold : float, default 0.98
        Cosine at or above which two samples are near-duplicates.
    probabilities : np.ndarray, optional
        (N, C) out-of-sample class probabilities (the pooled ones); without them the votes alone
        decide.

    Returns
    -------
    DetectorResult
        Members of conflicting groups score the chance that their label is not the group's true
        one (0.5 for each side of a pair split one to one with no other evidence), times their
        highest similarity to a differently labelled member; everyone else scores 0. Flagged:
        the members whose label is not the one the evidence prefers (every member when two
        labels tie), suggested = the group's most probable other label. evidence ``groups``:
        list of dicts with ``members``, ``labels`` and ``min_similarity``.
    """
    labels = validate_labels(labels, n_classes)
    if len(graph) != labels.shape[0]:
        raise ValueError(f"graph has {len(graph)} rows but there are {labels.shape[0]} labels")
    if probabilities is not None and np.shape(probabilities) != (labels.shape[0], n_classes):
        raise ValueError(f"probabilities must have shape ({labels.shape[0]}, {n_classes}), got {np.shape(probabilities)}")
    n = labels.shape[0]
    scores = np.zeros(n)
    suggested = np.full(n, -1, dtype=np.int64)
    flagged = np.zeros(n, dtype=bool)
    groups = []
    for members in near_duplicate_groups(graph, threshold):
        group_labels = labels[members]
        if np.unique(group_labels).size < 2:
            continue
        # similarities between members, as seen in the graph (within-group edges only)
        sub_idx = graph.indices[members]
        sub_sim = graph.similarities[members]
        in_group = np.isin(sub_idx, members) & (sub_sim >= threshold)
        conflict = in_group & (labels[sub_idx] != group_labels[:, None])
        best = np.where(conflict, sub_sim, 0.0).max(axis=1)
        # an edge is seen from one side only when the other row's k nearest are all closer
        for row, m in enumerate(members.tolist()):
            hit = conflict & (sub_idx == m)
            if hit.any():
                best[row] = max(best[row], float(sub_sim[hit].max()))
        belief = _true_label_belief(group_labels, n_classes,
                                    None if probabilities is None else np.asarray(probabilities)[members])
        preferred = np.flatnonzero(np.isclose(belief, belief.max()))
        for row, m in enumerate(members.tolist()):
            own = int(labels[m])
            # Scored as sure errors, both sides of every pair split one to one (cross-posts in
            # 20 Newsgroups) ranked above every confidently wrong label, though one side is right.
            scores[m] = float(np.clip(best[row], 0.0, 1.0)) * (1.0 - belief[own])
            if preferred.size == 1 and own == preferred[0]:
                continue  # the label the group's evidence prefers: not flagged
            flagged[m] = True
            others = belief.copy()
            others[own] = -1.0
            suggested[m] = int(others.argmax())
        min_sim = float(sub_sim[in_group].min()) if in_group.any() else float(threshold)
        groups.append(
            {"members": members.astype(np.int64), "labels": group_labels.astype(np.int64), "min_similarity": min_sim}
        )
    logger.debug("%d conflicting near-duplicate groups at cosine >= %.3f", len(groups), threshold)
    return DetectorResult(
        name=NAME,
        description=DESCRIPTION,
        scores=scores,
        flagged=flagged,
        suggested=suggested,
        params={"threshold": threshold},
        evidence={"groups": groups},
    )


def _true_label_belief(group_labels: np.ndarray, n_classes: int, probabilities: np.ndarray | None) -> np.ndarray:
    """P(the group's true label = c) over the labels the group carries: the votes (counts) times
    the members' mean probability of c; the votes alone without probabilities, or where the
    probabilities rule out every label the group carries."""
    votes = np.bincount(group_labels, minlength=n_classes).astype(np.float64)
    weight = votes if probabilities is None else votes * np.asarray(probabilities, dtype=np.float64).mean(axis=0)
    if not weight.sum() > 0:
        weight = votes
    return weight / weight.sum()


def explain(row: Mapping[str, Any], context: Mapping[str, Any]) -> Optional[str]:
    """'a near-duplicate (00412, cosine 0.991) is labelled dog'."""
    threshold = float(context.get("params", {}).get(NAME, {}).get("threshold", DEFAULT_THRESHOLD))
    own = own_label(row)
    sims = [float(s) for s in listed(row.get("neighbour_similarities"))]
    labels = [str(x) for x in listed(row.get("neighbour_labels"))]
    ids = [str(x) for x in listed(row.get("neighbour_ids"))]
    twins = [(i, lab, s) for i, lab, s in zip(ids, labels, sims) if s >= threshold]
    differing = [t for t in twins if t[1] != own]
    if differing:
        sid, lab, sim = differing[0]
        more = f"; {len(differing) - 1} more near-duplicates disagree" if len(differing) > 1 else ""
        return f"a near-duplicate ({sid}, cosine {sim:.3f}) is labelled {lab}{more}"
    if twins:
        return f"{len(twins)} near-duplicate(s), all labelled {own}"
    return f"no near-duplicate at cosine {threshold:g} or above"


# A conflicting near-duplicate is near-certain evidence: a large weight, and its flags that carry
# a suggestion join the flagged set whatever the noise estimate says.
@register(
    NAME, DESCRIPTION, needs=("graph",), weight=0.5, suggestion_priority=20, speaks_when_flagged=True,
    params={"threshold": DEFAULT_THRESHOLD}, explain=explain,
)
def run(inputs: DetectInputs, **params) -> DetectorResult:
    """Registry entry: :func:`score` on ``inputs.graph`` and the pooled probabilities (when any)."""
    return score(inputs.graph, inputs.labels, inputs.n_classes, probabilities=inputs.probabilities, **params)
