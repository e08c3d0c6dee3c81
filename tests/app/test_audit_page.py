"""AppTest of the audit page: the events with their filters, the chain's status, one sample's
history, and a tampered log reported as broken."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from streamlit.testing.v1 import AppTest

from core.review import decisions
from core.analysis.runs import flags

REPO = Path(__file__).resolve().parents[2]


def _page(project, monkeypatch) -> AppTest:
    monkeypatch.setenv("AMEND_PROJECTS", str(project.path))
    app = AppTest.from_file(str(REPO / "pages" / "audit.py"), default_timeout=120)
    app.run()
    assert not app.exception, app.exception
    return app


def _decided(project) -> list[str]:
    _, frame = flags(project)
    ids = frame["id"].head(3).tolist()
    other = next(label for label in project.labels() if label != frame["given_label"].iloc[0])
    decisions.decide(project, ids[0], "relabel", "alice", label=other, reason="clearly a different topic")
    decisions.decide(project, ids[1], "keep", "bob")
    decisions.decide(project, ids[0], "ambiguous", "bob")
    return ids


def test_audit_lists_events_filters_them_and_verifies_the_chain(project_copy, monkeypatch):
    project = project_copy("news20-sample")
    ids = _decided(project)
    app = _page(project, monkeypatch)
    assert "Chain verified: 5 events" in app.success[0].value  # 3 decisions + 2 automatic reviewer grants
    table = app.dataframe[0].value
    assert table["event_id"].tolist() == [5, 4, 3, 2, 1]  # newest first
    app.selectbox(key="audit.reviewer").set_value("bob").run()
    table = app.dataframe[0].value
    assert set(table["actor"]) == {"bob"} and len(table) == 3
    app.selectbox(key="audit.reviewer").set_value("(any)").run()
    app.text_input(key="audit.sample").input(ids[0]).run()
    table = app.dataframe[0].value
    assert table["sample_id"].tolist() == [ids[0], ids[0]] and table["decision"].tolist() == ["ambiguous", "relabel"]
    app.multiselect(key="audit.kinds").select("role_granted").run()
    assert app.dataframe[0].value.empty  # no role event names a sample
    history = " ".join(m.value for m in app.markdown)
    assert "clearly a different topic" in history and "superseded by #5" in history


def test_audit_reports_an_edited_log(project_copy, monkeypatch):
    project = project_copy("news20-sample")
    _decided(project)
    con = sqlite3.connect(project.path / "review.sqlite")
    con.execute("DROP TRIGGER events_no_update")
    con.execute("UPDATE events SET actor = 'mallory' WHERE event_id = 2")
    con.commit()
    con.close()
    app = _page(project, monkeypatch)
    assert "does not verify" in app.error[0].value and "First bad event: 2" in app.error[0].value


def test_audit_of_an_empty_log(project_copy, monkeypatch):
    app = _page(project_copy("news20-sample"), monkeypatch)
    assert "Chain verified: 0 events" in app.success[0].value
    assert "The log is empty" in app.info[0].value


def test_an_edit_made_while_the_page_is_open_shows_on_the_next_rerun(project_copy, monkeypatch):
    """The chain's verification is reused between reruns only while the log's files are unchanged."""
    project = project_copy("news20-sample")
    _decided(project)
    app = _page(project, monkeypatch)
    assert "Chain verified: 5 events" in app.success[0].value
    app.run()
    assert "Chain verified: 5 events" in app.success[0].value  # reused: nothing changed
    con = sqlite3.connect(project.path / "review.sqlite")
    con.execute("DROP TRIGGER events_no_update")
    con.execute("UPDATE events SET actor = 'mallory' WHERE event_id = 3")
    con.commit()
    con.close()
    app.run()
    assert not app.success and "First bad event: 3" in app.error[0].value
