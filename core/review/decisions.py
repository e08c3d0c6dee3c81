"""Decisions on samples, with optimistic concurrency.

A decision is one of :data:`DECISIONS`: ``relabel`` (to a label in the project's label set),
``keep`` (the label in force is correct), ``ambiguous`` (needs an expert or a guideline change),
``exclude`` (leave out of training). It is a ``decision`` event in the review log (core.review.audit)
whose payload records: decision, old_label (the label in force when it was written),
new_label, given_label, reason, guideline_version (the version followed; default the latest
published, null when none), run_id and evidence (the analysis the reviewer saw), seen_event (the
latest event on the sample the reviewer saw: 0 = none, null = not claimed), previous_event (the
latest event on the sample when it was written), identity_source, and os_user (the operating-system
account that ran the command, when the caller gives it: the CLI does). The reviewer is the event's
actor (the claimed name, normalised); the time is the server's.

Concurrency: with ``expected_event`` given, a decision on a sample that has a newer event is
refused with :class:`core.review.audit.StaleDecisionError` (a ConflictError, CLI exit 3) naming that
event; nothing is written. Role checks, the stale check, old_label and the default guideline
version are all read inside the same ``BEGIN IMMEDIATE`` transaction as the insert. Without
``expected_event`` nothing is checked, but nothing is overwritten either: the earlier decision
stays in the log and the new one records it as ``previous_event``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from core.errors import AmendError
from core.review import audit, labels as labels_mod, roles

logger = logging.getLogger(__name__)

DECISIONS = ("relabel", "keep", "ambiguous", "exclude")
#: Actions on many queue rows at once (:func:`bulk_decisions`): "accept" relabels each sample to
#: its suggested label; the others are the decision of that name.
BULK_ACTIONS = ("accept", "keep", "ambiguous", "exclude")


@dataclass(frozen=True)
class Decision:
    """One requested decision (for :func:`decide_many`)."""

    sample_id: str
    kind: str = "relabel"
    label: Optional[str] = None
    reason: Optional[str] = None  # None: the call's reason
    evidence: Optional[dict] = None
    expected_event: Optional[int] = None


@dataclass
class BulkResult:
    """What :func:`decide_many` did: the events written and (sample_id, reason) of those skipped."""

    decided: list[audit.Event] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"decided": len(self.decided), "skipped": len(self.skipped),
                "events": [e.event_id for e in self.decided],
                "skips": [{"id": sid, "reason": why} for sid, why in self.skipped]}


class _Skip(Exception):
    """A per-sample refusal inside a bulk call."""


def _plain(value: Any) -> Any:
    """Evidence as plain JSON: numpy scalars/arrays to Python, NaN/inf to None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise AmendError(f"evidence must be plain JSON data; got a {type(value).__name__}.")


def _check_kind(kind: str, label: Optional[str], label_set: Sequence[str]) -> None:
    if kind not in DECISIONS:
        raise AmendError(f"decision {kind!r} is unknown; use one of {', '.join(DECISIONS)}.")
    if kind == "relabel":
        if label is None:
            raise AmendError("a relabel needs the new label (--label L).")
        if label not in label_set:
            raise _Skip(f"label {label!r} is not in the label set ({', '.join(label_set)}); "
                        "choose one of them.")
    elif label is not None:
        raise AmendError(f"--label goes only with a relabel; a {kind} decision keeps the label in force.")


def _check_expected(expected_event: Optional[int]) -> Optional[int]:
    if expected_event is None:
        return None
    if isinstance(expected_event, bool) or int(expected_event) != expected_event or expected_event < 0:
        raise AmendError(f"expected event {expected_event!r} must be an event id (0 when you saw none).")
    return int(expected_event)


def _resolve_guideline(log: audit.LogWriter, version: Optional[str]) -> Optional[str]:
    published = [e.payload["version"] for e in log.events(kinds=["guideline_published"])]
    if version is None:
        return published[-1] if published else None
    if version not in published:
        raise AmendError(
            f"no guideline version {version!r}; published versions: {', '.join(published) or 'none'}. "
            "Publish it first or cite an existing one."
        )
    return version


