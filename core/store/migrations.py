"""Upgrading a project folder written by an earlier Amend (``amend upgrade PROJECT``).

:data:`MIGRATIONS` is an ordered list of small steps, ``MIGRATIONS[i]`` taking a folder from schema
``i + 1`` to ``i + 2``; :func:`upgrade` runs the ones a folder lacks, in order. A new schema
version is one more step at the end of the list and :data:`core.store.schema.SCHEMA_VERSION` + 1.
A step carries the DDL of its own version (it must still do the same thing when the current
schema in :mod:`core.store.schema` has moved on); a test checks that an upgraded folder and a new
one end with the same tables.

Crash safety: transactional, in place, one SQLite transaction per step. Each step's changes and
its ``schema_history`` row commit together in project.sqlite, the store of record, so a killed
upgrade leaves the folder at the last whole step and the next ``amend upgrade`` goes on from
there. ``amend.json`` (the version :meth:`Project.open` checks) is replaced atomically after the
last step; until then the project stays closed to this Amend, and an upgrade that finds
project.sqlite already at the current version only rewrites it. A step that rewrites LanceDB data
writes new tables first and switches the registry rows to them in its transaction, the commit
point every project write already uses (tables no row points at are dropped by the next writer).
Not a copy of the folder: vector tables can be gigabytes, a copy doubles the disk a user needs,
and swapping two folders cannot be made atomic. The review log is never rewritten: a migration
that changed an event would break its hash chain, so :func:`upgrade` verifies the chain before
and after, and refuses to report success unless the head seen before is still in an intact chain.

The writer lock is held throughout, so no ingest, embed or import (of this or an older Amend)
runs during an upgrade.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from filelock import Timeout

from core.errors import AmendError, ConflictError, SchemaVersionError
from core.review import audit
from core.store.project import Project, amend_version, old_schema_message, read_info, write_info, writer_lock
from core.store.schema import SCHEMA_VERSION, record_version, recorded_version
from core.util import utc_now


@dataclass(frozen=True)
class Migration:
    """One step: ``apply(con, root, info)`` runs inside the step's transaction on project.sqlite and
    returns what it changed, in words."""

    from_version: int
    title: str
    apply: Callable[[sqlite3.Connection, Path, dict], list[str]]

    @property
    def to_version(self) -> int:
        return self.from_version + 1


def _table_exists(con: sqlite3.Connection, name: str) -> bool:
    return con.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone() is not None


def _v1_to_v2(con: sqlite3.Connection, root: Path, info: dict) -> list[str]:
    """Schema 2: the schema version is recorded in ``schema_history`` (one row per version the
    folder has had); ``selections`` exists from the start instead of being made on first use."""
    changes = []
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_history (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL, "
        "amend TEXT NOT NULL, how TEXT NOT NULL, changes TEXT NOT NULL)"
    )
    record_version(con, 1, "created", [], str(info.get("created_by") or "amend (unknown version)"),
                   str(info.get("created_at") or utc_now()))
    con.execute("DELETE FROM meta WHERE key = 'schema_version'")
    changes.append("the schema version is recorded in table schema_history (was meta.schema_version)")
    if _table_exists(con, "selections"):
        changes.append("table selections kept as it was")
    else:
        con.execute(
            "CREATE TABLE selections (selection_id INTEGER PRIMARY KEY, name TEXT NOT NULL, source TEXT NOT NULL, "
            "created_by TEXT, created_at TEXT NOT NULL, ids TEXT NOT NULL)"
        )
        changes.append("created table selections (schema 1 made it on first use)")
    return changes


def _v2_to_v3(con: sqlite3.Connection, root: Path, info: dict) -> list[str]:
    """Schema 3: table ``checkpoints`` (append-only), the review log's (size, chain head) at each
    export and ``amend audit checkpoint``; a ``project_id`` in ``meta`` that signed checkpoints name."""
    import uuid

    con.execute(
        "CREATE TABLE IF NOT EXISTS checkpoints (checkpoint_id INTEGER PRIMARY KEY, created_at TEXT NOT NULL, "
        "size INTEGER NOT NULL, chain_head TEXT NOT NULL, source TEXT NOT NULL, location TEXT, statement TEXT)"
    )
    con.execute("CREATE TRIGGER IF NOT EXISTS checkpoints_no_update BEFORE UPDATE ON checkpoints "
                "BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END")
    con.execute("CREATE TRIGGER IF NOT EXISTS checkpoints_no_delete BEFORE DELETE ON checkpoints "
                "BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END")
    changes = ["created table checkpoints (the review log's size and chain head at each export and checkpoint)"]
    if con.execute("SELECT 1 FROM meta WHERE key = 'project_id'").fetchone() is None:
        con.execute("INSERT INTO meta (key, value) VALUES ('project_id', ?)", (uuid.uuid4().hex,))
        changes.append("gave the project an id (meta.project_id) for its signed checkpoints")
    return changes


#: Schema 4's DDL as that step wrote it (the current HYPOTHESES_SQL may move on; this step must not).
_V4_SQL = """
CREATE TABLE IF NOT EXISTS hypothesis_prompts (
    version TEXT PRIMARY KEY, text TEXT NOT NULL, vocabulary TEXT NOT NULL, sha256 TEXT NOT NULL,
    author TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TRIGGER IF NOT EXISTS hypothesis_prompts_no_update BEFORE UPDATE ON hypothesis_prompts
BEGIN SELECT RAISE(ABORT, 'prompt versions are append-only'); END;
CREATE TRIGGER IF NOT EXISTS hypothesis_prompts_no_delete BEFORE DELETE ON hypothesis_prompts
BEGIN SELECT RAISE(ABORT, 'prompt versions are append-only'); END;
CREATE TABLE IF NOT EXISTS hypothesis_runs (
    run_id TEXT PRIMARY KEY, created_at TEXT NOT NULL, finished_at TEXT, server TEXT NOT NULL,
    api TEXT NOT NULL, model TEXT NOT NULL, prompt_version TEXT NOT NULL, prompt_sha256 TEXT NOT NULL,
    temperature REAL NOT NULL, failures TEXT NOT NULL, analysis_run TEXT, settings TEXT NOT NULL,
    counts TEXT);
CREATE TABLE IF NOT EXISTS hypotheses (
    hypothesis_id INTEGER PRIMARY KEY, run_id TEXT NOT NULL REFERENCES hypothesis_runs(run_id),
    sample_id TEXT NOT NULL, model TEXT NOT NULL, prompt_sha256 TEXT NOT NULL, status TEXT NOT NULL,
    data_quality TEXT, cause TEXT, fix TEXT, reason TEXT, raw TEXT, given_label TEXT NOT NULL,
    predictions TEXT NOT NULL, slice_id INTEGER, seconds REAL, created_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS hypotheses_by_key ON hypotheses (sample_id, model, prompt_sha256, status);
CREATE TABLE IF NOT EXISTS hypothesis_clusterings (
    clustering_id INTEGER PRIMARY KEY, dimension TEXT NOT NULL, created_at TEXT NOT NULL,
    k INTEGER NOT NULL, silhouette REAL, settings TEXT NOT NULL, clusters TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS hypothesis_cluster_members (
    clustering_id INTEGER NOT NULL REFERENCES hypothesis_clusterings(clustering_id),
    hypothesis_id INTEGER NOT NULL REFERENCES hypotheses(hypothesis_id), cluster INTEGER NOT NULL,
    compressed TEXT NOT NULL, PRIMARY KEY (clustering_id, hypothesis_id));
"""


def _v3_to_v4(con: sqlite3.Connection, root: Path, info: dict) -> list[str]:
    """Schema 4: the tables of per-failure hypotheses from a model server (core.hypotheses): prompt
    versions (append-only), runs, answers, clusterings and their members."""
    from core.store.schema import statements

    for statement in statements(_V4_SQL):
        con.execute(statement)
    return ["created tables hypothesis_prompts (append-only), hypothesis_runs, hypotheses, hypothesis_clusterings "
            "and hypothesis_cluster_members (per-failure hypotheses from a model server)"]


MIGRATIONS: list[Migration] = [
    Migration(1, "record the schema version in schema_history; make the selections table", _v1_to_v2),
    Migration(2, "make the checkpoints table; give the project an id", _v2_to_v3),
    Migration(3, "make the hypotheses tables", _v3_to_v4),
]


def upgrade(path: str | Path, wait: float = 5.0) -> dict:
    """Bring the project folder at ``path`` to this Amend's schema (see the module docstring).

    Returns ``{"project", "from_version", "to_version", "upgraded", "steps": [{"from_version",
    "to_version", "title", "changes"}], "changes", "log": {"ok", "events", "chain_head"}}``.
    Running it on an up-to-date project changes nothing and returns ``upgraded: false``. ``wait``:
    seconds to wait for another process's writer lock.

    Raises
    ------
    SchemaVersionError for a folder from a newer Amend or with no known schema version;
    ConflictError while another process holds the writer lock; AmendError when the review log's
    chain is not intact afterwards (nothing in it is changed by an upgrade, so this is a bug).
    """
    root, info = read_info(path)
    door = int(info.get("schema_version", 0))
    lock = writer_lock(root)
    try:
        lock.acquire(timeout=wait)
    except Timeout as exc:
        raise ConflictError(f"another Amend process is writing to {root}; upgrade it when that ends.") from exc
    try:
        project = Project(root, info)  # not Project.open: that refuses the old schema
        with project.sql() as con:
            start = recorded_version(con) or door
        if max(start, door) > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"{root} was written by a newer Amend ({info.get('created_by')}, project schema "
                f"{max(start, door)}); this Amend reads schema {SCHEMA_VERSION}. Upgrade Amend to open it."
            )
        if start < 1:
            raise SchemaVersionError(old_schema_message(root, dict(info, schema_version=start)))
        log_before = audit.verify(root)
        steps = []
        for migration in MIGRATIONS[start - 1:]:
            with project.transaction() as con:
                changes = migration.apply(con, root, info)
                record_version(con, migration.to_version, f"upgraded from {migration.from_version}", changes,
                               amend_version(), utc_now())
            steps.append({"from_version": migration.from_version, "to_version": migration.to_version,
                          "title": migration.title, "changes": changes})
        changes = [change for step in steps for change in step["changes"]]
        if door != SCHEMA_VERSION:
            write_info(root, dict(info, schema_version=SCHEMA_VERSION, upgraded_by=amend_version(),
                                  upgraded_at=utc_now()))
            if not steps:
                changes.append(f"amend.json now says schema {SCHEMA_VERSION} (an earlier upgrade was "
                               "interrupted after its last step)")
        log_after = audit.verify(root, known_head=log_before.chain_head if log_before.ok else None)
        if log_before.ok and not log_after.ok:
            raise AmendError(f"after the upgrade the review log does not verify: {log_after.problem}")
        Project.open(root)  # the upgraded folder opens
    finally:
        lock.release()
    return {
        "project": str(root),
        "from_version": min(start, door) if door >= 1 else start,  # what amend.json said, when it said one
        "to_version": SCHEMA_VERSION,
        "upgraded": bool(changes),
        "steps": steps,
        "changes": changes,
        "log": {"ok": log_after.ok, "events": log_after.events, "chain_head": log_after.chain_head},
    }


def history(project: Project) -> list[dict]:
    """The folder's ``schema_history``: one row per schema version it has had, oldest first."""
    with project.sql() as con:
        rows = con.execute("SELECT version, applied_at, amend, how, changes FROM schema_history ORDER BY version")
        return [{"version": r[0], "applied_at": r[1], "amend": r[2], "how": r[3], "changes": json.loads(r[4])}
                for r in rows]
