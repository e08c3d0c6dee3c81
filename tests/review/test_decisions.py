"""Decisions: what they record, conflicts, corrections, validation, bulk."""

from __future__ import annotations

import sqlite3

import pytest

from core.errors import AmendError, ConflictError
from core.review import audit, decisions, guidelines, labels


def test_a_decision_records_everything_the_issue_lists(project, monkeypatch):
    monkeypatch.setenv("AMEND_OIDC", '[auth]\nredirect_uri = "http://localhost:8501/oauth2callback"\n')
    guidelines.publish(project, "# cat\nwhiskers\n", "v1", "lead")
    event = decisions.decide(project, "s6", "relabel", "ann", label="cat", reason="it meows", run_id="run-7",
                             evidence={"probe": 0.91, "suggested": "cat"}, expected_event=0, identity_source="oidc")
    p = event.payload
    assert event.actor == "ann" and event.sample_id == "s6" and event.kind == "decision"
    assert (p["decision"], p["old_label"], p["new_label"], p["given_label"]) == ("relabel", "dog", "cat", "dog")
    assert p["reason"] == "it meows" and p["guideline_version"] == "v1"  # default: the latest published
    assert p["run_id"] == "run-7" and p["evidence"] == {"probe": 0.91, "suggested": "cat"}
    assert p["seen_event"] == 0 and p["previous_event"] is None and p["identity_source"] == "oidc"
    assert audit.read_events(project)[-1] == event  # acknowledged = on disk


def test_a_stale_decision_is_refused_naming_the_other_event_and_writes_nothing(project):
    seen = decisions.latest_event_id(project, "s1")
    assert seen == 0
    first = decisions.decide(project, "s1", "relabel", "bob", label="bird", reason="wings", expected_event=seen)
    count = len(audit.read_events(project))
    with pytest.raises(ConflictError) as caught:
        decisions.decide(project, "s1", "keep", "ann", expected_event=seen)
    error = caught.value
    assert isinstance(error, audit.StaleDecisionError) and error.exit_code == 3
    assert error.newer == first
    message = str(error)
    assert f"event {first.event_id}" in message and "bob" in message and first.created_at in message
    assert "'bird'" in message
    assert len(audit.read_events(project)) == count  # not even ann's automatic reviewer grant
    # Looking again and deciding with the new event id works.
    again = decisions.decide(project, "s1", "keep", "ann", expected_event=decisions.latest_event_id(project, "s1"))
    assert again.payload["old_label"] == "bird" and again.payload["previous_event"] == first.event_id


def test_a_correction_is_a_new_event_and_the_old_one_stays_readable(project):
    first = decisions.decide(project, "s2", "relabel", "ann", label="cat", expected_event=0)
    second = decisions.decide(project, "s2", "relabel", "ann", label="dog", reason="misclick",
                              expected_event=first.event_id)
    trail = decisions.history(project, "s2")
    assert trail["event_id"].tolist() == [first.event_id, second.event_id]
    assert trail["new_label"].tolist() == ["cat", "dog"]
    assert trail["superseded_by"].tolist()[0] == second.event_id and trail["superseded_by"].isna().tolist() == [False, True]
    assert audit.get_event(project, first.event_id) == first
    row = labels.current_labels(project).set_index("id").loc["s2"]
    assert row["current_label"] == "dog" and row["last_event_id"] == second.event_id


def test_without_expected_event_nothing_is_checked_but_the_earlier_decision_stays(project):
    first = decisions.decide(project, "s3", "exclude", "ann")
    second = decisions.decide(project, "s3", "keep", "bob")
    assert second.payload["seen_event"] is None and second.payload["previous_event"] == first.event_id
    assert len(decisions.history(project, "s3")) == 2


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(sample_id="nope", kind="keep"), "not in this project"),
        (dict(sample_id="s1", kind="relabel", label="horse"), "not in the label set"),
        (dict(sample_id="s1", kind="relabel"), "needs the new label"),
        (dict(sample_id="s1", kind="relabel", label="cat"), "already has label"),
        (dict(sample_id="s1", kind="keep", label="dog"), "only with a relabel"),
        (dict(sample_id="s1", kind="approve"), "unknown"),
        (dict(sample_id="s1", kind="keep", guideline_version="v9"), "no guideline version"),
        (dict(sample_id="s1", kind="keep", expected_event=-1), "event id"),
        (dict(sample_id="s1", kind="keep", reviewer="  "), "no user name"),
    ],
)
def test_bad_decisions_are_refused_with_what_to_do(project, kwargs, message):
    kwargs.setdefault("reviewer", "ann")
    with pytest.raises(AmendError, match=message):
        decisions.decide(project, **kwargs)
    assert audit.read_events(project) == []


