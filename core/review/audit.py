"""The review log: an append-only, hash-chained event log in ``<project>/review.sqlite``.

This module is the only writer of events. Everything a person decides (decisions, guideline
versions, role changes) is one event; nothing is ever updated or deleted, so a correction is a
new event and the old one stays readable.

Storage. SQLite in WAL mode with ``synchronous=FULL``, autocommit mode, and every write inside
``BEGIN IMMEDIATE`` ... ``COMMIT``: two writers serialise on the database's write lock, so the
chain cannot fork, and an event exists on disk (acknowledged) only once ``COMMIT`` has returned.
A process killed at any moment leaves either the whole transaction or nothing.
Triggers reject ``UPDATE`` and ``DELETE`` on ``events`` at the database level.

Chain. ``hash = sha256(prev_hash + canonical_json({event_id, kind, sample_id, payload,
created_at, actor}))`` (hex), where ``canonical_json`` is ``json.dumps(sort_keys=True,
separators=(",", ":"), ensure_ascii=False, allow_nan=False)`` encoded as UTF-8, and ``payload``
is the parsed JSON object. The first event's ``prev_hash`` is 64 zeros (:data:`GENESIS`).
Event ids are consecutive from 1. ``created_at`` is server UTC time (ISO 8601, microseconds) and
never goes backwards along the chain: if the clock steps back, an event takes its predecessor's
time, so "the log as of time T" is always a prefix of the chain.

:func:`verify` recomputes everything and names the first bad event. What a chain alone cannot
show is the loss of its *last* events, a rewrite of the tail with the hashes recomputed, or the
whole file replaced (by an older copy, an empty log, nothing). Anchors cover that: every analysis
run and every checkpoint (each export, ``amend audit checkpoint``) records the log's (size, head)
in ``project.sqlite``, and :func:`verify` checks that the log still extends each of them; signed
checkpoints kept outside the project (:mod:`core.review.checkpoints`) are checked the same way and
are the only ones someone holding the project folder cannot rewrite too. The ``AUTOINCREMENT``
counter (``sqlite_sequence``) remembers the highest id ever written, a tripwire for a careless
deletion.

Functions take ``project``: a :class:`core.store.project.Project` or the project folder's path (this
module imports nothing heavy, so a small writer process starts fast).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import logging
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

from core.errors import AmendError, ConflictError, SchemaVersionError, damage_named
from core.review import access as access_rules
from core.store.schema import LOG_FILE, LOG_SCHEMA_VERSION, LOG_SQL, LOG_TRIGGERS, PROJECT_DB, statements
from core.util import utc_now

logger = logging.getLogger(__name__)

GENESIS = "0" * 64
BUSY_TIMEOUT_S = 30.0

#: Event kinds. ``decision`` is written by core.review.decisions, ``guideline_published`` by
#: core.review.guidelines, the role / access kinds by core.review.roles, ``hypothesis_reviewed``
#: (agree / disagree / skip on a model server's explanation of a failure) by core.hypotheses.review.
KINDS = (
    "decision",
    "hypothesis_reviewed",
    "guideline_published",
    "role_granted",
    "role_revoked",
    "project_closed",
    "project_opened",
)
IDENTITY_SOURCES = ("local", "oidc", "cli")


# --------------------------------------------------------------------------- helpers
def canonical_json(value: Any) -> str:
    """The one JSON text of ``value`` that is hashed and stored."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise AmendError(f"an event must be plain JSON (strings, numbers, lists, objects; no NaN): {exc}") from exc


def event_hash(prev_hash: str, event_id: int, kind: str, sample_id: Optional[str], payload: Any,
               created_at: str, actor: str) -> str:
    """SHA-256 (hex) of ``prev_hash`` + the canonical JSON of the event's fields."""
    body = canonical_json(
        {"event_id": event_id, "kind": kind, "sample_id": sample_id, "payload": payload,
         "created_at": created_at, "actor": actor}
    )
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


