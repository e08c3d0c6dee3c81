"""Every table a project folder holds, defined once, and the schema versions.

A project folder (schema :data:`SCHEMA_VERSION`):

- ``amend.json``: format name and schema version, the sign on the door that
  :meth:`core.store.project.Project.open` reads before touching anything else;
- ``project.sqlite``: the store of record for what is committed (:data:`PROJECT_SQL`), with
  ``schema_history``, the record of every schema version the folder has had, and ``checkpoints``,
  the review log's (size, chain head) at each export and checkpoint (see
  :mod:`core.review.checkpoints`);
- ``review.sqlite``: the append-only, hash-chained review log (:data:`LOG_SQL`, its own version in
  ``PRAGMA user_version``, see :mod:`core.review.audit`);
- ``lance/``: the samples table (:func:`sample_schema`), one vector table per representation
  (:func:`vector_schema`), prediction, evidence and slice tables — or, when ``amend.json`` has a
  ``data`` entry, the same tables at that object-storage URI (:mod:`core.store.location`; no
  entry means ``lance/``, so the schema version is the same for both).

A change to anything here is a new :data:`SCHEMA_VERSION` and a migration in
:mod:`core.store.migrations` that brings an older folder to it.

Standard library only: :mod:`core.review.audit` reads the log's schema from here and must start fast;
pyarrow is imported inside the functions that build LanceDB schemas.
"""

from __future__ import annotations

import functools
import json
import re
import sqlite3
from typing import TYPE_CHECKING

from core.errors import AmendError

if TYPE_CHECKING:
    import pyarrow as pa

#: The on-disk schema this Amend reads and writes. 1: Amend 0.1.0 (no ``schema_history``, the
#: version in ``meta``, ``selections`` made on first use). 2: ``schema_history``; every table
#: made when the project is. 3: ``checkpoints`` (append-only: the review log's (size, head) at
#: each export and ``amend audit checkpoint``) and a ``project_id`` in ``meta``. 4: the tables of
#: per-failure hypotheses (:data:`HYPOTHESES_SQL`, see :mod:`core.hypotheses.store`).
SCHEMA_VERSION = 4
FORMAT_NAME = "amend-project"

INFO_FILE = "amend.json"
PROJECT_DB = "project.sqlite"
LOG_FILE = "review.sqlite"
LANCE_DIR = "lance"
WRITER_LOCK = "writer.lock"

SAMPLES_TABLE = "samples"
#: LanceDB tables whose rows only count once a registry row in project.sqlite points at them.
RUN_SCOPED_PREFIXES = ("vectors", "predictions", "evidence", "slices")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

