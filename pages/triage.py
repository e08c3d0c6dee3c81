"""Triage: the flagged queue (AgGrid), one sample large with its evidence in words, and a
decision with one key. Decisions carry the event id the reviewer saw; a newer decision by
someone else is shown as a conflict, never overwritten."""

from __future__ import annotations

import html
import time
from typing import Optional

import pandas as pd
import streamlit as st
from st_aggrid import AgGrid, GridOptionsBuilder

from core.analysis.runs import RunInfo, list_runs
from core.errors import AmendError
from core.review import audit, decisions, guidelines
from core.store import selections
from core.store.project import Project
from core.views import triage, words
from pages import identity, keyboard, state

SELECTED_KEY = "triage.selected"
#: True when the page chose the shown sample itself (the next one after a decision), False when
#: the reviewer did (a click, N/P, go to): only the page's own choice moves on when it left the queue.
AUTO_KEY = "triage.selected_by_page"
CONFLICT_KEY = "triage.conflict"
FLASH_KEY = "triage.flash"
GRID_LAST_KEY = "triage.grid_last"
BULK_KEY = "triage.bulk"
BULK_TARGET_KEY = "triage.bulk_target"
BULK_ACTION_KEY = "triage.bulk_action"
RUN_KEY = "triage.run"
CLASSES_KEY = "triage.classes"
SLICES_KEY = "triage.slices"
DETECTORS_KEY = "triage.detectors"
REVIEWED_KEY = "triage.reviewed"
SELECTION_KEY = state.TRIAGE_SELECTION_KEY
FLAGGED_ONLY_KEY = "triage.flagged_only"
PRECISION_KEY = "triage.min_precision"
RELABEL_KEY = "triage.relabel_to"
REASON_KEY = "triage.reason"
GRID_KEY = "triage.grid"
GRID_NONCE_KEY = "triage.grid_nonce"
GOTO_KEY = "triage.goto"
FIND_KEY = "triage.find"
BRIGHTNESS_KEY = "triage.brightness"
CONTRAST_KEY = "triage.contrast"
SESSION_KEY = "triage.session"

#: Rows sent to the grid (the queue itself may be longer; narrow it with the filters).
GRID_ROWS = 2000
#: Queue columns in the grid, most useful first (the grid scrolls sideways for the rest).
GRID_COLUMNS = ["rank", "id", "given_label", "suggested_label", "error_probability", "status"]
#: Expected-precision cuts offered for the queue (None = every flag).
PRECISION_CUTS = (None, 0.9, 0.8, 0.7, 0.5)
#: Samples prepared ahead of the one shown.
PREFETCH = 5

#: (decision kind, button label, shortcut)
ACTIONS = [
    ("accept", "Accept suggestion", "A"),
    ("keep", "Keep label", "K"),
    ("ambiguous", "Ambiguous", "M"),
    ("exclude", "Exclude", "X"),
]
#: The first is the default: the queue resumes at the best-ranked sample nobody has decided yet.
REVIEW_STATES = {"Not reviewed": False, "Reviewed": True, "All": None}
#: What each bulk action (core.review.decisions.BULK_ACTIONS) says, as the button and the recorded reason.
BULK_ACTIONS = {"accept": "accept the suggested label", "keep": "keep the label in force",
                "ambiguous": "mark ambiguous", "exclude": "exclude from training"}

esc = identity.escape_markdown


# --------------------------------------------------------------------------- cached reads
@st.cache_resource(max_entries=4, show_spinner="Reading the analysis…")
def _base(path: str, run_id: str) -> tuple[RunInfo, pd.DataFrame]:
    return triage.load_flags(Project.open(path), run_id)


@st.cache_resource(max_entries=4, show_spinner=False)
def _current(path: str, run_id: str, head: str) -> pd.DataFrame:
    """The run's flags with the labels in force as of log head ``head``."""
    _, base = _base(path, run_id)
    return triage.apply_decisions(base, audit.read_events(path, kinds=["decision"]))


@st.cache_resource(max_entries=16, show_spinner=False)
def _queue(path: str, run_id: str, head: str, parts: tuple) -> pd.DataFrame:
    return triage.build_queue(_current(path, run_id, head), triage.QueueFilter(*parts))


