"""Who is reviewing: the app's login (Streamlit OIDC) when one is configured, otherwise a name
chosen at start in a local single-user setup. A helper module, not a page.

The identity source ("oidc" or "local") is recorded with every decision (core.review.decisions), so the
log says where each name came from. Roles are enforced in core (core.review.roles), not here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import streamlit as st

NAME_KEY = "identity.name"
DRAFT_KEY = "identity.draft"
FORM_KEY = "identity.form"
CHANGE_KEY = "identity.change"
LOGIN_KEY = "identity.login"
LOGOUT_KEY = "identity.logout"


@dataclass(frozen=True)
class Identity:
    """The reviewer's name and where it came from ("oidc" or "local")."""

    name: str
    source: str

    @property
    def explained(self) -> str:
        if self.source == "oidc":
            return "Signed in through the app's login (OIDC)."
        return "Local single-user setup: the name chosen at start is recorded with every decision."


def auth_configured() -> bool:
    """True when secrets configure Streamlit's OIDC login (an ``[auth]`` section). Never raises:
    with no secrets file at all, login is simply not configured."""
    try:
        return "auth" in st.secrets
    except Exception:  # noqa: BLE001 - no or unreadable secrets: no login configured
        return False


def _oidc_name(user: Any) -> Optional[str]:
    for key in ("email", "name", "preferred_username", "sub"):
        value = user.get(key) if hasattr(user, "get") else None
        if value:
            return str(value)
    return None


def current() -> Optional[Identity]:
    """The reviewer now, or None when nobody is signed in / no name was chosen yet."""
    if auth_configured():
        try:
            logged_in = bool(st.user.is_logged_in)
        except Exception:  # noqa: BLE001 - an auth section without a usable provider
            logged_in = False
        name = _oidc_name(st.user) if logged_in else None
        return Identity(name, "oidc") if name else None
    name = st.session_state.get(NAME_KEY)
    return Identity(name, "local") if name else None


def _choose_name(draft_key: str = DRAFT_KEY) -> None:
    draft = (st.session_state.get(draft_key) or "").strip()
    if draft:
        st.session_state[NAME_KEY] = draft


def _forget_name() -> None:
    st.session_state.pop(NAME_KEY, None)


def render_chooser(where: Any = None, place: str = "") -> None:
    """The name form of the local setup (or the login button when login is configured).

    ``where``: a container (default the main area). ``place``: a suffix for the widget keys, so
    the sidebar's chooser and a page's own chooser can be on screen together.
    """
    where = where or st.container()
    suffix = f".{place}" if place else ""
    if auth_configured():
        where.button("Log in", key=LOGIN_KEY + suffix, on_click=st.login, icon=":material/login:")
        where.caption("This app uses a login; your account's name is recorded with every decision.")
        return
    with where.form(FORM_KEY + suffix, border=False):
        st.text_input("Your name", key=DRAFT_KEY + suffix, placeholder="e.g. alice",
                      help="Recorded with every decision (local single-user setup, no login configured).")
        st.form_submit_button("Start reviewing", on_click=_choose_name, args=(DRAFT_KEY + suffix,),
                              icon=":material/person:")


def render_sidebar() -> Optional[Identity]:
    """The sidebar's "who am I": the name, where it comes from, and how to change it."""
    st.markdown("**Who am I**")
    who = current()
    if who is None:
        render_chooser(st.container(), place="sidebar")
        return None
    st.markdown(f":material/person: {_escape(who.name)}")
    st.caption(who.explained)
    if who.source == "oidc":
        st.button("Log out", key=LOGOUT_KEY, on_click=st.logout)
    else:
        st.button("Change name", key=CHANGE_KEY, on_click=_forget_name)
    return who


def _escape(text: str) -> str:
    """Markdown-escaped text (a name is user input: shown literally, never as markup)."""
    specials = "\\`*_{}[]()#+-.!|<>~$:@"  # @: an address would become a mailto link
    return "".join("\\" + c if c in specials else c for c in str(text))


escape_markdown = _escape