def test_evidence_with_numpy_values_is_stored_as_plain_json(project):
    import numpy as np

    event = decisions.decide(project, "s1", "ambiguous", "ann",
                             evidence={"score": np.float32(0.5), "bad": float("nan"), "top": np.array([1, 2])})
    assert event.payload["evidence"] == {"score": 0.5, "bad": None, "top": [1, 2]}
    assert audit.verify(project).ok


def test_bulk_decides_what_it_can_and_says_why_it_skipped_the_rest(project):
    taken = decisions.decide(project, "s5", "keep", "bob")
    result = decisions.decide_many(
        project,
        [
            decisions.Decision("s1", "relabel", "dog", evidence={"score": 0.8}),
            decisions.Decision("s2", "exclude", reason="blurry"),
            decisions.Decision("s4", "relabel", "cat"),  # already cat
            decisions.Decision("zz", "keep"),
            decisions.Decision("s5", "relabel", "bird", expected_event=0),  # bob decided it
            decisions.Decision("s1", "keep"),  # listed twice
            decisions.Decision("s3", "relabel", "horse"),
        ],
        reviewer="ann", reason="bulk accept", run_id="run-1",
    )
    assert [e.sample_id for e in result.decided] == ["s1", "s2"]
    assert [sid for sid, _ in result.skipped] == ["s4", "zz", "s5", "s1", "s3"]
    reasons = dict(result.skipped[:3])
    assert "already has label" in reasons["s4"] and "not in this project" in reasons["zz"]
    assert f"event {taken.event_id}" in reasons["s5"]
    assert result.decided[0].payload["reason"] == "bulk accept" and result.decided[1].payload["reason"] == "blurry"
    assert all(e.payload["run_id"] == "run-1" for e in result.decided)
    current = labels.current_labels(project).set_index("id")
    assert current.loc["s1", "current_label"] == "dog" and bool(current.loc["s2", "excluded"])
    assert current.loc["s5", "status"] == "kept"
    # One transaction: the events are consecutive (ann's grant first).
    ids = [e.event_id for e in result.decided]
    assert ids == [ids[0], ids[0] + 1]
    assert audit.verify(project).ok


def test_a_bulk_refused_as_a_whole_writes_nothing(project):
    with pytest.raises(AmendError, match="no guideline version"):
        decisions.decide_many(project, [decisions.Decision("s1", "relabel", "dog")], reviewer="ann", guideline_version="v1")
    with pytest.raises(AmendError, match="unknown"):
        decisions.decide_many(project, [decisions.Decision("s1", "relabel", "dog"), decisions.Decision("s2", "nuke")],
                              reviewer="ann")
    assert audit.read_events(project) == []


# Queue rows as the triage page hands them over (s5 carries no suggestion key at all).
ROWS = [
    {"id": "s6", "rank": 1, "suggested_label": "cat", "seen_event": 0},
    {"id": "s3", "rank": 2, "suggested_label": None, "seen_event": 0},
    {"id": "s1", "rank": 3, "suggested_label": "dog", "seen_event": 4},
    {"id": "s5", "rank": 4, "seen_event": 0},
]