PROJECT_SQL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS schema_history (
    version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL, amend TEXT NOT NULL, how TEXT NOT NULL,
    changes TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS labels (
    position INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS ingests (
    ingest_id INTEGER PRIMARY KEY, source TEXT NOT NULL, source_kind TEXT NOT NULL,
    root TEXT, options TEXT NOT NULL, started_at TEXT NOT NULL, committed_at TEXT NOT NULL,
    taken INTEGER NOT NULL, rejected INTEGER NOT NULL, unchanged INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS rejects (
    ingest_id INTEGER NOT NULL REFERENCES ingests(ingest_id), row INTEGER, sample_id TEXT,
    reason TEXT NOT NULL, detail TEXT);
CREATE TABLE IF NOT EXISTS representations (
    name TEXT PRIMARY KEY, table_name TEXT NOT NULL, model TEXT NOT NULL, dim INTEGER NOT NULL,
    source TEXT NOT NULL, settings TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS predictions (
    name TEXT PRIMARY KEY, table_name TEXT NOT NULL, classes TEXT NOT NULL,
    source TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, created_at TEXT NOT NULL, representation TEXT,
    evidence_table TEXT NOT NULL, slices_table TEXT, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS selections (
    selection_id INTEGER PRIMARY KEY, name TEXT NOT NULL, source TEXT NOT NULL,
    created_by TEXT, created_at TEXT NOT NULL, ids TEXT NOT NULL);
""" + """
CREATE TABLE IF NOT EXISTS checkpoints (
    checkpoint_id INTEGER PRIMARY KEY, created_at TEXT NOT NULL, size INTEGER NOT NULL,
    chain_head TEXT NOT NULL, source TEXT NOT NULL, location TEXT, statement TEXT);
CREATE TRIGGER IF NOT EXISTS checkpoints_no_update BEFORE UPDATE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;
CREATE TRIGGER IF NOT EXISTS checkpoints_no_delete BEFORE DELETE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;
"""

#: Schema 4: hypotheses from a model server (core.hypotheses). Prompt versions are append-only like
#: the guidelines they imitate; one row per answer (explained or failed, with the reason); each
#: clustering of a free-text dimension is a row, its members another table. Reviews of hypotheses
#: are events in the review log, not rows here.
HYPOTHESES_SQL = """
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
PROJECT_SQL += HYPOTHESES_SQL

#: The review log's schema version (``PRAGMA user_version`` of review.sqlite).
LOG_SCHEMA_VERSION = 1
LOG_SQL = """
CREATE TABLE events (
    event_id   INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT NOT NULL,
    sample_id  TEXT,
    payload    TEXT NOT NULL,
    created_at TEXT NOT NULL,
    actor      TEXT NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL UNIQUE
);
CREATE INDEX events_by_sample ON events (sample_id, event_id);
CREATE INDEX events_by_kind ON events (kind, event_id);
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
"""
LOG_TRIGGERS = ("events_no_update", "events_no_delete")


def statements(script: str) -> list[str]:
    """The statements of one of the scripts above, one by one (for use inside a transaction,
    where ``executescript`` would commit)."""
    return [s.strip() for s in script.split(";\n") if s.strip()]


def check_name(kind: str, name: str) -> str:
    """Refuse names that would not make a safe table name."""
    if not NAME_PATTERN.match(name or ""):
        raise AmendError(
            f"{kind} name {name!r} is not allowed: use 1-64 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit."
        )
    return name


@functools.cache
def sample_schema() -> "pa.Schema":
    """The samples table: one row per sample, tagged with the ingest that committed it."""
    import pyarrow as pa

    return pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("modality", pa.string(), nullable=False),  # "image" | "text"
            pa.field("root", pa.string()),  # dataset root (absolute) for images
            pa.field("path", pa.string()),  # POSIX path relative to root, for images
            pa.field("text", pa.string()),
            pa.field("label", pa.string(), nullable=False),  # the given label, never changed
            pa.field("split", pa.string()),
            pa.field("content_hash", pa.string(), nullable=False),  # sha256 of the file bytes / UTF-8 text
            pa.field("width", pa.int32()),
            pa.field("height", pa.int32()),
            pa.field("metadata", pa.string(), nullable=False),  # JSON object, values keep their types
            pa.field("ingest_id", pa.int64(), nullable=False),
            pa.field("source_row", pa.int64(), nullable=False),
        ]
    )


def vector_schema(dim: int, model: str) -> "pa.Schema":
    """A representation's table: sample id and its L2-normalised float32 vector."""
    import pyarrow as pa

    return pa.schema(
        [pa.field("id", pa.string(), nullable=False), pa.field("vector", pa.list_(pa.float32(), dim))],
        metadata={
            "amend.vectors": "L2-normalised float32",
            "amend.model": model,
        },
    )


def prediction_schema(n_classes: int) -> "pa.Schema":
    """An imported prediction set: sample id and its probabilities in the set's class order."""
    import pyarrow as pa

    return pa.schema([pa.field("id", pa.string()), pa.field("probabilities", pa.list_(pa.float32(), n_classes))])


# --------------------------------------------------------------------------- the version record
def record_version(con: sqlite3.Connection, version: int, how: str, changes: list[str], amend: str,
                   applied_at: str) -> None:
    """Add ``version`` to ``schema_history`` (inside the caller's transaction)."""
    con.execute(
        "INSERT INTO schema_history (version, applied_at, amend, how, changes) VALUES (?,?,?,?,?)",
        (version, applied_at, amend, how, json.dumps(changes)),
    )


def recorded_version(con: sqlite3.Connection) -> int:
    """The schema version project.sqlite records: the last of ``schema_history`` (schema 2 on),
    else the ``meta`` row schema 1 kept, else 0 (unknown)."""
    if con.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_history'").fetchone():
        (version,) = con.execute("SELECT COALESCE(MAX(version), 0) FROM schema_history").fetchone()
        return int(version)
    if con.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone():
        row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row:
            return int(row[0])
    return 0
