"""vectors / predictions import: every problem refused before anything is written."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from builders import add_rows
from core.errors import AmendError
from core.imports import import_predictions, import_vectors
from core.store.project import Project

LABELS = ["cat", "dog", "frog"]
IDS = [f"s{i}" for i in range(6)]


@pytest.fixture
def project(tmp_path):
    project = Project.create(tmp_path / "proj")
    add_rows(project, [
        {"id": sid, "modality": "text", "text": f"text {sid}", "label": LABELS[i % 3], "content_hash": f"h{i}"}
        for i, sid in enumerate(IDS)
    ])
    return project


def state(project):
    return ([r.name for r in project.representations()], [p.name for p in project.prediction_sets()],
            sorted(project._table_names()))


def write_ids(path, ids):
    path.write_text("\n".join(ids) + "\n")
    return path


def good_vectors(n=6, dim=4):
    return np.random.default_rng(0).normal(size=(n, dim)).astype(np.float32)


def good_probs(n=6):
    p = np.random.default_rng(1).random((n, 3)) + 0.1
    return p / p.sum(axis=1, keepdims=True)


# ------------------------------------------------------------------------------ vectors
def test_import_vectors_npy_and_parquet(project, tmp_path):
    vectors = good_vectors()
    np.save(tmp_path / "v.npy", vectors)
    order = IDS[::-1]  # rows follow the ids file, not the project order
    result = import_vectors(project, tmp_path / "v.npy", "mine", ids_file=write_ids(tmp_path / "ids.txt", order))
    assert result == {"representation": "mine", "imported": 6, "dim": 4}
    ids, stored = project.vectors("mine")
    assert ids == IDS
    expected = vectors[::-1] / np.linalg.norm(vectors[::-1], axis=1, keepdims=True)
    np.testing.assert_allclose(stored, expected, atol=1e-6)
    assert project.representation("mine").source == "import"

    table = pa.table({"id": IDS, "vector": [list(map(float, row)) for row in vectors]})
    pq.write_table(table, tmp_path / "v.parquet")
    assert import_vectors(project, tmp_path / "v.parquet", "mine2")["dim"] == 4
    with pytest.raises(AmendError, match="already exists"):
        import_vectors(project, tmp_path / "v.parquet", "mine2")


def _refused_vectors(project, file, match, ids_file=None):
    before = state(project)
    with pytest.raises(AmendError, match=match) as info:
        import_vectors(project, file, "bad", ids_file=ids_file)
    assert state(project) == before
    return str(info.value)


def test_vectors_rows_not_matching_ids(project, tmp_path):
    np.save(tmp_path / "v.npy", good_vectors(5))
    _refused_vectors(project, tmp_path / "v.npy", "5 vector rows but 6 ids", write_ids(tmp_path / "i", IDS))


def test_vectors_npy_needs_ids_and_2d(project, tmp_path):
    np.save(tmp_path / "v.npy", good_vectors())
    _refused_vectors(project, tmp_path / "v.npy", "pass --ids FILE")
    np.save(tmp_path / "v1.npy", np.ones(6))
    _refused_vectors(project, tmp_path / "v1.npy", "must be a 2-D array", write_ids(tmp_path / "i", IDS))


def test_vectors_ragged_parquet(project, tmp_path):
    rows = [[1.0, 2.0, 3.0]] * 5 + [[1.0, 2.0]]
    pq.write_table(pa.table({"id": IDS, "vector": rows}), tmp_path / "v.parquet")
    message = _refused_vectors(project, tmp_path / "v.parquet", "different lengths")
    assert "s5" in message


def test_vectors_unknown_missing_duplicate_ids(project, tmp_path):
    np.save(tmp_path / "v.npy", good_vectors())
    message = _refused_vectors(project, tmp_path / "v.npy", "not samples of this project",
                               write_ids(tmp_path / "i", IDS[:4] + ["zz1", "s0"]))
    assert "1 id(s) are not samples of this project (zz1)" in message
    assert "1 id(s) appear more than once (s0)" in message
    assert "2 of the project's 6 samples have no row (s4, s5)" in message


def test_vectors_missing_ids_alone(project, tmp_path):
    np.save(tmp_path / "v.npy", good_vectors(4))
    _refused_vectors(project, tmp_path / "v.npy", r"2 of the project's 6 samples have no row \(s4, s5\)",
                     write_ids(tmp_path / "i", IDS[:4]))


@pytest.mark.parametrize("bad, word", [(np.nan, "NaN"), (np.inf, "infinite"), (-np.inf, "infinite")])
def test_vectors_non_finite(project, tmp_path, bad, word):
    vectors = good_vectors()
    vectors[2, 1] = bad
    np.save(tmp_path / "v.npy", vectors)
    message = _refused_vectors(project, tmp_path / "v.npy", word, write_ids(tmp_path / "i", IDS))
    assert "row 2 (id s2)" in message


# ------------------------------------------------------------------------------ predictions
def test_import_predictions_npy_and_parquet(project, tmp_path):
    probs = good_probs()
    np.save(tmp_path / "p.npy", probs)
    result = import_predictions(project, tmp_path / "p.npy", ids_file=write_ids(tmp_path / "i", IDS))
    assert result == {"imported": 6, "classes": LABELS, "name": "default"}
    ids, stored, classes = project.predictions("default")
    assert ids == IDS and classes == LABELS
    np.testing.assert_allclose(stored, probs, atol=1e-6)

    # Parquet columns in any order are stored in the project's label order
    table = pa.table({"frog": probs[:, 2], "id": IDS, "cat": probs[:, 0], "dog": probs[:, 1]})
    pq.write_table(table, tmp_path / "p.parquet")
    assert import_predictions(project, tmp_path / "p.parquet", name="other")["classes"] == LABELS
    np.testing.assert_allclose(project.predictions("other")[1], probs, atol=1e-6)


def _refused_predictions(project, file, match, ids_file=None):
    before = state(project)
    with pytest.raises(AmendError, match=match) as info:
        import_predictions(project, file, ids_file=ids_file)
    assert state(project) == before
    return str(info.value)


def test_predictions_wrong_number_of_columns(project, tmp_path):
    np.save(tmp_path / "p.npy", np.full((6, 4), 0.25))
    _refused_predictions(project, tmp_path / "p.npy", "4 columns but the project has 3 labels",
                         write_ids(tmp_path / "i", IDS))


def test_predictions_rows_not_matching_ids(project, tmp_path):
    np.save(tmp_path / "p.npy", good_probs(6))
    _refused_predictions(project, tmp_path / "p.npy", "6 prediction rows but 5 ids", write_ids(tmp_path / "i", IDS[:5]))


def test_predictions_parquet_missing_and_unknown_label_columns(project, tmp_path):
    probs = good_probs()
    pq.write_table(pa.table({"id": IDS, "cat": probs[:, 0], "dog": probs[:, 1], "horse": probs[:, 2]}),
                   tmp_path / "p.parquet")
    message = _refused_predictions(project, tmp_path / "p.parquet", "label column")
    assert "1 label column(s) missing (frog)" in message
    assert "1 column(s) are not labels of this project (horse)" in message


def test_predictions_unknown_missing_duplicate_ids(project, tmp_path):
    np.save(tmp_path / "p.npy", good_probs())
    message = _refused_predictions(project, tmp_path / "p.npy", "not samples",
                                   write_ids(tmp_path / "i", ["s0", "s0", "s1", "s2", "s3", "nope"]))
    assert "(nope)" in message and "more than once (s0)" in message and "(s4, s5)" in message


@pytest.mark.parametrize("bad, word", [(np.nan, "NaN"), (np.inf, "infinite")])
def test_predictions_non_finite(project, tmp_path, bad, word):
    probs = good_probs()
    probs[4, 0] = bad
    np.save(tmp_path / "p.npy", probs)
    assert "row 4 (id s4)" in _refused_predictions(project, tmp_path / "p.npy", word, write_ids(tmp_path / "i", IDS))


def test_predictions_not_probabilities(project, tmp_path):
    logits = np.random.default_rng(2).normal(size=(6, 3)) * 3
    np.save(tmp_path / "p.npy", logits)
    message = _refused_predictions(project, tmp_path / "p.npy", "do not sum to 1", write_ids(tmp_path / "i", IDS))
    assert "negative probabilities" in message


def test_predictions_negative_but_summing_to_one(project, tmp_path):
    probs = good_probs()
    probs[1] = [1.2, -0.2, 0.0]
    np.save(tmp_path / "p.npy", probs)
    message = _refused_predictions(project, tmp_path / "p.npy", "negative", write_ids(tmp_path / "i", IDS))
    assert "1 row(s) have negative probabilities (row 1 (id s1))" in message
    assert "sum to 1" not in message


def test_predictions_replacing_a_set_keeps_one(project, tmp_path):
    np.save(tmp_path / "p.npy", good_probs())
    ids = write_ids(tmp_path / "i", IDS)
    import_predictions(project, tmp_path / "p.npy", ids_file=ids)
    import_predictions(project, tmp_path / "p.npy", ids_file=ids)
    assert [p.name for p in project.prediction_sets()] == ["default"]
