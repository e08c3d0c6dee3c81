"""Compare: what the corrections buy — the probe trained on labels A vs on labels B, evaluated the
same way, overall, per class and (the point) per slice; states exactly what was compared."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from core.errors import AmendError
from core.evaluate.compare import LabelSource, compare, interval_sentence, label_source_choices
from core.review import audit
from core.store.project import Project
from core.views.overview import slice_title
from pages import state

KEY_BEFORE = "compare.before"
KEY_AFTER = "compare.after"
KEY_BEFORE_TIME = "compare.before_time"
KEY_AFTER_TIME = "compare.after_time"
KEY_REPRESENTATION = "compare.representation"
KEY_SPLIT = "compare.split"
POINT_IN_TIME = "as-of"  # the choice whose time is typed in
AUTO_SPLIT = "auto"
BEFORE_COLOUR = "#9aa5b1"
AFTER_COLOUR = "#1f77b4"


@st.cache_data(ttl=60, show_spinner=False, max_entries=16)
def _compare(path: str, head: str, before: str, after: str, representation: str | None, split: str | None):
    """Cached on the log's chain head: a new decision gives a new comparison."""
    return compare(Project.open(path), labels_a=before, labels_b=after, representation=representation,
                   eval_split=split)


@st.cache_data(ttl=10, show_spinner=False)
def _options(path: str, head: str) -> dict:
    project = Project.open(path)
    splits = project.samples(columns=["split"])["split"].dropna().unique().tolist()
    return {
        "sources": [s.text() for s in label_source_choices(project)],
        "representations": [r.name for r in project.representations()],
        "splits": sorted(str(s) for s in splits),
    }


def _source_label(text: str) -> str:
    """A short name for a side (the selectbox is narrow; the full description is shown below)."""
    if text == POINT_IN_TIME:
        return "at a point in time…"
    source = LabelSource.parse(text)
    return {"given": "given labels", "current": "current labels", "guideline": f"guideline {source.value}",
            "predictions": f"predictions {source.value}", "as_of": f"as of {source.value}",
            "event": f"after event {source.value}"}[source.kind]


def _pick_source(column, title: str, key: str, time_key: str, options: list[str], default: str) -> str:
    choices = options + [POINT_IN_TIME]
    chosen = column.selectbox(title, choices, index=choices.index(default), format_func=_source_label, key=key)
    if chosen != POINT_IN_TIME:
        return chosen
    moment = column.text_input("Time (ISO 8601, UTC when no zone)", key=time_key, placeholder="2024-05-01T12:00")
    return f"as-of:{moment.strip()}" if moment.strip() else "current"


def _render_controls(options: dict) -> tuple[str, str, str | None, str | None]:
    left, middle, right, far = st.columns(4)
    before = _pick_source(left, "Before (labels A)", KEY_BEFORE, KEY_BEFORE_TIME, options["sources"], "given")
    after = _pick_source(middle, "After (labels B)", KEY_AFTER, KEY_AFTER_TIME, options["sources"], "current")
    reps = options["representations"]
    representation = right.selectbox("Representation", reps, index=len(reps) - 1, key=KEY_REPRESENTATION) if reps else None
    split_choices = [AUTO_SPLIT, "cv", *options["splits"]]
    split = far.selectbox(
        "Evaluate on", split_choices, key=KEY_SPLIT,
        format_func=lambda s: {"auto": "test split (else CV)", "cv": "cross-validation"}.get(s, f"split {s!r}"),
    )
    return before, after, representation, None if split == AUTO_SPLIT else split


def _render_what(result) -> None:
    what = result.what
    ev = what["evaluation"]
    rep = what["representation"]
    before, after = what["before"], what["after"]

    def side(s: dict) -> str:
        if s["train_rows"] is None:
            return f"{s['description']} — {s['model']}"
        excluded = f", {s['excluded']} excluded from training" if s["excluded"] else ""
        return f"{s['description']} — probe trained on {s['train_rows']:,} samples{excluded}"

    st.markdown(
        "\n".join([
            "**What was compared**",
            f"- **Before:** {side(before)}",
            f"- **After:** {side(after)}",
            f"- **Evaluated on:** {ev['method']}",
            f"- **Evaluation labels:** {ev['labels']}",
        ])
    )
    # What an auditor needs to reproduce the figures, one click away from the main path.
    with st.expander("Details for reproducing these figures"):
        st.markdown(
            "\n".join([
                f"- **Model:** {what['model']['kind']}, {what['model']['detail']}, C={what['model']['C']:g}",
                f"- **Representation:** `{rep['name']}` ({rep['model']}, {rep['dim']}-d)",
                f"- **Slices from analysis run:** `{what['run_id'] or 'none'}`",
                f"- **Review log chain head:** `{what['chain_head']}`",
            ])
        )
    for note in result.notes:
        st.info(note, icon=":material/info:")


def _render_overall(result) -> None:
    before, after = result.side("before"), result.side("after")
    cols = st.columns(4)
    cols[0].metric("Accuracy before", f"{before['accuracy']:.1%}")
    cols[1].metric("Accuracy after", f"{after['accuracy']:.1%}",
                   **_delta(after['accuracy'] - before['accuracy']))
    cols[2].metric("Macro-F1 before", f"{before['macro_f1']:.1%}")
    cols[3].metric("Macro-F1 after", f"{after['macro_f1']:.1%}", **_delta(after['macro_f1'] - before['macro_f1']))
    interval = result.accuracy_difference
    if interval is not None:
        sentence = interval_sentence(interval)
        {"better": st.success, "worse": st.warning}.get(interval["verdict"], st.info)(sentence)
    clean = result.side("clean")
    if clean:
        share = "-" if result.recovered_share is None else f"{result.recovered_share:.0%}"
        st.caption(f"Clean reference: {clean['accuracy']:.1%} accuracy · share of the loss recovered: {share}")


