"""Home: what is in the project — samples, labels and counts, representations and the model that
made each, prediction sets, and the ingest report of every row not taken."""

from __future__ import annotations

import plotly.express as px
import streamlit as st

from core.errors import AmendError
from core.store.project import Project
from core.views.summary import summarise
from pages import state


@st.cache_data(ttl=5, show_spinner=False)
def _load_summary(path: str):
    return summarise(Project.open(path))


def _render_header(summary) -> None:
    st.title(summary.name)
    kind = {"image": "Image dataset", "text": "Text dataset"}.get(summary.modality or "", "Empty project")
    st.caption(f"{kind} · `{summary.path}`")
    cols = st.columns(4)
    cols[0].metric("Samples", f"{summary.samples:,}")
    cols[1].metric("Labels", len(summary.labels))
    cols[2].metric("Representations", len(summary.representations))
    cols[3].metric("Rows not taken", f"{len(summary.rejects):,}")
    _render_review(summary)
    for notice in summary.notices:
        st.info(notice, icon=":material/info:")


def _render_review(summary) -> None:
    """The way in: how many samples the latest analysis flagged, and a link to review them."""
    review = summary.review
    if review is None:
        st.info(f"No analysis yet: run `amend analyse {summary.path}` to find the labels worth reviewing.",
                icon=":material/search:")
        return
    with st.container(border=True):
        st.page_link(state.page_path("triage.py"), label=review.sentence(), icon=":material/fact_check:")
        st.caption(f"Latest analysis: {review.analysed_at}.")


def _render_labels(summary) -> None:
    st.subheader("Labels")
    if summary.label_counts.empty:
        st.write("No samples yet. Ingest some with `amend ingest`.")
        return
    left, right = st.columns([3, 2])
    ordered = summary.label_counts.sort_values("samples", ascending=True)
    figure = px.bar(ordered, x="samples", y="label", orientation="h", text="samples", height=max(260, 26 * len(ordered)))
    figure.update_traces(textposition="outside", textangle=0, cliponaxis=False)
    figure.update_layout(margin=dict(l=0, r=30, t=10, b=0), yaxis_title=None, xaxis_title="samples")
    left.plotly_chart(figure, width="stretch", config={"displayModeBar": False})
    right.dataframe(
        summary.label_counts,
        hide_index=True,
        column_config={"share": st.column_config.NumberColumn("share", format="percent")},
        width="stretch",
    )
    if summary.split_counts:
        right.markdown("**Splits** · " + " · ".join(f"{k}: {v:,}" for k, v in summary.split_counts.items()))
    if summary.metadata_columns:
        right.markdown(
            "**Metadata** · " + " · ".join(f"`{k}` ({t})" for k, t in summary.metadata_columns.items())
        )


def _render_representations(summary) -> None:
    st.subheader("Representations")
    if summary.representations.empty:
        st.write(f"No vectors yet. Run `amend embed {summary.path}`.")
    else:
        for rep in summary.representations.itertuples(index=False):
            made_by = "offline embedder" if rep.offline else rep.source
            st.markdown(f"**{rep.name}** · `{rep.model}` · {rep.dim}-d · {rep.vectors:,} vectors ({made_by})")
        st.dataframe(
            summary.representations.drop(columns=["offline"]),
            hide_index=True,
            width="stretch",
            column_config={"coverage": st.column_config.ProgressColumn("coverage", min_value=0, max_value=1, format="percent")},
        )
    if not summary.predictions.empty:
        st.markdown("**Imported model predictions**")
        st.dataframe(summary.predictions, hide_index=True, width="stretch")
    if not summary.captures.empty:
        st.markdown("**Captured training runs** (your model, recorded with `core.capture`)")
        st.dataframe(summary.captures, hide_index=True, width="stretch")
        st.caption(f"Add their training dynamics to an analysis: `amend analyse {summary.path} --capture RUN`.")


def _render_ingest_report(summary) -> None:
    st.subheader("Ingest report")
    if summary.ingests.empty:
        st.write("Nothing ingested yet.")
        return
    st.dataframe(
        summary.ingests[["ingest_id", "source", "source_kind", "committed_at", "taken", "unchanged", "rejected"]],
        hide_index=True,
        width="stretch",
    )
    if summary.rejects.empty:
        st.success("Every row of every source was taken.", icon=":material/check_circle:")
        return
    reasons = summary.rejects["reason"].value_counts()
    st.markdown("**Rows not taken** · " + " · ".join(f"{reason}: {count}" for reason, count in reasons.items()))
    chosen = st.multiselect("Show reasons", options=list(reasons.index), default=list(reasons.index), key="home.reasons")
    shown = summary.rejects[summary.rejects["reason"].isin(chosen)]
    st.dataframe(shown, hide_index=True, width="stretch")


def render() -> None:
    path = state.current_project_path()
    if path is None:
        st.title("Amend")
        state.project_path_or_warn()
        return
    try:
        summary = _load_summary(str(path))
    except AmendError as exc:
        st.title(path.name)
        st.error(str(exc))
        return
    _render_header(summary)
    _render_labels(summary)
    _render_representations(summary)
    _render_ingest_report(summary)


render()
