"""Overview: the map of the data coloured by slice, label, flag score or metadata; a lasso, box or
click on it (or a slice in the table) sends samples to the triage queue through core.store.selections;
the slices ranked by error; the class imbalance figures; domain gaps between sources; and where
several representations have runs, where they disagree."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Optional

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st
from streamlit.errors import StreamlitAPIException

from core.analysis import runs
from core.errors import AmendError
from core.ingest.media import open_image
from core.store import selections
from core.store.project import Project
from core.views import overview as ov
from core.views.words import expected_wrong, plain_time, run_title
from pages import identity, state

RUN_KEY = "overview.run"
COLOUR_KEY = "overview.colour_by"
MAP_KEY = "overview.map"
SLICE_TABLE_KEY = "overview.slice_table"
SELECTION_NAME_KEY = "overview.selection_name"
SEND_MAP_KEY = "overview.send_map"
SEND_SLICE_KEY = "overview.send_slice"
GROUP_TABLE_KEY = "overview.group_table"
HABIT_TABLE_KEY = "overview.habit_table"
SEND_HABIT_KEY = "overview.send_habit"
SEND_GROUP_KEY = "overview.send_group"
FLASH_KEY = "overview.flash"
TRIAGE_PAGE = state.PAGES_DIR / "triage.py"

GALLERY_SIZE = 12
#: Light to mid grey: the density of all samples stays behind the coloured points.
DENSITY_SHADES = [[0.0, "#ebebeb"], [1.0, "#8c8c8c"]]
DENSITY_SAFE_GREY = "#3d3d3d"
_MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+\-.!|>~<$])")


def _md(text: object) -> str:
    """Dataset text made inert for st.markdown (no formatting, no HTML, no links)."""
    return _MARKDOWN_SPECIALS.sub(r"\\\1", html.escape(str(text), quote=False))


@st.cache_resource(max_entries=4, show_spinner="Loading the run…")
def _load(path: str, run_id: Optional[str], token: str) -> ov.Overview:
    return ov.load_overview(Project.open(path), run_id)


@st.cache_resource(max_entries=16, show_spinner=False)
def _map(path: str, run_id: Optional[str], token: str, column: str) -> ov.MapData:
    return ov.map_data(_load(path, run_id, token), column)


@st.cache_resource(max_entries=4, show_spinner="Comparing representations…")
def _comparison(path: str, run_id: Optional[str], token: str) -> Optional[ov.Comparison]:
    return ov.compare_representations(Project.open(path), _load(path, run_id, token))


def _render_header(project: Project, data: ov.Overview) -> None:
    st.title("Overview")
    run = data.run
    counts = run.record.get("counts", {})
    rep = run.representation or "model probabilities only"
    st.caption(f"{_md(project.path.name)} · analysis of {_md(plain_time(run.created_at))} on {_md(rep)} · "
               f"{counts.get('samples', len(data.points)):,} samples · "
               f"{counts.get('flagged', 0):,} flagged{expected_wrong(counts)} · "
               f"detectors: {_md(', '.join(c[4:] for c in data.detectors))}",
               help=f"Analysis run {run.run_id}")
    flash = st.session_state.pop(FLASH_KEY, None)
    if flash:
        st.success(flash, icon=":material/check_circle:")


def _figure(points: ov.MapData, colour_label: str) -> go.Figure:
    frame = points.frame
    size = 8 if points.drawn <= 1_000 else 5 if points.drawn <= 5_000 else 3
    figure = go.Figure()
    if points.density is not None:
        # Every sample, counted on a grid under the drawn ones; it takes no hover or selection,
        # which stay with the points.
        density = points.density
        figure.add_trace(go.Heatmap(
            x=density.x, y=density.y, z=density.shade, colorscale=DENSITY_SHADES, showscale=False,
            hoverinfo="skip", name="all samples", zsmooth=False,
        ))
    if points.continuous:
        figure.add_trace(go.Scattergl(
            x=frame["x"], y=frame["y"], mode="markers", customdata=frame[["id"]].to_numpy(),
            hovertext=frame["hover"], hovertemplate="%{hovertext}<extra></extra>", showlegend=False,
            marker=dict(size=size, color=frame["colour"], colorscale="Viridis", opacity=0.85,
                        colorbar=dict(title=dict(text=html.escape(colour_label)), thickness=12)),
        ))
    else:
        palette = px.colors.qualitative.Dark24 if len(points.order) > 10 else px.colors.qualitative.T10
        if points.density is not None:
            # T10's light grey would vanish into the shading: a dark grey takes its place.
            palette = [DENSITY_SAFE_GREY if c.upper() == "#BAB0AC" else c for c in palette]
        for i, value in enumerate(points.order):
            part = frame[frame["colour"] == value]
            figure.add_trace(go.Scattergl(
                x=part["x"], y=part["y"], mode="markers", name=html.escape(str(value)),
                customdata=part[["id"]].to_numpy(), hovertext=part["hover"],
                hovertemplate="%{hovertext}<extra></extra>",
                marker=dict(size=size, color=palette[i % len(palette)], opacity=0.85),
            ))
    figure.update_layout(
        height=600, margin=dict(l=0, r=0, t=10, b=0), dragmode="lasso", hovermode="closest",
        legend=dict(title=dict(text=html.escape(colour_label) + "  "), itemsizing="constant", font=dict(size=11),
                    orientation="h", yanchor="top", y=-0.02, xanchor="left", x=0),
        xaxis=dict(showticklabels=False, title=None, zeroline=False, showgrid=False),
        yaxis=dict(showticklabels=False, title=None, zeroline=False, showgrid=False),
        plot_bgcolor="#fafafa",
    )
    return figure


def _who() -> Optional[str]:
    """The name of whoever is using the app (chosen, or from the sign-in), if any."""
    who = identity.current()
    return who.name if who is not None else None


def _send(project: Project, ids: list[str], name: str, source: str) -> None:
    """Store the selection through core, then open triage on it (when this app has a triage page)."""
    try:
        saved = selections.save_selection(project, ids, name=name, source=source,
                                          created_by=_who())
    except AmendError as exc:
        st.error(str(exc))
        return
    message = f"Selection #{saved.selection_id} “{saved.name}” ({len(saved.ids):,} samples) is in the triage queue's selection list."
    if TRIAGE_PAGE.is_file():
        # triage's selection picker, set before switching so triage opens on the new selection
        st.session_state[state.TRIAGE_SELECTION_KEY] = saved.selection_id
        try:
            st.switch_page(str(TRIAGE_PAGE))
        except StreamlitAPIException:
            pass  # run outside the app's navigation (a single-page test): stay here and say so
    st.session_state[FLASH_KEY] = message
    st.rerun()


def _render_gallery(project: Project, data: ov.Overview, ids: list[str]) -> None:
    rows = ov.gallery(data, ids, GALLERY_SIZE)
    if rows.empty:
        return
    columns = st.columns(6 if data.modality == "image" else 3)
    for i, row in enumerate(rows.itertuples(index=False)):
        cell = columns[i % len(columns)].container(border=True)
        label = row.given_label if row.given_label == row.current_label else f"{row.given_label} → {row.current_label}"
        if data.modality == "image" and isinstance(getattr(row, "path", None), str):
            try:
                cell.image(open_image(row.root, row.path, row.content_hash), width=96)
            except AmendError as exc:
                cell.warning(str(exc))
        elif isinstance(getattr(row, "snippet", None), str):
            cell.text(row.snippet)
        suggestion = f" · suggests {_md(row.suggested_label)}" if row.flagged and isinstance(row.suggested_label, str) \
            and row.suggested_label != row.current_label else ""
        cell.caption(f"**{_md(row.id)}** · {_md(label)} · score {row.score:.2f}{suggestion}")
    if len(ids) > GALLERY_SIZE:
        st.caption(f"Showing the {GALLERY_SIZE} most suspicious of {len(ids):,} selected samples.")


def _render_map(project: Project, data: ov.Overview) -> None:
    st.subheader("Map")
    if not data.has_map:
        st.info("This run has no map: it ran on model probabilities without vectors. "
                f"Run `amend embed {project.path}` and analyse again to see one.", icon=":material/info:")
        return
    options = ov.colour_options(data.points)
    labels = list(options)
    controls, help_text = st.columns([1, 3])
    colour_label = controls.selectbox("Colour by", labels, key=COLOUR_KEY)
    points = _map(str(project.path), data.run.run_id, ov.state_token(project), options[colour_label])
    drawn_note = (f"Drawing {points.drawn:,} of {points.total:,} samples (a per-slice sample) over a grey "
                  f"shading of where all {points.total:,} lie (darker: more samples); "
                  "a lasso or box selects every sample inside it, drawn or not."
                  if points.drawn < points.total else f"All {points.total:,} samples drawn.")
    help_text.caption(f"UMAP of {_md(data.run.representation)}: nearby points look alike to the model. "
                      f"Lasso, box or click points to select them. {drawn_note}")
    event = st.plotly_chart(_figure(points, colour_label), key=MAP_KEY, on_select="rerun",
                            selection_mode=("lasso", "box", "points"), width="stretch",
                            config={"displaylogo": False, "scrollZoom": True})
    selection = getattr(event, "selection", None) if event is not None else None
    ids = ov.selected_ids(data.points, dict(selection) if selection else None)
    if not ids:
        st.caption("Nothing selected yet.")
        return
    chosen = data.points[data.points["id"].isin(ids)]
    st.markdown(f"**{len(ids):,} samples selected** · {int(chosen['flagged'].sum()):,} flagged · "
                f"{chosen['slice_id'].nunique()} slices")
    _render_gallery(project, data, ids)
    name_col, button_col = st.columns([3, 1], vertical_alignment="bottom")
    name = name_col.text_input("Selection name", value=f"map selection of {len(ids)}", key=SELECTION_NAME_KEY)
    if button_col.button(f"Send {len(ids):,} samples to triage", key=SEND_MAP_KEY, type="primary",
                         icon=":material/fact_check:"):
        _send(project, ids, name.strip() or f"map selection of {len(ids)}", source=f"overview map, {data.run.run_id}")


def _render_slices(project: Project, data: ov.Overview) -> None:
    st.subheader("Slices ranked by error")
    if data.slices is None:
        st.write("This run has no slices (it ran without vectors).")
        return
    whole = float(data.slices["error_rate_whole"].iloc[0])
    st.caption(f"A slice is a cluster of the representation. Error rate: the share of a slice's samples "
               f"whose label the cross-validated probe disagrees with ({whole:.0%} over all samples); "
               "flag rate: the share the detectors flag. Rank: errors the probe did not expect, counted as far as they "
               "share the slice's most common confusion (a shared labelling error goes one way; a merely hard "
               "region spreads its errors), so a slice can rank above one with a higher error rate. A slice with "
               "a structured error (many of its samples share one wrong label, and not because the region is "
               "hard) comes first.")
    bars = ov.slice_bars(data.slices)
    figure = px.bar(bars, x="rate", y="slice", color="measure", barmode="group", orientation="h",
                    height=max(240, 46 * bars["slice"].nunique()),
                    color_discrete_map={"error rate": "#d62728", "flag rate": "#ff7f0e"})
    figure.add_vline(x=whole, line_dash="dash", line_color="#555", annotation_text="error rate overall",
                     annotation_position="top")
    figure.update_layout(margin=dict(l=0, r=10, t=30, b=0), yaxis=dict(title=None, autorange="reversed"),
                         xaxis=dict(title=None, tickformat=".0%"), legend=dict(title=None, orientation="h", y=-0.12))
    st.plotly_chart(figure, width="stretch", config={"displayModeBar": False})
    table = ov.slices_table(data.slices)
    # the finding column only where some slice has one; otherwise the name keeps its width
    has_findings = bool(table["finding"].astype(bool).any())
    event = st.dataframe(
        table, hide_index=True, width="stretch", key=SLICE_TABLE_KEY, on_select="rerun", selection_mode="single-row",
        column_order=[c for c in table.columns if c != "slice" and (has_findings or c != "finding")],
        column_config={
            "name": st.column_config.TextColumn("name", width="medium" if has_findings else "large"),
            "finding": st.column_config.TextColumn("finding", width="large"),
            "share": st.column_config.NumberColumn("share", format="percent"),
            "error rate": st.column_config.ProgressColumn("error rate", min_value=0, max_value=1, format="percent"),
            "error rate elsewhere": st.column_config.NumberColumn("error rate elsewhere", format="percent"),
            "flag rate": st.column_config.ProgressColumn("flag rate", min_value=0, max_value=1, format="percent"),
            "p (adjusted)": st.column_config.NumberColumn("p (adjusted)", format="%.3g"),
        },
    )
    rows = list(event.selection.rows) if event is not None else []
    if not rows:
        st.caption("Click a row to see the slice and send it to triage.")
        return
    picked = table.iloc[rows[0]]
    slice_id = int(picked["slice"])
    record = data.slices[data.slices["slice_id"] == slice_id].iloc[0]
    members = ov.slice_members(data.points, slice_id)
    left, right = st.columns([2, 1])
    left.markdown(f"**Slice #{int(picked['rank'])}** · {_md(record['name'])}")
    left.markdown(f"{len(members):,} samples · error rate {record['error_rate']:.0%} "
                  f"(elsewhere {record['error_rate_rest']:.0%}) · flag rate {record['flag_rate']:.0%} · "
                  f"p (adjusted) {record['p_adjusted']:.3g}")
    over = ov.describe_overrepresentation(record["metadata_overrepresentation"], top=4)
    if over:
        left.markdown(f"Over-represented: {_md(over)}")
    right.dataframe(ov.class_mix(record["class_mix"]), hide_index=True, width="stretch",
                    column_config={"share": st.column_config.NumberColumn("share", format="percent")})
    if left.button(f"Send slice #{int(picked['rank'])} ({len(members):,} samples) to triage", key=SEND_SLICE_KEY,
                   icon=":material/fact_check:"):
        _send(project, members, f"slice #{int(picked['rank'])}: {ov.short_slice_name(record['name'])}",
              source=f"overview slice {slice_id}, {data.run.run_id}")


def _render_groups(project: Project, data: ov.Overview) -> None:
    table = ov.metadata_groups_table(data.run.record.get("metadata_groups"))
    if table.empty:
        return
    st.subheader("Wrong labels by metadata value")
    passing = int(table["more than chance"].sum())
    st.caption("One annotator, site or batch can share a mistake that no region of the map holds. For each value of "
               "each metadata field: how many of its labels are expected to be wrong (the sum of their estimated "
               "probabilities) against the rest of the data (z: against a random group of the same size), and "
               "whether one confusion is far more common among its labels than elsewhere; p adjusted for the "
               f"{len(table)} values compared. More wrong labels than chance gives: {passing} of them.")
    event = st.dataframe(
        table, hide_index=True, width="stretch", key=GROUP_TABLE_KEY, on_select="rerun", selection_mode="single-row",
        column_order=[c for c in table.columns if c != "finding samples"],
        column_config={
            "about wrong": st.column_config.NumberColumn("about wrong", format="%.1f"),
            "wrong rate": st.column_config.ProgressColumn("wrong rate", min_value=0, max_value=1, format="percent"),
            "wrong rate elsewhere": st.column_config.NumberColumn("wrong rate elsewhere", format="percent"),
            "z": st.column_config.NumberColumn("z", format="%.1f"),
            "p (adjusted)": st.column_config.NumberColumn("p (adjusted)", format="%.3g"),
            "finding": st.column_config.TextColumn("finding", width="large"),
        },
    )
    rows = list(event.selection.rows) if event is not None else []
    if not rows:
        return
    picked = table.iloc[rows[0]]
    group = data.run.record["metadata_groups"][rows[0]]
    if not group.get("finding_members"):
        why = ("no confusion is shared by enough of its flags to review as one finding" if picked["more than chance"]
               else "no more wrong labels than chance gives a group of its size")
        st.caption(f"{_md(picked['field'])} = {_md(picked['value'])}: {why}.")
        return
    members = list(group["finding_members"])
    st.markdown(f"**{_md(picked['field'])} = {_md(picked['value'])}**: {_md(picked['finding'])}.")
    if st.button(f"Send its {len(members):,} flagged samples to triage", key=SEND_GROUP_KEY,
                 icon=":material/fact_check:"):
        _send(project, members, f"{picked['field']} = {picked['value']}: {picked['finding']}",
              source=f"overview metadata group {picked['field']}={picked['value']}, {data.run.run_id}")


def _render_habits(project: Project, data: ov.Overview) -> None:
    habits = data.run.record.get("annotator_habits")
    table = ov.annotator_habits_table(habits)
    if table.empty:
        return
    st.subheader("Annotators' habits")
    st.caption("A confusion one annotator makes far more often than the other annotators: a mistake all their "
               "labels share. Each annotator's labels are counted against each sample's most probable true label "
               "given the model and the other annotators (not their own label); p is Fisher's exact test of their "
               "share against the others', and a habit is listed when p is below 0.01 divided by the number of "
               "pairs compared (every pair of every annotator).")
    event = st.dataframe(
        table, hide_index=True, width="stretch", key=HABIT_TABLE_KEY, on_select="rerun", selection_mode="single-row",
        column_order=[c for c in table.columns if c != "finding"],
        column_config={
            "share": st.column_config.ProgressColumn("share", min_value=0, max_value=1, format="percent"),
            "other annotators": st.column_config.NumberColumn("other annotators", format="percent"),
            "such labels": st.column_config.NumberColumn("such labels", format="%.0f",
                                                        help="about how many of its labels are of this kind"),
            "p": st.column_config.NumberColumn("p", format="%.3g"),
        },
    )
    rows = list(event.selection.rows) if event is not None else []
    if not rows:
        return
    picked = table.iloc[rows[0]]
    members = list(habits[rows[0]]["members"])
    st.markdown(f"**{_md(picked['finding'])}.** Its samples: where {_md(picked['annotator'])} said "
                f"{_md(picked['called'])} and {_md(picked['class'])} is the most probable label.")
    if st.button(f"Send its {len(members):,} samples to triage", key=SEND_HABIT_KEY, icon=":material/fact_check:"):
        _send(project, members, f"annotator habit: {picked['finding']}",
              source=f"overview annotator habit {picked['annotator']}: {picked['class']} -> {picked['called']}, "
                     f"{data.run.run_id}")


def _render_classes(data: ov.Overview) -> None:
    st.subheader("Classes")
    table = data.class_table
    if table.empty:
        st.write("This run recorded no class table.")
        return
    summary = ov.imbalance_summary(table)
    if summary["largest_count"] == summary["smallest_count"]:
        line = f"Balanced: every class has {summary['largest_count']:,} samples."
    else:
        line = (f"Largest class **{_md(summary['largest'])}** ({summary['largest_count']:,}), smallest "
                f"**{_md(summary['smallest'])}** ({summary['smallest_count']:,}): imbalance ratio "
                f"{summary['ratio']:.1f}.")
    if summary["often_flagged"]:
        line += f" Flagged 1.5× the average rate or more: {_md(', '.join(summary['often_flagged']))}."
    st.markdown(line)
    left, right = st.columns([3, 2])
    ordered = table.sort_values("count", ascending=True)
    figure = px.bar(ordered, x="count", y="class", orientation="h", color="flag_rate", text="count",
                    color_continuous_scale="OrRd", range_color=(0, max(0.01, float(table["flag_rate"].max()))),
                    labels={"flag_rate": "flag rate"}, height=max(260, 24 * len(ordered)))
    figure.update_traces(textposition="inside", textangle=0, insidetextanchor="end")
    figure.update_layout(margin=dict(l=0, r=10, t=10, b=0), yaxis_title=None, xaxis_title="samples",
                         coloraxis_colorbar=dict(tickformat=".0%", thickness=12))
    left.plotly_chart(figure, width="stretch", config={"displayModeBar": False})
    right.dataframe(
        table[[c for c in ("class", "count", "frequency", "flagged", "flag_rate", "flag_rate_ratio") if c in table]],
        hide_index=True, width="stretch",
        column_config={
            "frequency": st.column_config.NumberColumn("frequency", format="percent"),
            "flag_rate": st.column_config.NumberColumn("flag rate", format="percent"),
            "flag_rate_ratio": st.column_config.NumberColumn("vs average", format="%.2f×"),
        },
    )


def _render_domain_gaps(data: ov.Overview) -> None:
    if not data.domain_gaps:
        return
    st.subheader("Domain gap between sources")
    st.caption("How well a classifier on the representation tells two sources apart (cross-validated AUROC): "
               "0.5 = indistinguishable, 1.0 = fully separable.")
    for column, table in data.domain_gaps.items():
        shown = table.assign(verdict=table["auroc"].map(ov.gap_verdict))
        st.markdown(f"**{_md(column)}**")
        st.dataframe(shown, hide_index=True, width="stretch",
                     column_config={"auroc": st.column_config.ProgressColumn("AUROC", min_value=0.5, max_value=1.0,
                                                                             format="%.3f")})


def _render_comparison(project: Project, data: ov.Overview) -> None:
    comparison = _comparison(str(project.path), data.run.run_id, ov.state_token(project))
    if comparison is None:
        return
    st.subheader("Representations compared")
    reps = comparison.representations
    disagree = comparison.per_sample[comparison.per_sample["disagrees"]]
    st.caption(f"Outlier scores of the latest run of each representation ({_md(', '.join(reps))}), as percentile "
               "ranks. A sample disagrees when it is an outlier (top 5 %) in one representation and typical "
               f"(bottom half) in another: {len(disagree):,} samples do.")
    left, right = st.columns(2)
    left.markdown("**Per slice**")
    left.dataframe(comparison.per_slice, hide_index=True, width="stretch",
                   column_config={"disagree_rate": st.column_config.NumberColumn("disagree rate", format="percent")})
    right.markdown("**Samples that disagree most**")
    columns = ["id"] + [f"rank_{r}" for r in reps] + ["rank_spread"]
    right.dataframe(disagree[columns].head(200), hide_index=True, width="stretch")


def render() -> None:
    path = state.current_project_path()
    if path is None:
        st.title("Overview")
        state.project_path_or_warn()
        return
    try:
        project = Project.open(path)
        all_runs = runs.list_runs(project)
        if not all_runs:
            st.title("Overview")
            st.info(f"No analysis yet. Run `amend analyse {path}` to map the data and rank slices.",
                    icon=":material/info:")
            return
        run_ids = [r.run_id for r in reversed(all_runs)]
        run_id = run_ids[0]
        if len(run_ids) > 1:
            by_id = {r.run_id: r for r in all_runs}
            run_id = st.sidebar.selectbox("Analysis", run_ids, key=RUN_KEY,
                                          format_func=lambda r: f"{run_title(by_id[r])} "
                                                                f"({by_id[r].representation or 'probabilities'})")
        data = _load(str(project.path), run_id, ov.state_token(project))
    except AmendError as exc:
        st.title("Overview")
        st.error(str(exc))
        return
    _render_header(project, data)
    _render_map(project, data)
    _render_slices(project, data)
    _render_groups(project, data)
    _render_habits(project, data)
    _render_classes(data)
    _render_domain_gaps(data)
    _render_comparison(project, data)


render()
