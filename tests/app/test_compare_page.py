"""AppTest of the compare page on the toy project whose answer is known (tests/evaluate/test_compare.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("compare_toy", REPO / "tests" / "evaluate" / "test_compare.py")
toy = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(toy)


@pytest.fixture()
def fixed_project(tmp_path):
    project, info = toy.build_known_project(tmp_path / "toy-project")
    toy.relabel(project, info["flipped"], "ant")
    return project


def _run(projects: str, monkeypatch) -> AppTest:
    monkeypatch.setenv("AMEND_PROJECTS", projects)
    app = AppTest.from_file(str(REPO / "pages" / "compare.py"), default_timeout=120)
    app.run()
    return app


def test_compare_page_shows_before_after_and_what_was_compared(fixed_project, monkeypatch):
    app = _run(str(fixed_project.path), monkeypatch)
    assert not app.exception
    assert app.title[0].value == "Compare"
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Accuracy before"] == "66.7%" and metrics["Accuracy after"] == "100.0%"
    # 20 of 60 evaluation samples fixed: an interval clear of zero, said in words.
    assert any(s.value.startswith("After is better: +33.3 points") and "60 evaluation samples" in s.value
               for s in app.success)
    what = " ".join(m.value for m in app.markdown)
    assert "given labels (as ingested)" in what and "current labels" in what
    assert "split 'test' (60 samples)" in what and "`toy`" in what and "run-test-0001" in what
    slices = next(f.value for f in app.dataframe if "difference" in f.value.columns)
    row = slices.set_index("name").loc["ant region"]
    assert (row["before"], row["after"], row["difference"]) == (0.0, 1.0, 1.0)
    charts = [c for c in app.get("plotly_chart")]
    assert len(charts) == 3  # per-slice bars + two confusion heatmaps
    assert [s.value for s in app.subheader] == ["Per slice: before → after", "Confusion matrices", "Per class"]


def test_compare_page_switches_sides_and_split(fixed_project, monkeypatch):
    app = _run(str(fixed_project.path), monkeypatch)
    app.selectbox(key="compare.before").set_value("current")
    app.selectbox(key="compare.split").set_value("cv")
    app.run()
    assert not app.exception
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Accuracy before"] == metrics["Accuracy after"] == "100.0%"
    assert [m.proto.delta for m in app.metric if m.label == "Accuracy after"] == ["no change"]  # not a green +0.0
    assert any(i.value.startswith("No change: both probes are right on exactly the same") for i in app.info)
    assert "5-fold cross-validation" in " ".join(m.value for m in app.markdown)


def test_compare_page_reports_a_project_without_vectors(tmp_path, monkeypatch):
    from core.store.project import Project

    project = Project.create(tmp_path / "empty")
    app = _run(str(project.path), monkeypatch)
    assert not app.exception
    assert "no vectors" in (app.warning[0].value if app.warning else app.error[0].value)
