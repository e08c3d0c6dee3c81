"""AppTest of the guidelines page: publish (the first publisher becomes lead; others are refused
by core), list, diff, the decisions citing a version and its re-review queue sent to triage."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from core.review import decisions, guidelines
from core.analysis.runs import flags
from core.store import selections

REPO = Path(__file__).resolve().parents[2]


def _page(project, monkeypatch, name: str) -> AppTest:
    monkeypatch.setenv("AMEND_PROJECTS", str(project.path))
    app = AppTest.from_file(str(REPO / "pages" / "guidelines.py"), default_timeout=120)
    app.session_state["identity.name"] = name
    app.run()
    assert not app.exception, app.exception
    return app


def _publish(app: AppTest, text: str, version: str) -> None:
    app.text_area(key="guidelines.text").input(text)
    app.text_input(key="guidelines.version").input(version)
    app.button(key="guidelines.publish").click().run()
    assert not app.exception


def test_publish_list_diff_and_re_review(project_copy, monkeypatch):
    project = project_copy("news20-sample")
    label = project.labels()[0]
    _, frame = flags(project)
    sample = frame.loc[frame["given_label"] == label, "id"].iloc[0]
    app = _page(project, monkeypatch, "alice")
    assert "No lead yet" in " ".join(c.value for c in app.caption)
    _publish(app, f"# Guide\n\n## {label}\n\nPosts about it.\n", "v1")
    assert "Published version v1" in app.success[0].value
    decisions.decide(project, sample, "keep", "alice")  # cites v1 (the latest)
    _publish(app, f"# Guide\n\n## {label}\n\nOnly posts mainly about it.\n", "v2")
    assert [v.version for v in guidelines.list_versions(project)] == ["v1", "v2"]
    versions = app.dataframe[0].value
    assert versions["version"].tolist() == ["v2", "v1"] and versions["decisions citing"].tolist() == [0, 1]
    assert versions["classes"].tolist() == [label, label]
    diff = app.code[0].value
    assert "-Posts about it." in diff and "+Only posts mainly about it." in diff
    app.selectbox(key="guidelines.citing").set_value("v1").run()
    assert "1 decisions cite v1" in " ".join(m.value for m in app.markdown).replace("**", "")
    app.selectbox(key="guidelines.citing").set_value("v2").run()
    assert "Re-review after v2:** 1 samples" in " ".join(m.value for m in app.markdown)
    app.button(key="guidelines.send").click().run()
    made = selections.list_selections(project)[0]
    assert made.ids == [sample] and made.name == "re-review after v2"


def test_a_reviewer_who_is_not_lead_is_refused_by_core(project_copy, monkeypatch):
    project = project_copy("news20-sample")
    guidelines.publish(project, "# Guide\n", "v1", "alice")
    app = _page(project, monkeypatch, "bob")
    assert "bob is not a lead" in " ".join(c.value for c in app.caption)
    _publish(app, "# Guide\n\nChanged.\n", "v2")
    assert "only a lead may publish" in app.error[0].value
    assert [v.version for v in guidelines.list_versions(project)] == ["v1"]
