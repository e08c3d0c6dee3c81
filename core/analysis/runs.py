"""Analysis runs as stored: one evidence table and one slices table per run in LanceDB, and the
run record (config, versions, counts, timings) in project.sqlite. The registry row is the commit
point: a run whose row is missing was interrupted and its tables are dropped by the next writer.

Runs never change decisions; reading flags joins a run's evidence with the labels in force now.
"""

from __future__ import annotations

import datetime as _dt
import json
import uuid
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from core.errors import AmendError
from core.store.project import Project
from core.util import listed, utc_now


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    created_at: str
    representation: Optional[str]
    evidence_table: str
    slices_table: Optional[str]
    record: dict


def new_run_id() -> str:
    """Sortable and unique: 'run-20261123T061502-3f9a1c'."""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    return f"run-{stamp}-{uuid.uuid4().hex[:6]}"


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)


def save_run(project: Project, run_id: str, evidence: pd.DataFrame, slices: Optional[pd.DataFrame], record: dict,
             representation: Optional[str]) -> RunInfo:
    """Write the run's tables, then commit its registry row (the run exists from that moment)."""
    evidence_table = f"evidence__{run_id}"
    if "rank" in evidence.columns and not evidence["rank"].is_monotonic_increasing:
        # Stored best first, the order every reader wants: sorting 1M rows of lists on each
        # opening of the run took 2.1 s; here it is paid once per analysis.
        evidence = evidence.sort_values("rank", kind="stable")
    project.db.create_table(evidence_table, data=pa.Table.from_pandas(evidence, preserve_index=False))
    slices_table = None
    if slices is not None:
        slices_table = f"slices__{run_id}"
        project.db.create_table(slices_table, data=pa.Table.from_pandas(slices, preserve_index=False))
    created = utc_now()
    text = json.dumps(record, default=_json_default, sort_keys=True)
    with project.transaction() as con:
        con.execute(
            "INSERT INTO runs VALUES (?,?,?,?,?,?)",
            (run_id, created, representation, evidence_table, slices_table, text),
        )
    return RunInfo(run_id, created, representation, evidence_table, slices_table, json.loads(text))


def list_runs(project: Project) -> list[RunInfo]:
    with project.sql() as con:
        rows = con.execute(
            "SELECT run_id, created_at, representation, evidence_table, slices_table, record FROM runs ORDER BY created_at"
        ).fetchall()
    return [RunInfo(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]


def get_run(project: Project, run_id: Optional[str] = None) -> RunInfo:
    """A run by id; with none, the latest."""
    runs = list_runs(project)
    if not runs:
        raise AmendError(f"{project.path} has no analysis yet; run `amend analyse {project.path}` first.")
    if run_id is None:
        return runs[-1]
    for run in runs:
        if run.run_id == run_id:
            return run
    raise AmendError(f"no run {run_id!r}; runs: {', '.join(r.run_id for r in runs[-5:])}")


def evidence(project: Project, run_id: Optional[str] = None) -> tuple[RunInfo, pd.DataFrame]:
    """A run's per-sample evidence, best first (rank 1 = most likely wrong).

    Runs are stored best first (:func:`save_run`); a run an earlier Amend stored in sample order
    is sorted in Arrow, before its lists become Python lists (sorting 1M rows of lists in pandas
    took 2.1 s of opening the run)."""
    import pyarrow.compute as pc

    run = get_run(project, run_id)
    table = project.db.open_table(run.evidence_table).to_arrow()
    rank = table.column("rank")
    if len(rank) > 1 and not pc.all(pc.less_equal(rank[:-1], rank[1:])).as_py():
        table = table.sort_by([("rank", "ascending")])  # a stable sort, as before
    # One chunk per column: Lance hands back ~1,000 batches at 1M rows, and pandas' Arrow-backed
    # string columns over that many chunks made every later lookup and filter slower (a cold
    # move in triage 111 -> 147 ms p50 at 1M samples).
    return run, table.combine_chunks().to_pandas()


def slices(project: Project, run_id: Optional[str] = None) -> tuple[RunInfo, pd.DataFrame]:
    """A run's slices, ranked by error (the worst first)."""
    run = get_run(project, run_id)
    if run.slices_table is None:
        raise AmendError(f"run {run.run_id} has no slices (it ran without vectors).")
    frame = project.db.open_table(run.slices_table).to_pandas()
    return run, frame.sort_values("error_rank", kind="stable").reset_index(drop=True)


def metadata_groups(project: Project, run_id: Optional[str] = None) -> tuple[RunInfo, list[dict]]:
    """A run's wrong labels by metadata value (:func:`core.slices.groups.metadata_error_groups`),
    the surest first; empty for a run without metadata or probabilities, or of an earlier Amend."""
    run = get_run(project, run_id)
    return run, list(run.record.get("metadata_groups") or [])


def annotator_habits(project: Project, run_id: Optional[str] = None) -> tuple[RunInfo, list[dict]]:
    """A run's annotator habits (:func:`core.detect.annotators.annotator_habits`, by column name,
    with the ids of their samples), the surest first; empty for a run without annotator columns,
    without probabilities, or of an earlier Amend."""
    run = get_run(project, run_id)
    return run, list(run.record.get("annotator_habits") or [])


def detector_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c.startswith("det_")]


