"""A large samples table gets scalar indexes on the columns every lookup filters by (id,
ingest_id); rows ingested after the index are still found, and a small table is left unindexed."""

from __future__ import annotations

from builders import add_rows
from core.store import samples as samples_module
from core.store.project import Project
from core.store.schema import SAMPLES_TABLE


def _indexed_columns(project: Project) -> set[str]:
    return {column for index in project.db.open_table(SAMPLES_TABLE).list_indices() for column in index.columns}


def _rows(start: int, stop: int) -> list[dict]:
    return [{"id": f"t{i:04d}", "label": "cat" if i % 2 else "dog", "text": f"text {i}"} for i in range(start, stop)]


def test_a_large_table_is_indexed_and_later_rows_are_still_found(tmp_path, monkeypatch):
    monkeypatch.setattr(samples_module, "LOOKUP_INDEX_FROM", 30)
    project = add_rows(Project.create(tmp_path / "small"), _rows(0, 20))
    assert _indexed_columns(project) == set()  # 20 rows: a scan is as fast
    add_rows(project, _rows(20, 40))
    assert _indexed_columns(project) == {"id", "ingest_id"}
    add_rows(project, _rows(40, 45))  # reindexed: all 45 rows covered, each found by id
    wanted = ["t0003", "t0025", "t0044"]
    found = project.samples(columns=["id", "label"], where="id IN ('t0003','t0025','t0044')")
    assert sorted(found["id"]) == wanted and project.sample_count() == 45


def test_rows_added_since_the_last_index_are_found_before_it_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setattr(samples_module, "LOOKUP_INDEX_FROM", 10)
    project = add_rows(Project.create(tmp_path / "p"), _rows(0, 20))
    monkeypatch.setattr(samples_module.SampleTables, "_index_lookup_columns", lambda self: None)
    add_rows(project, _rows(20, 25))  # appended, not indexed
    table = project.db.open_table(SAMPLES_TABLE)
    assert any(index.num_unindexed_rows == 5 for index in table.list_indices())
    found = project.samples(columns=["id"], where="id IN ('t0001','t0022')")
    assert sorted(found["id"]) == ["t0001", "t0022"]
