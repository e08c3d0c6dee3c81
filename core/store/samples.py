"""The samples part of a project: sample rows in the LanceDB ``samples`` table, the ingests that
committed them and their reject reports, and the label set they make (project.sqlite).

Rows count once their ingest's SQLite row is committed (see :mod:`core.store.project`).
"""

from __future__ import annotations

import contextlib
import json
import logging
from typing import TYPE_CHECKING, Any, Optional, Sequence

import pandas as pd
import pyarrow as pa

from core.store.schema import SAMPLES_TABLE, sample_schema
from core.util import utc_now

logger = logging.getLogger(__name__)

#: From this many sample rows on, ``id`` and ``ingest_id`` are indexed after each ingest: looking
#: up one sample and its neighbours by id scanned the whole table (200 ms at 1M rows; 10-30 ms
#: indexed). Smaller tables scan in a few milliseconds.
LOOKUP_INDEX_FROM = 20_000

if TYPE_CHECKING:
    from core.store.project import Project


class SampleTables:
    """Samples, ingests and the label set: one part of :class:`core.store.project.Project`, which
    gives it ``db``, ``sql``, ``transaction`` and ``get_meta``."""

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
            return pd.DataFrame({name: pd.Series(dtype=object) for name in (columns or sample_schema().names)})
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
        self._index_lookup_columns()

    def _index_lookup_columns(self) -> None:
        """(Re)build the scalar indexes every sample lookup filters by, on a large enough table.

        Rows appended later stay findable before the next rebuild (Lance scans what an index does
        not cover); a failure only costs speed, so it is logged, never raised.
        """
        from lancedb.index import Bitmap, BTree

        table = self.db.open_table(SAMPLES_TABLE)
        try:
            if table.count_rows() < LOOKUP_INDEX_FROM:
                return
            table.create_index("id", config=BTree(), replace=True)
            table.create_index("ingest_id", config=Bitmap(), replace=True)
        except Exception as exc:  # e.g. an object store refusing the write: lookups scan instead
            logger.warning("could not index the samples table for lookups (%s); lookups will scan it", exc)

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


class IngestWriter:
    """Accumulates one ingest: appends sample rows in batches, remembers rejects and counts."""

    batch_rows = 2048

    def __init__(self, project: "Project", ingest_id: int) -> None:
        self.project = project
        self.ingest_id = ingest_id
        self.rejects: list[dict[str, Any]] = []
        self.taken = 0
        self.unchanged = 0
        self.labels_seen: set[str] = set()
        self.declared_labels: Optional[list[str]] = None
        self._pending: list[dict[str, Any]] = []

    def add(self, row: dict[str, Any]) -> None:
        """Queue one accepted sample (a dict of :func:`sample_schema` columns, without ingest_id)."""
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
        columns = {name: [r.get(name) for r in self._pending] for name in sample_schema().names}
        self.project.db.open_table(SAMPLES_TABLE).add(pa.table(columns, schema=sample_schema()))
        self._pending = []
