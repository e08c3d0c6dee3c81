"""The vectors part of a project: representations (one LanceDB vector table each, registered in
project.sqlite) and a user's imported prediction sets.

A table becomes visible only when the registry row pointing at it commits; a table no row points
at is what a killed writer left, and the next writer drops it (see :mod:`core.store.project`).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import pyarrow as pa

from core.errors import AmendError
from core.store.schema import check_name, prediction_schema, vector_schema
from core.util import unit_rows, utc_now

#: Rows per batch when a representation's vectors are read back.
VECTOR_READ_BATCH = 65_536


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


class VectorTables:
    """Representations and prediction sets: one part of :class:`core.store.project.Project`, which
    gives it ``path``, ``db``, ``transaction`` and ``sample_ids``."""

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
        table_name = _table_name("vectors", name)
        self.db.create_table(table_name, schema=vector_schema(dim, model))
        return self._register(Representation(name, table_name, model, dim, "embed", settings, utc_now()))

    def add_vectors(self, rep: Representation, ids: Sequence[str], vectors: np.ndarray) -> None:
        """Append one batch of vectors (L2-normalised here so every table holds unit vectors)."""
        matrix = unit_rows(np.asarray(vectors, dtype=np.float32))
        if matrix.shape != (len(ids), rep.dim):
            raise AmendError(f"vector batch has shape {matrix.shape}; expected ({len(ids)}, {rep.dim}).")
        flat = pa.array(matrix.reshape(-1), type=pa.float32())
        column = pa.FixedSizeListArray.from_arrays(flat, rep.dim)
        self.db.open_table(rep.table_name).add(
            pa.table({"id": pa.array(list(ids), pa.string()), "vector": column}, schema=vector_schema(rep.dim, rep.model))
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
        sample_ids = self.sample_ids()
        position = {sid: i for i, sid in enumerate(sample_ids)}
        # Streamed batch by batch into the result, in sample order as it arrives: the table is not
        # held whole beside a flattened and a reordered copy (at 100k x 512 most of the read's
        # memory is LanceDB's own, so this saves little there; it is the copies that grow with N).
        out = np.empty((len(sample_ids), rep.dim), dtype=np.float32)
        present = np.zeros(len(sample_ids), dtype=bool)
        scan = self.db.open_table(rep.table_name).search().select(["id", "vector"]).limit(None)
        for batch in scan.to_batches(VECTOR_READ_BATCH):
            rows = np.fromiter((position.get(sid, -1) for sid in batch.column("id").to_pylist()), dtype=np.int64,
                               count=batch.num_rows)
            kept = rows >= 0  # a vector whose sample is gone is left out
            block = batch.column("vector").flatten().to_numpy(zero_copy_only=False).reshape(-1, rep.dim)
            out[rows[kept]] = block[kept]
            present[rows[kept]] = True
        if present.all():
            return list(sample_ids), out
        return [sid for sid, has in zip(sample_ids, present) if has], out[present]

    def import_vectors(self, name: str, ids: Sequence[str], vectors: np.ndarray, model: str, settings: dict,
                       source: str = "import") -> Representation:
        """Store a whole representation at once (one table write, then the registry row); ``source``
        says where it came from (``import``: the user's file; ``capture``: a captured layer)."""
        check_name("representation", name)
        if any(rep.name == name for rep in self.representations()):
            raise AmendError(f"representation {name!r} already exists; choose another --name.")
        dim = int(vectors.shape[1])
        table_name = _table_name("vectors", name)
        matrix = unit_rows(np.asarray(vectors, dtype=np.float32))
        column = pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1), pa.float32()), dim)
        data = pa.table({"id": pa.array(list(ids), pa.string()), "vector": column}, schema=vector_schema(dim, model))
        self.db.create_table(table_name, data=data, schema=data.schema)
        return self._register(Representation(name, table_name, model, dim, source, settings, utc_now()))

    def _register(self, rep: Representation) -> Representation:
        """Commit the registry row that makes a representation's table visible."""
        with self.transaction() as con:
            con.execute(
                "INSERT INTO representations VALUES (?,?,?,?,?,?,?)",
                (rep.name, rep.table_name, rep.model, rep.dim, rep.source, json.dumps(rep.settings, sort_keys=True),
                 rep.created_at),
            )
        return rep

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
        table_name = _table_name("predictions", name)
        column = pa.FixedSizeListArray.from_arrays(
            pa.array(np.asarray(probabilities, np.float32).reshape(-1), pa.float32()), n_classes
        )
        data = pa.table({"id": pa.array(list(ids), pa.string()), "probabilities": column}, schema=prediction_schema(n_classes))
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

    def predictions_for(self, name: str, ids: Sequence[str]) -> tuple[np.ndarray, list[str]]:
        """(probabilities of ``ids`` in that order, class names); refuses when any id has no row."""
        pred_ids, matrix, classes = self.predictions(name)
        position = {sid: i for i, sid in enumerate(pred_ids)}
        missing = [sid for sid in ids if sid not in position]
        if missing:
            raise AmendError(
                f"predictions {name!r} have no row for {len(missing)} samples (e.g. {missing[:3]}); "
                "import predictions for every sample."
            )
        return matrix[[position[sid] for sid in ids]], classes


def _table_name(prefix: str, name: str) -> str:
    """A fresh LanceDB table name for a registry row to point at (one of RUN_SCOPED_PREFIXES)."""
    return f"{prefix}__{name}__{uuid.uuid4().hex[:8]}"


