"""Session-state keys and the shared helpers every page uses (namespaced keys live here)."""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

PROJECT_KEY = "app.project"
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
    ("guidelines.py", "Guidelines", ":material/menu_book:"),
    ("audit.py", "Audit log", ":material/history:"),
    ("compare.py", "Compare", ":material/compare_arrows:"),
    ("export.py", "Export", ":material/download:"),
]


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
