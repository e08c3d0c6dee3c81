"""A project is one folder: ``amend.json`` (format and schema version), ``lance/`` (samples,
one vector table per representation, predictions) and ``project.sqlite`` (ingest records, reject
reports, label set, the registries of representations and predictions, and what later features
keep there).

Commit points. LanceDB appends are atomic per call but a project write often touches several
tables, so SQLite is the store of record for "what is committed": an ingest's sample rows carry
its ``ingest_id`` and only count once the SQLite row of that ingest is committed. A process killed
mid-ingest leaves rows that no reader sees, and the next writer deletes them (``_recover``).
Imported vectors and predictions are written to a fresh table in one call and become visible
only when the registry row pointing at it commits.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import re
import sqlite3
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
from filelock import FileLock, Timeout

from core.errors import AmendError, ConflictError, SchemaVersionError

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
FORMAT_NAME = "amend-project"
SAMPLES_TABLE = "samples"
# Tables whose rows only count once a registry row in project.sqlite points at them.
RUN_SCOPED_PREFIXES = ("vectors", "predictions", "evidence", "slices")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

SAMPLE_SCHEMA = pa.schema(
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

_SQL_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
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
"""


def utc_now() -> str:
    """Server time, ISO 8601 with microseconds, UTC."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds")


def check_name(kind: str, name: str) -> str:
    """Refuse names that would not make a safe table name."""
    if not NAME_PATTERN.match(name or ""):
        raise AmendError(
            f"{kind} name {name!r} is not allowed: use 1-64 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit."
        )
    return name


@dataclass(frozen=True)
class Representation:
    """One named set of vectors for the project's samples (one LanceDB table)."""

    name: str
    table_name: str
    model: str
    dim: int
    source: str  # "embed" | "import"
    settings: dict
    created_at: str


@dataclass(frozen=True)
class PredictionSet:
    """A user's model probabilities per sample, columns in ``classes`` order."""

    name: str
    table_name: str
    classes: list[str]
    source: str
    created_at: str


