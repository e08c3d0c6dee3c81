"""Why did it fail? Hypotheses from the user's model server, clustered per dimension, reviewed one
key at a time (A agree, D disagree, S skip); agreement per cluster and per data_quality tag; the
agreed annotation issues sent to triage; the top fix clusters as a list of targeted actions.
Every verdict is an event in the audit log. Hypotheses never change the ranking of flags."""

from __future__ import annotations

import html
import json
from typing import Optional

import pandas as pd
import streamlit as st

from core.errors import AmendError
from core.hypotheses import failures, review, store
from core.store.project import Project
from core.views import words
from pages import identity, keyboard, state

DIMENSION_KEY = "hypotheses.dimension"
CLUSTER_KEY = "hypotheses.cluster"
TAGS_KEY = "hypotheses.tags"
TODO_KEY = "hypotheses.todo_only"
POSITION_KEY = "hypotheses.position"
FLASH_KEY = "hypotheses.flash"

#: (verdict, button label, shortcut)
VERDICT_BUTTONS = [("agree", "Agree", "A"), ("disagree", "Disagree", "D"), ("skip", "Skip", "S")]
DIMENSIONS = {"cause": "Cause", "fix": "Fix"}
TAG_COLOURS = {"annotation_issue": ("#fde8e7", "#8a1c12"), "model_error": ("#e8eefc", "#1b3f8b"),
               "ambiguous_sample": ("#fef7e0", "#7a4f01"), "out_of_distribution": ("#f3e8fd", "#5b2a86"),
               "low_quality": ("#f1f3f4", "#3c4043")}

esc = identity.escape_markdown

_STYLE = """
<style>
.amend-chips { display: flex; flex-wrap: wrap; gap: 0.5rem 1.2rem; align-items: flex-end; margin: 0.1rem 0 0.5rem; }
.amend-chip-label { font-size: 0.78rem; color: #5f6368; margin-bottom: 0.1rem; }
.amend-chip { display: inline-block; font-size: 1.2rem; font-weight: 600; line-height: 1.3; padding: 0.15rem 0.65rem;
  border-radius: 0.6rem; overflow-wrap: anywhere; }
.amend-hyp { border-left: 4px solid #1b3f8b; padding: 0.35rem 0.9rem; margin: 0.3rem 0 0.6rem; background: #f8f9fb;
  border-radius: 0 0.5rem 0.5rem 0; }
.amend-hyp-dim { font-size: 0.78rem; text-transform: uppercase; letter-spacing: 0.04em; color: #5f6368; }
.amend-hyp-text { font-size: 1.05rem; line-height: 1.45; color: #202124; }
.amend-text { white-space: pre-wrap; overflow-wrap: anywhere; font-family: "Source Code Pro", ui-monospace, monospace;
  font-size: 0.88rem; line-height: 1.45; margin: 0; max-height: 420px; overflow-y: auto; padding: 0.7rem 0.9rem;
  border: 1px solid #dadce0; border-radius: 0.5rem; background: #fff; }
</style>
"""


def _chip(caption: str, value: str, background: str, colour: str) -> str:
    return (f'<div><div class="amend-chip-label">{html.escape(caption)}</div><span class="amend-chip" '
            f'style="background:{background};color:{colour}">{html.escape(value)}</span></div>')


# --------------------------------------------------------------------------- callbacks
def _review(path: str, hypothesis_id: int, verdict: str, who: identity.Identity, next_position: int) -> None:
    try:
        review.review(Project.open(path), hypothesis_id, verdict, who.name, identity_source=who.source)
    except AmendError as exc:
        st.session_state[FLASH_KEY] = ("error", str(exc))
        return
    st.session_state[FLASH_KEY] = ("success", f"Recorded: {verdict} on hypothesis {hypothesis_id} "
                                              f"(audit log, as {who.name}).")
    st.session_state[POSITION_KEY] = next_position


def _move(position: int) -> None:
    st.session_state[POSITION_KEY] = position


def _reset_position() -> None:
    st.session_state[POSITION_KEY] = 0


def _dimension_changed() -> None:
    """Another dimension has other clusters: start at its first."""
    st.session_state.pop(CLUSTER_KEY, None)
    _reset_position()


