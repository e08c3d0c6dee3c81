"""AppTest of the triage page on copies of the sample projects: the sample with its evidence,
one-click decisions that carry the event seen, the conflict when someone decided first, bulk
actions with a confirmation that states the count, and the name chooser."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from core.review import audit, decisions
from core.analysis.runs import flags

REPO = Path(__file__).resolve().parents[2]


def _page(project, monkeypatch, name: str | None = "alice") -> AppTest:
    monkeypatch.setenv("AMEND_PROJECTS", str(project.path))
    app = AppTest.from_file(str(REPO / "pages" / "triage.py"), default_timeout=120)
    if name:
        app.session_state["identity.name"] = name
    app.run()
    assert not app.exception, app.exception
    return app


def _shown_id(app: AppTest) -> str:
    return app.subheader[0].value


def _chips(app: AppTest) -> str:
    """The label chips' HTML (given, suggested, now, P(wrong), rank)."""
    return next(h.proto.body for h in app.html if "amend-chips" in h.proto.body)


def test_triage_shows_the_best_flagged_sample_with_its_evidence(project_copy, monkeypatch):
    project = project_copy("news20-sample")
    _, frame = flags(project)
    best = frame[frame["flagged"]].iloc[0]
    app = _page(project, monkeypatch)
    assert _shown_id(app) == best["id"]
    chips = _chips(app)
    assert f'<span class="amend-chip given">{best["given_label"]}</span>' in chips  # the full label
    assert '<div class="amend-chip-label">Rank</div><span class="amend-chip plain">1</span>' in chips
    text = " ".join(m.value for m in app.markdown)
    assert "nearest neighbours are labelled" in text and "Model confidence" in text
    assert f"0 of {int(frame['flagged'].sum())} flagged samples reviewed" in app.get("progress")[0].proto.text
    shortcuts = {b.label: b.proto.shortcut for b in app.button}
    for label, key in (("Accept suggestion", "A"), ("Keep label", "K"), ("Ambiguous", "M"), ("Exclude", "X"),
                       ("Skip", "S"), ("Previous", "P"), ("Next", "N"), ("Relabel", "L"), ("Undo my last", "U")):
        assert shortcuts[label].upper() == key


def test_a_decision_is_recorded_with_the_event_seen_and_moves_on(project_copy, monkeypatch):
    project = project_copy("news20-sample")
    app = _page(project, monkeypatch)
    first = _shown_id(app)
    app.button(key="triage.do_keep").click().run()
    assert not app.exception
    events = audit.read_events(project, kinds=["decision"])
    assert [(e.sample_id, e.actor, e.payload["decision"], e.payload["seen_event"]) for e in events] == [
        (first, "alice", "keep", 0)]
    assert events[0].payload["identity_source"] == "local" and events[0].payload["evidence"]["rank"] == 1
    assert _shown_id(app) != first
    assert "Event" in app.success[0].value
    second = _shown_id(app)
    app.selectbox(key="triage.relabel_to").select_index(0).run()
    target = app.selectbox(key="triage.relabel_to").value
    app.button(key="triage.relabel").click().run()
    last = audit.read_events(project, kinds=["decision"])[-1]
    assert (last.sample_id, last.payload["decision"], last.payload["new_label"]) == (second, "relabel", target)
    # The picker starts empty on the next sample: L cannot relabel it to the class chosen for the last one.
    assert app.selectbox(key="triage.relabel_to").value is None
    assert app.button(key="triage.relabel").disabled
    # Decided samples leave the default queue ("Not reviewed"); with "All" they are back in rank order.
    assert _shown_id(app) not in (first, second)
    app.selectbox(key="triage.reviewed").set_value("All").run()
    app.button(key="triage.prev").click().run()
    app.button(key="triage.prev").click().run()
    assert _shown_id(app) == first


def test_the_queue_resumes_at_the_best_sample_nobody_decided(project_copy, monkeypatch):
    project = project_copy("news20-sample")
    _, frame = flags(project)
    ranked = frame[frame["flagged"]]["id"].tolist()
    for sample_id in ranked[:2]:  # decided in an earlier session
        decisions.decide(project, sample_id, "keep", "alice")
    app = _page(project, monkeypatch)
    assert _shown_id(app) == ranked[2]
    assert f"2 of {len(ranked)} flagged samples reviewed" in app.get("progress")[0].proto.text


def test_undo_takes_back_the_last_decision_with_a_new_event_and_shows_the_sample_again(project_copy, monkeypatch):
    project = project_copy("news20-sample")
    app = _page(project, monkeypatch)
    first = _shown_id(app)
    app.button(key="triage.do_exclude").click().run()
    assert _shown_id(app) != first
    app.button(key="triage.undo").click().run()
    assert not app.exception
    events = audit.read_events(project, kinds=["decision"])
    assert [e.payload["decision"] for e in events] == ["exclude", "undo"]
    assert events[1].payload["undoes"] == events[0].event_id and events[1].sample_id == first
    assert _shown_id(app) == first and "Undone" in app.success[0].value
    assert "0 of" in app.get("progress")[0].proto.text  # unreviewed again
    app.button(key="triage.do_keep").click().run()  # deciding again sees the undo as the latest event
    last = audit.read_events(project, kinds=["decision"])[-1]
    assert (last.sample_id, last.payload["decision"], last.payload["seen_event"]) == (first, "keep", events[1].event_id)


