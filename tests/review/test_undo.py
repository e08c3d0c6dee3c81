"""Undo: a new event that returns a sample to its state before the reviewer's last decision."""

from __future__ import annotations

import pytest

from core.errors import AmendError
from core.review import audit, decisions, labels


def _state(project, sample_id: str) -> dict:
    return labels.current_labels(project).set_index("id").loc[sample_id].to_dict()


def test_undo_of_a_relabel_restores_the_given_label_and_the_unreviewed_state(project):
    relabel = decisions.decide(project, "s6", "relabel", "ann", label="cat", expected_event=0)
    before = len(audit.read_events(project))
    undo = decisions.undo_last(project, "ann")
    assert len(audit.read_events(project)) == before + 1  # appended, nothing removed
    assert audit.get_event(project, relabel.event_id) == relabel
    assert undo.sample_id == "s6" and undo.payload["undoes"] == relabel.event_id
    assert (undo.payload["old_label"], undo.payload["new_label"], undo.payload["restored_status"]) == \
        ("cat", "dog", "unreviewed")
    state = _state(project, "s6")
    assert state["current_label"] == "dog" and state["status"] == "unreviewed" and state["reviewer"] is None
    assert state["last_event_id"] == undo.event_id  # a later decision must have seen the undo
    assert audit.verify(project).ok


def test_undo_twice_walks_back_the_reviewers_own_decisions_in_order(project):
    keep = decisions.decide(project, "s1", "keep", "ann")
    decisions.decide(project, "s2", "exclude", "bob")
    relabel = decisions.decide(project, "s3", "relabel", "ann", label="cat")
    assert decisions.undo_last(project, "ann").payload["undoes"] == relabel.event_id
    assert decisions.undo_last(project, "ann").payload["undoes"] == keep.event_id
    assert _state(project, "s1")["status"] == "unreviewed" and _state(project, "s3")["current_label"] == "bird"
    assert _state(project, "s2")["status"] == "excluded"  # bob's decision untouched
    with pytest.raises(AmendError, match="no decision to undo"):
        decisions.undo_last(project, "ann")


def test_undo_of_a_second_decision_on_a_sample_returns_to_the_first(project):
    decisions.decide(project, "s4", "relabel", "ann", label="dog")
    decisions.decide(project, "s4", "exclude", "ann")
    decisions.undo_last(project, "ann")
    state = _state(project, "s4")
    assert state["current_label"] == "dog" and state["status"] == "relabelled"
    decisions.undo_last(project, "ann")
    state = _state(project, "s4")
    assert state["current_label"] == "cat" and state["status"] == "unreviewed"
    assert labels.label_in_force("cat", audit.read_events(project, sample_id="s4")) == "cat"


def test_undo_is_refused_when_someone_else_decided_on_the_sample_since(project):
    decisions.decide(project, "s5", "relabel", "ann", label="cat")
    later = decisions.decide(project, "s5", "keep", "bob")
    count = len(audit.read_events(project))
    with pytest.raises(AmendError, match=f"bob decided on s5 after you.*event {later.event_id}"):
        decisions.undo_last(project, "ann")
    assert len(audit.read_events(project)) == count
    assert _state(project, "s5")["status"] == "kept"
