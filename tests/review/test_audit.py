"""The log itself: append-only at the database level, hash chain, verify names the first bad event."""

from __future__ import annotations

import hashlib
import json
import sqlite3

import pytest

from core.errors import AmendError
from core.review import audit, decisions, roles


def _fill(project, n=5):
    return [decisions.decide(project, "s1" if i % 2 else "s2", "keep" if i % 3 else "ambiguous", "ann",
                             reason=f"r{i}") for i in range(n)]


def _raw(project):
    con = sqlite3.connect(project.path / "review.sqlite", isolation_level=None)
    return con


def test_an_empty_project_verifies_without_creating_a_log(project):
    result = audit.verify(project)
    assert result.ok and result.events == 0 and result.chain_head == audit.GENESIS
    assert not (project.path / "review.sqlite").exists()


def test_events_are_chained_canonical_and_stamped_with_server_time(project):
    before = audit.utc_now()
    events = _fill(project, 4)
    after = audit.utc_now()
    all_events = audit.read_events(project)
    # 4 decisions + the automatic reviewer grant written with the first one
    assert [e.event_id for e in all_events] == [1, 2, 3, 4, 5]
    assert all_events[0].kind == "role_granted" and all_events[0].prev_hash == audit.GENESIS
    for prev, event in zip(all_events, all_events[1:]):
        assert event.prev_hash == prev.hash
        assert before <= event.created_at <= after
    con = _raw(project)
    row = con.execute("SELECT payload, hash, prev_hash FROM events WHERE event_id = ?", (events[-1].event_id,)).fetchone()
    assert row[0] == json.dumps(json.loads(row[0]), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    body = json.dumps({"event_id": events[-1].event_id, "kind": "decision", "sample_id": events[-1].sample_id,
                       "payload": json.loads(row[0]), "created_at": events[-1].created_at, "actor": "ann"},
                      sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert row[1] == hashlib.sha256((row[2] + body).encode()).hexdigest()
    result = audit.verify(project)
    assert result.ok and result.events == 5 and result.chain_head == all_events[-1].hash
    assert audit.chain_head(project) == all_events[-1].hash


def test_update_and_delete_are_refused_by_the_database(project):
    _fill(project, 2)
    con = _raw(project)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        con.execute("UPDATE events SET actor = 'mallory' WHERE event_id = 2")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        con.execute("DELETE FROM events WHERE event_id = 2")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        con.execute("DELETE FROM events")
    con.close()
    assert [e.actor for e in audit.read_events(project)] == ["ann"] * 3
    assert audit.verify(project).ok


def _untrigger(con):
    con.execute("DROP TRIGGER events_no_update")
    con.execute("DROP TRIGGER events_no_delete")


def test_an_edited_payload_is_named(project):
    _fill(project, 6)
    con = _raw(project)
    _untrigger(con)
    payload = json.loads(con.execute("SELECT payload FROM events WHERE event_id = 4").fetchone()[0])
    payload["reason"] = "something else"
    con.execute("UPDATE events SET payload = ? WHERE event_id = 4", (audit.canonical_json(payload),))
    con.close()
    result = audit.verify(project)
    assert not result.ok and result.first_bad_event == 4 and "edited" in result.problem
    assert result.events == 7


def test_an_edited_actor_or_time_is_named(project):
    _fill(project, 6)
    con = _raw(project)
    _untrigger(con)
    con.execute("UPDATE events SET actor = 'mallory' WHERE event_id = 5")
    con.close()
    assert audit.verify(project).first_bad_event == 5


def test_a_deleted_middle_row_is_named_by_its_id(project):
    _fill(project, 6)
    con = _raw(project)
    _untrigger(con)
    con.execute("DELETE FROM events WHERE event_id = 3")
    con.close()
    result = audit.verify(project)
    assert not result.ok and result.first_bad_event == 3 and "missing" in result.problem


def test_deleted_last_rows_are_caught(project):
    _fill(project, 6)
    con = _raw(project)
    _untrigger(con)
    con.execute("DELETE FROM events WHERE event_id >= 6")
    con.execute("CREATE TRIGGER events_no_update BEFORE UPDATE ON events BEGIN SELECT RAISE(ABORT, 'x'); END")
    con.execute("CREATE TRIGGER events_no_delete BEFORE DELETE ON events BEGIN SELECT RAISE(ABORT, 'x'); END")
    con.close()
    result = audit.verify(project)
    assert not result.ok and result.first_bad_event == 6 and "deleted" in result.problem


def test_a_changed_prev_hash_is_named(project):
    _fill(project, 6)
    con = _raw(project)
    _untrigger(con)
    con.execute("UPDATE events SET prev_hash = ? WHERE event_id = 5", ("f" * 64,))
    con.close()
    result = audit.verify(project)
    assert not result.ok and result.first_bad_event == 5 and "prev_hash" in result.problem


def test_a_rewritten_tail_is_caught_by_a_recorded_head(project):
    _fill(project, 4)
    head = audit.chain_head(project)
    assert audit.verify(project, known_head=head).ok
    con = _raw(project)
    _untrigger(con)
    # Rewrite event 5 and recompute its hash: the chain alone cannot tell.
    row = con.execute("SELECT kind, sample_id, payload, created_at, actor, prev_hash FROM events WHERE event_id = 5").fetchone()
    payload = json.loads(row[2])
    payload["reason"] = "rewritten"
    new_hash = audit.event_hash(row[5], 5, row[0], row[1], payload, row[3], row[4])
    con.execute("UPDATE events SET payload = ?, hash = ? WHERE event_id = 5", (audit.canonical_json(payload), new_hash))
    con.execute("CREATE TRIGGER events_no_update BEFORE UPDATE ON events BEGIN SELECT RAISE(ABORT, 'x'); END")
    con.execute("CREATE TRIGGER events_no_delete BEFORE DELETE ON events BEGIN SELECT RAISE(ABORT, 'x'); END")
    con.close()
    assert audit.verify(project).ok
    result = audit.verify(project, known_head=head)
    assert not result.ok and head in result.problem


def test_dropped_triggers_alone_fail_verify(project):
    _fill(project, 2)
    con = _raw(project)
    _untrigger(con)
    con.close()
    result = audit.verify(project)
    assert not result.ok and result.first_bad_event is None and "triggers" in result.problem


def test_a_payload_must_be_plain_json(project):
    with pytest.raises(AmendError, match="plain JSON"):
        audit.append(project, "decision", "ann", {"x": float("nan")}, sample_id="s1")
    with pytest.raises(AmendError, match="unknown event kind"):
        audit.append(project, "edit", "ann", {})
    assert audit.read_events(project) == []


def test_log_stamp_changes_with_every_write_and_only_then(tmp_path):
    project = tmp_path / "p"
    project.mkdir()
    assert audit.log_stamp(project) == (None, None, None, None)  # no log (and no project.sqlite) yet
    roles.grant(project, "ann", "reviewer", by="ann")
    audit.append(project, "decision", "ann", {"decision": "keep"}, sample_id="s1")
    first = audit.log_stamp(project)
    assert first[0] is not None
    assert audit.log_stamp(project) == first
    audit.append(project, "decision", "ann", {"decision": "keep"}, sample_id="s2")
    assert audit.log_stamp(project) != first