def test_a_newer_decision_is_a_conflict_not_an_overwrite(project_copy, monkeypatch):
    project = project_copy("news20-sample")
    app = _page(project, monkeypatch)
    shown = _shown_id(app)
    theirs = decisions.decide(project, shown, "exclude", "bob", expected_event=0)  # bob decides meanwhile
    app.button(key="triage.do_keep").click().run()
    assert not app.exception
    assert len(app.error) == 1 and "bob" in app.error[0].value and "exclude" in app.error[0].value
    assert [e.event_id for e in audit.read_events(project, kinds=["decision"])] == [theirs.event_id]
    assert _shown_id(app) == shown  # still on the sample
    app.button(key="triage.review_again").click().run()
    assert not app.error
    app.button(key="triage.do_keep").click().run()
    mine = audit.read_events(project, kinds=["decision"])[-1]
    assert (mine.actor, mine.payload["seen_event"], mine.payload["previous_event"]) == ("alice", theirs.event_id,
                                                                                        theirs.event_id)


def test_bulk_action_asks_with_the_count_and_filters_narrow_the_queue(project_copy, monkeypatch):
    project = project_copy("news20-sample")
    _, frame = flags(project)
    flagged = frame[frame["flagged"]]
    label = flagged["given_label"].value_counts().index[-1]
    wanted = flagged[(flagged["given_label"] == label) | (flagged["current_label"] == label)
                     | (flagged["suggested_label"] == label)]
    app = _page(project, monkeypatch)
    app.multiselect(key="triage.classes").select(label).run()
    assert f"0 of {len(wanted)} in this queue" in app.get("progress")[0].proto.text
    app.radio(key="triage.bulk_target").set_value("Whole queue").run()
    app.selectbox(key="triage.bulk_action").set_value("ambiguous").run()
    app.button(key="triage.bulk_ask").click().run()
    assert f"for **{len(wanted)}** samples" in app.warning[0].value
    assert not audit.read_events(project, kinds=["decision"])  # nothing before the confirmation
    app.button(key="triage.bulk_confirm").click().run()
    decided = audit.read_events(project, kinds=["decision"])
    assert sorted(e.sample_id for e in decided) == sorted(wanted["id"])
    assert {e.payload["decision"] for e in decided} == {"ambiguous"}
    assert f"Bulk: {len(wanted)} decided, 0 skipped" in app.success[0].value.replace("\\", "")
    # The decided rows left the queue: the page does not stay on a sample "not in this queue".
    assert not any("not in this queue" in c.value for c in app.caption)


def test_without_a_name_the_page_asks_for_one_first(project_copy, monkeypatch):
    project = project_copy("news20-sample")
    app = _page(project, monkeypatch, name=None)
    assert "Choose who you are" in app.info[0].value
    assert not [b for b in app.button if b.label.startswith("Keep")]
    app.text_input(key="identity.draft").input("carol")
    app.button[0].click().run()
    assert not app.exception
    assert app.session_state["identity.name"] == "carol"
    assert "deciding as carol (local name)" in app.caption[0].value or any(
        "deciding as carol" in c.value for c in app.caption)



def test_the_slice_filter_names_slices_as_the_overview_does(project_copy, monkeypatch):
    from core.analysis import runs
    from core.views.overview import slice_labels

    project = project_copy("news20-sample")
    _, table = runs.slices(project)
    app = _page(project, monkeypatch)
    options = app.multiselect(key="triage.slices").options
    expected = list(slice_labels(table).values())  # "#1 …", "#2 …": error rank, as on the overview
    assert options == [o for o in expected if o in options] and options[0].startswith("#1 ")


def test_after_a_decision_the_page_skips_a_sample_someone_else_decided_meanwhile(project_copy, monkeypatch):
    project = project_copy("news20-sample")
    _, frame = flags(project)
    ranked = frame[frame["flagged"]]["id"].tolist()
    app = _page(project, monkeypatch)
    assert _shown_id(app) == ranked[0]
    decisions.decide(project, ranked[1], "exclude", "bob")  # bob takes the next one while alice looks
    app.button(key="triage.do_keep").click().run()
    assert not app.exception
    assert _shown_id(app) == ranked[2]  # not bob's sample, offered for a second decision
    assert [e.actor for e in audit.read_events(project, kinds=["decision"])] == ["bob", "alice"]


def test_go_to_sample_opens_an_id_and_names_an_unknown_one(project_copy, monkeypatch):
    project = project_copy("news20-sample")
    _, frame = flags(project)
    unflagged = frame[~frame["flagged"]]["id"].iloc[0]
    app = _page(project, monkeypatch)
    app.text_input(key="triage.goto").input(unflagged).run()
    assert _shown_id(app) == unflagged
    app.text_input(key="triage.goto").input("no-such-id").run()
    assert _shown_id(app) == unflagged and "No sample 'no-such-id'" in app.error[0].value.replace("\\", "")
