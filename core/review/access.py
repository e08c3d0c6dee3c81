"""The role state and the role rules, as pure functions of the log's events.

Kept apart from :mod:`core.review.roles` (the front doors: grant, revoke, close, ...) so that the
log's one write path, :meth:`core.review.audit.LogWriter.append`, can check every event against
these rules without the two modules importing each other. Events are anything with ``kind``,
``actor`` and ``payload`` (:class:`core.review.audit.Event`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from core.errors import AmendError

ROLES = ("reviewer", "lead")
ACCESS_KINDS = ("role_granted", "role_revoked", "project_closed", "project_opened")


@dataclass
class Access:
    """Role state derived from the log: user -> set of roles, whether the project is closed, and
    every name the access events mention (``known``: the reviewers a new name may not imitate)."""

    roles: dict[str, set[str]] = field(default_factory=dict)
    closed: bool = False
    known: set[str] = field(default_factory=set)

    @property
    def leads(self) -> list[str]:
        return sorted(u for u, r in self.roles.items() if "lead" in r)

    def has(self, user: str, role: str) -> bool:
        held = self.roles.get(user, set())
        return role in held or (role == "reviewer" and "lead" in held)

    def to_dict(self) -> dict:
        return {"closed": self.closed, "roles": {u: sorted(r) for u, r in sorted(self.roles.items()) if r}}


def apply_event(state: Access, event: Any) -> None:
    """Update ``state`` by one event (kinds other than the access kinds change nothing)."""
    if event.kind not in ACCESS_KINDS:
        return
    state.known.add(event.actor)
    if event.kind == "role_granted":
        state.roles.setdefault(event.payload["user"], set()).add(event.payload["role"])
        state.known.add(event.payload["user"])
    elif event.kind == "role_revoked":
        state.roles.setdefault(event.payload["user"], set()).discard(event.payload["role"])
    elif event.kind == "project_closed":
        state.closed = True
    elif event.kind == "project_opened":
        state.closed = False


def access_from_events(events: Iterable[Any]) -> Access:
    """Replay access events in chain order (other kinds are ignored)."""
    state = Access()
    for event in events:
        apply_event(state, event)
    return state


def check_event(state: Access, kind: str, actor: str, payload: dict) -> None:
    """The role rules, checked on every event in the log's one write path
    (:meth:`core.review.audit.LogWriter.append`) against the role state just before it: refuses
    (AmendError, nothing written) a decision by a name without the reviewer role, a guideline by a
    non-lead, a role change or closing by a non-lead once a lead exists, a self-made lead while one
    exists, revoking the last lead. The functions below check the same first, with kinder words."""
    leads = ", ".join(state.leads) or "a lead"
    if kind in ("decision", "hypothesis_reviewed"):
        if not state.has(actor, "reviewer"):
            raise AmendError(
                f"{actor!r} is not a reviewer of this project; record decisions through core.review.decisions "
                f"(which makes a new name reviewer of an open project) or ask {leads} for the reviewer role."
            )
    elif kind == "guideline_published":
        if not state.has(actor, "lead"):
            raise AmendError(f"only a lead may publish guidelines; {actor!r} is not a lead. Ask {leads}.")
    elif kind == "role_granted":
        user, role, rule = payload.get("user"), payload.get("role"), payload.get("rule")
        if not isinstance(user, str) or role not in ROLES:
            raise AmendError(f"a role grant needs a user and a role ({', '.join(ROLES)}).")
        if rule == "open project":
            allowed = user == actor and role == "reviewer" and not state.closed
        elif rule in ("first publisher", "no lead yet"):
            allowed = user == actor and role == "lead" and not state.leads
        else:
            allowed = not state.leads or state.has(actor, "lead")
        if not allowed:
            raise AmendError(f"{actor!r} may not make {user!r} {role}: only a lead grants roles once the project "
                             f"has one; ask {leads} (core.review.roles.grant).")
    elif kind == "role_revoked":
        user, role = payload.get("user"), payload.get("role")
        if not isinstance(user, str) or role not in ROLES:
            raise AmendError(f"a role revocation needs a user and a role ({', '.join(ROLES)}).")
        if not state.has(actor, "lead"):
            raise AmendError(f"only a lead may revoke roles; ask {leads}.")
        if role == "lead" and state.leads == [user]:
            raise AmendError(f"{user!r} is the only lead; grant the lead role to someone else first.")
    elif kind in ("project_closed", "project_opened"):
        if not state.has(actor, "lead"):
            raise AmendError(f"only a lead may close or reopen the project; ask {leads}.")