def _send_to_triage(path: str, who: identity.Identity) -> None:
    try:
        made = review.send_to_triage(Project.open(path), created_by=who.name)
    except AmendError as exc:
        st.session_state[FLASH_KEY] = ("error", str(exc))
        return
    st.session_state[state.TRIAGE_SELECTION_KEY] = made.selection_id
    st.session_state[FLASH_KEY] = ("success", f"Selection #{made.selection_id} ({len(made.ids)} samples) is ready on "
                                              "the Triage page under Selection.")


# --------------------------------------------------------------------------- pieces

def _render_empty(path: str) -> None:
    st.info("No hypotheses yet. Ask a vision-language model on your own machine why each failure happened:",
            icon=":material/psychology:")
    st.code(f"amend hypotheses {path} --server http://127.0.0.1:11434 --model qwen2.5vl:7b --limit 50\n"
            f"amend hypotheses {path} --api openai --server http://127.0.0.1:8000 --model Qwen/Qwen2.5-VL-7B-Instruct",
            language="bash")
    st.caption("Ollama, llama.cpp's llama-server and vLLM all work; the README's “Why did it fail?” section says how.")


def _render_run(project: Project, board: pd.DataFrame) -> None:
    runs = store.runs(project)
    latest = runs.iloc[0]
    failed = int(len(store.hypotheses(project, status="failed")))
    reviewed = int((board["status"] != "unreviewed").sum())
    votes = int(board["agree"].sum() + board["disagree"].sum())
    rate = board["agree"].sum() / votes if votes else None
    cols = st.columns(4)
    cols[0].metric("Hypotheses", f"{len(board):,}")
    cols[1].metric("Reviewed", f"{reviewed:,}", help="hypotheses with at least one verdict (skips included)")
    cols[2].metric("Agreement", "—" if rate is None else f"{rate:.0%}",
                   help="agree / (agree + disagree), reviewers' latest verdicts")
    cols[3].metric("Unanswered", f"{failed:,}", help="failures the server did not explain (malformed, late); "
                                                     "the next run asks again")
    st.caption(f"Latest run {esc(latest['run_id'])}: {esc(latest['model'])} on {esc(latest['server'])} "
               f"({esc(latest['api'])}), prompt {esc(latest['prompt_version'])} "
               f"(sha256 {latest['prompt_sha256'][:12]}…), temperature {latest['temperature']:g}. "
               "Hypotheses explain failures; they never change the ranking of flags.")


def _cluster_options(clustering: Optional[dict], board: pd.DataFrame, dimension: str) -> dict:
    """cluster number -> its title (name, size, agreement)."""
    if clustering is None:
        return {}
    rates = review.agreement(project=None, by=dimension, frame=board).set_index("cluster")
    out = {}
    for cluster in clustering["clusters"]:
        c = cluster["cluster"]
        rate = rates["rate"].get(c) if c in rates.index else None
        agreed = "not reviewed" if rate is None or pd.isna(rate) else f"{rate:.0%} agree"
        out[c] = f"{cluster['name']} · {cluster['size']} failures · {agreed}"
    return out


def _render_sample(project: Project, row: dict) -> None:
    shown = failures.show(project, row["sample_id"])
    if shown.problem:
        st.error(f"The sample cannot be shown: {esc(shown.problem)}", icon=":material/broken_image:")
    elif shown.modality == "image":
        st.image(shown.image, width="stretch")
    else:
        st.html(_STYLE + f'<pre class="amend-text">{html.escape(shown.text or "")}</pre>')


def _render_hypothesis(row: dict) -> None:
    tag = str(row["data_quality"])
    background, colour = TAG_COLOURS.get(tag, ("#f1f3f4", "#202124"))
    predictions = row["predictions"] or []
    chips = [_chip("Given label", str(row["given_label"]), "#fde8e7", "#8a1c12")]
    if predictions:
        label, p = predictions[0]
        chips.append(_chip("Predicted", f"{label} ({words.probability(p)})" if p == p else str(label), "#e3f1e5", "#18582a"))
    chips.append(_chip("Data quality", tag.replace("_", " "), background, colour))
    body = "".join(
        f'<div class="amend-hyp"><div class="amend-hyp-dim">{d}</div>'
        f'<div class="amend-hyp-text">{html.escape(str(row[k] or ""))}</div></div>'
        for d, k in (("Cause", "cause"), ("Fix", "fix")))
    st.html(_STYLE + '<div class="amend-chips">' + "".join(chips) + "</div>" + body)
    if predictions:
        top = pd.DataFrame([{"class": label, "probability": float(p)} for label, p in predictions])
        st.dataframe(top, hide_index=True, width="stretch",
                     column_config={"probability": st.column_config.ProgressColumn(
                         "probability", format="percent", min_value=0.0, max_value=1.0)})


