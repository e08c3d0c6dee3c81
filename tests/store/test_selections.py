"""Selections pass samples from one view to another through the project, not the page."""

from __future__ import annotations

import pytest

from builders import text_project
from core.errors import AmendError
from core.store.project import Project
from core.store.selections import get_selection, list_selections, save_selection


@pytest.fixture()
def project(tmp_path) -> Project:
    return text_project(tmp_path / "p", {f"s{row}": (f"t{row}", "a") for row in range(1, 4)})


def test_a_saved_selection_comes_back_newest_first_without_duplicates(project):
    first = save_selection(project, ["s1", "s2", "s1"], "lasso", "overview lasso", "ann")
    second = save_selection(project, ["s3"], "slice 2", "overview slice")
    assert first.ids == ["s1", "s2"]
    assert [s.selection_id for s in list_selections(project)] == [second.selection_id, first.selection_id]
    assert get_selection(project, first.selection_id).created_by == "ann"


def test_empty_or_unknown_selections_are_refused(project):
    with pytest.raises(AmendError, match="empty"):
        save_selection(project, [], "x", "y")
    with pytest.raises(AmendError, match="not in the project"):
        save_selection(project, ["s1", "nope"], "x", "y")
    assert list_selections(project) == []