class Project:
    """An Amend project folder. Open with :meth:`open`, make with :meth:`create`."""

    def __init__(self, path: Path, info: dict) -> None:
        self.path = path
        self.info = info
        self._db = None

    # ----------------------------------------------------------------- create / open
    @classmethod
    def create(cls, path: str | os.PathLike) -> "Project":
        """Create an empty project at ``path`` (which must not exist or be an empty folder).

        The folder is built under a temporary name beside it and renamed into place, so a killed
        ``init`` never leaves a half-made project behind.
        """
        target = Path(path).resolve()
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            raise AmendError(f"{target} already exists and is not empty; choose a new project folder.")
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.creating-", dir=target.parent))
        from core import __version__

        info = {
            "format": FORMAT_NAME,
            "schema_version": SCHEMA_VERSION,
            "created_by": f"amend {__version__}",
            "created_at": utc_now(),
        }
        (staging / "amend.json").write_text(json.dumps(info, indent=2) + "\n")
        project = cls(staging, info)
        with project.sql() as con:
            con.executescript(_SQL_SCHEMA)
            con.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        project.db.create_table(SAMPLES_TABLE, schema=SAMPLE_SCHEMA)
        project._db = None
        if target.exists():
            target.rmdir()
        os.rename(staging, target)
        return cls(target, info)

    @classmethod
    def open(cls, path: str | os.PathLike) -> "Project":
        """Open an existing project, refusing one written with another on-disk schema."""
        root = Path(path).resolve()
        info_file = root / "amend.json"
        if not info_file.is_file():
            raise AmendError(f"{root} is not an Amend project (no amend.json); create one with `amend init`.")
        try:
            info = json.loads(info_file.read_text())
        except (OSError, ValueError) as exc:
            raise AmendError(f"{info_file} is unreadable ({exc}); the project folder is damaged.") from exc
        if info.get("format") != FORMAT_NAME:
            raise AmendError(f"{root} is not an Amend project (amend.json format is {info.get('format')!r}).")
        version = int(info.get("schema_version", 0))
        if version > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"{root} was written by a newer Amend ({info.get('created_by')}, project schema {version}); "
                f"this Amend reads schema {SCHEMA_VERSION}. Upgrade Amend to open it."
            )
        if version < SCHEMA_VERSION:
            raise SchemaVersionError(
                f"{root} was written by an older Amend ({info.get('created_by')}, project schema {version}); "
                f"this Amend reads schema {SCHEMA_VERSION} and has no upgrade path from it. "
                "Open it with the Amend version that made it, or export its labels and create a new project."
            )
        return cls(root, info)

    # ----------------------------------------------------------------- storage handles
    @property
    def db(self):
        """The project's LanceDB connection (embedded, ``lance/``)."""
        if self._db is None:
            import lancedb

            self._db = lancedb.connect(str(self.path / "lance"))
        return self._db

    @contextlib.contextmanager
    def sql(self) -> Iterator[sqlite3.Connection]:
        """A SQLite connection in WAL mode with synchronous=FULL, closed on exit.

        Autocommit mode: callers group writes with ``BEGIN IMMEDIATE`` / ``COMMIT`` (see
        :meth:`transaction`) so two writers serialise rather than interleave.
        """
        con = sqlite3.connect(self.path / "project.sqlite", timeout=30, isolation_level=None)
        try:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=FULL")
            con.execute("PRAGMA foreign_keys=ON")
            yield con
        finally:
            con.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (rolled back on any exception)."""
        with self.sql() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    @contextlib.contextmanager
    def writer(self, what: str, wait: float = 5.0) -> Iterator[None]:
        """Hold the project's writer lock (one ingest / embed / import at a time) and recover
        whatever a killed writer left before starting."""
        lock = FileLock(str(self.path / "writer.lock"))
        try:
            lock.acquire(timeout=wait)
        except Timeout as exc:
            raise ConflictError(
                f"another Amend process is writing to {self.path} ({what} has to wait); try again when it ends."
            ) from exc
        try:
            self._recover()
            yield
        finally:
            lock.release()

    def _recover(self) -> None:
        """Remove what a killed writer left uncommitted: sample rows of uncommitted ingests and
        vector / prediction tables no registry row points at."""
        committed = self.committed_ingest_ids()
        table = self.db.open_table(SAMPLES_TABLE)
        stray = f"ingest_id NOT IN ({','.join(map(str, committed))})" if committed else "true"
        if table.count_rows(stray):
            logger.warning("removing sample rows of an interrupted ingest in %s", self.path)
            table.delete(stray)
        with self.sql() as con:
            known = {r[0] for r in con.execute("SELECT table_name FROM representations")}
            known |= {r[0] for r in con.execute("SELECT table_name FROM predictions")}
            for evidence, slices in con.execute("SELECT evidence_table, slices_table FROM runs"):
                known |= {evidence, slices}
        for name in self._table_names():
            if name.split("__", 1)[0] in RUN_SCOPED_PREFIXES and name not in known:
                logger.warning("dropping table %s left by an interrupted write", name)
                self.db.drop_table(name)

    def _table_names(self) -> list[str]:
        result = self.db.list_tables()
        names = getattr(result, "tables", result)
        return list(names)

    # ----------------------------------------------------------------- labels
    def labels(self) -> list[str]:
        """The project's label set, in its fixed order (columns of probability matrices)."""
        with self.sql() as con:
            return [r[0] for r in con.execute("SELECT name FROM labels ORDER BY position")]

    def label_index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.labels())}

    def declared_labels(self) -> Optional[list[str]]:
        """The label set declared with ``--labels``, or None when labels follow the data."""
        value = self.get_meta("declared_labels")
        return json.loads(value) if value else None

    def get_meta(self, key: str) -> Optional[str]:
        with self.sql() as con:
            row = con.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    # ----------------------------------------------------------------- samples
    def committed_ingest_ids(self) -> list[int]:
        with self.sql() as con:
            return [r[0] for r in con.execute("SELECT ingest_id FROM ingests ORDER BY ingest_id")]

    def _committed_filter(self) -> Optional[str]:
        ids = self.committed_ingest_ids()
        return f"ingest_id IN ({','.join(map(str, ids))})" if ids else None

    def samples(self, columns: Optional[Sequence[str]] = None, where: Optional[str] = None) -> pd.DataFrame:
        """Committed samples as a DataFrame in a stable order (by ingest, then source row).

        ``where`` is an extra SQL filter over sample columns (LanceDB syntax).
        """
        committed = self._committed_filter()
        if committed is None:
            return pd.DataFrame({name: pd.Series(dtype=object) for name in (columns or SAMPLE_SCHEMA.names)})
        condition = committed if where is None else f"({committed}) AND ({where})"
        wanted = list(columns) if columns else None
        if wanted is not None:
            for needed in ("ingest_id", "source_row"):
                if needed not in wanted:
                    wanted.append(needed)
        query = self.db.open_table(SAMPLES_TABLE).search().where(condition).limit(None)
        if wanted is not None:
            query = query.select(wanted)
        frame = query.to_arrow().to_pandas()
        frame = frame.sort_values(["ingest_id", "source_row"], kind="stable").reset_index(drop=True)
        if columns is not None:
            frame = frame[list(columns)]
        return frame

    def sample_ids(self) -> list[str]:
        return self.samples(columns=["id"])["id"].tolist()

    def sample_count(self) -> int:
        committed = self._committed_filter()
        return 0 if committed is None else self.db.open_table(SAMPLES_TABLE).count_rows(committed)

    def modality(self) -> Optional[str]:
        """"image", "text", or None for an empty project."""
        frame = self.samples(columns=["modality"])
        return None if frame.empty else str(frame["modality"].iloc[0])

    def metadata_frame(self) -> pd.DataFrame:
        """Samples with their metadata expanded into typed columns named ``meta.<key>``."""
        frame = self.samples()
        meta = pd.json_normalize([json.loads(m) for m in frame["metadata"]]) if len(frame) else pd.DataFrame()
        meta.columns = [f"meta.{c}" for c in meta.columns]
        return pd.concat([frame.drop(columns=["metadata"]), meta], axis=1)

    @contextlib.contextmanager
    def ingest_transaction(self, source: str, source_kind: str, root: Optional[str], options: dict):
        """Collect an ingest's rows and rejects; commit them together on success.

        Yields an :class:`IngestWriter`. Sample rows are appended to LanceDB as they come, tagged
        with the new ingest id; the SQLite commit at the end (ingest record, rejects, label set) is
        what makes them visible. Must be used inside :meth:`writer`.
        """
        with self.sql() as con:
            (last,) = con.execute("SELECT COALESCE(MAX(ingest_id), 0) FROM ingests").fetchone()
        writer = IngestWriter(self, ingest_id=int(last) + 1)
        started = utc_now()
        yield writer
        writer.flush()
        with self.transaction() as con:
            con.execute(
                "INSERT INTO ingests VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    writer.ingest_id, source, source_kind, root, json.dumps(options, sort_keys=True),
                    started, utc_now(), writer.taken, len(writer.rejects), writer.unchanged,
                ),
            )
            con.executemany(
                "INSERT INTO rejects VALUES (?,?,?,?,?)",
                [(writer.ingest_id, r["row"], r["id"], r["reason"], r.get("detail")) for r in writer.rejects],
            )
            existing = [r[0] for r in con.execute("SELECT name FROM labels ORDER BY position")]
            declared = con.execute("SELECT value FROM meta WHERE key='declared_labels'").fetchone()
            if writer.declared_labels is not None and declared is None:
                con.execute(
                    "INSERT INTO meta VALUES ('declared_labels', ?)", (json.dumps(writer.declared_labels),)
                )
                declared_list = writer.declared_labels
            else:
                declared_list = json.loads(declared[0]) if declared else None
            if declared_list is not None:
                new_order = list(declared_list) + sorted(set(existing) - set(declared_list))
            else:
                new_order = existing + sorted(writer.labels_seen - set(existing))
            if new_order != existing:
                con.execute("DELETE FROM labels")
                con.executemany("INSERT INTO labels VALUES (?, ?)", list(enumerate(new_order)))

    def ingests(self) -> pd.DataFrame:
        with self.sql() as con:
            return pd.read_sql_query("SELECT * FROM ingests ORDER BY ingest_id", con)

    def rejects(self, ingest_id: Optional[int] = None) -> pd.DataFrame:
        """The reject report: one row per source row not taken, with the reason."""
        query = "SELECT ingest_id, row, sample_id AS id, reason, detail FROM rejects"
        params: tuple = ()
        if ingest_id is not None:
            query += " WHERE ingest_id = ?"
            params = (ingest_id,)
        with self.sql() as con:
            return pd.read_sql_query(query + " ORDER BY ingest_id, row", con, params=params)

    def existing_hashes(self) -> dict[str, str]:
        """Sample id -> content hash for every committed sample (used to skip re-ingests)."""
        frame = self.samples(columns=["id", "content_hash"])
        return dict(zip(frame["id"], frame["content_hash"]))

    # ----------------------------------------------------------------- representations
    def representations(self) -> list[Representation]:
        with self.sql() as con:
            rows = con.execute(
                "SELECT name, table_name, model, dim, source, settings, created_at FROM representations ORDER BY created_at"
            ).fetchall()
        return [Representation(r[0], r[1], r[2], int(r[3]), r[4], json.loads(r[5]), r[6]) for r in rows]

    def representation(self, name: Optional[str] = None) -> Representation:
        """A representation by name; with no name, the only one or the most recent."""
        reps = self.representations()
        if not reps:
            raise AmendError(f"{self.path} has no vectors yet; run `amend embed {self.path}` first.")
        if name is None:
            return reps[-1]
        for rep in reps:
            if rep.name == name:
                return rep
        raise AmendError(f"no representation named {name!r}; this project has: {', '.join(r.name for r in reps)}.")

    def vector_schema(self, dim: int, model: str) -> pa.Schema:
        return pa.schema(
            [pa.field("id", pa.string(), nullable=False), pa.field("vector", pa.list_(pa.float32(), dim))],
            metadata={
                "amend.vectors": "L2-normalised float32",
                "amend.model": model,
            },
        )

    def start_representation(self, name: str, model: str, dim: int, settings: dict) -> Representation:
        """Register an (empty) representation for embedding, or return the matching existing one.

        Refuses to mix models in one representation: resuming must use the same model.
        """
        check_name("representation", name)
        for rep in self.representations():
            if rep.name == name:
                if rep.model != model or rep.dim != dim:
                    raise AmendError(
                        f"representation {name!r} holds vectors from {rep.model} ({rep.dim}-d); this run would "
                        f"use {model} ({dim}-d). Choose another --name for a different model."
                    )
                return rep
        table_name = f"vectors__{name}__{uuid.uuid4().hex[:8]}"
        self.db.create_table(table_name, schema=self.vector_schema(dim, model))
        created = utc_now()
        with self.transaction() as con:
            con.execute(
                "INSERT INTO representations VALUES (?,?,?,?,?,?,?)",
                (name, table_name, model, dim, "embed", json.dumps(settings, sort_keys=True), created),
            )
        return Representation(name, table_name, model, dim, "embed", settings, created)

    def add_vectors(self, rep: Representation, ids: Sequence[str], vectors: np.ndarray) -> None:
        """Append one batch of vectors (L2-normalised here so every table holds unit vectors)."""
        matrix = normalise(np.asarray(vectors, dtype=np.float32))
        if matrix.shape != (len(ids), rep.dim):
            raise AmendError(f"vector batch has shape {matrix.shape}; expected ({len(ids)}, {rep.dim}).")
        flat = pa.array(matrix.reshape(-1), type=pa.float32())
        column = pa.FixedSizeListArray.from_arrays(flat, rep.dim)
        self.db.open_table(rep.table_name).add(
            pa.table({"id": pa.array(list(ids), pa.string()), "vector": column}, schema=self.vector_schema(rep.dim, rep.model))
        )

    def embedded_ids(self, rep: Representation) -> set[str]:
        table = self.db.open_table(rep.table_name)
        return set(table.search().select(["id"]).limit(None).to_arrow().column("id").to_pylist())

    def vectors(self, name: Optional[str] = None) -> tuple[list[str], np.ndarray]:
        """(ids, N x dim float32 matrix) of a representation, rows in the project's sample order.

        Samples without a vector (embedding not finished) are left out; compare ``ids`` with
        :meth:`sample_ids`.
        """
        rep = self.representation(name)
        data = self.db.open_table(rep.table_name).to_arrow()
        by_id = {sid: i for i, sid in enumerate(data.column("id").to_pylist())}
        order = [(sid, by_id[sid]) for sid in self.sample_ids() if sid in by_id]
        matrix = data.column("vector").combine_chunks().flatten().to_numpy(zero_copy_only=False)
        matrix = matrix.reshape(-1, rep.dim)
        rows = np.array([i for _, i in order], dtype=np.int64)
        return [sid for sid, _ in order], np.ascontiguousarray(matrix[rows] if len(rows) else matrix[:0])

    def import_vectors(self, name: str, ids: Sequence[str], vectors: np.ndarray, model: str, settings: dict) -> Representation:
        """Store a whole imported representation at once (one table write, then the registry row)."""
        check_name("representation", name)
        if any(rep.name == name for rep in self.representations()):
            raise AmendError(f"representation {name!r} already exists; choose another --name.")
        dim = int(vectors.shape[1])
        table_name = f"vectors__{name}__{uuid.uuid4().hex[:8]}"
        matrix = normalise(np.asarray(vectors, dtype=np.float32))
        column = pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1), pa.float32()), dim)
        data = pa.table({"id": pa.array(list(ids), pa.string()), "vector": column}, schema=self.vector_schema(dim, model))
        self.db.create_table(table_name, data=data, schema=data.schema)
        created = utc_now()
        with self.transaction() as con:
            con.execute(
                "INSERT INTO representations VALUES (?,?,?,?,?,?,?)",
                (name, table_name, model, dim, "import", json.dumps(settings, sort_keys=True), created),
            )
        return Representation(name, table_name, model, dim, "import", settings, created)

    # ----------------------------------------------------------------- predictions
    def prediction_sets(self) -> list[PredictionSet]:
        with self.sql() as con:
            rows = con.execute(
                "SELECT name, table_name, classes, source, created_at FROM predictions ORDER BY created_at"
            ).fetchall()
        return [PredictionSet(r[0], r[1], json.loads(r[2]), r[3], r[4]) for r in rows]

    def import_predictions(self, name: str, ids: Sequence[str], probabilities: np.ndarray, classes: list[str], source: str) -> PredictionSet:
        """Store a user's probabilities (one table write, then the registry row). Replacing an
        existing set of the same name swaps the registry row in one transaction."""
        check_name("predictions", name)
        n_classes = len(classes)
        table_name = f"predictions__{name}__{uuid.uuid4().hex[:8]}"
        column = pa.FixedSizeListArray.from_arrays(
            pa.array(np.asarray(probabilities, np.float32).reshape(-1), pa.float32()), n_classes
        )
        data = pa.table({"id": pa.array(list(ids), pa.string()), "probabilities": column})
        self.db.create_table(table_name, data=data)
        created = utc_now()
        with self.transaction() as con:
            old = con.execute("SELECT table_name FROM predictions WHERE name = ?", (name,)).fetchone()
            con.execute("DELETE FROM predictions WHERE name = ?", (name,))
            con.execute(
                "INSERT INTO predictions VALUES (?,?,?,?,?)", (name, table_name, json.dumps(classes), source, created)
            )
        if old:
            self.db.drop_table(old[0])
        return PredictionSet(name, table_name, classes, source, created)

    def predictions(self, name: str) -> tuple[list[str], np.ndarray, list[str]]:
        """(ids in sample order, N x C probabilities, class names) of an imported prediction set."""
        for pset in self.prediction_sets():
            if pset.name == name:
                data = self.db.open_table(pset.table_name).to_arrow()
                by_id = {sid: i for i, sid in enumerate(data.column("id").to_pylist())}
                matrix = data.column("probabilities").combine_chunks().flatten().to_numpy(zero_copy_only=False)
                matrix = matrix.reshape(-1, len(pset.classes))
                ids = [sid for sid in self.sample_ids() if sid in by_id]
                return ids, matrix[[by_id[s] for s in ids]], pset.classes
        raise AmendError(f"no predictions named {name!r}; import them with `amend predictions import`.")