def _write_one(log: audit.LogWriter, request: Decision, given: dict[str, str], label_set: Sequence[str],
               reviewer: str, reason: str, version: Optional[str], run_id: Optional[str],
               identity_source: str, os_user: Optional[str] = None) -> audit.Event:
    if request.sample_id not in given:
        raise _Skip(f"sample {request.sample_id!r} is not in this project; check the id.")
    _check_kind(request.kind, request.label, label_set)
    expected = _check_expected(request.expected_event)
    latest = log.check_fresh(request.sample_id, expected)
    history = log.events(kinds=["decision"], sample_id=request.sample_id)
    old_label = labels_mod.label_in_force(given[request.sample_id], history)
    if request.kind == "relabel" and request.label == old_label:
        raise _Skip(f"sample {request.sample_id!r} already has label {old_label!r}; use keep to confirm it.")
    new_label = request.label if request.kind == "relabel" else old_label
    payload = {
        "decision": request.kind,
        "old_label": old_label,
        "new_label": new_label,
        "given_label": given[request.sample_id],
        "reason": (reason if request.reason is None else str(request.reason)).strip(),
        "guideline_version": version,
        "run_id": run_id,
        "evidence": _plain(request.evidence) if request.evidence is not None else None,
        "seen_event": expected,
        "previous_event": latest.event_id if latest is not None else None,
        **roles.claim(identity_source, os_user),
    }
    return log.append("decision", reviewer, payload, sample_id=request.sample_id)


def _given_labels(project: Any, only: Optional[Sequence[str]] = None) -> dict[str, str]:
    """id -> given label, of every sample or only of ``only`` (one decision reads one row, not the
    whole table: the triage page pays this on every key press)."""
    where = None
    if only is not None:
        where = "id IN (" + ",".join("'" + str(i).replace("'", "''") + "'" for i in only) + ")"
    frame = project.samples(columns=["id", "label"], where=where)
    return dict(zip(frame["id"].astype(str), frame["label"].astype(str)))


def decide(project: Any, sample_id: str, kind: str, reviewer: str, label: Optional[str] = None, reason: str = "",
           guideline_version: Optional[str] = None, run_id: Optional[str] = None, evidence: Optional[dict] = None,
           expected_event: Optional[int] = None, identity_source: str = "local",
           os_user: Optional[str] = None) -> audit.Event:
    """Record one decision and return its event once committed.

    Parameters
    ----------
    kind : one of relabel / keep / ambiguous / exclude. ``label`` only with relabel.
    reviewer : the user's name (from the app's login or chosen locally); must be allowed to decide
        (core.review.roles).
    guideline_version : the version followed; default the latest published (None when none).
    run_id, evidence : the analysis run and the per-sample evidence the reviewer saw.
    expected_event : the id of the latest event on this sample the reviewer saw (0: none). When
        a newer one exists: StaleDecisionError (exit 3), nothing written. None: not checked.
    identity_source : "oidc" (only while the app's login is configured), "local" or "cli" (recorded).
    os_user : the operating-system account that ran the command, recorded beside the claimed name
        (the CLI passes ``getpass.getuser()``); None: not recorded.

    Raises
    ------
    AmendError for an unknown sample, a label outside the label set, a relabel to the label in
    force, an unknown guideline version, a refused role; StaleDecisionError on a conflict.
    """
    reviewer = audit.check_actor(reviewer)
    audit.check_identity_source(identity_source)
    label_set = project.labels()
    given = _given_labels(project, [str(sample_id)])
    request = Decision(sample_id=str(sample_id), kind=kind, label=label, reason=reason or "",
                       evidence=evidence, expected_event=expected_event)
    try:
        if kind not in DECISIONS:
            _check_kind(kind, label, label_set)
        with audit.writing(project) as log:
            roles.require_reviewer(log, reviewer, identity_source, os_user)
            version = _resolve_guideline(log, guideline_version)
            return _write_one(log, request, given, label_set, reviewer, reason or "", version, run_id,
                              identity_source, os_user)
    except _Skip as skip:
        raise AmendError(str(skip)) from None


def decide_many(project: Any, decisions: Iterable[Decision], reviewer: str, reason: str = "",
                guideline_version: Optional[str] = None, run_id: Optional[str] = None,
                identity_source: str = "local", os_user: Optional[str] = None) -> BulkResult:
    """Record many decisions in ONE transaction, skipping those that cannot be made.

    A request is skipped (with a reason) for an unknown sample, a label outside the label set, a
    relabel to the label in force, a stale ``expected_event`` (pass 0 to decide only samples that
    have no event yet), or a sample listed twice (the first one counts). Problems of the whole
    call (reviewer refused, unknown guideline version, an unknown decision kind) raise and write
    nothing. One transaction: a killed bulk leaves all or none of its decisions, all of them cite
    the same guideline version and see one state of the log, and it costs one fsync instead of
    one per sample; it holds the log's write lock for the length of the batch (milliseconds per
    thousand decisions).
    """
    reviewer = audit.check_actor(reviewer)
    audit.check_identity_source(identity_source)
    requests = list(decisions)
    for request in requests:
        if request.kind not in DECISIONS:
            raise AmendError(f"decision {request.kind!r} is unknown; use one of {', '.join(DECISIONS)}.")
    label_set = project.labels()
    given = _given_labels(project)
    result = BulkResult()
    seen: set[str] = set()
    with audit.writing(project) as log:
        roles.require_reviewer(log, reviewer, identity_source, os_user)
        version = _resolve_guideline(log, guideline_version)
        for request in requests:
            sid = str(request.sample_id)
            if sid in seen:
                result.skipped.append((sid, "listed twice in this batch; the first one counts."))
                continue
            seen.add(sid)
            try:
                event = _write_one(log, request, given, label_set, reviewer, reason, version, run_id,
                                   identity_source, os_user)
            except (_Skip, audit.StaleDecisionError) as skip:
                result.skipped.append((sid, str(skip)))
                continue
            except AmendError as error:
                result.skipped.append((sid, str(error)))
                continue
            result.decided.append(event)
    return result


