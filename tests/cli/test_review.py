"""`amend decide`, `amend guideline`, `amend role`, `amend audit verify` (core.cli.review)."""

from __future__ import annotations

import hashlib
import json
import sqlite3

from .conftest import PLANTED


def _current(amend, project) -> dict[str, str]:
    return {r["id"]: r["current_label"] for r in amend.json("flags", project)}


def test_decide_each_kind(amend, analysed):
    event = amend.json("decide", analysed, "--id", "s5", "--label", "c", "--reviewer", "ann", "--reason", "cluster c",
                       "--expected-event", "0")
    assert {"event_id", "sample_id", "old_label", "new_label"} <= set(event)
    assert (event["sample_id"], event["old_label"], event["new_label"], event["decision"]) == ("s5", "a", "c", "relabel")
    assert _current(amend, analysed)["s5"] == "c"
    kept = amend("decide", analysed, "--id", "s1", "--keep", "--reviewer", "ann").out
    assert kept.strip() == f"event {event['event_id'] + 1}: s1 keep b -> b"
    assert amend.json("decide", analysed, "--id", "s2", "--ambiguous", "--reviewer", "bob")["decision"] == "ambiguous"
    assert amend.json("decide", analysed, "--id", "s3", "--exclude", "--reviewer", "bob")["decision"] == "exclude"
    # four decisions, and a reviewer role for each of the two new names
    assert amend.json("audit", "verify", analysed)["events"] == 6


def test_decide_user_errors(amend, analysed):
    amend.fails("decide", analysed, "--id", "s5", "--label", "zebra", "--reviewer", "ann", "--json",
                says="label 'zebra' is not in the label set")
    amend.fails("decide", analysed, "--id", "s999", "--keep", "--reviewer", "ann", says="sample 's999' is not in this project")
    amend.fails("decide", analysed, "--keep", "--reviewer", "ann", says="say which sample: --id ID")
    amend.fails("decide", analysed, "--id", "s5", "--reviewer", "ann", says="give exactly one decision")
    amend.fails("decide", analysed, "--id", "s5", "--keep", "--exclude", "--reviewer", "ann", says="give exactly one decision")
    amend.fails("decide", analysed, "--id", "s5", "--label", "a", "--reviewer", "ann", says="already has label 'a'")
    amend.fails("decide", analysed.parent / "missing", "--id", "s5", "--keep", "--reviewer", "ann",
                says="not an Amend project")
    assert amend.json("audit", "verify", analysed)["events"] == 0  # none of these wrote anything


def test_a_stale_decision_is_a_conflict_exit_3(amend, analysed):
    first = amend.json("decide", analysed, "--id", "s10", "--label", "b", "--reviewer", "ann", "--expected-event", "0")
    stale = amend.fails("decide", analysed, "--id", "s10", "--exclude", "--reviewer", "bob", "--expected-event", "0",
                        "--json", code=3, says=f"event {first['event_id']} by ann")
    assert stale.out == ""
    seen = amend.json("decide", analysed, "--id", "s10", "--exclude", "--reviewer", "bob",
                      "--expected-event", str(first["event_id"]))
    assert seen["event_id"] > first["event_id"]


def test_accept_suggested_relabels_the_flagged(amend, analysed, tiny_data):
    result = amend.json("decide", analysed, "--accept-suggested", "--top", "2", "--reviewer", "ann")
    assert result["decided"] == 2 and result["skipped"] == 0 and result["skipped_samples"] == []
    current = _current(amend, analysed)
    assert {sid: current[sid] for sid in PLANTED} == {sid: tiny_data.truth[sid] for sid in PLANTED}
    assert sum(current[sid] != label for sid, label in tiny_data.truth.items()) == 0
    again = amend("decide", analysed, "--accept-suggested", "--top", "2", "--reviewer", "ann").out
    assert again.strip() == "decided 0, skipped 2"