def _render_reviewer(path: str, rows: pd.DataFrame, position: int, who: identity.Identity) -> None:
    row = rows.iloc[position].to_dict()
    hid = int(row["hypothesis_id"])
    following = (position + 1) % len(rows)
    st.subheader(f"{esc(row['sample_id'])}  ·  hypothesis {hid}")
    mine = row.get("mine") if isinstance(row.get("mine"), str) else None  # pandas holds "none yet" as NaN
    st.caption(f"{position + 1} of {len(rows)} in this cluster · reviewing as {esc(who.name)} · "
               f"your verdict: {esc(mine) if mine else 'none yet'} · all reviewers: {row['agree']} agree, "
               f"{row['disagree']} disagree, {row['skip']} skip")
    bar = st.container(horizontal=True, gap="small")
    for verdict, text, key in VERDICT_BUTTONS:
        bar.button(text, key=f"hypotheses.do_{verdict}", shortcut=key,
                   type="primary" if verdict == "agree" else "secondary", on_click=_review,
                   args=(path, hid, verdict, who, following))
    bar.button("Previous", key="hypotheses.prev", shortcut="P", on_click=_move, args=((position - 1) % len(rows),))
    bar.button("Next", key="hypotheses.next", shortcut="N", on_click=_move, args=(following,))
    sample_col, text_col = st.columns([2, 3], gap="medium")
    with sample_col:
        _render_sample(Project.open(path), row)
    with text_col:
        _render_hypothesis(row)


def _rate_table(frame: pd.DataFrame, first: list[str]) -> None:
    shown = frame[[*first, "hypotheses", "agree", "disagree", "skip", "rate"]].copy()
    shown["rate"] = pd.to_numeric(shown["rate"], errors="coerce")
    st.dataframe(shown, hide_index=True, width="stretch",
                 column_config={"rate": st.column_config.ProgressColumn(
                     "agreement", format="percent", min_value=0.0, max_value=1.0,
                     help="agree / (agree + disagree); empty until reviewed")})


def _render_agreement(board: pd.DataFrame, dimension: str) -> None:
    st.markdown("#### Agreement")
    by_tag, by_cluster = st.tabs(["Per data-quality tag", f"Per {dimension} cluster"])
    with by_tag:
        st.caption("A vision-language model over-calls annotation issues; the rate says how far to trust each tag.")
        tags = review.agreement(None, "data_quality", frame=board)
        tags["data_quality"] = tags["data_quality"].astype(str)
        _rate_table(tags, ["data_quality"])
    with by_cluster:
        st.caption("Clusters of answers that say the same thing in other words (class names stripped first).")
        _rate_table(review.agreement(None, dimension, frame=board), ["cluster", "name"])


def _render_cluster_detail(clustering: dict, cluster: int, rows: pd.DataFrame, dimension: str) -> None:
    info = next(c for c in clustering["clusters"] if c["cluster"] == cluster)
    with st.expander(f"All {len(rows)} failures in this cluster, and where they fall", expanded=False):
        st.markdown(f"**Typical {dimension}:** {esc(info['typical'])}")
        pairs, slices = st.columns(2)
        pairs.dataframe(pd.DataFrame(list(info["class_pairs"].items()), columns=["given → predicted", "failures"]),
                        hide_index=True, width="stretch")
        if info.get("slices"):
            slices.dataframe(pd.DataFrame(list(info["slices"].items()), columns=["slice", "failures"]),
                             hide_index=True, width="stretch")
        else:
            slices.caption("The analysis has no slices, so no per-slice counts.")
        table = rows[["sample_id", "given_label", "data_quality", "cause", "fix", "status"]].copy()
        table.insert(2, "predicted", [p[0][0] if p else None for p in rows["predictions"]])
        st.dataframe(table, hide_index=True, width="stretch")