def bulk_decisions(rows: Iterable[Mapping[str, Any]], action: str, run_id: Optional[str] = None) -> list[Decision]:
    """The decisions a bulk action on queue rows asks for, to pass to :func:`decide_many`.

    ``rows``: one mapping per sample with ``id``, ``rank``, ``suggested_label`` (None, or absent,
    when no detector suggests one) and ``seen_event`` (the latest event on the sample the reviewer
    saw, 0 for none; it becomes ``expected_event``, so a sample someone decided since is skipped,
    not overwritten). ``action``: one of :data:`BULK_ACTIONS`. "accept" is a relabel to the row's
    suggested label, and rows without one are left out (there is nothing to accept); keep /
    ambiguous / exclude are that decision on every row. Each decision's evidence is the run, the
    row's rank and ``bulk: True``; the reason is left to the :func:`decide_many` call.
    """
    if action not in BULK_ACTIONS:
        raise AmendError(f"bulk action {action!r} is unknown; use one of {', '.join(BULK_ACTIONS)}.")
    out = []
    for row in rows:
        label = row.get("suggested_label") if action == "accept" else None
        if action == "accept" and not isinstance(label, str):
            continue
        out.append(Decision(sample_id=str(row["id"]), kind="relabel" if action == "accept" else action, label=label,
                            expected_event=row["seen_event"],
                            evidence={"run_id": run_id, "rank": row["rank"], "bulk": True}))
    return out


def _undoable(log: audit.LogWriter, reviewer: str) -> Optional[audit.Event]:
    """The reviewer's latest decision that is still in force and not undone, or None."""
    mine = [e for e in log.events(kinds=["decision"]) if e.actor == reviewer]
    undone = {e.payload.get("undoes") for e in mine if e.payload.get("decision") == "undo"}
    for event in reversed(mine):
        if event.payload.get("decision") != "undo" and event.event_id not in undone:
            return event
    return None


def undo_last(project: Any, reviewer: str, reason: str = "", identity_source: str = "local",
              os_user: Optional[str] = None) -> audit.Event:
    """Undo ``reviewer``'s latest decision that is not undone yet: a new ``decision`` event of kind
    ``undo`` (payload ``undoes``: the event id, ``old_label``: the label in force now,
    ``new_label`` / ``restored_status``: those before the undone decision). Nothing is removed
    from the log; replay (core.review.labels.derive) returns the sample to its earlier state.
    Pressed again, it undoes the reviewer's decision before that one.

    Raises AmendError when the reviewer has nothing to undo, or when someone else decided on that
    sample after the reviewer (their decision is not the reviewer's to take back; nothing written).
    """
    reviewer = audit.check_actor(reviewer)
    audit.check_identity_source(identity_source)
    with audit.writing(project) as log:
        roles.require_reviewer(log, reviewer, identity_source, os_user)
        target = _undoable(log, reviewer)
        if target is None:
            raise AmendError(f"{reviewer} has no decision to undo.")
        sample_id = str(target.sample_id)
        given = _given_labels(project, [sample_id])
        history = log.events(kinds=["decision"], sample_id=sample_id)
        later = [e for e in history if e.event_id > target.event_id]
        undone_later = {e.payload.get("undoes") for e in later if e.payload.get("decision") == "undo"}
        for event in later:
            if event.payload.get("decision") != "undo" and event.event_id not in undone_later:
                raise AmendError(
                    f"{event.actor} decided on {sample_id} after you ({event.describe()}); your decision there "
                    "is no longer the one in force, so it was not undone. Decide on the sample again instead."
                )
        earlier = [e for e in history if e.event_id < target.event_id]
        state = labels_mod.derive(pd.DataFrame({"id": [sample_id], "label": [given.get(sample_id, "")]}),
                                  earlier).iloc[0]
        payload = {
            "decision": "undo",
            "undoes": target.event_id,
            "old_label": labels_mod.label_in_force(given.get(sample_id, ""), history),
            "new_label": state["current_label"],
            "restored_status": state["status"],
            "given_label": given.get(sample_id),
            "reason": (reason or f"undo of event {target.event_id}").strip(),
            "guideline_version": target.payload.get("guideline_version"),
            "run_id": target.payload.get("run_id"),
            "evidence": None,
            "seen_event": None,
            "previous_event": history[-1].event_id if history else None,
            **roles.claim(identity_source, os_user),
        }
        return log.append("decision", reviewer, payload, sample_id=sample_id)


