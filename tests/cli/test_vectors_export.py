"""`amend vectors export`: a representation out to Parquet, and back in through `vectors import` bit for bit."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import core.store.vectors_export
from core.store.project import Project


def test_embedded_vectors_export_and_import_back_identical(amend, tiny_project, tiny_checkpoint, tmp_path,
                                                           monkeypatch):
    checkpoint, _ = tiny_checkpoint
    amend("embed", tiny_project, "--model", "amend-tiny-test", "--checkpoint", checkpoint, "--name", "tiny",
          "--device", "cpu", "--batch-size", "16")
    monkeypatch.setattr(core.store.vectors_export, "ROWS_PER_BATCH", 7)  # several batches through the writer
    out = tmp_path / "out" / "tiny.parquet"  # the folder is made
    result = amend.json("vectors", "export", tiny_project, out, "--name", "tiny")
    assert result == {"representation": "tiny", "exported": 60, "dim": 32}

    table = pq.read_table(out)
    assert table.column_names == ["id", "vector"]
    assert table.schema.field("id").type == pa.string()
    assert table.schema.field("vector").type == pa.list_(pa.float32(), 32)
    assert table.schema.metadata[b"amend.representation"] == b"tiny"
    assert table.schema.metadata[b"amend.model"].startswith(b"open_clip:amend-tiny-test")
    assert pq.ParquetFile(out).metadata.num_row_groups > 1
    assert not list(out.parent.glob(".*.partial"))

    amend.json("vectors", "import", tiny_project, out, "--name", "back")
    project = Project.open(tiny_project)
    ids, original = project.vectors("tiny")
    back_ids, back = project.vectors("back")
    assert back_ids == ids and len(ids) == 60
    assert np.array_equal(back, original)  # exactly: no bit changed on the way out and in


def test_imported_vectors_round_trip_and_an_existing_file_is_replaced(amend, tiny_project, tmp_path):
    out = tmp_path / "mine.parquet"
    out.write_bytes(b"an older export")
    text = amend("vectors", "export", tiny_project, out, "--name", "mine").out
    assert text.strip() == f"exported 60 vectors (16-d) of representation mine to {out}"
    assert pq.read_table(out).num_rows == 60  # replaced, as `amend export` replaces its files
    amend("vectors", "import", tiny_project, out, "--name", "again")
    project = Project.open(tiny_project)
    assert np.array_equal(project.vectors("again")[1], project.vectors("mine")[1])


def test_vectors_export_user_errors(amend, tiny_project, tmp_path):
    amend.fails("vectors", "export", tiny_project, tmp_path / "v.parquet", "--name", "nope", "--json",
                says="no representation named 'nope'; this project has: mine")
    amend.fails("vectors", "export", tiny_project, tmp_path / "v.csv", "--name", "mine",
                says="name the file with .parquet (got .csv)")
    amend.fails("vectors", "export", tiny_project, tmp_path, "--name", "mine", says="is a folder")
    amend.fails("vectors", "export", tmp_path / "nowhere", tmp_path / "v.parquet", "--name", "mine",
                says="not an Amend project")
    assert not (tmp_path / "v.parquet").exists() and not (tmp_path / "v.csv").exists()