def normalise_time(value: str | _dt.datetime) -> str:
    """A user-given point in time as the log's time format (UTC, microseconds), so it compares
    as a string. A naive time or a bare date is taken as UTC; a bare date means its start."""
    if isinstance(value, _dt.datetime):
        moment = value
    else:
        text = str(value).strip()
        try:
            moment = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as exc:
            raise AmendError(
                f"{value!r} is not a time; give an ISO 8601 time such as 2024-05-01 or 2024-05-01T12:00:00+00:00."
            ) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.timezone.utc)
    return moment.astimezone(_dt.timezone.utc).isoformat(timespec="microseconds")


def check_actor(actor: str) -> str:
    """The name as the log stores it (:func:`core.review.identity.normalise_name`: NFKC, no
    invisible or control characters, at most 200 characters), or a one-line refusal."""
    from core.review.identity import normalise_name

    if actor is None or (isinstance(actor, str) and not actor.strip()):
        raise AmendError("no user name given; pass --reviewer NAME (or log in) so the log can say who acted.")
    return normalise_name(actor)


def check_identity_source(source: str) -> str:
    """A known identity source; "oidc" only while the app's login is configured
    (:func:`core.review.identity.oidc_configured`)."""
    if source not in IDENTITY_SOURCES:
        raise AmendError(f"identity source {source!r} is unknown; use one of {', '.join(IDENTITY_SOURCES)}.")
    if source == "oidc":
        from core.review.identity import check_oidc

        check_oidc()
    return source


def log_path(project: Any) -> Path:
    base = getattr(project, "path", project)
    return Path(os.fspath(base)) / LOG_FILE


def log_stamp(project: Any) -> tuple:
    """(size, modification time) of the files a verification reads (the log and project.sqlite,
    where its anchors are, each with its write-ahead log): any write, including an edit behind
    Amend's back, changes it, so a verification may be reused for as long as the stamp is the same."""
    stamp = []
    for name in (LOG_FILE, LOG_FILE + "-wal", PROJECT_DB, PROJECT_DB + "-wal"):
        path = log_path(project).with_name(name)
        try:
            info = path.stat()
        except FileNotFoundError:
            stamp.append(None)
            continue
        stamp.append((info.st_size, info.st_mtime_ns))
    return tuple(stamp)


@dataclass(frozen=True)
class Event:
    """One event of the log, as stored."""

    event_id: int
    kind: str
    sample_id: Optional[str]
    payload: dict
    created_at: str
    actor: str
    prev_hash: str
    hash: str

    def to_dict(self) -> dict:
        return {
            "event_id": self.event_id, "kind": self.kind, "sample_id": self.sample_id,
            "payload": self.payload, "created_at": self.created_at, "actor": self.actor,
            "prev_hash": self.prev_hash, "hash": self.hash,
        }

    def describe(self) -> str:
        """One line a person reads: '#12 by bob at <time>: relabel to 'cat''."""
        what = self.kind
        if self.kind == "decision":
            what = describe_decision(self.payload)
        return f"event {self.event_id} by {self.actor} at {self.created_at} ({what})"


def describe_decision(payload: dict) -> str:
    kind = payload.get("decision")
    if kind == "undo":
        return f"undo of event {payload.get('undoes')}, label {payload.get('new_label')!r}"
    if kind == "relabel":
        return f"relabel {payload.get('old_label')!r} -> {payload.get('new_label')!r}"
    return f"{kind}, label {payload.get('new_label')!r}"


class StaleDecisionError(ConflictError):
    """The sample has an event newer than the one the reviewer saw. ``newer`` is that event."""

    def __init__(self, message: str, sample_id: str, expected_event: int, newer: Event) -> None:
        super().__init__(message)
        self.sample_id = sample_id
        self.expected_event = expected_event
        self.newer = newer


def _row_to_event(row: tuple) -> Event:
    return Event(int(row[0]), row[1], row[2], json.loads(row[3]), row[4], row[5], row[6], row[7])


_COLUMNS = "event_id, kind, sample_id, payload, created_at, actor, prev_hash, hash"


# --------------------------------------------------------------------------- connection
def _configure(con: sqlite3.Connection) -> None:
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")


