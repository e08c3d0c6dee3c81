"""Session-state keys and the shared helpers every page uses (namespaced keys live here)."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Optional

import streamlit as st

logger = logging.getLogger(__name__)

PROJECT_KEY = "app.project"
#: Keys more than one page writes or reads live here (a page's own keys sit at its top, named
#: "<page>.<what>"): the selection the triage page filters by, which the overview sets.
TRIAGE_SELECTION_KEY = "triage.selection"
PAGES_DIR = Path(__file__).resolve().parent


def available_projects() -> list[Path]:
    """The project folders the app was started with (AMEND_PROJECTS, os.pathsep-separated)."""
    raw = os.environ.get("AMEND_PROJECTS", "")
    return [Path(p) for p in raw.split(os.pathsep) if p.strip()]


def current_project_path() -> Path | None:
    chosen = st.session_state.get(PROJECT_KEY)
    if chosen is not None:
        return Path(chosen)
    projects = available_projects()
    return projects[0] if projects else None


# file, title, icon — in menu order.
PAGES = [
    ("home.py", "Project", ":material/home:"),
    ("overview.py", "Overview", ":material/scatter_plot:"),
    ("triage.py", "Triage", ":material/fact_check:"),
    ("hypotheses.py", "Why did it fail?", ":material/psychology:"),
    ("guidelines.py", "Guidelines", ":material/menu_book:"),
    ("audit.py", "Audit log", ":material/history:"),
    ("compare.py", "Compare", ":material/compare_arrows:"),
    ("export.py", "Export", ":material/download:"),
]


@st.cache_resource(show_spinner=False)
def start_checkpoint_schedule(path: str) -> Optional[threading.Thread]:
    """One background thread per project for the server's life: every minute, a signed checkpoint
    when the log grew and the last one is older than AMEND_CHECKPOINT_MINUTES (default 15; 0 = off).
    A failure is logged and tried again later; it never reaches a page."""
    from core.review.checkpoints import checkpoint_if_grown, schedule_minutes
    from core.store.project import Project

    minutes = schedule_minutes()
    if minutes <= 0:
        return None

    def run() -> None:
        while True:
            try:
                made = checkpoint_if_grown(Project.open(path), minutes * 60)
                if made:
                    logger.info("checkpoint of %s at %s events written to %s", path, made["size"], made["file"])
            except Exception:  # noqa: BLE001 - a schedule keeps going; the next minute tries again
                logger.exception("scheduled checkpoint of %s failed", path)
            time.sleep(60)

    thread = threading.Thread(target=run, name=f"amend-checkpoints-{Path(path).name}", daemon=True)
    thread.start()
    return thread


def page_path(file: str) -> str:
    """A page's script path, as st.page_link and st.switch_page take it."""
    return str(PAGES_DIR / file)


def project_path_or_warn() -> Path | None:
    """The open project's folder, or None after telling the person how to open one."""
    path = current_project_path()
    if path is None:
        st.warning("No project is open. Start the app with `amend app PROJECT` or the README's first command.")
    return path


def page_list() -> list:
    """The app's pages, in menu order (a page file that is not in this checkout is not listed)."""
    return [
        st.Page(str(PAGES_DIR / file), title=title, icon=icon, default=(file == "home.py"))
        for file, title, icon in PAGES
        if (PAGES_DIR / file).is_file()
    ]


def show_flash(key: str) -> None:
    """Show, once, the outcome a button's callback left under ``key`` as ``(kind, message)``.

    Callbacks run before the page is drawn, so they cannot draw; they leave their outcome here and
    the page shows it at its top on the rerun that follows (success in green, anything else red).
    """
    from pages.identity import escape_markdown

    flash = st.session_state.pop(key, None)
    if flash:
        kind, message = flash
        (st.success if kind == "success" else st.error)(escape_markdown(message))