def flags(project: Project, run_id: Optional[str] = None, top: Optional[int] = None,
          min_precision: Optional[float] = None) -> tuple[RunInfo, pd.DataFrame]:
    """The ranked list with the labels in force now: every sample, best first.

    ``min_precision``: keep only the flagged samples, and of them the best-ranked part whose
    expected precision (mean estimated error probability) is at least this
    (:func:`core.detect.rank.cut_by_precision`).
    """
    from core.review.labels import current_labels

    run, frame = evidence(project, run_id)
    labels = current_labels(project)[["id", "given_label", "current_label", "status", "last_event_id"]]
    frame = join_on_id(frame, labels)
    if min_precision is not None:
        frame = cut_flags_by_precision(frame, min_precision, run.run_id)
    if top is not None:
        frame = frame.head(top)
    return run, frame


def join_on_id(left: pd.DataFrame, right: pd.DataFrame) -> pd.DataFrame:
    """``left`` with ``right``'s columns joined by ``id`` (missing ones empty), in ``left``'s order;
    each id must appear at most once on either side. The same as pandas' one-to-one validated
    merge, whose check cost 1.5 s of opening a run at 1M samples against 0.4 s for these two."""
    for side, frame in (("evidence", left), ("joined", right)):
        if not frame["id"].is_unique:
            raise AmendError(f"sample ids repeat in the {side} rows; the project's tables are damaged.")
    return left.merge(right, on="id", how="left")


def cut_flags_by_precision(frame: pd.DataFrame, min_precision: float, run_id: str = "") -> pd.DataFrame:
    """The flagged rows of a ranked evidence frame, cut where their expected precision falls
    below ``min_precision``."""
    from core.detect.rank import cut_by_precision

    if not 0.0 <= min_precision <= 1.0:
        raise AmendError(f"--min-precision takes a share between 0 and 1, got {min_precision}.")
    if "error_probability" not in frame.columns:
        raise AmendError(
            f"run {run_id} has no error probabilities (it was made by an earlier Amend); re-run `amend analyse`."
        )
    flagged = frame[frame["flagged"]]
    keep = cut_by_precision(flagged["error_probability"].to_numpy(), min_precision)
    return flagged.head(keep)


def _rounded(value: Any) -> Optional[float]:
    return None if value is None or pd.isna(value) else round(float(value), 6)