def test_a_bulk_acceptance_on_amends_probe_alone_says_so(amend, analysed, tiny_project, tiny_data):
    """Relabels that rest on Amend's probe of the vectors alone come with a note on stderr (its
    estimates run optimistic on real data); with the user's own predictions they do not."""
    probe_only = amend("decide", analysed, "--accept-suggested", "--top", "2", "--reviewer", "ann", "--json")
    assert json.loads(probe_only.out)["decided"] == 2
    notes = [line for line in probe_only.err.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1 and "no predictions of your own" in notes[0] and "amend predictions import" in notes[0]
    amend("predictions", "import", tiny_project, tiny_data.probabilities, "--ids", tiny_data.ids, "--name", "model")
    amend("analyse", tiny_project, "--predictions", "model", "--no-slices")
    with_model = amend("decide", tiny_project, "--accept-suggested", "--reviewer", "ann", "--json")
    assert json.loads(with_model.out)["decided"] >= 1
    assert not [line for line in with_model.err.splitlines() if line.startswith("note: ")]


def test_accept_suggested_for_listed_ids(amend, analysed, tmp_path):
    (tmp_path / "ids.txt").write_text("s10\n\n")
    listed = amend("decide", analysed, "--accept-suggested", "--ids", tmp_path / "ids.txt", "--reviewer", "ann",
                   "--json")
    assert json.loads(listed.out)["decided"] == 1
    assert "note: " not in listed.err  # samples the user listed: no note about reviewing a sample first
    assert _current(amend, analysed)["s10"] == "b" and _current(amend, analysed)["s5"] == "a"


def test_accept_suggested_user_errors(amend, analysed, tmp_path, tiny_project):
    amend.fails("decide", analysed, "--accept-suggested", "--id", "s5", "--reviewer", "ann",
                says="do not combine it with --id")
    amend.fails("decide", analysed, "--accept-suggested", "--ids", tmp_path / "none.txt", "--reviewer", "ann",
                says="none.txt does not exist")
    (tmp_path / "ids.txt").write_text("s5\nghost\n")
    amend.fails("decide", analysed, "--accept-suggested", "--ids", tmp_path / "ids.txt", "--reviewer", "ann",
                says="1 ids are not in run")
    amend.fails("decide", tiny_project, "--accept-suggested", "--reviewer", "ann", "--json", says="no analysis yet")


def test_guideline_publish_list_show_diff(amend, tiny_project, tmp_path):
    v1 = tmp_path / "v1.md"
    v1.write_text("# a\nRound things.\n")
    v2 = tmp_path / "v2.md"
    v2.write_text("# a\nRound things, and balls.\n")
    published = amend.json("guideline", tiny_project, "publish", v1, "--version", "v1", "--author", "lee")
    assert published["version"] == "v1"
    assert published["sha256"] == hashlib.sha256(v1.read_bytes()).hexdigest()
    amend("guideline", tiny_project, "publish", v2, "--version", "v2", "--author", "lee")
    listed = amend.json("guideline", tiny_project, "list")
    assert [v["version"] for v in listed["versions"]] == ["v1", "v2"]
    assert amend("guideline", tiny_project, "show").out == v2.read_text()
    assert amend.json("guideline", tiny_project, "show", "--version", "v1")["text"] == v1.read_text()
    diff = amend.json("guideline", tiny_project, "diff", "--version", "v2", "--against", "v1")
    assert (diff["from"], diff["to"]) == ("v1", "v2") and "+Round things, and balls." in diff["diff"]


def test_guideline_user_errors(amend, tiny_project, tmp_path):
    amend.fails("guideline", tiny_project, "show", says="no guideline published yet")
    assert amend("guideline", tiny_project, "list").out.strip() == "no guideline published yet"
    guide = tmp_path / "g.md"
    guide.write_text("# a\nRound things.\n")
    amend.fails("guideline", tiny_project, "publish", guide, "--author", "lee", says="publish needs FILE, --version V")
    amend.fails("guideline", tiny_project, "publish", tmp_path / "none.md", "--version", "v1", "--author", "lee",
                says="none.md does not exist")
    amend("guideline", tiny_project, "publish", guide, "--version", "v1", "--author", "lee")
    guide.write_text("# a\nSquare things.\n")
    amend.fails("guideline", tiny_project, "publish", guide, "--version", "v2", "--author", "ann", "--json", says="lead")
    amend.fails("guideline", tiny_project, "publish", guide, "--version", "v1", "--author", "lee", says="already exists")
    amend.fails("guideline", tiny_project, "show", "--version", "v9", says="v9")
    amend.fails("guideline", tiny_project, "diff", "--version", "v1", says="diff needs --version V and --against OLD")


def test_roles_grant_close_and_refuse(amend, tiny_project, tmp_path):
    assert amend.json("role", tiny_project, "show") == {"closed": False, "roles": {}}
    guide = tmp_path / "g.md"
    guide.write_text("# a\nRound things.\n")
    amend("guideline", tiny_project, "publish", guide, "--version", "v1", "--author", "lee")  # lee becomes lead
    granted = amend.json("role", tiny_project, "grant", "ann", "--role", "reviewer", "--by", "lee")
    assert granted["event_id"] > 0 and "reviewer" in granted["roles"]["ann"]
    closed = amend.json("role", tiny_project, "close", "--by", "lee")
    assert closed["closed"] is True
    amend.fails("decide", tiny_project, "--id", "s1", "--keep", "--reviewer", "mallory", says="mallory")
    assert amend.json("decide", tiny_project, "--id", "s1", "--keep", "--reviewer", "ann")["sample_id"] == "s1"
    assert amend("role", tiny_project, "reopen", "--by", "lee").out.strip().endswith(": project reopened")


def test_role_user_errors(amend, tiny_project, tmp_path):
    amend.fails("role", tiny_project, "grant", "ann", "--role", "lead", says="grant needs --by NAME")
    amend.fails("role", tiny_project, "grant", "ann", "--by", "lee", says="grant needs USER and --role")
    guide = tmp_path / "g.md"
    guide.write_text("# a\nRound things.\n")
    amend("guideline", tiny_project, "publish", guide, "--version", "v1", "--author", "lee")
    amend.fails("role", tiny_project, "grant", "ann", "--role", "lead", "--by", "bob", "--json",
                says="only a lead may grant roles")
    amend.fails("role", tiny_project, "revoke", "lee", "--role", "lead", "--by", "lee", says="the only lead")
    amend.fails("role", tiny_project, "reopen", "--by", "lee", says="already open")


def test_audit_verify_ok_and_broken(amend, tiny_project):
    empty = amend.json("audit", "verify", tiny_project)
    assert empty["ok"] is True and empty["events"] == 0
    for sid in ("s1", "s2", "s3"):
        amend("decide", tiny_project, "--id", sid, "--keep", "--reviewer", "ann")
    verified = amend.json("audit", "verify", tiny_project)  # three decisions and ann's reviewer role
    assert verified["ok"] is True and verified["events"] == 4 and len(verified["chain_head"]) == 64
    assert amend("audit", "verify", tiny_project).out.strip() == f"ok: 4 events, chain head {verified['chain_head']}"
    head = verified["chain_head"]
    assert amend.json("audit", "verify", tiny_project, "--known-head", head)["ok"] is True

    con = sqlite3.connect(tiny_project / "review.sqlite", isolation_level=None)
    con.execute("DROP TRIGGER events_no_update")
    con.execute("UPDATE events SET actor = 'mallory' WHERE event_id = 2")
    con.close()
    broken = amend("audit", "verify", tiny_project, "--json", expect=1)
    result = broken.json()  # the result still comes out, naming the bad event
    assert result["ok"] is False and result["first_bad_event"] == 2
    assert len(broken.err.splitlines()) == 1
    assert broken.err.startswith("amend: error: the audit log is broken at event 2: ")
    assert amend("audit", "verify", tiny_project, expect=1).out.startswith("BROKEN at event 2: ")
    amend.fails("audit", "verify", tiny_project.parent / "missing", says="not an Amend project")