def _render_actions(project: Project, path: str, board: pd.DataFrame, who: identity.Identity) -> None:
    st.markdown("#### What to do about it")
    agreed = review.agreed_annotation_issues(project)
    words = "annotation issue" if len(agreed) == 1 else "annotation issues"
    line = st.container(horizontal=True, vertical_alignment="center", gap="medium")
    line.markdown(f"**{len(agreed)} {words}** with reviewers' agreement.")
    line.button("Send them to triage", key="hypotheses.send", icon=":material/fact_check:",
                disabled=not agreed, on_click=_send_to_triage, args=(path, who),
                help="Stores them as a selection; the Triage page's Selection filter shows just them.")
    actions = review.actions(project)
    if not actions:
        st.caption("No fix clusters yet.")
        return
    st.markdown("**Targeted actions**, the fix clusters most failures share first (a fix reviewers rejected sinks):")
    # A numbered list, not a table: each action is a sentence, and a table either cut the sentence
    # or pushed the class pairs out of view at 1,400 px.
    lines = []
    for a in actions[:10]:
        rate = a["agreement_rate"]
        agreement = "not reviewed yet" if rate is None or rate != rate else f"{rate:.0%} of reviews agree"
        lines.append(f"{a['rank']}. **{esc(str(a['kind']))}**: {esc(str(a['example']))}  \n"
                     f"   :small[{a['hypotheses']} failures · {agreement} · {esc(str(a['class_pairs']))}]")
    st.markdown("\n".join(lines))
    downloads = st.container(horizontal=True, gap="small")
    downloads.download_button("Download actions (CSV)", review.actions_csv(actions), file_name="actions.csv",
                              mime="text/csv", key="hypotheses.download_csv", icon=":material/download:")
    downloads.download_button("Download actions (JSON)", json.dumps(actions, indent=2), file_name="actions.json",
                              mime="application/json", key="hypotheses.download_json", icon=":material/download:")


# --------------------------------------------------------------------------- the page
def render() -> None:
    st.title("Why did it fail?")
    keyboard.release_focus_after_choices()
    path = state.project_path_or_warn()
    if path is None:
        return
    try:
        project = Project.open(path)
        who = identity.current()
        board = review.board(project, reviewer=who.name if who else None)
    except AmendError as exc:
        st.error(str(exc))
        return
    if board.empty:
        _render_empty(str(path))
        return
    _render_run(project, board)
    state.show_flash(FLASH_KEY)
    if who is None:
        st.info("Choose who you are before reviewing.", icon=":material/person:")
        identity.render_chooser()
        return
    filters = st.columns([2, 4, 3, 2], vertical_alignment="bottom")
    dimension = filters[0].radio("Cluster by", list(DIMENSIONS), format_func=DIMENSIONS.get, key=DIMENSION_KEY,
                                 horizontal=True, on_change=_dimension_changed)
    clustering = store.latest_clustering(project, dimension)
    options = _cluster_options(clustering, board, dimension)
    if not options:
        st.warning(f"The {dimension} answers are not clustered yet: run `amend hypotheses {path} --recluster`.")
        return
    if st.session_state.get(CLUSTER_KEY) not in options:  # clustered again since: the numbers changed
        st.session_state.pop(CLUSTER_KEY, None)
    cluster = filters[1].selectbox("Cluster", list(options), format_func=options.get, key=CLUSTER_KEY,
                                   on_change=_reset_position)
    tags = filters[2].multiselect("Data-quality tags", sorted(board["data_quality"].dropna().unique()), key=TAGS_KEY,
                                  placeholder="every tag", on_change=_reset_position)
    todo = filters[3].toggle("Not reviewed by me", key=TODO_KEY, on_change=_reset_position)
    rows = board[board[f"{dimension}_cluster"] == cluster]
    if tags:
        rows = rows[rows["data_quality"].isin(tags)]
    if todo:
        rows = rows[rows["mine"].isna()]
    rows = rows.reset_index(drop=True)
    if rows.empty:
        st.info("Nothing left here with these filters: choose another cluster or clear the filters.",
                icon=":material/task_alt:")
    else:
        position = int(st.session_state.get(POSITION_KEY, 0)) % len(rows)
        _render_reviewer(str(path), rows, position, who)
        _render_cluster_detail(clustering, cluster, rows, dimension)
    _render_agreement(board, dimension)
    _render_actions(project, str(path), board, who)


render()
