"""Export: the audited label set with its trail and a manifest — choose the format and which
labels (now, a guideline version, a point in time), preview the changed rows, download."""

from __future__ import annotations

import datetime as _dt

import streamlit as st

from core.errors import AmendError
from core.export import FORMATS, build_export, utc_stamp
from core.review import audit, guidelines
from core.store.project import Project
from pages import state

KEY_FORMAT = "export.format"
KEY_WHEN = "export.when"
KEY_VERSION = "export.version"
KEY_DATE = "export.date"
KEY_TIME = "export.time"
WHEN_NOW = "now"
WHEN_GUIDELINE = "guideline"
WHEN_TIME = "time"
WHEN_LABELS = {WHEN_NOW: "as of now", WHEN_GUIDELINE: "under a guideline version", WHEN_TIME: "at a point in time"}
PREVIEW_COLUMNS = ["id", "given_label", "final_label", "status", "reviewer", "decided_at", "reason",
                   "guideline_version", "last_event_id"]


@st.cache_data(ttl=30, show_spinner=False, max_entries=8)
def _bundle(path: str, head: str, fmt: str, as_of: str | None, version: str | None):
    """Cached on the log's chain head (a new event gives a new export)."""
    project = Project.open(path)
    return build_export(project, fmt=fmt, name=f"{project.path.name}-labels", as_of=as_of, guideline_version=version)


@st.cache_data(ttl=10, show_spinner=False)
def _versions(path: str, head: str) -> list[str]:
    return [v.version for v in guidelines.list_versions(path)]


def _render_controls(versions: list[str]) -> tuple[str, str | None, str | None]:
    left, middle, right = st.columns([3, 4, 3])
    fmt = left.radio("Format", FORMATS, horizontal=True, key=KEY_FORMAT)
    modes = [WHEN_NOW, WHEN_TIME] + ([WHEN_GUIDELINE] if versions else [])
    when = middle.radio("Labels", modes, format_func=WHEN_LABELS.get, horizontal=True, key=KEY_WHEN)
    as_of = version = None
    if when == WHEN_GUIDELINE:
        version = right.selectbox("Guideline version", versions, index=len(versions) - 1, key=KEY_VERSION,
                                  help="The labels at the moment this version was superseded by the next one.")
    elif when == WHEN_TIME:
        day_col, time_col = right.columns(2)
        today = _dt.datetime.now(_dt.timezone.utc)
        day = day_col.date_input("Date (UTC)", value=today.date(), key=KEY_DATE)
        moment = time_col.time_input("Time (UTC)", value=_dt.time(23, 59), key=KEY_TIME)
        as_of = _dt.datetime.combine(day, moment, tzinfo=_dt.timezone.utc).isoformat()
    return fmt, as_of, version


def _render_summary(bundle) -> None:
    counts = bundle.manifest["counts"]
    cols = st.columns(4)
    cols[0].metric("Samples", f"{counts['rows']:,}")
    cols[1].metric("Changed", f"{counts['changed']:,}")
    cols[2].metric("Excluded (kept, marked)", f"{counts['excluded']:,}")
    cols[3].metric("Trail events", f"{bundle.manifest['files']['trail']['rows']:,}")
    cut = bundle.manifest["labels_as_of"]
    in_force = bundle.manifest["guideline_version_in_force"] or "none published"
    st.markdown(
        f"Labels through event **{cut['last_event_id'] or 0}** · guideline in force: **{in_force}** · "
        f"log verified, chain head `{bundle.manifest['chain_head']}`"
    )


def _render_preview(bundle) -> None:
    frame = bundle.labels
    changed = frame[frame["changed"] | frame["excluded"]]
    st.subheader(f"Changed rows ({int(frame['changed'].sum()):,}) and excluded rows ({int(frame['excluded'].sum()):,})")
    if changed.empty:
        st.write("No label differs from the given one yet, and nothing is excluded: the export equals the input.")
        return
    columns = [c for c in PREVIEW_COLUMNS if c in changed.columns] + ["excluded"]
    st.dataframe(changed[columns], hide_index=True, width="stretch", height=min(420, 38 + 35 * len(changed)))


def _render_downloads(bundle) -> None:
    st.subheader("Download")
    stamp = utc_stamp()
    left, right = st.columns(2)
    left.download_button(
        "Labels + trail + manifest (.zip)", data=bundle.zip_bytes(), file_name=f"{bundle.name}-{stamp}.zip",
        mime="application/zip", type="primary", icon=":material/download:", width="stretch",
    )
    right.download_button(
        f"Labels only ({bundle.labels_file})", data=bundle.files[bundle.labels_file], file_name=bundle.labels_file,
        icon=":material/table:", width="stretch",
    )
    st.markdown("Re-import as a new project's labels:")
    st.code(bundle.manifest["reimport"], language="bash", wrap_lines=True)
    with st.expander("Manifest"):
        st.json(bundle.manifest)


def render() -> None:
    st.title("Export")
    path = state.project_path_or_warn()
    if path is None:
        return
    st.caption("The audited label set with the full trail of its events and a manifest holding the log's chain "
               "head, so anyone can check later that the file matches the log.")
    try:
        head = audit.chain_head(str(path))
        fmt, as_of, version = _render_controls(_versions(str(path), head))
        bundle = _bundle(str(path), head, fmt, as_of, version)
    except AmendError as exc:
        st.error(str(exc))
        return
    _render_summary(bundle)
    _render_preview(bundle)
    _render_downloads(bundle)


render()
