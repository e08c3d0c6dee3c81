"""Guidelines: write and publish a version (leads, enforced in core), list versions, diff two,
see which decisions cite each version, and the re-review queue after a new version."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.errors import AmendError
from core.review import guidelines, roles
from core.store import selections
from core.store.project import Project
from pages import identity, state

TEXT_KEY = "guidelines.text"
VERSION_KEY = "guidelines.version"
CLASSES_KEY = "guidelines.classes"
SHOW_KEY = "guidelines.show"
DIFF_FROM_KEY = "guidelines.diff_from"
DIFF_TO_KEY = "guidelines.diff_to"
CITING_KEY = "guidelines.citing"
FLASH_KEY = "guidelines.flash"
SENT_KEY = "guidelines.sent"

esc = identity.escape_markdown


def _publish(path: str, who: identity.Identity) -> None:
    text = st.session_state.get(TEXT_KEY) or ""
    version = (st.session_state.get(VERSION_KEY) or "").strip()
    classes = st.session_state.get(CLASSES_KEY) or None
    try:
        published = guidelines.publish(Project.open(path), text, version, who.name, classes=classes,
                                       identity_source=who.source)
    except AmendError as exc:
        st.session_state[FLASH_KEY] = ("error", str(exc))
        return
    touched = ", ".join(published.classes) or "no class"
    st.session_state[FLASH_KEY] = ("success", f"Published version {published.version} (touches {touched}).")
    st.session_state[VERSION_KEY] = ""


def _send_to_triage(path: str, version: str, ids: list[str], who: str | None) -> None:
    try:
        made = selections.save_selection(Project.open(path), ids, name=f"re-review after {version}",
                                         source=f"guideline {version}", created_by=who)
    except AmendError as exc:
        st.session_state[FLASH_KEY] = ("error", str(exc))
        return
    st.session_state[FLASH_KEY] = ("success", f"Selection #{made.selection_id} ({len(ids)} samples) is ready on "
                                              "the Triage page under Selection.")



def _render_write(project: Project, versions: list, who: identity.Identity | None) -> None:
    st.subheader("Write and publish")
    access = roles.access(project)
    if who is None:
        st.info("Choose who you are (sidebar) to publish.", icon=":material/person:")
        identity.render_chooser()
        return
    if access.has(who.name, "lead"):
        st.caption(f"{esc(who.name)} is a lead and may publish.")
    elif access.leads:
        st.caption(f"{esc(who.name)} is not a lead; only {esc(', '.join(access.leads))} may publish "
                   "(the project refuses anyone else).")
    else:
        st.caption("No lead yet: the first to publish becomes the project's lead.")
    if TEXT_KEY not in st.session_state:
        st.session_state[TEXT_KEY] = versions[-1].text if versions else "# Labelling guideline\n"
    st.text_area("Guideline (markdown; a heading named after a label opens that label's section)", key=TEXT_KEY,
                 height=260)
    cols = st.columns([2, 4, 2], vertical_alignment="bottom")
    cols[0].text_input("Version name", key=VERSION_KEY, placeholder="e.g. v2")
    cols[1].multiselect("Classes it changes (default: read from the headings)", project.labels(), key=CLASSES_KEY)
    cols[2].button("Publish", type="primary", key="guidelines.publish", on_click=_publish,
                   args=(str(project.path), who), icon=":material/publish:")


def _render_versions(project: Project, versions: list) -> None:
    st.subheader("Versions")
    cited = guidelines.citation_counts(project)
    table = pd.DataFrame([{
        "version": v.version, "published_at": v.published_at, "author": v.author,
        "classes": ", ".join(v.classes), "decisions citing": cited.get(v.version, 0),
        "sha256": v.sha256[:16], "event_id": v.event_id,
    } for v in versions])
    st.dataframe(table.iloc[::-1], hide_index=True, width="stretch")
    names = [v.version for v in versions]
    shown = st.selectbox("Read a version", names[::-1], key=SHOW_KEY)
    with st.expander(f"Guideline {shown}", expanded=False):
        st.markdown(guidelines.without_remote_images(guidelines.get(project, shown).text))


def _render_diff(project: Project, versions: list) -> None:
    st.subheader("Diff")
    names = [v.version for v in versions]
    if len(names) < 2:
        st.caption("A diff needs two versions.")
        return
    cols = st.columns(2)
    older = cols[0].selectbox("From", names, index=len(names) - 2, key=DIFF_FROM_KEY)
    newer = cols[1].selectbox("To", names, index=len(names) - 1, key=DIFF_TO_KEY)
    text = guidelines.diff(project, older, newer)
    if text:
        st.code(text, language="diff")
    else:
        st.caption("The two texts are identical.")


def _render_citing(project: Project, versions: list, who: identity.Identity | None) -> None:
    st.subheader("Decisions and re-review")
    names = [v.version for v in versions]
    version = st.selectbox("Version", names[::-1], key=CITING_KEY)
    citing = guidelines.decisions_citing(project, version)
    st.markdown(f"**{len(citing):,} decisions cite {esc(version)}**")
    if not citing.empty:
        st.dataframe(citing[["event_id", "created_at", "actor", "sample_id", "decision", "old_label", "new_label",
                             "superseded_by"]], hide_index=True, width="stretch")
    queue = guidelines.review_queue_for_guideline(project, version)
    touched = guidelines.get(project, version).classes
    st.markdown(f"**Re-review after {esc(version)}:** {len(queue):,} samples whose latest decision cites an older "
                f"version (or none) and involves a class it changes ({esc(', '.join(touched) or 'none')}).")
    if queue.empty:
        return
    st.dataframe(queue[["sample_id", "actor", "created_at", "decision", "old_label", "new_label",
                        "guideline_version"]], hide_index=True, width="stretch")
    st.button(f"Send these {len(queue)} samples to triage", key="guidelines.send", on_click=_send_to_triage,
              args=(str(project.path), version, queue["sample_id"].tolist(), who.name if who else None))


def render() -> None:
    st.title("Guidelines")
    path = state.project_path_or_warn()
    if path is None:
        return
    try:
        project = Project.open(path)
        versions = guidelines.list_versions(project)
    except AmendError as exc:
        st.error(str(exc))
        return
    who = identity.current()
    state.show_flash(FLASH_KEY)
    _render_write(project, versions, who)
    if not versions:
        st.info("No guideline published yet.", icon=":material/menu_book:")
        return
    _render_versions(project, versions)
    _render_diff(project, versions)
    _render_citing(project, versions, who)


render()