@st.cache_resource(max_entries=4, show_spinner=False)
def _slice_titles(path: str, run_id: str) -> dict[int, str]:
    return triage.slice_titles(Project.open(path), run_id)  # a run's slices never change


@st.cache_resource(max_entries=4, show_spinner=False)
def _prefetcher(path: str, run_id: str, guideline_version: Optional[str]) -> triage.Prefetcher:
    project = Project.open(path)
    run, base = _base(path, run_id)
    return triage.Prefetcher(project, triage.ViewContext.build(project, run, base), base)


# --------------------------------------------------------------------------- callbacks
def _go(sample_id: Optional[str]) -> None:
    if sample_id is not None:
        st.session_state[SELECTED_KEY] = sample_id
        st.session_state[AUTO_KEY] = False
    st.session_state.pop(CONFLICT_KEY, None)
    _clear_relabel_choice()


def _clear_relabel_choice() -> None:
    """The relabel picker starts empty on every sample: a class chosen for one sample must never
    be what the next **L** writes for another."""
    st.session_state[RELABEL_KEY] = None


def _decide(path: str, run_id: str, sample_id: str, kind: str, label: Optional[str], seen_event: int,
            evidence: dict, who: identity.Identity, next_id: Optional[str]) -> None:
    """One decision with the event id the reviewer saw; advance on success, keep the sample and
    show the conflict when someone else decided first."""
    reason = (st.session_state.get(REASON_KEY) or "").strip()
    project = Project.open(path)
    try:
        event = decisions.decide(project, sample_id, "relabel" if kind == "accept" else kind, who.name, label=label,
                                 reason=reason, run_id=run_id, evidence=evidence, expected_event=seen_event,
                                 identity_source=who.source)
    except audit.StaleDecisionError as exc:
        st.session_state[CONFLICT_KEY] = {"sample_id": sample_id, "mine": kind if label is None else f"{kind} {label}",
                                          "event": exc.newer.to_dict()}
        return
    except AmendError as exc:
        st.session_state[FLASH_KEY] = ("error", str(exc))
        return
    st.session_state[FLASH_KEY] = ("success", f"Event {event.event_id}: {audit.describe_decision(event.payload)} "
                                              f"on {sample_id}.")
    st.session_state[REASON_KEY] = ""
    st.session_state.pop(CONFLICT_KEY, None)
    _clear_relabel_choice()
    _count_decisions(1)
    if next_id is not None and next_id != sample_id:
        st.session_state[SELECTED_KEY] = next_id
        st.session_state[AUTO_KEY] = True


def _start_session() -> dict:
    """This browser session's pace: decisions made since the page was first opened."""
    return st.session_state.setdefault(SESSION_KEY, {"decisions": 0, "started": time.time()})


def _count_decisions(count: int) -> None:
    session = _start_session()
    session["decisions"] = max(0, session["decisions"] + count)


def _undo(path: str, who: identity.Identity) -> None:
    """Undo the reviewer's latest decision (a new event) and show that sample again."""
    try:
        event = decisions.undo_last(Project.open(path), who.name, identity_source=who.source)
    except AmendError as exc:
        st.session_state[FLASH_KEY] = ("error", str(exc))
        return
    st.session_state[FLASH_KEY] = ("success", f"Undone: your decision on {event.sample_id} (event "
                                              f"{event.payload['undoes']}); the label is "
                                              f"{event.payload['new_label']} again.")
    st.session_state.pop(CONFLICT_KEY, None)
    _clear_relabel_choice()
    _count_decisions(-1)
    st.session_state[SELECTED_KEY] = event.sample_id
    st.session_state[AUTO_KEY] = False


def _goto(path: str, run_id: str) -> None:
    """Open the sample whose id was typed (exact id), or say it is not in this run."""
    wanted = (st.session_state.get(GOTO_KEY) or "").strip()
    if not wanted:
        return
    _, base = _base(path, run_id)  # cached: the check costs nothing until someone types an id
    if (base["id"] == wanted).any():
        _go(wanted)
    else:
        st.session_state[FLASH_KEY] = ("error", f"No sample {wanted!r} in this analysis run; check the id.")
    st.session_state[GOTO_KEY] = ""


