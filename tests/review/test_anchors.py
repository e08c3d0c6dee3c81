"""Anchors at the library level: run records of an earlier Amend (the head alone) are found by hash,
the checkpoints table is append-only, the Python API checkpoints and verifies (issue 13, item 1)."""

from __future__ import annotations

import json
import sqlite3

import pytest

from core import api
from core.errors import AmendError
from core.review import audit, checkpoints, decisions


def _fill(project, n=4):
    for i in range(n):
        decisions.decide(project, "s1" if i % 2 else "s2", "keep", "ann", reason=f"r{i}")


def _old_run(project, head):
    """A run record as an earlier Amend wrote it: the chain head, no size."""
    record = {"labels_analysed": {"source": "labels in force (given + decisions)", "audit_chain_head": head}}
    with project.transaction() as con:
        con.execute("INSERT INTO runs VALUES (?,?,?,?,?,?)",
                    ("run-old", "2026-01-01T00:00:00+00:00", None, "evidence__run-old", None, json.dumps(record)))


def _rehash_with(project, event_id, reason):
    con = sqlite3.connect(project.path / "review.sqlite", isolation_level=None)
    con.execute("DROP TRIGGER events_no_update")
    rows = con.execute("SELECT event_id, kind, sample_id, payload, created_at, actor FROM events ORDER BY event_id").fetchall()
    prev = audit.GENESIS
    for number, kind, sid, text, created, actor in rows:
        payload = json.loads(text)
        if number == event_id:
            payload["reason"] = reason
        digest = audit.event_hash(prev, number, kind, sid, payload, created, actor)
        con.execute("UPDATE events SET payload = ?, prev_hash = ?, hash = ? WHERE event_id = ?",
                    (audit.canonical_json(payload), prev, digest, number))
        prev = digest
    con.execute("CREATE TRIGGER events_no_update BEFORE UPDATE ON events BEGIN SELECT RAISE(ABORT, 'x'); END")
    con.close()


def test_a_run_record_of_an_earlier_amend_is_found_by_its_head(project):
    _fill(project, 4)
    _old_run(project, audit.chain_head(project))
    _fill(project, 2)
    result = audit.verify(project)
    assert result.ok and result.anchors == 1
    _rehash_with(project, 3, "rewritten")
    assert audit.verify(project, recorded=False).ok  # the chain alone cannot tell
    broken = audit.verify(project)
    assert not broken.ok and broken.failed_anchor.source == "analysis run run-old"
    assert "is not in the log" in broken.problem


def test_the_checkpoints_table_is_append_only_and_anchors_the_log(project, tmp_path):
    _fill(project, 3)
    made = api.checkpoint(project, to=tmp_path / "w")
    assert (made["size"], made["chain_head"]) == audit.chain_tip(project)
    con = sqlite3.connect(project.path / "project.sqlite", isolation_level=None)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        con.execute("DELETE FROM checkpoints")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        con.execute("UPDATE checkpoints SET size = 1")
    con.close()
    _fill(project, 1)
    assert api.verify(project, checkpoints=[made["file"]]).ok
    _rehash_with(project, 2, "rewritten")
    result = api.verify(project)
    assert not result.ok and result.failed_anchor.size == made["size"] and "checkpoint 1 (checkpoint" in result.problem


def test_a_checkpoint_of_a_broken_log_is_refused(project, tmp_path):
    _fill(project, 3)
    api.checkpoint(project, to=tmp_path / "w")
    _rehash_with(project, 1, "rewritten")
    with pytest.raises(AmendError, match="no checkpoint was written"):
        api.checkpoint(project, to=tmp_path / "w2")
    assert not (tmp_path / "w2").exists()


def test_a_signature_covers_every_field(project, tmp_path):
    _fill(project, 2)
    statement = checkpoints.sign(project, 2, audit.chain_head(project))
    assert checkpoints.signature_problem(statement) is None
    for field, value in [("size", 1), ("chain_head", "0" * 64), ("time", "2020-01-01T00:00:00+00:00"),
                         ("project_id", "other"), ("project_name", "x")]:
        assert "signature does not match" in checkpoints.signature_problem(dict(statement, **{field: value}))



def test_the_apps_schedule_checkpoints_only_a_log_that_grew_and_not_too_often(project, tmp_path, monkeypatch):
    monkeypatch.setenv("AMEND_CHECKPOINT_DIR", str(tmp_path / "witness"))
    assert checkpoints.checkpoint_if_grown(project, 0) is None  # an empty log: nothing to vouch for
    _fill(project, 2)
    first = checkpoints.checkpoint_if_grown(project, 3600)
    assert first is not None and first["size"] == len(audit.read_events(project))
    assert checkpoints.checkpoint_if_grown(project, 0) is None  # the log did not grow since
    _fill(project, 1)
    assert checkpoints.checkpoint_if_grown(project, 3600) is None  # grew, but the last one is recent
    second = checkpoints.checkpoint_if_grown(project, 0)
    assert second is not None and second["size"] > first["size"]
    assert len(list((tmp_path / "witness").glob("*.json"))) == 2
    assert api.verify(project, checkpoints=[str(tmp_path / "witness")]).ok


def test_the_schedule_interval_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("AMEND_CHECKPOINT_MINUTES", raising=False)
    assert checkpoints.schedule_minutes() == checkpoints.DEFAULT_SCHEDULE_MINUTES
    monkeypatch.setenv("AMEND_CHECKPOINT_MINUTES", "0")
    assert checkpoints.schedule_minutes() == 0
    monkeypatch.setenv("AMEND_CHECKPOINT_MINUTES", "soon")
    assert checkpoints.schedule_minutes() == checkpoints.DEFAULT_SCHEDULE_MINUTES
