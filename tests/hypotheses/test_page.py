"""AppTest of the hypotheses page: a cluster's hypothesis shown with its sample, agree through the
page (a log event by the person at the keyboard), and the agreement rates follow."""

from __future__ import annotations

from pathlib import Path

from builders import one_hot_texts
from standin import answer
from streamlit.testing.v1 import AppTest

from core.hypotheses import clusters, generate, review
from core.review import audit

REPO = Path(__file__).resolve().parents[2]


def _page(project, monkeypatch, name: str | None = "alice") -> AppTest:
    monkeypatch.setenv("AMEND_PROJECTS", str(project.path))
    app = AppTest.from_file(str(REPO / "pages" / "hypotheses.py"), default_timeout=120)
    if name:
        app.session_state["identity.name"] = name
    app.run()
    assert not app.exception, app.exception
    return app


def _rates(app: AppTest):
    return next(d.value for d in app.dataframe if {"data_quality", "rate"} <= set(d.value.columns)).set_index("data_quality")


def test_an_empty_project_says_how_to_make_hypotheses(image_project, monkeypatch):
    app = _page(image_project, monkeypatch)
    assert "No hypotheses yet" in app.info[0].value
    assert "amend hypotheses" in app.code[0].value and "--server" in app.code[0].value


def test_agree_on_the_page_records_the_verdict_and_updates_the_rate(image_project, server, monkeypatch):
    server.rule = lambda body: answer("annotation_issue", "The outline matches another class.",
                                      "Clarify the guideline for side views.")
    generate.generate(image_project, server.url, "vlm", limit=4, cluster=False)
    clusters.cluster_all(image_project, embed=one_hot_texts)
    app = _page(image_project, monkeypatch)
    assert app.title[0].value == "Why did it fail?"
    assert [m.label for m in app.metric][:3] == ["Hypotheses", "Reviewed", "Agreement"]
    assert app.metric[0].value == "4" and app.metric[2].value == "—"
    assert len(app.get("image")) == 1  # the sample's image beside its hypothesis
    assert _rates(app).loc["annotation_issue", "agree"] == 0

    shown = app.subheader[0].value
    app.button(key="hypotheses.do_agree").click().run()
    assert not app.exception, app.exception
    assert "agree on hypothesis" in app.success[0].value
    (event,) = audit.read_events(image_project, kinds=[review.KIND])
    assert event.actor == "alice" and event.payload["verdict"] == "agree"
    assert f"hypothesis {event.payload['hypothesis_id']}" in shown
    rates = _rates(app)
    assert rates.loc["annotation_issue", "agree"] == 1 and rates.loc["annotation_issue", "rate"] == 1.0
    assert app.metric[2].value == "100%"
    assert app.subheader[0].value != shown  # moved on to the next hypothesis

    app.button(key="hypotheses.do_disagree").click().run()
    assert _rates(app).loc["annotation_issue", "rate"] == 0.5

    app.radio(key="hypotheses.dimension").set_value("fix").run()
    assert not app.exception, app.exception
    (option,) = app.selectbox(key="hypotheses.cluster").options  # one fix said four times: one cluster
    assert "4 failures" in option
    assert any("Clarify the guideline for side views." in h.proto.body for h in app.get("html"))

    app.button(key="hypotheses.send").click().run()
    assert "is ready on the Triage page" in app.success[0].value
    assert app.session_state["triage.selection"] is not None


def test_a_text_failure_is_shown_verbatim_with_its_hypothesis(text_project, server, monkeypatch):
    server.rule = lambda body: answer("ambiguous_sample", "It talks about <b>two</b> topics.", "Define the classes.")
    generate.generate(text_project, server.url, "vlm", limit=2, cluster=False)
    clusters.cluster_all(text_project, embed=one_hot_texts)
    app = _page(text_project, monkeypatch)
    shown = " ".join(h.proto.body for h in app.get("html"))
    assert "a few words about" in shown  # the sample's text
    assert "It talks about &lt;b&gt;two&lt;/b&gt; topics." in shown  # the answer is data: escaped, never markup
    assert not app.get("image")