# --------------------------------------------------------------------------- reading
EVENT_COLUMNS = ["event_id", "kind", "sample_id", "actor", "created_at", "decision", "old_label", "new_label",
                 "given_label", "reason", "guideline_version", "run_id", "evidence", "seen_event",
                 "previous_event", "superseded_by", "identity_source", "payload", "prev_hash", "hash"]


def _frame(events: Sequence[audit.Event]) -> pd.DataFrame:
    later: dict[int, int] = {}
    last_on_sample: dict[str, int] = {}
    for event in events:
        if event.kind == "decision":
            if event.sample_id in last_on_sample:
                later[last_on_sample[event.sample_id]] = event.event_id
            last_on_sample[event.sample_id] = event.event_id
    rows = []
    for e in events:
        p = e.payload
        rows.append({
            "event_id": e.event_id, "kind": e.kind, "sample_id": e.sample_id, "actor": e.actor,
            "created_at": e.created_at, "old_label": p.get("old_label"),
            # a reviewer's verdict on a model's hypothesis reads like a decision in the log's table
            "decision": p.get("decision") if e.kind != "hypothesis_reviewed"
            else f"hypothesis {p.get('hypothesis_id')} on {p.get('sample_id')}: {p.get('verdict')}",
            "new_label": p.get("new_label"), "given_label": p.get("given_label"), "reason": p.get("reason"),
            "guideline_version": p.get("guideline_version") if e.kind == "decision" else p.get("version"),
            "run_id": p.get("run_id"),
            "evidence": audit.canonical_json(p["evidence"]) if p.get("evidence") is not None else None,
            "seen_event": p.get("seen_event"), "previous_event": p.get("previous_event"),
            "superseded_by": later.get(e.event_id), "identity_source": p.get("identity_source"),
            "payload": audit.canonical_json(p), "prev_hash": e.prev_hash, "hash": e.hash,
        })
    frame = pd.DataFrame(rows, columns=EVENT_COLUMNS)
    for column in ("seen_event", "previous_event", "superseded_by"):
        frame[column] = pd.array([None if pd.isna(v) else int(v) for v in frame[column]], dtype="Int64")
    frame["event_id"] = frame["event_id"].astype("int64")
    return frame


def events(project: Any, reviewer: Optional[str] = None, sample_id: Optional[str] = None,
           label: Optional[str] = None, guideline_version: Optional[str] = None, since: Optional[str] = None,
           until: Optional[str] = None, kinds: Optional[Sequence[str]] = None) -> pd.DataFrame:
    """The log as a table (chain order), filtered; every filter is optional and they combine.

    reviewer: the event's actor. label: decisions whose old or new label is ``label``.
    guideline_version: decisions citing it (and that version's publish event). since / until:
    ISO times, inclusive. kinds: event kinds (default all). ``superseded_by`` is the next decision
    on the same sample (computed over the whole log), so a corrected decision shows what replaced it.
    Columns: :data:`EVENT_COLUMNS`.
    """
    frame = _frame(audit.read_events(project))
    mask = pd.Series(True, index=frame.index)
    if reviewer is not None:
        mask &= frame["actor"] == reviewer
    if sample_id is not None:
        mask &= frame["sample_id"] == sample_id
    if label is not None:
        mask &= (frame["kind"] == "decision") & ((frame["old_label"] == label) | (frame["new_label"] == label))
    if guideline_version is not None:
        mask &= frame["guideline_version"] == guideline_version
    if since is not None:
        mask &= frame["created_at"] >= audit.normalise_time(since)
    if until is not None:
        mask &= frame["created_at"] <= audit.normalise_time(until)
    if kinds is not None:
        mask &= frame["kind"].isin(list(kinds))
    return frame[mask].reset_index(drop=True)


def history(project: Any, sample_id: str) -> pd.DataFrame:
    """Every event on one sample, oldest first, corrected ones included (see ``superseded_by``).

    Reads only that sample's events (an indexed query): ``superseded_by`` names the next decision
    on the same sample, so the rest of the log does not change it, and the triage page asks for
    this after every decision.
    """
    return _frame(audit.read_events(project, sample_id=sample_id))


def latest_event_id(project: Any, sample_id: str) -> int:
    """The id of the latest event on a sample, 0 when it has none (what a reviewer passes as
    ``expected_event`` after looking at it)."""
    found = audit.read_events(project, sample_id=sample_id)
    return found[-1].event_id if found else 0
