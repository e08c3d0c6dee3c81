"""Amend's Streamlit entry point: the project picker and the navigation over pages/.

Start it with `amend app PROJECT...` (or the README's first command), which passes the project
folders in AMEND_PROJECTS.
"""

from __future__ import annotations

import streamlit as st

from pages import identity, state

st.set_page_config(page_title="Amend", page_icon="✏️", layout="wide")

projects = state.available_projects()
for project_path in projects:
    state.start_checkpoint_schedule(str(project_path))  # a witness copy of the log head every so often
with st.sidebar:
    st.markdown("### Amend")
    if projects:
        chosen = st.selectbox(
            "Project",
            options=projects,
            format_func=lambda p: p.name,
            key=state.PROJECT_KEY,
            help="The projects this app was started with.",
        )
    else:
        st.warning("No project given. Start the app with `amend app PROJECT`.")
    identity.render_sidebar()

navigation = st.navigation(state.page_list())
navigation.run()
