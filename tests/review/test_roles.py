"""Roles enforced in core: open-project bootstrap, leads publish, a closed project refuses strangers."""

from __future__ import annotations

import pytest

from core.errors import AmendError
from core.review import audit, decisions, guidelines, roles


def test_a_fresh_project_is_open_and_records_who_became_what(project):
    decisions.decide(project, "s1", "keep", "ann", identity_source="cli")
    guidelines.publish(project, "# rules\n", "v1", "lea")
    state = roles.access(project)
    assert state.to_dict() == {"closed": False, "roles": {"ann": ["reviewer"], "lea": ["lead"]}}
    grants = audit.read_events(project, kinds=["role_granted"])
    assert [(g.payload["user"], g.payload["rule"], g.payload["identity_source"]) for g in grants] == [
        ("ann", "open project", "cli"), ("lea", "first publisher", "local")]
    decisions.decide(project, "s2", "keep", "ann")
    assert len(audit.read_events(project, kinds=["role_granted"])) == 2  # granted once


def test_a_reviewer_cannot_publish_or_manage_roles_once_a_lead_exists(project):
    guidelines.publish(project, "# rules\n", "v1", "lea")
    decisions.decide(project, "s1", "keep", "ann")
    count = len(audit.read_events(project))
    with pytest.raises(AmendError, match="only a lead may publish"):
        guidelines.publish(project, "# rules\nnew\n", "v2", "ann")
    with pytest.raises(AmendError, match="only a lead"):
        roles.grant(project, "ann", "lead", by="ann")
    with pytest.raises(AmendError, match="only a lead"):
        roles.close(project, by="ann")
    assert len(audit.read_events(project)) == count
    roles.grant(project, "ann", "lead", by="lea")
    assert guidelines.publish(project, "# rules\nnew\n", "v2", "ann").author == "ann"


def test_a_closed_project_refuses_unknown_names_until_granted_or_reopened(project):
    guidelines.publish(project, "# rules\n", "v1", "lea")
    decisions.decide(project, "s1", "keep", "ann")
    roles.close(project, by="lea")
    decisions.decide(project, "s2", "keep", "ann")  # known reviewer still decides
    decisions.decide(project, "s3", "keep", "lea")  # a lead may decide
    with pytest.raises(AmendError, match="not a reviewer of this closed project.*lea"):
        decisions.decide(project, "s4", "keep", "zed")
    with pytest.raises(AmendError, match="not a reviewer"):
        decisions.decide_many(project, [decisions.Decision("s4", "keep")], reviewer="zed")
    assert decisions.latest_event_id(project, "s4") == 0
    roles.grant(project, "zed", "reviewer", by="lea")
    assert decisions.decide(project, "s4", "keep", "zed").actor == "zed"
    roles.revoke(project, "zed", "reviewer", by="lea")
    with pytest.raises(AmendError, match="not a reviewer"):
        decisions.decide(project, "s5", "keep", "zed")
    roles.reopen(project, by="lea")
    assert decisions.decide(project, "s5", "keep", "zed").actor == "zed"
    assert audit.verify(project).ok


def test_the_last_lead_cannot_be_revoked_and_nobody_can_close_without_a_lead(project):
    with pytest.raises(AmendError, match="only a lead may close"):
        roles.close(project, by="ann")
    guidelines.publish(project, "# rules\n", "v1", "lea")
    with pytest.raises(AmendError, match="only lead"):
        roles.revoke(project, "lea", "lead", by="lea")
    with pytest.raises(AmendError, match="unknown"):
        roles.grant(project, "ann", "admin", by="lea")
