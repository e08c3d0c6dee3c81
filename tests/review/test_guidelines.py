"""Guideline versions: publish, list, diff, citations, re-review queue."""

from __future__ import annotations

import hashlib

import pytest

from core.errors import AmendError
from core.review import audit, decisions, guidelines

V1 = """# Labelling guide

Be careful.

## cat
Whiskers and a tail.

## dog
Barks.
"""

V2 = """# Labelling guide

Be very careful.

## Cat
Whiskers, a tail, and it meows. A barking cat is a dog.

### Examples
A lion is not a cat here.

## dog
Barks.
"""


def test_publish_list_get_and_diff(project):
    first = guidelines.publish(project, V1, "v1", "lea")
    second = guidelines.publish(project, V2, "v2", "lea")
    assert first.sha256 == hashlib.sha256(V1.encode()).hexdigest()
    assert [v.version for v in guidelines.list_versions(project)] == ["v1", "v2"]
    assert guidelines.get(project, "v1").text == V1 and guidelines.latest(project) == second
    assert second.previous_version == "v1" and first.previous_version is None
    diff = guidelines.diff(project, "v1", "v2")
    assert diff.startswith("--- guideline v1\n+++ guideline v2\n")
    assert "-Be careful.\n" in diff and "+Be very careful.\n" in diff and "+A lion is not a cat here.\n" in diff
    assert guidelines.diff(project, "v2", "v2") == ""
    with pytest.raises(AmendError, match="already exists"):
        guidelines.publish(project, V1 + "x", "v1", "lea")
    with pytest.raises(AmendError, match="identical"):
        guidelines.publish(project, V2, "v3", "lea")
    with pytest.raises(AmendError, match="not allowed"):
        guidelines.publish(project, V1, "../v", "lea")
    with pytest.raises(AmendError, match="no guideline version"):
        guidelines.get(project, "v9")
    assert audit.verify(project).ok


def test_classes_come_from_headings_or_are_given(project):
    first = guidelines.publish(project, V1, "v1", "lea")
    assert (first.classes, first.classes_source) == (["cat", "dog"], "headings")
    second = guidelines.publish(project, V2, "v2", "lea")  # preamble + cat section (and its subsection) changed
    assert (second.classes, second.classes_source) == (["cat"], "headings")
    third = guidelines.publish(project, V2 + "\nGeneral note.\n", "v3", "lea", classes=["bird", "dog"])
    assert (third.classes, third.classes_source) == (["bird", "dog"], "given")  # label-set order
    with pytest.raises(AmendError, match="not in the label set"):
        guidelines.publish(project, V2 + "y", "v4", "lea", classes=["horse"])


def test_a_tampered_guideline_text_fails_verify(project):
    import json
    import sqlite3

    guidelines.publish(project, V1, "v1", "lea")
    con = sqlite3.connect(project.path / "review.sqlite", isolation_level=None)
    con.execute("DROP TRIGGER events_no_update")
    (text,) = con.execute("SELECT payload FROM events WHERE kind = 'guideline_published'").fetchone()
    payload = json.loads(text)
    payload["text"] = payload["text"].replace("Barks", "Meows")
    con.execute("UPDATE events SET payload = ? WHERE kind = 'guideline_published'", (audit.canonical_json(payload),))
    con.close()
    result = audit.verify(project)
    assert not result.ok and result.first_bad_event == 2  # event 1 is the lead grant


def test_citation_counts_count_every_decision_citing_each_version(project):
    decisions.decide(project, "s1", "relabel", "ann", label="dog")  # before any version: counts for none
    guidelines.publish(project, V1, "v1", "lea")
    assert guidelines.citation_counts(project) == {"v1": 0}  # its publish event is not a citation
    decisions.decide(project, "s2", "relabel", "ann", label="cat")  # v1 (the latest)
    decisions.decide(project, "s3", "keep", "ann")  # v1
    guidelines.publish(project, V2, "v2", "lea")
    decisions.decide(project, "s2", "keep", "ann")  # v2; the v1 decision on s2 it corrects still counts
    decisions.decide(project, "s5", "exclude", "bob", guideline_version="v1")  # cites v1 after v2 came out
    guidelines.publish(project, V2 + "\nMore.\n", "v3", "lea")  # nobody cites it
    counts = guidelines.citation_counts(project)
    assert counts == {"v1": 3, "v2": 1, "v3": 0}
    assert list(counts) == ["v1", "v2", "v3"]  # publication order
    assert counts["v1"] == len(guidelines.decisions_citing(project, "v1"))


def test_citation_counts_without_a_version_are_empty(project):
    decisions.decide(project, "s1", "keep", "ann")
    assert guidelines.citation_counts(project) == {}


def test_decisions_citing_and_the_review_queue(project):
    decisions.decide(project, "s1", "relabel", "ann", label="dog")  # no guideline yet
    guidelines.publish(project, V1, "v1", "lea")
    decisions.decide(project, "s2", "relabel", "ann", label="cat")  # cites v1 (default latest)
    decisions.decide(project, "s3", "keep", "ann")  # cites v1, class bird
    decisions.decide(project, "s5", "keep", "ann")  # cites v1, class dog only
    decisions.decide(project, "s6", "relabel", "ann", label="cat")
    decisions.decide(project, "s6", "keep", "ann", guideline_version="v1")
    guidelines.publish(project, V2, "v2", "lea")  # touches cat
    decisions.decide(project, "s4", "keep", "ann")  # cites v2: not queued
    citing = guidelines.decisions_citing(project, "v1")
    assert citing["sample_id"].tolist() == ["s2", "s3", "s5", "s6", "s6"]
    assert citing["superseded_by"].notna().tolist() == [False, False, False, True, False]
    queue = guidelines.review_queue_for_guideline(project, "v2")
    assert queue["sample_id"].tolist() == ["s1", "s2", "s6"]
    assert queue["classes"].tolist() == [["cat"], ["cat"], ["cat"]]
    assert queue["guideline_version"].isna().tolist() == [True, False, False]
    # Re-reviewing under v2 empties the queue for that sample.
    decisions.decide(project, "s2", "keep", "ann", expected_event=decisions.latest_event_id(project, "s2"))
    assert guidelines.review_queue_for_guideline(project, "v2")["sample_id"].tolist() == ["s1", "s6"]
    with pytest.raises(AmendError, match="no guideline version"):
        guidelines.review_queue_for_guideline(project, "v7")


def test_remote_images_in_a_guideline_are_shown_as_a_note_not_loaded():
    text = ("# cat\nSee ![whiskers](https://tracker.example/p.gif \"t\") and ![x](//cdn.example/y.png).\n"
            "A [link](https://example.org/doc) stays a link. ![ref][pic]\n\n[pic]: http://tracker.example/q.png\n")
    shown = guidelines.without_remote_images(text)
    assert "![" not in shown  # no image markdown left: nothing is fetched on display
    assert "[remote image not loaded: whiskers — https://tracker.example/p.gif]" in shown
    assert "[remote image not loaded: x — //cdn.example/y.png]" in shown
    assert "[remote image not loaded: ref — reference [pic]]" in shown
    assert "[link](https://example.org/doc)" in shown and shown.startswith("# cat\n")
    assert guidelines.without_remote_images("plain *text*") == "plain *text*"
