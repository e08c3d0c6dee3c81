"""``amend vectors export``: a representation's vectors out to Parquet, the file ``vectors import`` reads.

The file has two columns, ``id`` (string) and ``vector`` (fixed-size list of float32, the table's
own L2-normalised values), one row per embedded sample, in the table's storage order (for an embed
run, roughly the order the batches were written; ``vectors import`` takes any order). The schema
metadata names the representation, its model and the Amend that wrote it.

The table is streamed batch by batch from LanceDB into a ``pyarrow.parquet.ParquetWriter``, so an
export holds one batch in memory, never the table. Like ``amend export``, an existing OUT is
replaced, atomically: rows go to a hidden ``.OUT.partial`` beside it, renamed over OUT only once
complete, so an interrupted export leaves any earlier file whole.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from core import __version__
from core.errors import AmendError
from core.store.project import Project
from core.store.schema import vector_schema
from core.util import ProgressCallback, no_progress

PARQUET_SUFFIXES = (".parquet", ".pq")  # what `vectors import` recognises as Parquet
ROWS_PER_BATCH = 4096


def _checked_target(out: str | os.PathLike) -> Path:
    target = Path(out).expanduser()
    if target.is_dir():
        raise AmendError(f"{target} is a folder; name the file to write, e.g. {target / 'vectors.parquet'}.")
    if target.suffix.lower() not in PARQUET_SUFFIXES:
        raise AmendError(f"{target}: vectors are exported as Parquet; name the file with .parquet "
                         f"(got {target.suffix or 'no suffix'}).")
    return target


def _batches(project: Project, table_name: str) -> Iterator[pa.RecordBatch]:
    table = project.db.open_table(table_name)
    reader = table.search().select(["id", "vector"]).limit(None).to_batches(ROWS_PER_BATCH)
    yield from reader


def export_vectors(project: Project, out: str | os.PathLike, name: str,
                   progress: ProgressCallback = no_progress) -> dict:
    """Write representation ``name``'s vectors to the Parquet file ``out`` (replacing it).

    Parameters
    ----------
    project : Project
    out : path
        A ``.parquet`` (or ``.pq``) file; its folder is created when missing.
    name : str
        The representation; an unknown name is refused with the names the project has.
    progress : callable
        Called as ``progress("export", rows_done, rows_total)`` after every batch.

    Returns
    -------
    dict
        ``{"representation", "exported", "dim"}``.
    """
    target = _checked_target(out)
    rep = project.representation(name)  # unknown -> one line listing the known names
    schema = vector_schema(rep.dim, rep.model)
    schema = schema.with_metadata({**schema.metadata, b"amend.representation": rep.name.encode(),
                                   b"amend.exported_by": f"amend {__version__}".encode()})
    total = project.db.open_table(rep.table_name).count_rows()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.parent / f".{target.name}.partial"
    exported = 0
    progress("export", 0, total)
    try:
        with pq.ParquetWriter(partial, schema) as writer:
            for batch in _batches(project, rep.table_name):
                # the stored values, cast only to the export schema (same types, the metadata added)
                writer.write_table(pa.Table.from_batches([batch]).select(["id", "vector"]).cast(schema))
                exported += batch.num_rows
                progress("export", exported, total)
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return {"representation": rep.name, "exported": exported, "dim": rep.dim}