def test_bulk_accept_is_a_relabel_to_each_suggestion_and_leaves_out_rows_without_one():
    made = decisions.bulk_decisions(ROWS, "accept", run_id="run-1")
    assert made == [
        decisions.Decision("s6", "relabel", "cat", expected_event=0,
                           evidence={"run_id": "run-1", "rank": 1, "bulk": True}),
        decisions.Decision("s1", "relabel", "dog", expected_event=4,
                           evidence={"run_id": "run-1", "rank": 3, "bulk": True}),
    ]
    assert all(d.reason is None for d in made)  # the decide_many call's reason applies


@pytest.mark.parametrize("action", ["keep", "ambiguous", "exclude"])
def test_bulk_keep_ambiguous_exclude_take_every_row_and_carry_no_label(action):
    made = decisions.bulk_decisions(ROWS, action)
    assert [(d.sample_id, d.kind, d.label, d.expected_event) for d in made] == [
        ("s6", action, None, 0), ("s3", action, None, 0), ("s1", action, None, 4), ("s5", action, None, 0)]
    assert [d.evidence for d in made] == [{"run_id": None, "rank": r, "bulk": True} for r in (1, 2, 3, 4)]


def test_an_unknown_bulk_action_is_refused():
    with pytest.raises(AmendError, match="bulk action 'relabel' is unknown; use one of accept, keep"):
        decisions.bulk_decisions(ROWS, "relabel")
    assert decisions.bulk_decisions([], "accept") == []


def test_bulk_accept_written_skips_what_someone_decided_and_a_suggestion_already_in_force(project):
    decisions.decide(project, "s2", "keep", "bob")  # after the queue was read: its row says seen 0
    rows = [
        {"id": "s6", "rank": 1, "suggested_label": "cat", "seen_event": 0},  # given dog
        {"id": "s2", "rank": 2, "suggested_label": "cat", "seen_event": 0},  # bob decided it since
        {"id": "s4", "rank": 3, "suggested_label": "cat", "seen_event": 0},  # already cat
        {"id": "s3", "rank": 4, "suggested_label": None, "seen_event": 0},  # nothing to accept
    ]
    result = decisions.decide_many(project, decisions.bulk_decisions(rows, "accept", run_id="run-1"), "ann",
                                   reason="bulk: accept the suggested label", run_id="run-1")
    assert [e.sample_id for e in result.decided] == ["s6"]
    assert [sid for sid, _ in result.skipped] == ["s2", "s4"]
    payload = result.decided[0].payload
    assert (payload["decision"], payload["old_label"], payload["new_label"]) == ("relabel", "dog", "cat")
    assert payload["evidence"] == {"run_id": "run-1", "rank": 1, "bulk": True} and payload["seen_event"] == 0
    current = labels.current_labels(project).set_index("id")["current_label"]
    assert current.to_dict() == {"s1": "cat", "s2": "dog", "s3": "bird", "s4": "cat", "s5": "dog", "s6": "cat"}


def test_events_filters_for_the_audit_page(project):
    guidelines.publish(project, "# cat\n", "v1", "lead")
    decisions.decide(project, "s1", "relabel", "ann", label="dog")
    decisions.decide(project, "s2", "keep", "bob")
    guidelines.publish(project, "# cat\nmore\n", "v2", "lead")
    decisions.decide(project, "s3", "relabel", "ann", label="cat")
    everything = decisions.events(project)
    assert everything["event_id"].tolist() == list(range(1, len(everything) + 1))
    assert decisions.events(project, reviewer="ann", kinds=["decision"])["sample_id"].tolist() == ["s1", "s3"]
    assert decisions.events(project, label="cat", kinds=["decision"])["sample_id"].tolist() == ["s1", "s3"]
    assert decisions.events(project, guideline_version="v1", kinds=["decision"])["sample_id"].tolist() == ["s1", "s2"]
    middle = everything[everything["sample_id"] == "s2"]["created_at"].iloc[0]
    assert decisions.events(project, since=middle, kinds=["decision"])["sample_id"].tolist() == ["s2", "s3"]
    assert decisions.events(project, until=middle, kinds=["decision"])["sample_id"].tolist() == ["s1", "s2"]
    with pytest.raises(AmendError, match="not a time"):
        decisions.events(project, since="yesterday")
