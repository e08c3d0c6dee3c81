"""Names that mean one person, and role rules that live in the log's one write path (issue 13, item 2)."""

from __future__ import annotations

import pytest

from core.errors import AmendError
from core.review import audit, decisions, guidelines, identity, roles


@pytest.mark.parametrize("char", ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u202e", "\u2066", "\u00ad"])
def test_an_invisible_or_bidi_character_in_a_name_is_refused_naming_it(project, char):
    with pytest.raises(AmendError, match=f"U\\+{ord(char):04X}") as caught:
        decisions.decide(project, "s1", "keep", f"an{char}n")
    assert "\n" not in str(caught.value)
    assert audit.read_events(project) == []


def test_names_are_stored_in_nfkc(project):
    event = decisions.decide(project, "s1", "keep", "\ufb01ona  \u3000lee")  # the fi ligature, an ideographic space
    assert event.actor == "fiona lee"
    again = decisions.decide(project, "s2", "keep", "ｆｉｏｎａ lee")  # full-width letters: the same person
    assert again.actor == "fiona lee"


@pytest.mark.parametrize("lookalike", ["\u0430nn", "Ann", "ANN", "a\u0578n", "\u0430\u043f\u043f"[:1] + "nn", "a n n"])
def test_a_new_name_that_looks_like_a_reviewer_is_refused_naming_them(project, lookalike):
    decisions.decide(project, "s1", "keep", "ann")
    with pytest.raises(AmendError, match="looks like the existing reviewer 'ann'"):
        decisions.decide(project, "s2", "keep", lookalike)
    assert [e.actor for e in audit.read_events(project)] == ["ann", "ann"]  # her role grant and decision only


def test_look_alikes_of_leads_and_granted_names_are_refused_too(project):
    guidelines.publish(project, "# cat\nwhiskers\n", "v1", "lee")  # lee becomes lead
    roles.grant(project, "b\u043eb", "reviewer", by="lee")  # a Cyrillic o: a new name, nobody looks like it yet
    with pytest.raises(AmendError, match="already has the lead role"):
        roles.grant(project, "\u217cee", "lead", by="lee")  # NFKC makes the small roman numeral fifty an 'l': lee
    with pytest.raises(AmendError, match="looks like the existing reviewer 'lee'"):
        roles.grant(project, "1ee", "lead", by="lee")
    with pytest.raises(AmendError, match="looks like the existing reviewer 'lee'"):
        guidelines.publish(project, "# cat\nfur\n", "v2", "LEE")
    with pytest.raises(AmendError, match="looks like the existing reviewer 'b\u043eb'"):
        decisions.decide(project, "s1", "keep", "bob")


def test_skeletons_fold_common_homoglyphs():
    pairs = [("paypal", "\u0440\u0430\u0443\u0440\u0430l"), ("jose", "Jos\u00e9"), ("Ian", "lan"), ("mary", "rnary"),
             ("ocean", "0cean"), ("chris", "\u0441hris"), ("alex", "\u0430le\u0445")]
    for a, b in pairs:
        assert identity.skeleton(a) == identity.skeleton(b), (a, b)
    assert identity.skeleton("ann") != identity.skeleton("anna")


def test_a_role_cannot_be_taken_through_the_raw_append(project):
    guidelines.publish(project, "# cat\nwhiskers\n", "v1", "lee")  # lee is lead now
    grant = {"user": "mallory", "role": "lead", "granted_by": "mallory", "rule": "grant", "identity_source": "local"}
    with pytest.raises(AmendError, match="only a lead grants roles"):
        audit.append(project, "role_granted", "mallory", grant)
    with pytest.raises(AmendError, match="only a lead grants roles"):  # nor by claiming the first-publisher rule
        audit.append(project, "role_granted", "mallory", dict(grant, rule="first publisher", granted_by=None))
    with pytest.raises(AmendError, match="only a lead grants roles"):
        with audit.writing(project) as log:
            log.append("role_granted", "mallory", grant)
    with pytest.raises(AmendError, match="only a lead may publish"):
        audit.append(project, "guideline_published", "mallory", {"version": "v9", "text": "x", "sha256": "0"})
    with pytest.raises(AmendError, match="the only lead"):
        audit.append(project, "role_revoked", "lee", {"user": "lee", "role": "lead", "revoked_by": "lee"})
    roles.close(project, by="lee")
    with pytest.raises(AmendError, match="not a reviewer"):
        audit.append(project, "decision", "mallory", {"decision": "keep"}, sample_id="s1")
    with pytest.raises(AmendError, match="only a lead grants roles"):  # the automatic grant is for open projects only
        audit.append(project, "role_granted", "mallory", dict(grant, role="reviewer", rule="open project"))
    assert roles.access(project).leads == ["lee"] and "mallory" not in roles.access(project).roles
    assert audit.verify(project).ok
    # the front door still works for a lead
    assert roles.grant(project, "mallory", "reviewer", by="lee").payload["user"] == "mallory"


def test_oidc_is_refused_unless_a_login_is_configured(project, tmp_path, monkeypatch):
    monkeypatch.delenv("AMEND_OIDC", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert identity.oidc_configured() is False
    with pytest.raises(AmendError, match="identity source 'oidc' needs the app's login configured"):
        decisions.decide(project, "s1", "keep", "ann", identity_source="oidc")
    with pytest.raises(AmendError, match="oidc"):  # the write path checks it too
        roles.grant(project, "ann", "reviewer", by="ann", identity_source="oidc")
    assert audit.read_events(project) == []
    secrets = tmp_path / ".streamlit" / "secrets.toml"
    secrets.parent.mkdir()
    secrets.write_text('[connections]\nx = 1\n')
    assert identity.oidc_configured() is False  # a secrets file without [auth] is no login
    secrets.write_text('[auth]\nredirect_uri = "http://localhost:8501/oauth2callback"\ncookie_secret = "s"\n')
    assert identity.oidc_configured() is True
    assert decisions.decide(project, "s1", "keep", "ann", identity_source="oidc").payload["identity_source"] == "oidc"
    secrets.unlink()
    other = tmp_path / "elsewhere.toml"
    other.write_text('[auth]\nclient_id = "amend"\n')
    monkeypatch.setenv("AMEND_OIDC", str(other))
    assert identity.oidc_configured() is True
    monkeypatch.setattr(identity, "OIDC_CONFIGURED", False)  # the app says it has no login
    assert identity.oidc_configured() is False


def test_the_os_user_is_recorded_only_when_given(project):
    plain = decisions.decide(project, "s1", "keep", "ann")
    assert "os_user" not in plain.payload
    given = decisions.decide(project, "s2", "keep", "ann", os_user="ci-runner")
    assert given.payload["os_user"] == "ci-runner" and given.actor == "ann"