def _bulk(path: str, run_id: str, kind: str, rows: list[dict], who: identity.Identity) -> None:
    try:
        requests = decisions.bulk_decisions(rows, kind, run_id=run_id)
        result = decisions.decide_many(Project.open(path), requests, who.name,
                                       reason=(st.session_state.get(REASON_KEY) or "").strip() or f"bulk: {BULK_ACTIONS[kind]}",
                                       run_id=run_id, identity_source=who.source)
    except AmendError as exc:
        st.session_state[FLASH_KEY] = ("error", str(exc))
    else:
        skipped = len(rows) - len(result.decided)
        st.session_state[FLASH_KEY] = ("success", f"Bulk: {len(result.decided)} decided, {skipped} skipped"
                                       + (f" (e.g. {result.skipped[0][1]})" if result.skipped else "") + ".")
        _count_decisions(len(result.decided))
        # The decided rows leave the queue: untick them (a fresh grid) and open the queue's first sample.
        st.session_state[GRID_NONCE_KEY] = st.session_state.get(GRID_NONCE_KEY, 0) + 1
        st.session_state[GRID_LAST_KEY] = []
        st.session_state.pop(SELECTED_KEY, None)
    st.session_state.pop(BULK_KEY, None)


def _ask_bulk(kind: str, chosen: pd.DataFrame) -> None:
    """Ask to confirm a bulk action on ``chosen`` (the rows as the reviewer saw them, each with the
    event seen): the rows are listed here, on the click, not on every redraw of the page."""
    rows = [{"id": str(r.id), "rank": int(r.rank),
             "suggested_label": r.suggested_label if isinstance(r.suggested_label, str) else None,
             "seen_event": 0 if pd.isna(r.last_event_id) else int(r.last_event_id)}
            for r in chosen.itertuples(index=False)]
    st.session_state[BULK_KEY] = {"kind": kind, "rows": rows}


def _cancel_bulk() -> None:
    st.session_state.pop(BULK_KEY, None)


# --------------------------------------------------------------------------- rendering
def _render_filters(project: Project, flags: pd.DataFrame, slice_names: dict[int, str]) -> tuple:
    label_set = project.labels()
    detectors = triage.detector_names(flags)
    chosen = st.columns([2.4, 2.2, 2.4, 2.2, 2.6, 1.6, 2.2], vertical_alignment="bottom")
    classes = chosen[0].multiselect("Class", label_set, key=CLASSES_KEY,
                                    help="Samples whose given, current or suggested label is one of these.")
    slices: list = []
    if "slice_id" in flags:
        present = {int(s) for s in flags["slice_id"].dropna().unique()}
        # In error-rank order and by their one name ("#1 cat, dog"), as the overview and compare show them.
        ordered = [s for s in slice_names if s in present] + sorted(present - set(slice_names))
        slices = chosen[1].multiselect("Slice", ordered, key=SLICES_KEY,
                                       format_func=lambda s: slice_names.get(s, f"slice {s}"),
                                       help="Slices as ranked on the Overview page (#1 = most errors).")
    found = chosen[2].multiselect("Detector", detectors, key=DETECTORS_KEY,
                                  help=f"Samples this detector scores {triage.DETECTOR_THRESHOLD} or more.")
    reviewed = chosen[3].selectbox("Review state", list(REVIEW_STATES), key=REVIEWED_KEY, index=0)
    saved = selections.list_selections(project)
    options = [None] + [s.selection_id for s in saved]
    names = {s.selection_id: f"#{s.selection_id} {s.name} ({len(s.ids)}, {s.source})" for s in saved}
    picked = chosen[4].selectbox("Selection", options, key=SELECTION_KEY,
                                 format_func=lambda v: "All samples" if v is None else names[v],
                                 help="Samples sent from the overview map or the guidelines page.")
    flagged_only = chosen[5].toggle("Flagged only", value=True, key=FLAGGED_ONLY_KEY)
    cuts = PRECISION_CUTS if "error_probability" in flags else (None,)
    precision = chosen[6].selectbox(
        "Expected precision", cuts, key=PRECISION_KEY,
        format_func=lambda v: "Any" if v is None else f"at least {v:.0%}",
        help="Keep the best-ranked part of the queue in which, on average, at least this share of the "
             "labels is estimated to be wrong (each flag's P(wrong)).")
    ids = None
    if picked is not None:
        ids = tuple(selections.get_selection(project, picked).ids)
    return (tuple(classes), tuple(int(s) for s in slices), tuple(found), REVIEW_STATES[reviewed], ids,
            bool(flagged_only), precision)