@contextlib.contextmanager
def connect(project: Any, create: bool = True) -> Iterator[Optional[sqlite3.Connection]]:
    """A connection to the log (WAL, synchronous=FULL, autocommit), schema ensured.

    With ``create=False`` and no log on disk, yields None (readers never create the file).
    """
    path = log_path(project)
    if not path.parent.is_dir():
        raise AmendError(f"{path.parent} is not a project folder; create one with `amend init`.")
    if not create and not path.exists():
        yield None
        return
    con = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    try:
        with damage_named(path):  # a log overwritten or corrupted: a user error naming the file
            _configure(con)
            (version,) = con.execute("PRAGMA user_version").fetchone()
            if version == 0:
                _create_schema(con)
            elif version > LOG_SCHEMA_VERSION:
                raise SchemaVersionError(
                    f"{path} was written by a newer Amend (review log schema {version}); this Amend reads "
                    f"schema {LOG_SCHEMA_VERSION}. Upgrade Amend to open it."
                )
            yield con
    finally:
        con.close()


def _create_schema(con: sqlite3.Connection) -> None:
    _begin(con)
    try:
        (version,) = con.execute("PRAGMA user_version").fetchone()
        if version == 0:  # another process may have created it while we waited for the lock
            for statement in statements(LOG_SQL):
                con.execute(statement)
            con.execute(f"PRAGMA user_version = {LOG_SCHEMA_VERSION}")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def _begin(con: sqlite3.Connection) -> None:
    try:
        con.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise ConflictError(
                f"the review log is busy: another writer held it for more than {BUSY_TIMEOUT_S:.0f} s; try again."
            ) from exc
        raise


# --------------------------------------------------------------------------- writing
class LogWriter:
    """An open ``BEGIN IMMEDIATE`` transaction on the log; see :func:`writing`.

    Reads made through it see the log exactly as the events appended here will follow it.
    """

    def __init__(self, con: sqlite3.Connection) -> None:
        self.con = con
        self.appended: list[Event] = []
        row = con.execute(f"SELECT {_COLUMNS} FROM events ORDER BY event_id DESC LIMIT 1").fetchone()
        self._head: Optional[Event] = _row_to_event(row) if row else None
        self._access = None  # the role state (core.review.access.Access), read on first need
        self._sources_checked: set[str] = set()

    @property
    def access(self):
        """Who holds which role, and whether the project is closed, as of this transaction
        (:class:`core.review.access.Access`; kept current as events are appended)."""
        if self._access is None:
            self._access = access_rules.access_from_events(self.events(kinds=access_rules.ACCESS_KINDS))
        return self._access

    @property
    def head(self) -> Optional[Event]:
        """The last event, counting those appended in this transaction."""
        return self._head

    def latest_on_sample(self, sample_id: str) -> Optional[Event]:
        row = self.con.execute(
            f"SELECT {_COLUMNS} FROM events WHERE sample_id = ? ORDER BY event_id DESC LIMIT 1", (sample_id,)
        ).fetchone()
        return _row_to_event(row) if row else None

    def events(self, kinds: Optional[Iterable[str]] = None, sample_id: Optional[str] = None) -> list[Event]:
        return _select(self.con, kinds=kinds, sample_id=sample_id)

    def check_fresh(self, sample_id: str, expected_event: Optional[int]) -> Optional[Event]:
        """Refuse (StaleDecisionError) when the sample has an event newer than ``expected_event``.

        ``expected_event`` is the id of the latest event on the sample the actor saw; 0 means "none".
        None means the caller makes no claim and nothing is checked. Returns the latest event.
        """
        latest = self.latest_on_sample(sample_id)
        if expected_event is None:
            return latest
        if latest is not None and latest.event_id > expected_event:
            seen = f"event {expected_event}" if expected_event else "no earlier event"
            raise StaleDecisionError(
                f"sample {sample_id!r} changed after you looked (you saw {seen}): {latest.describe()}. "
                f"Nothing was written; review the sample again and decide with --expected-event {latest.event_id}.",
                sample_id, expected_event, latest,
            )
        return latest

    def append(self, kind: str, actor: str, payload: dict, sample_id: Optional[str] = None) -> Event:
        """Add one event to this transaction (visible to others only after COMMIT).

        The one write path of the log: every event, whoever writes it, passes the role rules here
        (:func:`core.review.access.check_event`: a decision needs a reviewer, a guideline a lead, a
        role change a lead unless the project has none), its names are normalised and may not be
        look-alikes of names the project knows (:mod:`core.review.identity`), and an
        ``identity_source`` of "oidc" needs the login configured. The friendly front doors are
        core.review.decisions, core.review.guidelines and core.review.roles.
        """
        if kind not in KINDS:
            raise AmendError(f"unknown event kind {kind!r}; known kinds: {', '.join(KINDS)}.")
        actor = check_actor(actor)
        if not isinstance(payload, dict):
            raise AmendError("an event payload must be a JSON object.")
        text = canonical_json(payload)
        payload = json.loads(text)  # exactly what verify() will parse back
        self._check(kind, actor, payload)
        head = self._head
        event_id = 1 if head is None else head.event_id + 1
        prev_hash = GENESIS if head is None else head.hash
        created_at = utc_now()
        if head is not None and created_at < head.created_at:
            logger.warning("server clock is behind the log's last event; using that event's time")
            created_at = head.created_at
        digest = event_hash(prev_hash, event_id, kind, sample_id, payload, created_at, actor)
        self.con.execute(
            f"INSERT INTO events ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)",
            (event_id, kind, sample_id, text, created_at, actor, prev_hash, digest),
        )
        event = Event(event_id, kind, sample_id, payload, created_at, actor, prev_hash, digest)
        self._head = event
        self.appended.append(event)
        access_rules.apply_event(self.access, event)
        return event

    def _check(self, kind: str, actor: str, payload: dict) -> None:
        source = payload.get("identity_source")
        if source is not None and source not in self._sources_checked:
            check_identity_source(source)
            self._sources_checked.add(source)
        state = self.access
        names = [actor]
        if kind in ("role_granted", "role_revoked") and isinstance(payload.get("user"), str):
            if check_actor(payload["user"]) != payload["user"]:
                raise AmendError(f"the user name {payload['user']!r} is not in its normal form; pass it through "
                                 "core.review.roles, which normalises it.")
            names.append(payload["user"])
        for name in names:
            self.check_name(name)
        access_rules.check_event(state, kind, actor, payload)

    def check_name(self, name: str) -> None:
        """Refuse (one line naming them) a name that is a look-alike of a name the project knows
        (:func:`core.review.identity.lookalike`); a known name, or a new one unlike them, passes."""
        from core.review import identity

        known = self.access.known
        if name not in known:
            identity.refuse_lookalike(name, known)


