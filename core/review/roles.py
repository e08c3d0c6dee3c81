"""Who may do what: reviewers decide, leads also publish guidelines and manage access.

Roles are events in the review log (``role_granted``, ``role_revoked``, ``project_closed``,
``project_opened``), so who could act when is as tamper-evident as the decisions themselves,
and the role state is a pure function of the log.

The rules (enforced here, in core, for the CLI, the app and notebooks alike):

- A fresh project is *open*: any name may decide. The first decision of a name with no role
  records a ``role_granted`` event (role ``reviewer``, ``granted_by`` null, ``rule`` "open
  project") in the same transaction as the decision.
- While the project has no lead, the first name to publish a guideline becomes lead the same
  way (``rule`` "first publisher"), and anyone may grant roles.
- Once a lead exists, only leads publish guidelines, grant or revoke roles, close or reopen.
- A lead may *close* the project: from then on a name without a role is refused (no automatic
  grant); reopening restores the open rule. The last lead cannot be revoked.
- ``lead`` includes everything ``reviewer`` may do.

Identity: the caller says where the name came from (``identity_source``: "oidc" when the app's
login supplied it, refused unless a login is configured; "local" for a name chosen at start, "cli"
for ``--reviewer``); it is recorded in every event's payload, with ``os_user`` (the operating-system
account that ran the command) when the caller gives it, as the CLI does. Names are normalised and
may not be look-alikes of names the project knows (:mod:`core.review.identity`).

Where the rules live: :func:`core.review.access.check_event` (re-exported here), called by the log's one write path
(:meth:`core.review.audit.LogWriter.append`) for every event, so ``audit.append(project,
"role_granted", ...)`` from a notebook is held to the same rules as ``amend role grant``.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

from core.errors import AmendError
from core.review import access as access_rules, audit

logger = logging.getLogger(__name__)

ROLES = access_rules.ROLES
ACCESS_KINDS = access_rules.ACCESS_KINDS
Access = access_rules.Access
apply_event = access_rules.apply_event
access_from_events = access_rules.access_from_events
check_event = access_rules.check_event


def access(project: Any) -> Access:
    """The current role state of a project."""
    return access_from_events(audit.read_events(project, kinds=ACCESS_KINDS))


def _access(log: audit.LogWriter) -> Access:
    return log.access


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise AmendError(f"role {role!r} is unknown; use one of {', '.join(ROLES)}.")
    return role


def claim(identity_source: str, os_user: Optional[str]) -> dict:
    """The payload fields saying where a name came from: the identity source, and the OS user
    that ran the command when one was given (the CLI gives it)."""
    return {"identity_source": identity_source, **({"os_user": os_user} if os_user is not None else {})}


def require_reviewer(log: audit.LogWriter, user: str, identity_source: str, os_user: Optional[str] = None) -> None:
    """Inside a log transaction: allow ``user`` to decide, recording an automatic reviewer grant on
    an open project, or refuse."""
    log.check_name(user)
    state = _access(log)
    if state.has(user, "reviewer"):
        return
    if state.closed:
        leads = ", ".join(state.leads) or "a lead"
        raise AmendError(
            f"{user!r} is not a reviewer of this closed project; ask {leads} to grant the reviewer role."
        )
    log.append("role_granted", user, {"user": user, "role": "reviewer", "granted_by": None,
                                      "rule": "open project", **claim(identity_source, os_user)})


def require_lead(log: audit.LogWriter, user: str, identity_source: str, action: str,
                 os_user: Optional[str] = None) -> None:
    """Inside a log transaction: allow ``user`` a lead's ``action``; while no lead exists, make the
    user lead (``rule`` "first publisher" / "no lead yet")."""
    log.check_name(user)
    state = _access(log)
    if state.has(user, "lead"):
        return
    if state.leads:
        raise AmendError(
            f"only a lead may {action}; {user!r} is not a lead. Ask {', '.join(state.leads)} to do it or to "
            "grant you the lead role."
        )
    rule = "first publisher" if action.startswith("publish") else "no lead yet"
    log.append("role_granted", user, {"user": user, "role": "lead", "granted_by": None, "rule": rule,
                                      **claim(identity_source, os_user)})


def grant(project: Any, user: str, role: str, by: str, identity_source: str = "local",
          os_user: Optional[str] = None) -> audit.Event:
    """Give ``user`` a role (a lead acts; while no lead exists, anyone may)."""
    user, by = audit.check_actor(user), audit.check_actor(by)
    _check_role(role)
    audit.check_identity_source(identity_source)
    with audit.writing(project) as log:
        log.check_name(by)
        log.check_name(user)
        state = _access(log)
        if state.leads and not state.has(by, "lead"):
            raise AmendError(f"only a lead may grant roles; ask {', '.join(state.leads)}.")
        if role in state.roles.get(user, set()):
            raise AmendError(f"{user!r} already has the {role} role.")
        event = log.append("role_granted", by, {"user": user, "role": role, "granted_by": by, "rule": "grant",
                                                **claim(identity_source, os_user)})
    return event


def revoke(project: Any, user: str, role: str, by: str, identity_source: str = "local",
           os_user: Optional[str] = None) -> audit.Event:
    """Take a role away (a lead acts). The last lead cannot be revoked."""
    user, by = audit.check_actor(user), audit.check_actor(by)
    _check_role(role)
    audit.check_identity_source(identity_source)
    with audit.writing(project) as log:
        log.check_name(by)
        state = _access(log)
        if not state.has(by, "lead"):
            raise AmendError(f"only a lead may revoke roles; ask {', '.join(state.leads) or 'a lead'}.")
        if role not in state.roles.get(user, set()):
            raise AmendError(f"{user!r} does not have the {role} role.")
        if role == "lead" and state.leads == [user]:
            raise AmendError(f"{user!r} is the only lead; grant the lead role to someone else first.")
        event = log.append("role_revoked", by, {"user": user, "role": role, "revoked_by": by,
                                                **claim(identity_source, os_user)})
    return event


def close(project: Any, by: str, identity_source: str = "local", os_user: Optional[str] = None) -> audit.Event:
    """Close the project: names without a role are refused from now on (a lead acts)."""
    return _set_closed(project, by, identity_source, closed=True, os_user=os_user)


def reopen(project: Any, by: str, identity_source: str = "local", os_user: Optional[str] = None) -> audit.Event:
    """Reopen the project: any name may decide again (a lead acts)."""
    return _set_closed(project, by, identity_source, closed=False, os_user=os_user)


def _set_closed(project: Any, by: str, identity_source: str, closed: bool,
                os_user: Optional[str] = None) -> audit.Event:
    by = audit.check_actor(by)
    audit.check_identity_source(identity_source)
    with audit.writing(project) as log:
        log.check_name(by)
        state = _access(log)
        if not state.has(by, "lead"):
            who = ", ".join(state.leads) if state.leads else "a lead (publish a guideline or grant one first)"
            raise AmendError(f"only a lead may {'close' if closed else 'reopen'} the project; ask {who}.")
        if state.closed == closed:
            raise AmendError(f"the project is already {'closed' if closed else 'open'}.")
        kind = "project_closed" if closed else "project_opened"
        event = log.append(kind, by, {"by": by, **claim(identity_source, os_user)})
    return event
