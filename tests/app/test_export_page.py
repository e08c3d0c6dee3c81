"""AppTest of the export page: format, which labels, the preview of changed rows, downloads."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from streamlit.testing.v1 import AppTest

from core.review import audit

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("export_tests", REPO / "tests" / "test_export.py")
export_tests = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(export_tests)
texts_project = export_tests.texts_project  # the fixture: six texts, decisions under guidelines v1 and v2


def _run(projects: str, monkeypatch) -> AppTest:
    monkeypatch.setenv("AMEND_PROJECTS", projects)
    app = AppTest.from_file(str(REPO / "pages" / "export.py"), default_timeout=60)
    app.run()
    return app


def test_export_page_previews_changed_rows_and_offers_the_files(texts_project, monkeypatch):
    app = _run(str(texts_project.path), monkeypatch)
    assert not app.exception
    metrics = {m.label: m.value for m in app.metric}
    assert metrics == {"Samples": "6", "Changed": "2", "Excluded (kept, marked)": "1", "Trail events": "5"}
    preview = app.dataframe[0].value
    assert sorted(preview["id"]) == ["t2", "t4", "t5"]
    assert preview.set_index("id").loc["t2", "final_label"] == "dog"
    assert audit.chain_head(texts_project) in " ".join(m.value for m in app.markdown)
    buttons = app.get("download_button")
    assert len(buttons) == 2
    assert "NEW_PROJECT --texts texts-project-labels.parquet --label-column final_label" in app.code[0].value


def test_export_page_under_an_older_guideline_and_as_csv(texts_project, monkeypatch):
    app = _run(str(texts_project.path), monkeypatch)
    app.radio(key="export.format").set_value("csv")
    app.radio(key="export.when").set_value("guideline")
    app.run()
    app.selectbox(key="export.version").set_value("v1")
    app.run()
    assert not app.exception
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Changed"] == "1" and metrics["Trail events"] == "4"
    assert "guideline in force: **v1**" in " ".join(m.value for m in app.markdown)
    assert "--texts texts-project-labels.csv" in app.code[0].value