@contextlib.contextmanager
def writing(project: Any) -> Iterator[LogWriter]:
    """``BEGIN IMMEDIATE`` on the log; ``COMMIT`` when the block ends, ``ROLLBACK`` on any error.

    Events appended inside the block are acknowledged only when the block has exited normally
    (the COMMIT has returned). Keep the block short: it holds the log's write lock.
    """
    with connect(project) as con:
        _begin(con)
        try:
            writer = LogWriter(con)
            yield writer
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")


def append(project: Any, kind: str, actor: str, payload: dict, sample_id: Optional[str] = None,
           expected_event: Optional[int] = None) -> Event:
    """Append one event and return it once committed (= acknowledged).

    With ``sample_id`` and ``expected_event``, refuses with :class:`StaleDecisionError` (nothing
    written) when a newer event on that sample exists; the check runs in the same transaction as
    the insert, so no other writer can slip in between.
    """
    with writing(project) as log:
        if sample_id is not None:
            log.check_fresh(sample_id, expected_event)
        return log.append(kind, actor, payload, sample_id=sample_id)


# --------------------------------------------------------------------------- reading
def _select(con: sqlite3.Connection, kinds: Optional[Iterable[str]] = None, sample_id: Optional[str] = None,
            up_to_event: Optional[int] = None, until: Optional[str] = None) -> list[Event]:
    clauses, params = [], []
    if kinds is not None:
        kinds = list(kinds)
        clauses.append(f"kind IN ({','.join('?' * len(kinds))})")
        params += kinds
    if sample_id is not None:
        clauses.append("sample_id = ?")
        params.append(sample_id)
    if up_to_event is not None:
        clauses.append("event_id <= ?")
        params.append(int(up_to_event))
    if until is not None:
        clauses.append("created_at <= ?")
        params.append(until)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = con.execute(f"SELECT {_COLUMNS} FROM events{where} ORDER BY event_id", params).fetchall()
    return [_row_to_event(r) for r in rows]