def _text_width(values, header: str, floor: int = 60) -> int:
    """Pixels a grid column needs to show its longest value and its header in full."""
    longest = max([len(str(v)) for v in values] + [len(header) + 3])
    return max(floor, 8 * longest + 24)


def _render_queue(queue: pd.DataFrame) -> list[str]:
    """The queue grid; returns the ids ticked in it (clicking a row opens it)."""
    shown = queue.head(GRID_ROWS)[[c for c in GRID_COLUMNS if c in queue]].copy()
    if "error_probability" in shown:
        shown["error_probability"] = shown["error_probability"].round(2)
    if "suggested_label" in shown:
        shown["suggested_label"] = shown["suggested_label"].where(shown["suggested_label"].notna(), "")
    builder = GridOptionsBuilder.from_dataframe(shown)
    builder.configure_selection("multiple", use_checkbox=True, header_checkbox=True)
    builder.configure_default_column(resizable=True, sortable=True, filter=True, minWidth=60, wrapHeaderText=True,
                                     autoHeaderHeight=True)
    # Widths from the content: a label cut to "aut…" cannot be reviewed from the queue.
    builder.configure_column("rank", headerName="#", width=_text_width(shown["rank"], "#", 40) + 24,
                             checkboxSelection=True, headerCheckboxSelection=True)
    builder.configure_column("id", headerName="sample", width=_text_width(shown["id"], "sample"))
    builder.configure_column("given_label", headerName="given", width=_text_width(shown["given_label"], "given"))
    if "suggested_label" in shown:
        builder.configure_column("suggested_label", headerName="suggested",
                                 width=_text_width(shown["suggested_label"], "suggested"))
    if "error_probability" in shown:
        builder.configure_column("error_probability", headerName="P(wrong)", width=96,
                                 headerTooltip="Estimated probability that the label is wrong")
    builder.configure_column("status", width=_text_width(shown["status"], "status"))
    options = builder.build()
    # The builder fits every column into the grid's width, cutting labels to "aut…": keep the
    # widths above and let the grid scroll sideways instead.
    options.pop("autoSizeStrategy", None)
    key = f"{GRID_KEY}.{st.session_state.get(GRID_NONCE_KEY, 0)}"
    response = AgGrid(shown, gridOptions=options, height=560, key=key, update_on=["selectionChanged"],
                      show_download_button=False, show_search=False)
    if len(queue) > GRID_ROWS:
        st.caption(f"Showing the first {GRID_ROWS:,} of {len(queue):,}; narrow the queue with the filters.")
    selected = getattr(response, "selected_rows", None) if response is not None else None
    ticked = [] if selected is None or len(selected) == 0 else [str(i) for i in pd.DataFrame(selected)["id"]]
    last = st.session_state.get(GRID_LAST_KEY, [])
    if ticked != last:
        added = [i for i in ticked if i not in last]
        if added:
            _go(added[-1])
        st.session_state[GRID_LAST_KEY] = ticked
    return ticked


def _render_bulk(queue: pd.DataFrame, ticked: list[str], path: str, run_id: str, who: identity.Identity) -> None:
    pending = st.session_state.get(BULK_KEY)
    if pending:
        rows = pending["rows"]
        st.warning(f"{BULK_ACTIONS[pending['kind']].capitalize()} for **{len(rows)}** samples? Samples someone "
                   "decided since you loaded the queue are skipped, not overwritten.", icon=":material/warning:")
        left, right = st.columns(2)
        left.button(f"Confirm: {len(rows)} samples", type="primary", key="triage.bulk_confirm",
                    on_click=_bulk, args=(path, run_id, pending["kind"], rows, who))
        right.button("Cancel", key="triage.bulk_cancel", on_click=_cancel_bulk)
        return
    with st.expander(f"Bulk action ({len(ticked)} ticked, {len(queue)} in the queue)"):
        target = st.radio("On", ["Ticked rows", "Whole queue"], key=BULK_TARGET_KEY, horizontal=True)
        kind = st.selectbox("Action", list(BULK_ACTIONS), format_func=lambda k: BULK_ACTIONS[k], key=BULK_ACTION_KEY)
        chosen = queue[queue["id"].isin(ticked)] if target == "Ticked rows" else queue
        st.button(f"Apply to {len(chosen)} samples…", key="triage.bulk_ask", disabled=chosen.empty,
                  on_click=_ask_bulk, args=(kind, chosen))