class IngestWriter:
    """Accumulates one ingest: appends sample rows in batches, remembers rejects and counts."""

    batch_rows = 2048

    def __init__(self, project: Project, ingest_id: int) -> None:
        self.project = project
        self.ingest_id = ingest_id
        self.rejects: list[dict[str, Any]] = []
        self.taken = 0
        self.unchanged = 0
        self.labels_seen: set[str] = set()
        self.declared_labels: Optional[list[str]] = None
        self._pending: list[dict[str, Any]] = []

    def add(self, row: dict[str, Any]) -> None:
        """Queue one accepted sample (a dict of SAMPLE_SCHEMA columns, without ingest_id)."""
        row = dict(row, ingest_id=self.ingest_id)
        self._pending.append(row)
        self.labels_seen.add(row["label"])
        self.taken += 1
        if len(self._pending) >= self.batch_rows:
            self.flush()

    def reject(self, row: Optional[int], sample_id: Optional[str], reason: str, detail: Optional[str] = None) -> None:
        self.rejects.append({"row": row, "id": sample_id, "reason": reason, "detail": detail})

    def flush(self) -> None:
        if not self._pending:
            return
        columns = {name: [r.get(name) for r in self._pending] for name in SAMPLE_SCHEMA.names}
        self.project.db.open_table(SAMPLES_TABLE).add(pa.table(columns, schema=SAMPLE_SCHEMA))
        self._pending = []


def normalise(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.where(norms == 0, 1.0, norms)).astype(np.float32, copy=False)
