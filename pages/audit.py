"""Audit log: every event, filterable by reviewer, sample, label, guideline version, kind and
time; the chain's status from verify; one sample's full history."""

from __future__ import annotations

import datetime as _dt
from typing import Optional

import pandas as pd
import streamlit as st

from core.errors import AmendError
from core.review import audit, decisions
from core.store.project import Project
from pages import identity, state

REVIEWER_KEY = "audit.reviewer"
SAMPLE_KEY = "audit.sample"
LABEL_KEY = "audit.label"
VERSION_KEY = "audit.version"
KINDS_KEY = "audit.kinds"
SINCE_KEY = "audit.since"
UNTIL_KEY = "audit.until"
HISTORY_KEY = "audit.history_sample"

ANY = "(any)"
SHOWN_COLUMNS = ["event_id", "created_at", "actor", "kind", "sample_id", "decision", "old_label", "new_label",
                 "reason", "guideline_version", "identity_source", "superseded_by", "seen_event", "previous_event"]

esc = identity.escape_markdown


@st.cache_data(max_entries=8, show_spinner="Verifying the chain…")
def _verified(path: str, stamp: tuple) -> audit.VerifyResult:
    """The whole chain recomputed once per state of the log's files (``stamp``), not on every rerun."""
    return audit.verify(Project.open(path))


def _render_verify(project: Project) -> None:
    result = _verified(str(project.path), audit.log_stamp(project))
    if result.ok:
        st.success(f"Chain verified: {result.events:,} events, head `{result.chain_head[:16]}…`. Nothing was "
                   "edited, removed or reordered.", icon=":material/verified:")
    else:
        where = f" First bad event: {result.first_bad_event}." if result.first_bad_event is not None else ""
        st.error(f"The chain does not verify: {esc(result.problem or '')}{where}", icon=":material/gpp_bad:")


def _choice(value: str) -> Optional[str]:
    return None if value in (None, ANY) else value


def _render_filters(everything: pd.DataFrame) -> dict:
    cols = st.columns([2, 2, 2, 2, 3])
    actors = [ANY] + sorted(everything["actor"].dropna().unique().tolist())
    reviewer = cols[0].selectbox("Reviewer", actors, key=REVIEWER_KEY)
    sample = cols[1].text_input("Sample id", key=SAMPLE_KEY, placeholder="any")
    labels = sorted(set(everything["old_label"].dropna()) | set(everything["new_label"].dropna()))
    label = cols[2].selectbox("Label", [ANY] + labels, key=LABEL_KEY)
    versions = [ANY] + everything.loc[everything["kind"] == "guideline_published", "guideline_version"].dropna().tolist()
    version = cols[3].selectbox("Guideline version", versions, key=VERSION_KEY)
    kinds = cols[4].multiselect("Kinds", list(audit.KINDS), key=KINDS_KEY, placeholder="all kinds")
    times = st.columns([2, 2, 6])
    since = times[0].date_input("From", value=None, key=SINCE_KEY)
    until = times[1].date_input("Until (inclusive)", value=None, key=UNTIL_KEY)
    return {
        "reviewer": _choice(reviewer), "sample_id": sample.strip() or None, "label": _choice(label),
        "guideline_version": _choice(version), "kinds": kinds or None,
        "since": since.isoformat() if since else None,
        "until": (_dt.datetime.combine(until, _dt.time.max).isoformat()) if until else None,
    }


def _render_events(project: Project, filters: dict) -> pd.DataFrame:
    try:
        found = decisions.events(project, **filters)
    except AmendError as exc:
        st.error(str(exc))
        return pd.DataFrame()
    st.markdown(f"**{len(found):,} events** (newest first)")
    st.dataframe(found[SHOWN_COLUMNS].iloc[::-1], hide_index=True, width="stretch", height=360)
    return found


def _render_history(project: Project, everything: pd.DataFrame) -> None:
    st.subheader("One sample's history")
    decided = everything.loc[everything["sample_id"].notna(), "sample_id"]
    options = list(dict.fromkeys(decided.iloc[::-1]))
    if not options:
        st.caption("No event names a sample yet.")
        return
    sample_id = st.selectbox("Sample", options, key=HISTORY_KEY,
                             help="Samples with events, the most recently touched first.")
    past = decisions.history(project, sample_id)
    for row in past.itertuples(index=False):
        if row.kind == "decision":
            what = audit.describe_decision({"decision": row.decision, "old_label": row.old_label,
                                            "new_label": row.new_label})
        else:
            what = row.kind
        line = f"**#{row.event_id}** · {esc(row.created_at)} · {esc(row.actor)} · {esc(what)}"
        if isinstance(row.reason, str) and row.reason:
            line += f" · reason: {esc(row.reason)}"
        if isinstance(row.guideline_version, str):
            line += f" · guideline {esc(row.guideline_version)}"
        if not pd.isna(row.superseded_by):
            line += f" · superseded by #{int(row.superseded_by)}"
        st.markdown(line)
    with st.expander("Full payloads"):
        st.dataframe(past[["event_id", "kind", "actor", "created_at", "payload", "prev_hash", "hash"]],
                     hide_index=True, width="stretch")


def render() -> None:
    st.title("Audit log")
    path = state.project_path_or_warn()
    if path is None:
        return
    try:
        project = Project.open(path)
        everything = decisions.events(project)
    except AmendError as exc:
        st.error(str(exc))
        return
    _render_verify(project)
    if everything.empty:
        st.info("The log is empty: no decision, guideline or role change yet.", icon=":material/history:")
        return
    filters = _render_filters(everything)
    _render_events(project, filters)
    _render_history(project, everything)


render()