def _render_conflict(conflict: dict) -> None:
    other = conflict["event"]
    payload = other["payload"]
    what = audit.describe_decision(payload) if other["kind"] == "decision" else other["kind"]
    st.error(
        f"**Not saved: someone decided first.** {esc(other['actor'])} recorded "
        f"*{esc(what)}* on {esc(conflict['sample_id'])} at {esc(other['created_at'])} (event {other['event_id']}), "
        f"after the version you were looking at. Your decision ({esc(conflict['mine'])}) was not written; "
        "nothing was overwritten.",
        icon=":material/sync_problem:",
    )
    st.button("Review again", key="triage.review_again", shortcut="G", type="primary",
              on_click=_go, args=(conflict["sample_id"],))


def _render_actions(view: triage.SampleView, path: str, run: RunInfo, queue_ids: list[str], who: identity.Identity,
                    label_set: list[str], detectors: list[str]) -> None:
    row = view.row
    sid = view.sample_id
    next_id = triage.step(queue_ids, sid, 1)
    if next_id == sid:
        next_id = None
    evidence = triage.decision_evidence(row, run.run_id, detectors)
    suggested = row.get("suggested_label") if isinstance(row.get("suggested_label"), str) else None
    seen = view.latest_event_id
    bar = st.container(horizontal=True, gap="small")
    for kind, text, key in ACTIONS:
        label = suggested if kind == "accept" else None
        disabled = kind == "accept" and (suggested is None or suggested == row.get("current_label"))
        # Streamlit draws each button's key beside its label, so the label is the words alone.
        bar.button(text, key=f"triage.do_{kind}", shortcut=key, disabled=disabled,
                   type="primary" if kind == "accept" else "secondary", on_click=_decide,
                   args=(path, run.run_id, sid, kind, label, seen, evidence, who, next_id))
    bar.button("Skip", key="triage.skip", shortcut="S", on_click=_go, args=(triage.step(queue_ids, sid, 1),))
    bar.button("Previous", key="triage.prev", shortcut="P", on_click=_go, args=(triage.step(queue_ids, sid, -1),))
    bar.button("Next", key="triage.next", shortcut="N", on_click=_go, args=(triage.step(queue_ids, sid, 1),))
    bar.button("Undo my last", key="triage.undo", shortcut="U", on_click=_undo, args=(path, who),
               help="Takes back your latest decision with a new event (the log keeps both) and shows that "
                    "sample again.")
    others = [lab for lab in label_set if lab != row.get("current_label")]
    pick, go, why = st.columns([4, 2, 5], vertical_alignment="bottom")
    target = pick.selectbox("Relabel to (type to search)", others, key=RELABEL_KEY, index=None,
                            placeholder="Choose any class…",
                            help="Type to search, Enter to choose, then L (or click Relabel).")
    go.button("Relabel", key="triage.relabel", shortcut="L", disabled=target is None, on_click=_decide,
              args=(path, run.run_id, sid, "relabel", target, seen, evidence, who, next_id))
    why.text_input("Reason (optional, recorded with the decision)", key=REASON_KEY,
                  help="Shortcuts do not fire while the cursor is in this box: press Esc (or Enter) first.")


