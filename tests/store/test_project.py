"""The project store: creation, schema versions, commit points, vectors and predictions tables."""

from __future__ import annotations

import json

import numpy as np
import pytest

from builders import add_rows
from core.errors import AmendError, SchemaVersionError
from core.store.project import Project
from core.store.schema import SCHEMA_VERSION, recorded_version


def _add_texts(project: Project, texts: dict[str, str], label: str = "a") -> None:
    add_rows(project, [{"id": sid, "text": text, "label": label} for sid, text in texts.items()])


def test_create_makes_a_complete_project_and_refuses_a_non_empty_folder(tmp_path):
    project = Project.create(tmp_path / "p")
    assert json.loads((tmp_path / "p" / "amend.json").read_text())["schema_version"] == SCHEMA_VERSION
    with project.sql() as con:
        assert recorded_version(con) == SCHEMA_VERSION
    assert project.sample_count() == 0 and project.labels() == []
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".p.creating")]
    with pytest.raises(AmendError, match="not empty"):
        Project.create(tmp_path / "p")


@pytest.mark.parametrize("version, word", [(SCHEMA_VERSION + 1, "newer"), (0, "cannot upgrade"),
                                           (SCHEMA_VERSION - 1, "run `amend upgrade")])
def test_open_names_a_project_from_another_schema_version(tmp_path, version, word):
    Project.create(tmp_path / "p")
    info_file = tmp_path / "p" / "amend.json"
    info = json.loads(info_file.read_text())
    info["schema_version"] = version
    info_file.write_text(json.dumps(info))
    with pytest.raises(SchemaVersionError, match=word):
        Project.open(tmp_path / "p")


def test_open_refuses_a_folder_that_is_no_project(tmp_path):
    with pytest.raises(AmendError, match="not an Amend project"):
        Project.open(tmp_path)


def test_rows_of_an_uncommitted_ingest_are_invisible_and_removed_by_the_next_writer(tmp_path):
    project = Project.create(tmp_path / "p")
    _add_texts(project, {"s1": "one", "s2": "two"})
    # Simulate a writer killed after its LanceDB append but before the SQLite commit.
    with project.writer("test"):
        with pytest.raises(RuntimeError):
            with project.ingest_transaction("test", "texts", None, {}) as writer:
                writer.add(dict(id="s3", modality="text", text="three", label="b", content_hash="s3", metadata="{}", source_row=1))
                writer.flush()
                raise RuntimeError("killed")
    assert project.sample_ids() == ["s1", "s2"]
    assert project.labels() == ["a"]
    assert project.db.open_table("samples").count_rows() == 3  # on disk until the next writer recovers
    with project.writer("test"):
        pass
    assert project.db.open_table("samples").count_rows() == 2


def test_vectors_are_stored_unit_norm_in_sample_order_and_models_cannot_mix(tmp_path):
    project = Project.create(tmp_path / "p")
    _add_texts(project, {"s1": "one", "s2": "two", "s3": "three"})
    rep = project.start_representation("r", "model-a", 3, {})
    project.add_vectors(rep, ["s3", "s1"], np.array([[3.0, 0, 4], [0, 2, 0]]))
    ids, matrix = project.vectors("r")
    assert ids == ["s1", "s3"]
    np.testing.assert_allclose(matrix, [[0, 1, 0], [0.6, 0, 0.8]], atol=1e-6)
    assert project.embedded_ids(rep) == {"s1", "s3"}
    with pytest.raises(AmendError, match="model-a"):
        project.start_representation("r", "model-b", 3, {})
    schema = project.db.open_table(rep.table_name).schema
    assert schema.metadata[b"amend.vectors"] == b"L2-normalised float32"


def test_vectors_read_back_in_batches_keep_sample_order_and_leave_out_missing_samples(tmp_path, monkeypatch):
    from core.store import vectors as vectors_module

    monkeypatch.setattr(vectors_module, "VECTOR_READ_BATCH", 3)  # several batches, the last one short
    project = Project.create(tmp_path / "p")
    names = [f"s{i:02d}" for i in range(11)]
    _add_texts(project, {sid: sid for sid in names})
    rep = project.start_representation("r", "model-a", 2, {})
    written = {sid: np.array([np.cos(i), np.sin(i)]) for i, sid in enumerate(names) if sid != "s04"}
    order = sorted(written, reverse=True)  # two writes, neither in sample order
    project.add_vectors(rep, order[:5], np.array([written[s] for s in order[:5]]))
    project.add_vectors(rep, order[5:], np.array([written[s] for s in order[5:]]))
    ids, matrix = project.vectors("r")
    assert ids == [sid for sid in names if sid != "s04"]  # the sample without a vector is left out
    np.testing.assert_allclose(matrix, [written[sid] for sid in ids], atol=1e-6)
    assert matrix.dtype == np.float32 and matrix.flags["C_CONTIGUOUS"]


def test_replacing_predictions_swaps_the_whole_set(tmp_path):
    project = Project.create(tmp_path / "p")
    _add_texts(project, {"s1": "one", "s2": "two"})
    project.import_predictions("m", ["s1", "s2"], np.array([[0.9, 0.1], [0.2, 0.8]]), ["a", "b"], "f1")
    project.import_predictions("m", ["s2", "s1"], np.array([[0.5, 0.5], [0.4, 0.6]]), ["a", "b"], "f2")
    ids, probs, classes = project.predictions("m")
    assert ids == ["s1", "s2"] and classes == ["a", "b"]
    np.testing.assert_allclose(probs, [[0.4, 0.6], [0.5, 0.5]], atol=1e-6)
    assert [p.source for p in project.prediction_sets()] == ["f2"]
    assert sum(name.startswith("predictions__") for name in project._table_names()) == 1


def test_bad_names_are_refused(tmp_path):
    project = Project.create(tmp_path / "p")
    with pytest.raises(AmendError, match="not allowed"):
        project.start_representation("../x", "m", 3, {})
