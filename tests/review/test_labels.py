"""Current labels as a pure function of given labels + the log, at any point in time."""

from __future__ import annotations

import time

import pandas as pd
import pytest

from core.errors import AmendError
from core.review import audit, decisions, guidelines, labels


def _at(frame, sid, column):
    return frame.set_index("id").loc[sid, column]


def test_unreviewed_project_has_its_given_labels(project):
    frame = labels.current_labels(project)
    assert frame.columns.tolist() == labels.COLUMNS
    assert frame["id"].tolist() == ["s1", "s2", "s3", "s4", "s5", "s6"]
    assert (frame["current_label"] == frame["given_label"]).all() and (frame["status"] == "unreviewed").all()
    assert frame["last_event_id"].isna().all() and not frame["excluded"].any()


def test_each_decision_kind_and_the_last_one_wins(project):
    decisions.decide(project, "s1", "relabel", "ann", label="dog")
    decisions.decide(project, "s1", "keep", "ann")  # keeps the label in force (dog)
    decisions.decide(project, "s2", "exclude", "ann")
    decisions.decide(project, "s3", "exclude", "ann")
    decisions.decide(project, "s3", "ambiguous", "ann")  # a later decision un-excludes
    decisions.decide(project, "s4", "relabel", "ann", label="bird")
    frame = labels.current_labels(project)
    assert _at(frame, "s1", "current_label") == "dog" and _at(frame, "s1", "status") == "kept"
    assert _at(frame, "s2", "current_label") == "dog" and bool(_at(frame, "s2", "excluded"))
    assert _at(frame, "s3", "status") == "ambiguous" and not bool(_at(frame, "s3", "excluded"))
    assert _at(frame, "s4", "current_label") == "bird" and _at(frame, "s4", "status") == "relabelled"
    assert _at(frame, "s5", "status") == "unreviewed"
    # Replay agrees with the label each decision recorded when it was written.
    for event in audit.read_events(project, kinds=["decision"]):
        upto = labels.current_labels(project, up_to_event=event.event_id)
        assert _at(upto, event.sample_id, "current_label") == event.payload["new_label"]


def test_labels_as_of_a_time_between_two_decisions(project):
    first = decisions.decide(project, "s1", "relabel", "ann", label="dog", reason="first")
    time.sleep(0.01)
    middle = audit.utc_now()
    time.sleep(0.01)
    decisions.decide(project, "s1", "relabel", "bob", label="bird", reason="second")
    then = labels.current_labels(project, as_of=middle)
    assert _at(then, "s1", "current_label") == "dog" and _at(then, "s1", "reviewer") == "ann"
    assert _at(then, "s1", "last_event_id") == first.event_id
    now = labels.current_labels(project)
    assert _at(now, "s1", "current_label") == "bird" and _at(now, "s1", "reason") == "second"
    before_all = labels.current_labels(project, as_of="2000-01-01")
    assert _at(before_all, "s1", "current_label") == "cat" and _at(before_all, "s1", "status") == "unreviewed"
    # The same time written in another zone means the same moment.
    shifted = pd.Timestamp(middle).tz_convert("Asia/Tokyo").isoformat()
    assert labels.current_labels(project, as_of=shifted).equals(then)


def test_labels_as_of_a_guideline_version(project):
    guidelines.publish(project, "# cat\nv1\n", "v1", "lead")
    decisions.decide(project, "s1", "relabel", "ann", label="dog")
    guidelines.publish(project, "# cat\nv2\n", "v2", "lead")
    decisions.decide(project, "s1", "relabel", "ann", label="bird")
    decisions.decide(project, "s2", "exclude", "ann", guideline_version="v1")  # cites v1 after v2 came out
    under_v1 = labels.current_labels(project, guideline_version="v1")
    assert _at(under_v1, "s1", "current_label") == "dog" and _at(under_v1, "s1", "guideline_version") == "v1"
    assert _at(under_v1, "s2", "status") == "unreviewed"  # decided after v1 was superseded
    under_v2 = labels.current_labels(project, guideline_version="v2")  # latest: everything
    assert _at(under_v2, "s1", "current_label") == "bird" and bool(_at(under_v2, "s2", "excluded"))
    with pytest.raises(AmendError, match="no guideline version"):
        labels.current_labels(project, guideline_version="v3")


def test_derive_is_pure_over_its_inputs(project):
    decisions.decide(project, "s6", "relabel", "ann", label="cat")
    samples = project.samples(columns=["id", "label"])
    events = audit.read_events(project, kinds=["decision"])
    once = labels.derive(samples, events)
    assert once.equals(labels.derive(samples, events))
    assert once.equals(labels.current_labels(project))
    assert labels.derive(samples, []).equals(labels.current_labels(project, up_to_event=0))
