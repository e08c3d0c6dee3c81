"""`amend vectors import` at the edges of float32 (issue 13): what is stored is checked after the
cast to float32 and after normalising, so no row is stored as a zero, NaN or non-unit vector, and
large-but-finite values are normalised without overflowing."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.store.project import Project


def _stored(project_folder, name: str) -> tuple[list[str], np.ndarray]:
    return Project.open(project_folder).vectors(name)


def test_large_and_small_finite_rows_are_stored_as_their_unit_direction(amend, tiny_project, tiny_data, tmp_path):
    vectors = np.load(tiny_data.vectors).astype(np.float64)
    vectors[0] *= 1e20   # finite in float32; its squares are not (1e40)
    vectors[1] *= 1e-30  # finite in float32; its squares underflow to 0
    vectors[2] *= 3e37   # close to float32's largest
    np.save(tmp_path / "edges.npy", vectors)
    amend("vectors", "import", tiny_project, tmp_path / "edges.npy", "--ids", tiny_data.ids, "--name", "edges")
    ids, stored = _stored(tiny_project, "edges")
    expected = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    order = [ids.index(sid) for sid in tiny_data.ids.read_text().split()]
    assert np.allclose(stored[order], expected, atol=1e-5)
    assert np.allclose(np.linalg.norm(stored, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("value, says", [
    (1e-46, "all zeros once stored as float32 (values below about 1.4e-45 round to zero"),
    (1e39, "beyond float32's range"),
])
def test_rows_that_vanish_or_overflow_as_float32_are_refused(amend, tiny_project, tiny_data, tmp_path, value, says):
    vectors = np.load(tiny_data.vectors).astype(np.float64)
    vectors[7] = value  # the whole row for the underflow, every value for the overflow
    vectors[9, 0] = value if value > 1 else vectors[9, 0]
    np.save(tmp_path / "bad.npy", vectors)
    before = [r.name for r in Project.open(tiny_project).representations()]
    result = amend.fails("vectors", "import", tiny_project, tmp_path / "bad.npy", "--ids", tiny_data.ids,
                         "--name", "bad", says=says)
    count = 2 if value > 1 else 1
    assert f"{count} row(s)" in result.err and "row 7 (id s7)" in result.err and "nothing was written" in result.err
    assert [r.name for r in Project.open(tiny_project).representations()] == before


def test_parquet_values_beyond_float32_are_refused_not_crashed(amend, tiny_project, tiny_data, tmp_path):
    vectors = np.load(tiny_data.vectors).astype(np.float64)
    vectors[4, 3] = 1e39  # once crashed inside LanceDB ("Vector column 'vector' has NaNs")
    ids = tiny_data.ids.read_text().split()
    pq.write_table(pa.table({"id": ids, "vector": [v.tolist() for v in vectors]}), tmp_path / "v.parquet")
    result = amend.fails("vectors", "import", tiny_project, tmp_path / "v.parquet", "--name", "bad",
                         says="1 row(s) hold values beyond float32's range")
    assert "row 4 (id s4)" in result.err
    assert [r.name for r in Project.open(tiny_project).representations()] == ["mine"]
