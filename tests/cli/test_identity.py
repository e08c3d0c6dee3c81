"""`amend` and who acted: names normalised and no look-alikes, the OS user recorded beside the claimed
name and said once on stderr (issue 13, item 2)."""

from __future__ import annotations

import getpass

import pytest

from core.review import audit


@pytest.mark.parametrize("char", ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u202e"])
def test_decide_refuses_an_invisible_character_in_one_line(amend, tiny_project, char):
    amend.fails("decide", tiny_project, "--id", "s1", "--keep", "--reviewer", f"ann{char}", says=f"U+{ord(char):04X}")
    assert audit.read_events(tiny_project) == []


def test_decide_refuses_a_look_alike_naming_the_reviewer(amend, tiny_project):
    amend("decide", tiny_project, "--id", "s1", "--keep", "--reviewer", "ann")
    amend.fails("decide", tiny_project, "--id", "s2", "--keep", "--reviewer", "\u0430nn", "--json",
                says="looks like the existing reviewer 'ann'")
    amend.fails("role", tiny_project, "grant", "\u0430nn", "--role", "lead", "--by", "ann",
                says="looks like the existing reviewer 'ann'")
    assert {e.actor for e in audit.read_events(tiny_project)} == {"ann"}


def test_cli_actions_record_the_os_user_beside_the_claimed_name(amend, tiny_project, tmp_path):
    me = getpass.getuser()
    decided = amend("decide", tiny_project, "--id", "s1", "--keep", "--reviewer", "ann", "--json")
    assert decided.err.splitlines() == [f"recorded as ann (claimed) by OS user {me}"]
    guide = tmp_path / "g.md"
    guide.write_text("# a\nRound things.\n")
    published = amend("guideline", tiny_project, "publish", guide, "--version", "v1", "--author", "lee")
    assert published.err.splitlines() == [f"recorded as lee (claimed) by OS user {me}"]
    granted = amend("role", tiny_project, "grant", "bob", "--role", "reviewer", "--by", "lee")
    assert granted.err.splitlines() == [f"recorded as lee (claimed) by OS user {me}"]
    events = audit.read_events(tiny_project)
    assert [(e.kind, e.actor, e.payload["os_user"], e.payload["identity_source"]) for e in events] == [
        ("role_granted", "ann", me, "cli"), ("decision", "ann", me, "cli"),
        ("role_granted", "lee", me, "cli"), ("guideline_published", "lee", me, "cli"),
        ("role_granted", "lee", me, "cli"),
    ]
    assert events[-1].payload["user"] == "bob"