def read_events(project: Any, kinds: Optional[Iterable[str]] = None, sample_id: Optional[str] = None,
                up_to_event: Optional[int] = None, until: Optional[str] = None) -> list[Event]:
    """Events in chain order, optionally only some kinds / one sample / up to an id / up to a time
    (``until``: ISO time, inclusive; normalised to UTC)."""
    if until is not None:
        until = normalise_time(until)
    with connect(project, create=False) as con:
        if con is None:
            return []
        return _select(con, kinds=kinds, sample_id=sample_id, up_to_event=up_to_event, until=until)


def get_event(project: Any, event_id: int) -> Optional[Event]:
    with connect(project, create=False) as con:
        if con is None:
            return None
        row = con.execute(f"SELECT {_COLUMNS} FROM events WHERE event_id = ?", (int(event_id),)).fetchone()
    return _row_to_event(row) if row else None


def chain_head(project: Any) -> str:
    """The hash of the last event (GENESIS for an empty log): what exports record."""
    return chain_tip(project)[1]


def chain_tip(project: Any) -> tuple[int, str]:
    """(size, head): the id of the last event (= the number of events of an intact log) and its
    hash; (0, GENESIS) for an empty or missing log. What run records and checkpoints keep."""
    with connect(project, create=False) as con:
        if con is None:
            return 0, GENESIS
        row = con.execute("SELECT event_id, hash FROM events ORDER BY event_id DESC LIMIT 1").fetchone()
    return (int(row[0]), row[1]) if row else (0, GENESIS)


# --------------------------------------------------------------------------- anchors
@dataclass(frozen=True)
class Anchor:
    """A state of the log recorded somewhere else: the log must still extend it.

    ``size`` events with ``chain_head`` the hash of the last of them (the event with id ``size``
    has exactly that hash). ``size`` None: only the head was recorded (run records of an earlier
    Amend, ``--known-head``); then some event must have that hash. ``source`` says in words where
    it was recorded ("run run-…", "checkpoint 3 (export, …)", "checkpoint file …").
    """

    source: str
    chain_head: str
    size: Optional[int] = None

    def to_dict(self) -> dict:
        return {"source": self.source, "size": self.size, "chain_head": self.chain_head}

    def describe(self) -> str:
        at = f"at {self.size} events " if self.size is not None else ""
        return f"{self.source} recorded the log {at}with head {self.chain_head}"


def recorded_anchors(project: Any) -> list[Anchor]:
    """Every state of the log recorded inside the project (``project.sqlite``): the head each
    analysis run saw (``record.labels_analysed``: ``audit_chain_size`` from schema 3 on, the head
    alone before) and every row of ``checkpoints`` (exports and ``amend audit checkpoint``).
    Empty when the folder has no project.sqlite (a bare log folder)."""
    path = log_path(project).with_name(PROJECT_DB)
    if not path.exists():
        return []
    anchors: list[Anchor] = []
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S)
    try:
        with damage_named(path):
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "runs" in tables:
                rows = con.execute(  # read in SQLite: a run record can be large, only two fields matter here
                    "SELECT run_id, CASE WHEN json_valid(record) THEN json_extract(record, '$.labels_analysed.audit_chain_head') END, "
                    "CASE WHEN json_valid(record) THEN json_extract(record, '$.labels_analysed.audit_chain_size') END "
                    "FROM runs ORDER BY created_at, run_id")
                for run_id, head, size in rows:
                    if isinstance(head, str) and len(head) == 64:
                        anchors.append(Anchor(f"analysis run {run_id}", head, int(size) if isinstance(size, int) else None))
            if "checkpoints" in tables:
                rows = con.execute("SELECT checkpoint_id, source, location, size, chain_head FROM checkpoints "
                                   "ORDER BY checkpoint_id")
                for number, source, location, size, head in rows:
                    where = f", {location}" if location else ""
                    anchors.append(Anchor(f"checkpoint {number} ({source}{where})", head, int(size)))
    finally:
        con.close()
    return anchors