_CHIP_STYLE = """
<style>
.amend-chips { display: flex; flex-wrap: wrap; gap: 0.6rem 1.4rem; align-items: flex-end; margin: 0.2rem 0 0.6rem; }
.amend-chip-label { font-size: 0.8rem; color: #5f6368; margin-bottom: 0.15rem; }
.amend-chip { display: inline-block; font-size: 1.45rem; font-weight: 600; line-height: 1.3; padding: 0.2rem 0.75rem;
  border-radius: 0.6rem; white-space: normal; overflow-wrap: anywhere; }
.amend-chip.given { background: #fde8e7; color: #8a1c12; }
.amend-chip.suggested { background: #e3f1e5; color: #18582a; }
.amend-chip.now { background: #e8eefc; color: #1b3f8b; }
.amend-chip.plain { background: #f1f3f4; color: #202124; font-weight: 500; }
.amend-text { white-space: pre-wrap; overflow-wrap: anywhere; font-family: "Source Code Pro", ui-monospace, monospace;
  font-size: 0.9rem; line-height: 1.45; margin: 0; max-height: 560px; overflow-y: auto; padding: 0.8rem 1rem;
  border: 1px solid #dadce0; border-radius: 0.5rem; background: #fff; }
.amend-text mark { background: #ffe08a; padding: 0 1px; }
.amend-neighbour { margin: 0 0 0.7rem; font-size: 0.92rem; }
.amend-snippet { color: #5f6368; font-size: 0.85rem; white-space: pre-wrap; overflow-wrap: anywhere; }
</style>
"""


def _chip(caption: str, value: str, kind: str) -> str:
    return (f'<div><div class="amend-chip-label">{html.escape(caption)}</div>'
            f'<span class="amend-chip {kind}">{html.escape(value)}</span></div>')


def _render_labels(view: triage.SampleView) -> None:
    """Given and suggested labels in full, large, as chips (escaped: labels are data, not markup)."""
    row = view.row
    suggested = row.get("suggested_label") if isinstance(row.get("suggested_label"), str) else None
    chips = [_chip("Given label", str(row.get("given_label")), "given")]
    chips.append(_chip("Suggested", suggested, "suggested") if suggested
                 else _chip("Suggested", "none (no detector suggests another)", "plain"))
    status = row.get("status", "unreviewed")
    if row.get("current_label") != row.get("given_label") or status != "unreviewed":
        chips.append(_chip(f"Now ({status})", str(row.get("current_label")), "now"))
    wrong = row.get("error_probability")
    if wrong is not None and not pd.isna(wrong):
        chips.append(_chip("P(label wrong)", words.probability(wrong), "plain"))
    chips.append(_chip("Rank", f"{int(row['rank']):,}", "plain"))
    st.html(_CHIP_STYLE + '<div class="amend-chips">' + "".join(chips) + "</div>")


def _render_evidence(view: triage.SampleView) -> None:
    if view.confidence:
        st.markdown(f"**Model confidence.** {esc(view.confidence)}")
    wrong = view.row.get("error_probability")
    if wrong is not None and not pd.isna(wrong):
        st.caption(view.error_probability_note)
    st.markdown("**Evidence**")
    for name, score, sentence in view.evidence:
        st.markdown(f"- {esc(sentence)} *({esc(name)}, score {score:.2f})*")
    if view.metadata:
        st.caption(" · ".join(f"{esc(k)}: {esc(v)}" for k, v in view.metadata.items()))


def _render_image(view: triage.SampleView) -> None:
    if view.problem:
        st.error(f"The image cannot be shown: {esc(view.problem)}", icon=":material/broken_image:")
        return
    brightness = float(st.session_state.get(BRIGHTNESS_KEY, 1.0))
    contrast = float(st.session_state.get(CONTRAST_KEY, 1.0))
    image = triage.adjusted(view.image, brightness, contrast)
    # Small images arrive enlarged by whole pixels (core.views.triage.pixel_exact); "stretch"
    # fills the column and the fullscreen button shows the prepared pixels, not a 32 px thumbnail.
    st.image(image, width="stretch")


