"""Current labels: a pure function of the given labels and the review log, at any point in time.

Nothing here is stored. :func:`derive` replays ``decision`` events in chain order over the given
labels; :func:`current_labels` chooses which prefix of the log to replay.

Replay rule (the last decision on a sample wins):

- ``relabel`` to L: the label in force becomes L; status ``relabelled``.
- ``keep``: the label in force stays (confirmed correct); status ``kept``.
- ``ambiguous``: the label in force stays, pending an expert or a guideline change; status
  ``ambiguous``.
- ``exclude``: the label in force stays, the sample is marked ``excluded`` (from training);
  status ``excluded``. Any later decision replaces this (a later keep un-excludes).
- ``undo`` of an earlier decision (core.review.decisions.undo_last): the sample returns to the
  state it had before that decision (label, status, reviewer, reason), as if it had not been
  made; the undone event stays in the log, and so does the undo.
- no decision: the given label; status ``unreviewed``.

"The label in force" is the label after all earlier decisions, so ``keep`` after a relabel keeps
the relabelled label; to go back to the given label, relabel to it. Each decision's payload also
records ``old_label`` / ``new_label`` as computed when it was written; replay gives the same.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional

import pandas as pd

from core.errors import AmendError
from core.review import audit

STATUS = {"relabel": "relabelled", "keep": "kept", "ambiguous": "ambiguous", "exclude": "excluded"}
COLUMNS = ["id", "given_label", "current_label", "status", "excluded", "last_event_id", "reviewer",
           "decided_at", "reason", "guideline_version"]


def apply(label_in_force: str, payload: dict) -> str:
    """The label in force after one decision (an undo records the label it restores)."""
    return payload["new_label"] if payload["decision"] in ("relabel", "undo") else label_in_force


def derive(samples: pd.DataFrame, decisions: Iterable[audit.Event]) -> pd.DataFrame:
    """Current labels from given labels (``samples``: columns ``id``, ``label``) and decision
    events (in chain order; decisions on ids not in ``samples`` are ignored). Pure."""
    ids = samples["id"].astype(str).tolist()
    given = samples["label"].astype(str).tolist()
    index = {sid: i for i, sid in enumerate(ids)}
    current = list(given)
    status = ["unreviewed"] * len(ids)
    last_event: list[Optional[int]] = [None] * len(ids)
    reviewer: list[Optional[str]] = [None] * len(ids)
    decided_at: list[Optional[str]] = [None] * len(ids)
    reason: list[Optional[str]] = [None] * len(ids)
    version: list[Optional[str]] = [None] * len(ids)
    # Per sample, the state before each decision still in force: an undo goes back one step.
    before: dict[int, list[tuple]] = {}
    for event in decisions:
        if event.kind != "decision":
            continue
        i = index.get(event.sample_id)
        if i is None:
            continue
        payload = event.payload
        if payload["decision"] == "undo":
            stack = before.get(i)
            if stack:
                current[i], status[i], reviewer[i], decided_at[i], reason[i], version[i] = stack.pop()
            else:  # the undone decision is outside the replayed part of the log: trust the payload
                current[i] = payload["new_label"]
                status[i] = payload.get("restored_status", "unreviewed")
            last_event[i] = event.event_id  # the newest event on the sample, for stale checks
            continue
        before.setdefault(i, []).append((current[i], status[i], reviewer[i], decided_at[i], reason[i], version[i]))
        current[i] = apply(current[i], payload)
        status[i] = STATUS[payload["decision"]]
        last_event[i] = event.event_id
        reviewer[i] = event.actor
        decided_at[i] = event.created_at
        reason[i] = payload.get("reason")
        version[i] = payload.get("guideline_version")
    return pd.DataFrame(
        {
            "id": pd.Series(ids, dtype=object),
            "given_label": pd.Series(given, dtype=object),
            "current_label": pd.Series(current, dtype=object),
            "status": pd.Series(status, dtype=object),
            "excluded": pd.Series([s == "excluded" for s in status], dtype=bool),
            "last_event_id": pd.array(last_event, dtype="Int64"),
            "reviewer": pd.Series(reviewer, dtype=object),
            "decided_at": pd.Series(decided_at, dtype=object),
            "reason": pd.Series(reason, dtype=object),
            "guideline_version": pd.Series(version, dtype=object),
        },
        columns=COLUMNS,
    )


def guideline_cutoff(project: Any, version: str) -> Optional[int]:
    """The last event id of the period in which ``version`` was the latest guideline: the event
    just before the next version's publish event, or None (no cutoff) for the latest version."""
    published = audit.read_events(project, kinds=["guideline_published"])
    names = [e.payload["version"] for e in published]
    if version not in names:
        raise AmendError(
            f"no guideline version {version!r}; published versions: {', '.join(names) or 'none'}."
        )
    position = names.index(version)
    if position + 1 == len(published):
        return None
    return published[position + 1].event_id - 1


def current_labels(project: Any, as_of: Optional[str] = None, up_to_event: Optional[int] = None,
                   guideline_version: Optional[str] = None) -> pd.DataFrame:
    """Labels of every committed sample (project order) after replaying a prefix of the log.

    Parameters
    ----------
    as_of : ISO time, optional (default: now). Only events with ``created_at <= as_of`` count
        (a naive time is UTC; a bare date is its midnight). Times never go backwards along the
        chain, so this is a prefix of the log.
    up_to_event : int, optional. Only events with ``event_id <= up_to_event`` count.
    guideline_version : str, optional. The labels at the moment this version was superseded:
        every event before the next version's ``guideline_published`` event (all events when it
        is the latest version). Decisions citing other versions within that period count too.
    When several are given, the earliest cutoff wins. The sample set is always today's
    committed samples (a sample ingested later shows as unreviewed).

    Returns
    -------
    DataFrame with columns id, given_label, current_label, status (unreviewed / relabelled /
    kept / ambiguous / excluded), excluded (bool), last_event_id (Int64, <NA> when unreviewed),
    reviewer, decided_at, reason, guideline_version (cited by the last decision).
    """
    limit = up_to_event
    if guideline_version is not None:
        cutoff = guideline_cutoff(project, guideline_version)
        if cutoff is not None:
            limit = cutoff if limit is None else min(limit, cutoff)
    samples = project.samples(columns=["id", "label"])
    decisions = audit.read_events(project, kinds=["decision"], up_to_event=limit, until=as_of)
    return derive(samples, decisions)


def label_in_force(given_label: str, decisions: Iterable[audit.Event]) -> str:
    """The label of one sample after its decisions (chain order)."""
    label = given_label
    for event in decisions:
        if event.kind == "decision":
            label = apply(label, event.payload)
    return label