# --------------------------------------------------------------------------- verify
@dataclass(frozen=True)
class VerifyResult:
    """The outcome of :func:`verify`.

    ``ok``: the chain recomputes, the append-only triggers are in place and the log extends every
    anchor. ``events``: rows read. ``chain_head``: the stored hash of the last row (GENESIS when
    empty). ``first_bad_event``: the id of the first event that is wrong or missing (None when ok,
    when only the triggers are missing, or when an anchor shows a rewrite without saying where it
    began). ``problem``: one sentence saying what is wrong. ``anchors``: how many recorded states
    of the log were checked; ``failed_anchor``: the one the log does not extend.
    """

    ok: bool
    events: int
    chain_head: str
    first_bad_event: Optional[int] = None
    problem: Optional[str] = None
    details: dict = field(default_factory=dict)
    anchors: int = 0
    failed_anchor: Optional[Anchor] = None

    def to_dict(self) -> dict:
        return {"ok": self.ok, "events": self.events, "chain_head": self.chain_head,
                "first_bad_event": self.first_bad_event, "problem": self.problem, "anchors_checked": self.anchors,
                "failed_anchor": None if self.failed_anchor is None else self.failed_anchor.to_dict()}

    def summary(self) -> str:
        """One line: "ok: N events, ..." or "BROKEN at event K: ..."."""
        if self.ok:
            return f"ok: {self.events} events, chain head {self.chain_head}"
        where = f" at event {self.first_bad_event}" if self.first_bad_event is not None else ""
        return f"BROKEN{where}: {self.problem}"


def verify(project: Any, known_head: Optional[str] = None, anchors: Optional[Iterable[Anchor]] = None,
           recorded: bool = True) -> VerifyResult:
    """Recompute the whole chain, name the first bad event, and check the log against every state
    of it recorded elsewhere.

    Checks, in chain order: ids are consecutive from 1 (a gap = a deleted event, named by the
    missing id); each ``prev_hash`` is the previous event's hash (a reorder or fork); the payload
    is canonical JSON; the recomputed hash equals the stored one (an edit); times never go
    backwards; a guideline's ``sha256`` matches its text. Then: no events were cut from the end
    (``sqlite_sequence``); the log extends every anchor — the (size, head) pairs recorded inside
    the project (:func:`recorded_anchors`, unless ``recorded=False``), those given in ``anchors``
    (signed checkpoints held outside, :mod:`core.review.checkpoints`) and ``known_head`` (a head
    recorded earlier, e.g. in an export manifest), so a log that is missing, emptied, cut short,
    rolled back to an older copy or rewritten and re-hashed up to a recorded state fails, naming
    the anchor; and the append-only triggers exist. Reads one consistent snapshot, so it can run
    while others write; one pass over the log.
    """
    given = list(anchors or [])
    if known_head is not None:
        given.append(Anchor("the head given (--known-head)", known_head))
    checked = (recorded_anchors(project) if recorded else []) + given
    with connect(project, create=False) as con:
        if con is None:
            needed = [a for a in checked if (a.size or 0) > 0 or (a.size is None and a.chain_head != GENESIS)]
            if needed:
                first = needed[0]
                return VerifyResult(False, 0, GENESIS, 1,
                                    f"the review log is missing but {first.describe()}: restore {LOG_FILE}.",
                                    anchors=len(checked), failed_anchor=first)
            return VerifyResult(True, 0, GENESIS, anchors=len(checked))
        con.execute("BEGIN")  # one snapshot for every read below
        try:
            return _verify(con, checked)
        finally:
            con.execute("ROLLBACK")