def _render_image_tools(view: triage.SampleView) -> None:
    """Brightness and contrast (kept from sample to sample), and a zoomable view, across the pane."""
    if view.problem or view.image is None:
        return
    with st.expander("Zoom, brightness and contrast"):
        left, right = st.columns(2)
        left.slider("Brightness", 0.2, 3.0, step=0.1, key=BRIGHTNESS_KEY, value=1.0)
        right.slider("Contrast", 0.2, 3.0, step=0.1, key=CONTRAST_KEY, value=1.0)
        if st.toggle("Zoom and pan (drag a box to zoom, double-click to reset)", key="triage.zoom"):
            import numpy as np
            import plotly.express as px

            image = triage.adjusted(view.image, float(st.session_state.get(BRIGHTNESS_KEY, 1.0)),
                                    float(st.session_state.get(CONTRAST_KEY, 1.0)))
            figure = px.imshow(np.asarray(image), binary_string=True)
            figure.update_traces(hoverinfo="skip", hovertemplate=None)
            figure.update_layout(margin=dict(l=0, r=0, t=0, b=0), height=720, dragmode="zoom",
                                 xaxis=dict(visible=False), yaxis=dict(visible=False))
            st.plotly_chart(figure, width="stretch", config={"displaylogo": False, "scrollZoom": True})


def _render_text(view: triage.SampleView) -> None:
    text = view.text or ""
    find = st.text_input("Find in the text", key=FIND_KEY, placeholder="a word or phrase, then Enter",
                         help="Marks every occurrence, to find the passage that decides the label.")
    if find.strip():
        st.caption(f"{triage.count_matches(text, find)} occurrences of “{esc(find.strip())}”.")
    # Verbatim: escaped and pre-wrapped, never markdown (indented lines, addresses and escapes stay as written).
    st.html(_CHIP_STYLE + f'<pre class="amend-text" data-testid="amend-sample-text">'
                          f'{triage.text_as_html(text, find)}</pre>')


#: Neighbour images per row: large enough to compare with the sample.
NEIGHBOURS_PER_ROW = 5


def _render_neighbours(view: triage.SampleView) -> None:
    if not view.neighbours:
        return
    st.markdown("**Nearest neighbours** (their labels in force, and how similar they are)")
    if view.modality == "image":
        for start in range(0, len(view.neighbours), NEIGHBOURS_PER_ROW):
            cols = st.columns(NEIGHBOURS_PER_ROW)
            for col, n in zip(cols, view.neighbours[start:start + NEIGHBOURS_PER_ROW]):
                if n.thumbnail is not None:
                    col.image(n.thumbnail, width="stretch")
                else:
                    col.caption(f"missing: {esc(n.problem or '')}")
                col.caption(f"**{esc(n.label)}** · {n.similarity:.2f} · {esc(n.sample_id)}")
    else:
        # Snippets as plain text: addresses and URLs in the data never become links.
        items = "".join(
            f'<div class="amend-neighbour"><b>{html.escape(n.label)}</b> · similarity {n.similarity:.2f} · '
            f'{html.escape(n.sample_id)}<div class="amend-snippet">{html.escape(n.snippet or n.problem or "")}</div></div>'
            for n in view.neighbours)
        st.html(_CHIP_STYLE + items)


def _render_guidelines(view: triage.SampleView) -> None:
    if view.guideline_version is None:
        st.caption("No guideline published yet (a lead publishes one on the Guidelines page).")
        return
    if not view.guideline_sections:
        st.caption(f"Guideline {esc(view.guideline_version)} has no section on these labels.")
        return
    with st.expander(f"Guideline {view.guideline_version}: the labels in question", expanded=True):
        for label, text in view.guideline_sections.items():
            st.markdown(guidelines.without_remote_images(text))


def _render_history(path: str, sample_id: str) -> None:
    past = decisions.history(Project.open(path), sample_id)
    if past.empty:
        return
    with st.expander(f"History of {esc(sample_id)} ({len(past)} events)"):
        shown = past[["event_id", "actor", "created_at", "decision", "old_label", "new_label", "reason",
                      "guideline_version"]].copy()
        shown["created_at"] = shown["created_at"].map(words.plain_time)
        shown = shown.astype(object).where(shown.notna(), "")
        st.dataframe(shown.rename(columns={"event_id": "event", "actor": "who", "created_at": "when",
                                           "old_label": "from", "new_label": "to", "guideline_version": "guideline"}),
                     hide_index=True, width="stretch")



def _guideline_version(project: Project) -> Optional[str]:
    """The latest guideline version's name (None before the first), to key the view cache."""
    latest = guidelines.latest(project)
    return latest.version if latest else None