def flags_as_records(frame: pd.DataFrame) -> list[dict]:
    """The CLI contract's shape: {id, rank, score, given_label, current_label, suggested_label,
    flagged, detectors: {name: score}} plus the suggestion's source, supporting neighbours and
    the estimated probability that the label is wrong (``error_probability``) and whether a bulk
    acceptance takes its suggestion (``accept_in_bulk``; both None for runs of an earlier Amend)."""
    names = detector_columns(frame)
    records = []
    for row in frame.itertuples(index=False):
        data = row._asdict()
        records.append(
            {
                "id": data["id"], "rank": int(data["rank"]), "score": round(float(data["score"]), 6),
                "given_label": data["given_label"], "current_label": data["current_label"],
                "suggested_label": data["suggested_label"] if isinstance(data["suggested_label"], str) else None,
                "suggested_by": data["suggested_by"] or None,
                "flagged": bool(data["flagged"]),
                "error_probability": _rounded(data.get("error_probability")),
                "accept_in_bulk": bool(data["accept_in_bulk"]) if data.get("accept_in_bulk") is not None else None,
                "detectors": {c[4:]: round(float(data[c]), 6) for c in names if not pd.isna(data[c])},
                "support": [str(x) for x in listed(data.get("support_ids"))],
                "slice_id": int(data["slice_id"]) if "slice_id" in data and not pd.isna(data["slice_id"]) else None,
            }
        )
    return records


def accept_suggested(project: Project, reviewer: str, top: Optional[int] = None, ids: Optional[Sequence[str]] = None,
                     reason: str = "accepted suggestion", guideline_version: Optional[str] = None,
                     run_id: Optional[str] = None, min_precision: Optional[float] = None,
                     identity_source: str = "local", all_flagged: bool = False, os_user: Optional[str] = None):
    """Bulk decision: relabel flagged samples to their suggested label.

    Of the flagged samples chosen (all, ``ids``, the ``top`` best-ranked), only those whose
    suggestion is the most probable true label given the evidence and the given label are
    relabelled (``accept_in_bulk`` of the run, :attr:`core.detect.Detection.accept_in_bulk`);
    the others come back as skipped, left for a person: relabelling them without a look is
    expected to make more labels wrong than right. ``all_flagged=True`` takes every chosen
    suggestion. Only samples nobody has decided yet are touched (expected_event=0), so a bulk
    action never overrides a reviewer's decision; the others come back as skipped with the reason.
    ``min_precision`` first cuts the flagged queue by expected precision (:func:`flags`);
    ``identity_source`` says where the reviewer's name came from ("local" for a name given from Python, "cli", "oidc").
    """
    from core.review import decisions

    run, frame = flags(project, run_id, min_precision=min_precision)
    chosen = frame[frame["flagged"] & frame["suggested_label"].notna()]
    if ids is not None:
        wanted = set(ids)
        unknown = wanted - set(frame["id"])
        if unknown:
            raise AmendError(f"{len(unknown)} ids are not in run {run.run_id}, e.g. {sorted(unknown)[:3]}")
        chosen = chosen[chosen["id"].isin(wanted)]
    held: list[tuple[str, str]] = []
    if ids is not None:
        # asked for by id but not flagged with a suggestion: said, not silently dropped
        flagged_ids = set(chosen["id"])
        unflagged = [sid for sid in dict.fromkeys(ids) if sid not in flagged_ids]
        held += [(sid, f"not flagged with a suggestion in run {run.run_id}; left for a person") for sid in unflagged]
    if top is not None:
        chosen = chosen.head(top)
    if not all_flagged and "accept_in_bulk" in chosen.columns:
        take = chosen["accept_in_bulk"].fillna(True).astype(bool)
        held += [(sid, f"its suggestion {label!r} is not its most probable label; left for a person "
                       "(--all-flagged takes it anyway)")
                 for sid, label in zip(chosen.loc[~take, "id"], chosen.loc[~take, "suggested_label"])]
        chosen = chosen[take]
    requests = [
        decisions.Decision(
            sample_id=row.id, kind="relabel", label=row.suggested_label, expected_event=0,
            evidence={"run_id": run.run_id, "rank": int(row.rank), "score": round(float(row.score), 6),
                      "suggested_by": row.suggested_by},
        )
        for row in chosen.itertuples(index=False)
    ]
    result = decisions.decide_many(project, requests, reviewer=reviewer, reason=reason,
                                   guideline_version=guideline_version, run_id=run.run_id,
                                   identity_source=identity_source, os_user=os_user)
    result.skipped.extend(held)
    return result