def _verify(con: sqlite3.Connection, anchors: list[Anchor]) -> VerifyResult:
    count = 0
    prev_hash = GENESIS
    prev_time = ""
    expected_id = 1
    head = GENESIS
    bad: Optional[tuple[int, str]] = None
    by_size: dict[int, list[Anchor]] = {}
    by_head: dict[str, list[Anchor]] = {}
    for anchor in anchors:
        if anchor.size is not None and anchor.size > 0:
            by_size.setdefault(anchor.size, []).append(anchor)
        elif anchor.size is None and anchor.chain_head != GENESIS:
            by_head.setdefault(anchor.chain_head, []).append(anchor)
    diverged: list[tuple[Anchor, str]] = []  # (anchor, the hash the log now has at its size)
    found_heads: set[str] = set()
    cursor = con.execute(f"SELECT {_COLUMNS} FROM events ORDER BY event_id")
    for row in cursor:
        count += 1
        event_id, kind, sample_id, text, created_at, actor, stored_prev, stored_hash = row
        head = stored_hash
        if bad is not None:
            continue
        if event_id != expected_id:
            missing = f"event {expected_id}" if event_id == expected_id + 1 else f"events {expected_id}-{event_id - 1}"
            bad = (expected_id, f"{missing} is missing from the log (ids jump from {expected_id - 1} to {event_id}): deleted.")
            continue
        if stored_prev != prev_hash:
            bad = (event_id, f"event {event_id} does not follow event {event_id - 1}: its prev_hash is not that "
                             "event's hash (events reordered, inserted or the chain forked).")
            continue
        try:
            payload = json.loads(text)
            canonical = canonical_json(payload)
        except (ValueError, AmendError):
            bad = (event_id, f"event {event_id} has a payload that is not valid JSON: edited.")
            continue
        if canonical != text or not isinstance(payload, dict):
            bad = (event_id, f"event {event_id} has a payload that is not in canonical form: edited.")
            continue
        try:
            recomputed = event_hash(prev_hash, event_id, kind, sample_id, payload, created_at, actor)
        except AmendError:
            recomputed = None
        if recomputed != stored_hash:
            bad = (event_id, f"event {event_id} does not match its hash: its content was edited.")
            continue
        if created_at < prev_time:
            bad = (event_id, f"event {event_id} is dated before event {event_id - 1}: its time was edited.")
            continue
        if kind == "guideline_published":
            text_md = payload.get("text", "")
            if hashlib.sha256(str(text_md).encode("utf-8")).hexdigest() != payload.get("sha256"):
                bad = (event_id, f"event {event_id} (guideline {payload.get('version')!r}) has a sha256 that does "
                                 "not match its text.")
                continue
        if event_id in by_size:
            diverged += [(a, stored_hash) for a in by_size[event_id] if a.chain_head != stored_hash]
        if stored_hash in by_head:
            found_heads.add(stored_hash)
        prev_hash, prev_time, expected_id = stored_hash, created_at, expected_id + 1
    n_anchors = len(anchors)
    if bad is not None:
        return VerifyResult(False, count, head, bad[0], bad[1], anchors=n_anchors)
    seq = con.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
    highest = int(seq[0]) if seq else 0
    if highest > expected_id - 1:
        return VerifyResult(
            False, count, head, expected_id,
            f"the log once held events up to {highest} but now ends at {expected_id - 1}: the last events were deleted.",
            anchors=n_anchors,
        )
    size = expected_id - 1
    failures: list[tuple[int, Optional[int], str, Anchor]] = []  # (sort key, first bad event, problem, anchor)
    for anchor, now in diverged:
        failures.append((anchor.size, None,
                         f"{anchor.describe()}, but the log's event {anchor.size} now has hash {now}: the log was "
                         "rewritten (events edited, inserted or deleted and the hashes recomputed) at or before "
                         f"event {anchor.size}.", anchor))
    for anchor_size, group in by_size.items():
        if anchor_size > size:
            for anchor in group:
                failures.append((anchor_size, size + 1,
                                 f"{anchor.describe()}, but the log now holds only {size} events: it was cut short, "
                                 "emptied or replaced by an older copy.", anchor))
    for anchor_head, group in by_head.items():
        if anchor_head not in found_heads:
            for anchor in group:
                failures.append((size + 1, None,
                                 f"the recorded chain head {anchor_head} ({anchor.source}) is not in the log: the log "
                                 "was rewritten or cut short.", anchor))
    if failures:
        failures.sort(key=lambda f: f[0])
        _, first_bad, problem, anchor = failures[0]
        return VerifyResult(False, count, head, first_bad, problem, anchors=n_anchors, failed_anchor=anchor)
    triggers = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    missing = [t for t in LOG_TRIGGERS if t not in triggers]
    if missing:
        return VerifyResult(
            False, count, head, None,
            f"the chain recomputes but the append-only triggers are missing ({', '.join(missing)}): "
            "someone altered the database schema.",
            anchors=n_anchors,
        )
    return VerifyResult(True, count, head, anchors=n_anchors)