def render() -> None:
    st.title("Triage")
    keyboard.release_focus_after_choices()
    path = state.project_path_or_warn()
    if path is None:
        return
    who = identity.current()
    if who is None:
        st.info("Choose who you are before deciding.", icon=":material/person:")
        identity.render_chooser()
        return
    try:
        project = Project.open(path)
        runs = list_runs(project)
    except AmendError as exc:
        st.error(str(exc))
        return
    if not runs:
        st.warning(f"This project has no analysis yet; run `amend analyse {path}` first.")
        return
    newest_first = runs[::-1]
    if len(newest_first) > 1:
        titles = {r.run_id: words.run_title(r) for r in newest_first}
        run_id = st.selectbox("Analysis", list(titles), key=RUN_KEY, format_func=titles.get)
    else:
        run_id = newest_first[0].run_id
    key_path = str(path)
    run, _ = _base(key_path, run_id)
    head = audit.chain_head(project)
    flags = _current(key_path, run_id, head)
    parts = _render_filters(project, flags, _slice_titles(key_path, run_id))
    try:
        queue = _queue(key_path, run_id, head, parts)
    except AmendError as exc:
        st.error(str(exc))
        return
    progress = triage.queue_progress(flags, queue)
    st.progress(progress.fraction, text=progress.sentence())
    state.show_flash(FLASH_KEY)
    conflict = st.session_state.get(CONFLICT_KEY)
    left, right = st.columns([2, 3], gap="medium")
    queue_ids = queue["id"].tolist()
    with left:
        st.markdown(f"**Queue** · {len(queue):,} samples, best first")
        ticked = _render_queue(queue)
        _render_bulk(queue, ticked, key_path, run_id, who)
        st.text_input("Go to sample (exact id, then Enter)", key=GOTO_KEY, on_change=_goto,
                      args=(key_path, run_id))
        session = _start_session()
        if session["decisions"]:
            st.caption(triage.pace_sentence(session["decisions"], time.time() - session["started"]))
    current_id = st.session_state.get(SELECTED_KEY)
    in_queue = current_id in queue_ids
    if conflict is not None:
        current_id = conflict["sample_id"]
    elif not in_queue and not (flags["id"] == current_id).any():
        current_id = None
    elif not in_queue and st.session_state.get(AUTO_KEY):
        # The sample the page chose after a decision was decided by someone else meanwhile: go on
        # to the next one still in the queue instead of offering a second decision on it.
        rank = int(flags.loc[flags["id"] == current_id, "rank"].iloc[0])
        current_id = triage.first_after(queue, rank)
        st.session_state[SELECTED_KEY] = current_id
    if current_id is None:
        current_id = triage.step(queue_ids, None, 0)
    with right:
        if current_id is None:
            st.info("The queue is empty: every sample that matches these filters is done. Change the filters "
                    "to see more.", icon=":material/task_alt:")
            return
        guideline = _guideline_version(project)
        prefetcher = _prefetcher(key_path, run_id, guideline)
        row = flags.loc[flags["id"] == current_id].iloc[0].to_dict()
        try:
            view = prefetcher.view(current_id, row)
        except AmendError as exc:
            st.error(str(exc))
            return
        position = queue_ids.index(current_id) + 1 if current_id in queue_ids else None
        where = (f"{position:,} of {len(queue_ids):,} in the queue" if position
                 else "not in this queue (decided, or outside the filters); N goes on with the queue")
        st.subheader(esc(current_id))  # an id is data: never markdown (a remote image in an id is a beacon)
        st.caption(f"{where} · deciding as {esc(who.name)} ({'login' if who.source == 'oidc' else 'local name'})")
        _render_labels(view)
        if conflict is not None:
            _render_conflict(conflict)
        _render_actions(view, key_path, run, queue_ids, who, project.labels(), triage.detector_names(flags))
        if view.modality == "image":
            sample_col, evidence_col = st.columns([3, 2], gap="medium")
            with sample_col:
                _render_image(view)
            with evidence_col:
                _render_evidence(view)
            _render_image_tools(view)
        else:
            _render_text(view)
            _render_evidence(view)
        _render_neighbours(view)
        _render_guidelines(view)
        _render_history(key_path, current_id)
        # Prepared ahead only once this sample is drawn: the threads would compete with drawing it.
        prefetcher.prefetch(triage.following(queue_ids, current_id, PREFETCH))


render()