def _delta(difference: float) -> dict:
    """A metric's change in points; no arrow and no colour when it rounds to no change (a green
    "+0.0 pts" reads as an improvement that is not there)."""
    points = difference * 100
    if abs(points) < 0.05:
        return {"delta": "no change", "delta_color": "off", "delta_arrow": "off"}
    return {"delta": f"{points:+.1f} pts"}


def _slice_label(row) -> str:
    return slice_title(row["error_rank"], row["name"])


def _render_slices(result) -> None:
    st.subheader("Per slice: before → after")
    frame = result.per_slice
    if frame.empty:
        st.write("No slices to show: run an analysis with slices on this representation (`amend analyse`).")
        return
    shown = frame[frame["n_eval"] > 0].copy()
    shown["label"] = shown.apply(_slice_label, axis=1)
    shown = shown.sort_values("difference", kind="stable")
    figure = go.Figure()
    # Horizontal groups draw the first trace lowest: add 'after' first so 'before' sits on top.
    figure.add_bar(y=shown["label"], x=shown["after"], name="after", orientation="h", marker_color=AFTER_COLOUR,
                   text=[f"{v:.0%}" for v in shown["after"]], textposition="outside")
    figure.add_bar(y=shown["label"], x=shown["before"], name="before", orientation="h", marker_color=BEFORE_COLOUR,
                   text=[f"{v:.0%}" for v in shown["before"]], textposition="outside")
    figure.update_layout(
        barmode="group", height=max(280, 56 * len(shown) + 80), margin=dict(l=0, r=10, t=30, b=0),
        xaxis=dict(title="accuracy on the slice's evaluation samples", range=[0, 1.12], tickformat=".0%"),
        yaxis=dict(title=None, automargin=True), legend=dict(orientation="h", y=1.02, x=0, yanchor="bottom", traceorder="reversed"),
        bargap=0.25,
    )
    st.plotly_chart(figure, width="stretch", config={"displayModeBar": False})
    # One name per slice, as on the overview: "#rank name" (the 0-based slice id is internal).
    table = frame.assign(slice=frame.apply(_slice_label, axis=1)).drop(columns=["slice_id", "error_rank"])
    table = table[["slice", *[c for c in table.columns if c != "slice"]]]
    if "recovered_share" in table and table["recovered_share"].isna().all():
        table = table.drop(columns=["recovered_share"])
    table = table.sort_values("difference", ascending=False, kind="stable")
    percent = {c: st.column_config.NumberColumn(c, format="percent") for c in ("before", "after", "clean", "recovered_share")}
    percent["difference"] = st.column_config.NumberColumn("difference", format="%+.3f")
    st.dataframe(table, hide_index=True, width="stretch", column_config=percent)


def _heatmap(matrix: list[list[int]], labels: list[str], title: str, zmax: int) -> go.Figure:
    figure = go.Figure(go.Heatmap(
        z=matrix, x=labels, y=labels, colorscale="Blues", zmin=0, zmax=zmax, showscale=False,
        text=[[str(v) if v else "" for v in row] for row in matrix], texttemplate="%{text}",
        hovertemplate="true %{y}<br>predicted %{x}<br>%{z} samples<extra></extra>",
    ))
    figure.update_layout(
        title=dict(text=title, x=0, font=dict(size=15)), height=max(320, 34 * len(labels) + 140),
        margin=dict(l=0, r=0, t=40, b=0), xaxis=dict(title="predicted", tickangle=-40),
        yaxis=dict(title="evaluation label", autorange="reversed"),
    )
    return figure


def _render_confusion(result) -> None:
    st.subheader("Confusion matrices")
    labels = result.confusion["labels"]
    zmax = max(max(max(r) for r in result.confusion[s]) for s in ("before", "after")) or 1
    left, right = st.columns(2)
    left.plotly_chart(_heatmap(result.confusion["before"], labels, "Before", zmax), width="stretch",
                      config={"displayModeBar": False})
    right.plotly_chart(_heatmap(result.confusion["after"], labels, "After", zmax), width="stretch",
                       config={"displayModeBar": False})


def _render_classes(result) -> None:
    st.subheader("Per class")
    frame = result.per_class.copy()
    frame["f1_difference"] = frame["after_f1"] - frame["before_f1"]
    config = {c: st.column_config.NumberColumn(c, format="%.3f") for c in frame.columns if c not in ("label", "support")}
    config["f1_difference"] = st.column_config.NumberColumn("F1 difference", format="%+.3f")
    st.dataframe(frame, hide_index=True, width="stretch", column_config=config)


def render() -> None:
    st.title("Compare")
    path = state.project_path_or_warn()
    if path is None:
        return
    st.caption("The linear probe trained on two label sets, evaluated on the same samples with the same labels. "
               "Excluded samples leave training, never evaluation.")
    try:
        head = audit.chain_head(str(path))
        options = _options(str(path), head)
        before, after, representation, split = _render_controls(options)
        if not options["representations"]:
            st.warning(f"This project has no vectors yet; run `amend embed {path}` first.")
            return
        with st.spinner("Training the probe on both label sets…"):
            result = _compare(str(path), head, before, after, representation, split)
    except AmendError as exc:
        st.error(str(exc))
        return
    _render_what(result)
    _render_overall(result)
    _render_slices(result)
    _render_confusion(result)
    _render_classes(result)


render()
