"""The audit trail an auditor accepts (issue 13, item 1): `amend audit verify` checks the log against
every state of it recorded in the project (analysis runs, exports, checkpoints) and against signed
checkpoints kept outside; a log that is missing, emptied, cut short, rolled back or rewritten with
its hashes recomputed is BROKEN (exit 1, naming the anchor), and export refuses to write.

Every tampering below once passed `amend audit verify` ("ok") and export wrote `chain_verified: true`.
Real SQLite files, the real CLI (core.cli.main), a project built through `amend` itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from .conftest import build_project, run_amend
from core.review import audit
from core.store.schema import LOG_SQL, statements

TRIGGERS = ("CREATE TRIGGER events_no_update BEFORE UPDATE ON events BEGIN SELECT RAISE(ABORT, 'x'); END",
            "CREATE TRIGGER events_no_delete BEFORE DELETE ON events BEGIN SELECT RAISE(ABORT, 'x'); END")


@dataclass
class Anchored:
    project: Path
    witness: Path      # the signed checkpoint written with `amend audit checkpoint --to`
    export_dir: Path   # the first export (its folder holds a signed checkpoint too)
    older_log: Path    # a copy of review.sqlite from before the last events
    events: int


def _decide(project: Path, sid: str, reviewer: str = "ann", **flags) -> None:
    args = ["decide", project, "--id", sid, "--reviewer", reviewer, "--json"]
    args += ["--keep"] if not flags else [f"--{k}" if v is True else f"--{k}={v}" for k, v in flags.items()]
    run_amend(*args)


@pytest.fixture(scope="session")
def anchored_once(tmp_path_factory, tiny_data) -> Anchored:
    """A project with decisions, a guideline, an analysis run, an export and a signed checkpoint,
    each recording the log at a different size. Read only: tests take a copy."""
    base = tmp_path_factory.mktemp("anchored")
    project = build_project(base / "tiny", tiny_data)
    guide = base / "guide.md"
    guide.write_text("# a\nRound things.\n\n# b\nSquare things.\n")
    for sid in ("s1", "s2", "s3"):
        _decide(project, sid)
    run_amend("guideline", project, "publish", guide, "--version", "v1", "--author", "lee", "--json")
    _decide(project, "s5", label="c")
    run_amend("analyse", project, "--json")  # run anchor: 7 events
    older = base / "older-review.sqlite"
    with sqlite3.connect(project / "review.sqlite") as con:  # a consistent copy, as a backup tool would take
        con.execute(f"VACUUM INTO '{older}'")
    run_amend("role", project, "grant", "bob", "--role", "reviewer", "--by", "lee", "--json")
    _decide(project, "s10", reviewer="bob", label="b")
    _decide(project, "s4", reviewer="bob", exclude=True)
    export_dir = base / "export"
    export_dir.mkdir()
    run_amend("export", project, export_dir / "labels.parquet", "--json")  # checkpoint anchor: 11 events
    guide.write_text("# a\nRound things, also ovals.\n\n# b\nSquare things.\n")
    run_amend("guideline", project, "publish", guide, "--version", "v2", "--author", "lee", "--json")
    _decide(project, "s6", ambiguous=True)
    witness = base / "witness"
    made = run_amend("audit", "checkpoint", project, "--to", witness, "--json").json()  # 14 events
    return Anchored(project, Path(made["file"]), export_dir, older, made["size"])


@pytest.fixture()
def anchored(anchored_once, tmp_path) -> Anchored:
    copy = tmp_path / "tiny"
    shutil.copytree(anchored_once.project, copy)
    return Anchored(copy, anchored_once.witness, anchored_once.export_dir, anchored_once.older_log,
                    anchored_once.events)


# --------------------------------------------------------------------------- tampering tools
def _open(project: Path) -> sqlite3.Connection:
    con = sqlite3.connect(project / "review.sqlite", isolation_level=None)
    con.execute("DROP TRIGGER IF EXISTS events_no_update")
    con.execute("DROP TRIGGER IF EXISTS events_no_delete")
    return con


def _close(con: sqlite3.Connection) -> None:
    for trigger in TRIGGERS:
        con.execute(trigger)
    con.close()


def _rows(con) -> list[list]:
    """[kind, sample_id, payload(dict), created_at, actor] of every event, in order."""
    rows = con.execute("SELECT kind, sample_id, payload, created_at, actor FROM events ORDER BY event_id").fetchall()
    return [[k, s, json.loads(p), t, a] for k, s, p, t, a in rows]


def _rewrite(project: Path, change: Callable[[list[list]], list[list]]) -> None:
    """Rewrite the whole log as ``change`` says, renumbering and recomputing every hash (what someone
    holding the file and reading audit.py can do), sqlite_sequence fixed, triggers restored."""
    con = _open(project)
    rows = change(_rows(con))
    con.execute("DELETE FROM events")
    prev = audit.GENESIS
    for number, (kind, sid, payload, created, actor) in enumerate(rows, start=1):
        digest = audit.event_hash(prev, number, kind, sid, payload, created, actor)
        con.execute("INSERT INTO events (event_id, kind, sample_id, payload, created_at, actor, prev_hash, hash) "
                    "VALUES (?,?,?,?,?,?,?,?)", (number, kind, sid, audit.canonical_json(payload), created, actor,
                                                 prev, digest))
        prev = digest
    con.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'events'", (len(rows),))
    _close(con)


def _remove_log(project: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        (project / f"review.sqlite{suffix}").unlink(missing_ok=True)


def delete_last_events_fixing_the_counter(a: Anchored) -> None:
    _rewrite(a.project, lambda rows: rows[:-2])


def delete_last_events(a: Anchored) -> None:
    con = _open(a.project)
    con.execute("DELETE FROM events WHERE event_id > ?", (a.events - 3,))
    _close(con)


def delete_a_middle_event_and_rehash(a: Anchored) -> None:
    _rewrite(a.project, lambda rows: rows[:4] + rows[5:])


def insert_a_middle_event_and_rehash(a: Anchored) -> None:
    def forge(rows):
        fake = [row for row in rows if row[0] == "decision"][0]
        forged = ["decision", "s7", dict(fake[2], reason="forged", new_label="a", decision="relabel"), rows[5][3], "ann"]
        return rows[:6] + [forged] + rows[6:]
    _rewrite(a.project, forge)


def edit_a_decision_and_rehash(a: Anchored) -> None:
    def edit(rows):
        rows[1][2]["reason"] = "rewritten after the fact"
        return rows
    _rewrite(a.project, edit)


def change_who_decided_and_rehash(a: Anchored) -> None:
    def edit(rows):
        rows[1][4] = "mallory"
        return rows
    _rewrite(a.project, edit)


def rewrite_a_guideline_with_its_sha_and_rehash(a: Anchored) -> None:
    def edit(rows):
        for row in rows:
            if row[0] == "guideline_published" and row[2]["version"] == "v1":
                row[2]["text"] = "# a\nAnything goes.\n"
                row[2]["sha256"] = hashlib.sha256(row[2]["text"].encode("utf-8")).hexdigest()
        return rows
    _rewrite(a.project, edit)


def swap_two_events_and_rehash(a: Anchored) -> None:
    def swap(rows):
        rows[1], rows[2] = rows[2], rows[1]
        rows[1][3], rows[2][3] = rows[2][3], rows[1][3]  # keep the times in order
        return rows
    _rewrite(a.project, swap)


def rewrite_everything_from_genesis(a: Anchored) -> None:
    def forge(rows):
        return [[kind, sid, dict(payload, reason="all new"), created, actor] for kind, sid, payload, created, actor in rows]
    _rewrite(a.project, forge)


def edit_a_payload_without_rehash(a: Anchored) -> None:
    con = _open(a.project)
    con.execute("UPDATE events SET payload = replace(payload, 'keep', 'exclude') WHERE event_id = 2")
    _close(con)


def replace_the_file_by_an_older_copy(a: Anchored) -> None:
    _remove_log(a.project)
    shutil.copyfile(a.older_log, a.project / "review.sqlite")


def delete_the_log(a: Anchored) -> None:
    _remove_log(a.project)


def replace_the_log_by_an_empty_one(a: Anchored) -> None:
    _remove_log(a.project)
    con = sqlite3.connect(a.project / "review.sqlite", isolation_level=None)
    for statement in statements(LOG_SQL):
        con.execute(statement)
    con.execute("PRAGMA user_version = 1")
    con.close()


def truncate_the_log_to_zero_bytes(a: Anchored) -> None:
    _remove_log(a.project)
    (a.project / "review.sqlite").write_bytes(b"")


def keep_only_the_first_event(a: Anchored) -> None:
    _rewrite(a.project, lambda rows: rows[:1])


def drop_the_triggers(a: Anchored) -> None:
    _open(a.project).close()


TAMPERINGS = [
    delete_last_events_fixing_the_counter, delete_last_events, delete_a_middle_event_and_rehash,
    insert_a_middle_event_and_rehash, edit_a_decision_and_rehash, change_who_decided_and_rehash,
    rewrite_a_guideline_with_its_sha_and_rehash, swap_two_events_and_rehash, rewrite_everything_from_genesis,
    edit_a_payload_without_rehash, replace_the_file_by_an_older_copy, delete_the_log, replace_the_log_by_an_empty_one,
    truncate_the_log_to_zero_bytes, keep_only_the_first_event, drop_the_triggers,
]


# --------------------------------------------------------------------------- the tests
def test_an_untampered_project_with_runs_exports_and_checkpoints_verifies(anchored, tmp_path):
    result = run_amend("audit", "verify", anchored.project, "--json").json()
    assert result["ok"] is True and result["events"] == anchored.events and result["failed_anchor"] is None
    assert result["anchors_checked"] == 3  # the run at 7 events, the export at 11, the checkpoint at 14
    both = run_amend("audit", "verify", anchored.project, "--checkpoint", anchored.witness, "--checkpoint",
                     anchored.export_dir, "--json").json()
    assert both["ok"] is True and both["checkpoints_checked"] == 2
    assert run_amend("audit", "verify", anchored.project).out.startswith(f"ok: {anchored.events} events")
    # the log goes on: new events extend every checkpoint
    _decide(anchored.project, "s8")
    assert run_amend("audit", "verify", anchored.project, "--checkpoint", anchored.witness, "--json").json()["ok"]
    exported = run_amend("export", anchored.project, tmp_path / "again.parquet", "--json").json()
    assert exported["checkpoint"]["size"] == anchored.events + 1


@pytest.mark.parametrize("tamper", TAMPERINGS, ids=[t.__name__ for t in TAMPERINGS])
def test_a_tampered_log_is_broken_and_export_refuses(anchored, tmp_path, tamper):
    tamper(anchored)
    broken = run_amend("audit", "verify", anchored.project, "--json", expect=1)
    result = broken.json()
    assert result["ok"] is False and result["problem"]
    assert len(broken.err.splitlines()) == 1 and broken.err.startswith("amend: error: the audit log is broken")
    if result["failed_anchor"] is not None:  # names which recorded state the log no longer extends
        assert result["failed_anchor"]["source"] in result["problem"]
    # a signed checkpoint held outside the project says the same
    witnessed = run_amend("audit", "verify", anchored.project, "--checkpoint", anchored.witness, "--json", expect=1)
    assert witnessed.json()["ok"] is False
    # and nothing is exported
    out = tmp_path / "out"
    out.mkdir()
    refused = run_amend("export", anchored.project, out / "labels.parquet", expect=1)
    assert "fails verification" in refused.err and list(out.iterdir()) == []


def test_the_failing_anchor_is_named(anchored):
    delete_last_events_fixing_the_counter(anchored)  # the checkpoint at 14 events; the export at 11 still holds
    result = run_amend("audit", "verify", anchored.project, "--json", expect=1).json()
    assert result["failed_anchor"]["size"] == anchored.events and "checkpoint" in result["failed_anchor"]["source"]
    assert f"now holds only {anchored.events - 2} events" in result["problem"]
    assert result["first_bad_event"] == anchored.events - 1
    replace_the_file_by_an_older_copy(anchored)
    text = run_amend("audit", "verify", anchored.project, expect=1)
    assert text.out.startswith("BROKEN at event 8: ") and "cut short" in text.out  # the log ends at 7 now
    delete_the_log(anchored)
    assert "the review log is missing" in run_amend("audit", "verify", anchored.project, expect=1).out


def test_only_the_outside_checkpoint_catches_a_rewrite_of_every_file_in_the_project(anchored):
    """Whoever holds the project folder can rewrite the log *and* the anchors recorded beside it; a
    signed checkpoint held by someone else (a witness) still catches it. This is the limit the README states."""
    edit_a_decision_and_rehash(anchored)
    con = sqlite3.connect(anchored.project / "project.sqlite", isolation_level=None)
    con.execute("DROP TRIGGER checkpoints_no_delete")
    con.execute("DELETE FROM checkpoints")
    con.execute("DELETE FROM runs")
    con.close()
    assert run_amend("audit", "verify", anchored.project, "--json").json()["ok"] is True  # nothing inside can tell
    result = run_amend("audit", "verify", anchored.project, "--checkpoint", anchored.witness, "--json", expect=1).json()
    assert result["ok"] is False and str(anchored.witness) in result["failed_anchor"]["source"]
    assert run_amend("audit", "verify", anchored.project, "--checkpoint", anchored.export_dir, expect=1)


def test_checkpoint_json_key_and_refusals(anchored, tmp_path, monkeypatch):
    keys = tmp_path / "keys"
    monkeypatch.setenv("AMEND_KEY_DIR", str(keys))
    made = run_amend("audit", "checkpoint", anchored.project, "--to", tmp_path / "w", "--json").json()
    assert made["size"] == anchored.events and len(made["chain_head"]) == 64 and len(made["signature"]) == 128
    assert made["public_key"].startswith("ed25519:") and Path(made["file"]).parent == tmp_path / "w"
    statement = json.loads(Path(made["file"]).read_text())
    assert {k: statement[k] for k in ("size", "chain_head", "signature")} == \
        {k: made[k] for k in ("size", "chain_head", "signature")}
    key = keys / "signing-key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and stat.S_IMODE(keys.stat().st_mode) == 0o700
    assert not [p for p in anchored.project.rglob("*.pem")]
    # a file path works too, and the statement is recorded in the project
    file = tmp_path / "one.json"
    assert run_amend("audit", "checkpoint", anchored.project, "--to", file, "--json").json()["file"] == str(file)
    from core.review import checkpoints

    assert [c["source"] for c in checkpoints.list_checkpoints(anchored.project)][-2:] == ["checkpoint", "checkpoint"]
    # refusals, one line each
    run_amend("audit", "checkpoint", anchored.project, "--to", anchored.project / "cp.json", expect=1)
    monkeypatch.setenv("AMEND_KEY_DIR", str(anchored.project / "keys"))
    refused = run_amend("audit", "checkpoint", anchored.project, "--to", tmp_path / "x", expect=1)
    assert "inside the project" in refused.err and not (anchored.project / "keys").exists()
    monkeypatch.setenv("AMEND_KEY_DIR", str(keys))
    os.chmod(key, 0o644)
    assert "chmod 600" in run_amend("audit", "checkpoint", anchored.project, "--to", tmp_path / "y", expect=1).err
    os.chmod(key, 0o600)


def test_an_altered_or_foreign_checkpoint_is_refused(anchored, tmp_path, tiny_data):
    altered = dict(json.loads(anchored.witness.read_text()))
    altered["size"] = 3  # claim the log was shorter, to pass off a cut
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(altered))
    result = run_amend("audit", "verify", anchored.project, "--checkpoint", forged, "--json", expect=1).json()
    assert result["ok"] is False and "signature does not match" in result["problem"]
    other = build_project(tmp_path / "other", tiny_data)
    foreign = run_amend("audit", "checkpoint", other, "--to", tmp_path / "other-w", "--json").json()["file"]
    assert "another project" in run_amend("audit", "verify", anchored.project, "--checkpoint", foreign, expect=1).err
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "labels.manifest.json").write_text("{}")
    assert "holds no Amend checkpoint" in run_amend("audit", "verify", anchored.project, "--checkpoint", empty,
                                                    expect=1).err


def test_export_signs_a_checkpoint_into_its_folder_and_records_it(anchored, tmp_path):
    out = tmp_path / "exp"
    out.mkdir()
    payload = run_amend("export", anchored.project, out / "labels.csv", "--json").json()
    manifest = json.loads((out / "labels.manifest.json").read_text())
    statement = json.loads((out / "labels.checkpoint.json").read_text())
    assert manifest["checkpoint"]["signature"] == statement["signature"] == payload["checkpoint"]["signature"]
    assert (statement["size"], statement["chain_head"]) == (anchored.events, manifest["chain_head"])
    assert manifest["anchors_verified"] == 3 and "labels.checkpoint.json" in payload["files"]
    from core.review import checkpoints

    last = checkpoints.list_checkpoints(anchored.project)[-1]
    assert last["source"] == "export" and last["location"] == str((out / "labels.checkpoint.json").resolve())
    assert run_amend("audit", "verify", anchored.project, "--checkpoint", out, "--json").json()["checkpoints_checked"] == 1
