"""Export the audited label set: one row per sample, the trail of its events, and a manifest.

Three files, named after the labels file ``<name>.<ext>``:

- ``<name>.<ext>`` (Parquet, CSV or JSONL): one row per committed sample, in project order —
  :data:`IMAGE_COLUMNS` or :data:`TEXT_COLUMNS`. Excluded samples are kept, with ``excluded``
  true; nothing is dropped. The columns are those ``amend init`` reads back: ``id``, ``path``
  (relative to the manifest's ``image_root``) or ``text``, ``split``, and ``final_label`` as the
  label column (``amend init NEW --manifest FILE --root ROOT --label-column final_label``, or
  ``--texts FILE --label-column final_label``); every other column becomes metadata there.
- ``<name>.trail.<ext>``: every event on the exported samples up to the export's cutoff, in chain
  order, with the canonical payload JSON and both hashes, so each event's hash can be recomputed
  (see :mod:`core.review.audit`).
- ``<name>.manifest.json``: counts, the label set, the guideline version in force, the log's
  chain head as :func:`core.review.audit.verify` computed it, the analysis run ids, Amend's version,
  the cutoff, and the sha256 of both data files; for CSV, ``csv_formula_cells_neutralised``;
  ``checkpoint``: the signed checkpoint below.
- ``<name>.checkpoint.json``: the log's (size, chain head) at the export, signed with the user's
  key (:mod:`core.review.checkpoints`); :func:`export` also records it in the project.
  ``amend audit verify PROJECT --checkpoint EXPORT_FOLDER`` checks the log still extends it: whoever
  receives the export holds a witness of the log.

CSV is opened in spreadsheets, so a string cell starting with ``=``, ``+``, ``-``, ``@``, a tab or
a carriage return (a crafted label or reason) gets a leading ``'`` there (:mod:`core.csvsafe`) and
the manifest counts and explains them; Parquet and JSONL keep every value verbatim.

Reproducible: the same log, samples and options give byte-identical data files; the manifest
differs only in ``exported_at`` and the checkpoint signed at that time. An export refuses to run on
a log that fails verification (:func:`core.review.audit.verify`, anchors included).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import logging
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import pyarrow as pa

from core import csvsafe
from core.errors import AmendError
from core.util import ProgressCallback, no_progress
from core.review import audit
from core.store.project import Project

logger = logging.getLogger(__name__)

__all__ = ["FORMATS", "ExportBundle", "build_export", "export", "label_rows", "format_for"]

FORMATS = ("parquet", "csv", "jsonl")
SUFFIXES = {"parquet": ".parquet", "csv": ".csv", "jsonl": ".jsonl"}
EXPORT_FORMAT = "amend-export"
EXPORT_VERSION = 1
DECISION_COLUMNS = ["given_label", "final_label", "changed", "excluded", "status", "decision", "reviewer",
                    "decided_at", "reason", "guideline_version", "last_event_id"]
IMAGE_COLUMNS = ["id", "path", "split", "content_hash", *DECISION_COLUMNS]
TEXT_COLUMNS = ["id", "text", "split", "content_hash", *DECISION_COLUMNS]
TRAIL_COLUMNS = ["event_id", "kind", "sample_id", "actor", "created_at", "decision", "old_label", "new_label",
                 "reason", "guideline_version", "run_id", "payload", "prev_hash", "hash"]
_STATUS_DECISION = {"relabelled": "relabel", "kept": "keep", "ambiguous": "ambiguous", "excluded": "exclude"}
_INT_COLUMNS = {"last_event_id", "event_id"}
_BOOL_COLUMNS = {"changed", "excluded"}


def format_for(out: str | os.PathLike, fmt: Optional[str] = None) -> str:
    """The export format: ``fmt`` when given (checked against the file's suffix), else the suffix's."""
    suffix = Path(out).suffix.lower()
    by_suffix = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
    if fmt is not None:
        if fmt not in FORMATS:
            raise AmendError(f"export format {fmt!r} is unknown; use one of {', '.join(FORMATS)}.")
        if suffix in by_suffix and by_suffix[suffix] != fmt:
            raise AmendError(f"{out} ends in {suffix} but --format is {fmt}; make them agree.")
        return fmt
    if suffix not in by_suffix:
        raise AmendError(f"cannot tell the format of {out}; name it .parquet, .csv or .jsonl, or pass --format.")
    return by_suffix[suffix]


# --------------------------------------------------------------------------- rows
def _cutoff(project: Project, as_of: Optional[str], guideline_version: Optional[str],
            up_to_event: Optional[int]) -> tuple[Optional[int], Optional[str]]:
    """(event id limit, normalised time limit) exactly as core.review.labels.current_labels applies them."""
    from core.review.labels import guideline_cutoff

    limit = up_to_event
    if guideline_version is not None:
        cut = guideline_cutoff(project, guideline_version)
        if cut is not None:
            limit = cut if limit is None else min(limit, cut)
    return limit, (audit.normalise_time(as_of) if as_of is not None else None)


def label_rows(project: Project, as_of: Optional[str] = None, guideline_version: Optional[str] = None,
               up_to_event: Optional[int] = None) -> pd.DataFrame:
    """The exported label table (before it is written): one row per committed sample.

    Parameters
    ----------
    as_of : str, optional (default: now)
        ISO time; only decisions up to it count.
    guideline_version : str, optional
        The labels when this version was superseded (see :func:`core.review.labels.current_labels`).
    up_to_event : int, optional
        Only events up to this id count.

    Returns
    -------
    DataFrame with :data:`IMAGE_COLUMNS` or :data:`TEXT_COLUMNS` (by the project's modality),
    paths relative to :func:`image_root`.
    """
    from core.review.labels import current_labels

    samples = project.samples(columns=["id", "modality", "root", "path", "text", "split", "content_hash"])
    labels = current_labels(project, as_of=as_of, up_to_event=up_to_event, guideline_version=guideline_version)
    frame = samples.merge(labels, on="id", how="left", validate="one_to_one")
    modality = project.modality() or "text"
    out = pd.DataFrame({"id": frame["id"].astype(str)})
    if modality == "image":
        root = image_root(samples)
        out["path"] = [
            Path(os.path.relpath(os.path.join(r, p), root)).as_posix() for r, p in zip(frame["root"], frame["path"])
        ]
    else:
        out["text"] = frame["text"]
    out["split"] = frame["split"].where(frame["split"].notna(), None)
    out["content_hash"] = frame["content_hash"]
    out["given_label"] = frame["given_label"]
    out["final_label"] = frame["current_label"]
    out["changed"] = (frame["current_label"] != frame["given_label"]).astype(bool)
    out["excluded"] = frame["excluded"].astype(bool)
    out["status"] = frame["status"]
    out["decision"] = frame["status"].map(_STATUS_DECISION)
    out["reviewer"] = frame["reviewer"]
    out["decided_at"] = frame["decided_at"]
    out["reason"] = frame["reason"]
    out["guideline_version"] = frame["guideline_version"]
    out["last_event_id"] = frame["last_event_id"].astype("Int64")
    out = out.astype({c: object for c in out.columns if c not in _INT_COLUMNS | _BOOL_COLUMNS})
    return out.where(out.notna(), None).astype({"last_event_id": "Int64", "changed": bool, "excluded": bool})


def image_root(samples: pd.DataFrame) -> Optional[str]:
    """The folder every exported image path is relative to: the samples' dataset root, or the
    common ancestor of several roots. None for a text project."""
    roots = sorted({r for r in samples["root"].dropna()}) if "root" in samples else []
    if not roots:
        return None
    return roots[0] if len(roots) == 1 else os.path.commonpath(roots)


def _trail(project: Project, ids: set[str], limit: Optional[int], until: Optional[str]) -> pd.DataFrame:
    rows = []
    for event in audit.read_events(project, up_to_event=limit, until=until):
        if event.sample_id is None or event.sample_id not in ids:
            continue
        p = event.payload
        rows.append({
            "event_id": event.event_id, "kind": event.kind, "sample_id": event.sample_id, "actor": event.actor,
            "created_at": event.created_at, "decision": p.get("decision"), "old_label": p.get("old_label"),
            "new_label": p.get("new_label"), "reason": p.get("reason"), "guideline_version": p.get("guideline_version"),
            "run_id": p.get("run_id"), "payload": audit.canonical_json(p), "prev_hash": event.prev_hash,
            "hash": event.hash,
        })
    frame = pd.DataFrame(rows, columns=TRAIL_COLUMNS).astype(object)
    frame["event_id"] = frame["event_id"].astype("int64")
    return frame


# --------------------------------------------------------------------------- serialise
def _arrow(frame: pd.DataFrame) -> pa.Table:
    arrays, fields = [], []
    for column in frame.columns:
        values = frame[column]
        if column in _INT_COLUMNS:
            typ = pa.int64()
            data = [None if pd.isna(v) else int(v) for v in values]
        elif column in _BOOL_COLUMNS:
            typ = pa.bool_()
            data = [bool(v) for v in values]
        else:
            typ = pa.string()
            data = [None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in values]
        arrays.append(pa.array(data, type=typ))
        fields.append(pa.field(column, typ))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def serialise(frame: pd.DataFrame, fmt: str) -> bytes:
    """The bytes of ``frame`` in ``fmt``: deterministic for equal frames (no timestamps, no pandas
    metadata; CSV with '\\n' line ends and true/false, formula-like cells neutralised (see
    :mod:`core.csvsafe`); JSONL one object a line, keys in column order)."""
    return serialise_counted(frame, fmt)[0]


def serialise_counted(frame: pd.DataFrame, fmt: str) -> tuple[bytes, int]:
    """:func:`serialise`, and how many CSV cells were neutralised (always 0 for Parquet and JSONL,
    which keep every value verbatim)."""
    if fmt == "csv":
        # Before _arrow, which stringifies the object columns the same way either way.
        frame, neutralised = csvsafe.neutralise_frame(frame)
    else:
        neutralised = 0
    table = _arrow(frame)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd")
        return sink.getvalue().to_pybytes(), 0
    records = table.to_pylist()
    if fmt == "jsonl":
        data = "".join(json.dumps(r, ensure_ascii=False, allow_nan=False) + "\n" for r in records).encode("utf-8")
        return data, 0
    if fmt == "csv":
        import csv

        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(table.column_names)
        for r in records:
            writer.writerow(["" if v is None else ("true" if v is True else "false" if v is False else v) for v in r.values()])
        return buffer.getvalue().encode("utf-8"), neutralised
    raise AmendError(f"export format {fmt!r} is unknown; use one of {', '.join(FORMATS)}.")


# --------------------------------------------------------------------------- export
@dataclass
class ExportBundle:
    """An export in memory: the tables, the file bytes by name, and the manifest."""

    name: str
    format: str
    labels: pd.DataFrame
    trail: pd.DataFrame
    manifest: dict
    files: dict[str, bytes] = field(default_factory=dict)
    suffix: str = ""

    @property
    def labels_file(self) -> str:
        return f"{self.name}{self.suffix or SUFFIXES[self.format]}"

    @property
    def trail_file(self) -> str:
        return f"{self.name}.trail{self.suffix or SUFFIXES[self.format]}"

    @property
    def manifest_file(self) -> str:
        return f"{self.name}.manifest.json"

    @property
    def checkpoint_file(self) -> str:
        return f"{self.name}.checkpoint.json"

    def write(self, directory: str | os.PathLike) -> dict[str, Path]:
        """Write the files into ``directory`` (each through a temporary file, then renamed)."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        written = {}
        for name, data in self.files.items():
            target = folder / name
            temporary = folder / f".{name}.partial"
            temporary.write_bytes(data)
            os.replace(temporary, target)
            written[name] = target
        return written

    def zip_bytes(self) -> bytes:
        """The files in one zip (fixed member times, so equal exports give equal data)."""
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, data in self.files.items():
                info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, data)
        return buffer.getvalue()

    def to_json(self) -> dict:
        """The CLI contract: rows, changed, chain_head, plus the rest of the counts and the files."""
        counts = self.manifest["counts"]
        return {"rows": counts["rows"], "changed": counts["changed"], "excluded": counts["excluded"],
                "chain_head": self.manifest["chain_head"], "trail_events": self.manifest["files"]["trail"]["rows"],
                "format": self.format, "files": sorted(self.files), "reimport": self.manifest["reimport"],
                "checkpoint": self.manifest.get("checkpoint"),
                **({"csv_formula_cells_neutralised": self.manifest["csv_formula_cells_neutralised"]}
                   if "csv_formula_cells_neutralised" in self.manifest else {})}


def _counts(frame: pd.DataFrame) -> dict:
    return {
        "rows": int(len(frame)),
        "changed": int(frame["changed"].sum()),
        "excluded": int(frame["excluded"].sum()),
        "reviewed": int((frame["status"] != "unreviewed").sum()),
        "status": {k: int(v) for k, v in sorted(frame["status"].value_counts().items())},
        "final_label": {k: int(v) for k, v in sorted(frame["final_label"].value_counts().items())},
        "given_label": {k: int(v) for k, v in sorted(frame["given_label"].value_counts().items())},
    }


def build_export(project: Project, fmt: str = "parquet", name: str = "labels", as_of: Optional[str] = None,
                 guideline_version: Optional[str] = None, up_to_event: Optional[int] = None,
                 progress: ProgressCallback = no_progress, suffix: Optional[str] = None) -> ExportBundle:
    """Build an export in memory (see the module docstring for what it holds).

    Parameters
    ----------
    project : Project
    fmt : str, default "parquet"
        One of :data:`FORMATS`.
    name : str, default "labels"
        The labels file's name without suffix; the trail and manifest are named after it.
    as_of, guideline_version, up_to_event : optional
        Which labels: as of a time / when a guideline version was superseded / after an event
        (default: now, every event). Several combine; the earliest cutoff wins.
    progress : callable
        ``progress("export", done, total)``.
    suffix : str, optional
        The data files' suffix (default the format's: ``.parquet``, ``.csv``, ``.jsonl``).

    Raises
    ------
    AmendError when the log fails verification (nothing is exported) or an option is invalid.
    """
    from core import __version__
    from core.analysis import runs as runs_mod
    from core.review import checkpoints, guidelines

    if fmt not in FORMATS:
        raise AmendError(f"export format {fmt!r} is unknown; use one of {', '.join(FORMATS)}.")
    progress("export", 0, 4)
    check = audit.verify(project)
    if not check.ok:
        raise AmendError(f"the review log fails verification ({check.problem}); nothing was exported. "
                         "Run `amend audit verify` and restore the log first.")
    exported_at = audit.utc_now()
    statement = checkpoints.sign(project, check.events, check.chain_head, time=exported_at)
    limit, until = _cutoff(project, as_of, guideline_version, up_to_event)
    labels = label_rows(project, as_of=as_of, guideline_version=guideline_version, up_to_event=up_to_event)
    progress("export", 1, 4)
    trail = _trail(project, set(labels["id"]), limit, until)
    included = audit.read_events(project, up_to_event=limit, until=until)
    last = included[-1] if included else None
    published = [v for v in guidelines.list_versions(project) if last is not None and v.event_id <= last.event_id]
    decisions_runs = sorted({r for r in trail["run_id"] if isinstance(r, str)})
    modality = project.modality() or "text"
    root = image_root(project.samples(columns=["root"])) if modality == "image" else None
    bundle = ExportBundle(name=name, format=fmt, labels=labels, trail=trail, manifest={}, suffix=suffix or "")
    labels_bytes, labels_neutralised = serialise_counted(labels, fmt)
    trail_bytes, trail_neutralised = serialise_counted(trail, fmt)
    progress("export", 2, 4)
    if modality == "image":
        reimport = (f"amend init NEW_PROJECT --manifest {bundle.labels_file} --root {root} "
                    "--label-column final_label")
    else:
        reimport = f"amend init NEW_PROJECT --texts {bundle.labels_file} --label-column final_label"
    manifest = {
        "format": EXPORT_FORMAT,
        "export_version": EXPORT_VERSION,
        "amend_version": __version__,
        "exported_at": exported_at,
        "project": {"name": project.path.name, "path": str(project.path), "modality": modality},
        "files": {
            "labels": {"name": bundle.labels_file, "format": fmt, "rows": int(len(labels)),
                       "columns": list(labels.columns), "sha256": hashlib.sha256(labels_bytes).hexdigest()},
            "trail": {"name": bundle.trail_file, "format": fmt, "rows": int(len(trail)),
                      "columns": list(trail.columns), "sha256": hashlib.sha256(trail_bytes).hexdigest()},
        },
        "counts": _counts(labels),
        "label_set": project.labels(),
        "labels_as_of": {
            "as_of": until, "guideline_version": guideline_version, "up_to_event": up_to_event,
            "last_event_id": None if last is None else last.event_id,
            "last_event_hash": audit.GENESIS if last is None else last.hash,
        },
        "guideline_version_in_force": published[-1].version if published else None,
        "guideline_versions": [{"version": v.version, "sha256": v.sha256, "event_id": v.event_id} for v in published],
        "chain_head": check.chain_head,
        "log_events": check.events,
        "chain_verified": check.ok,
        "anchors_verified": check.anchors,
        "checkpoint": {"file": bundle.checkpoint_file, "size": statement["size"], "chain_head": statement["chain_head"],
                       "time": statement["time"], "public_key": statement["public_key"],
                       "signature": statement["signature"]},
        "runs": [r.run_id for r in runs_mod.list_runs(project)],
        "runs_cited_by_decisions": decisions_runs,
        "image_root": root,
        "reimport": reimport,
    }
    if fmt == "csv":
        manifest["csv_formula_cells_neutralised"] = labels_neutralised + trail_neutralised
        manifest["csv_formula_cells"] = {"labels": labels_neutralised, "trail": trail_neutralised,
                                         "explanation": csvsafe.EXPLANATION}
    progress("export", 3, 4)
    bundle.manifest = manifest
    bundle.files = {
        bundle.labels_file: labels_bytes,
        bundle.trail_file: trail_bytes,
        bundle.manifest_file: (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8"),
        bundle.checkpoint_file: (json.dumps(statement, indent=2, sort_keys=True) + "\n").encode("utf-8"),
    }
    progress("export", 4, 4)
    return bundle


def export(project: Project, out: str | os.PathLike, fmt: Optional[str] = None, as_of: Optional[str] = None,
           guideline_version: Optional[str] = None, up_to_event: Optional[int] = None,
           progress: ProgressCallback = no_progress) -> ExportBundle:
    """Write an export: the labels to ``out``, the trail and manifest beside it.

    Parameters
    ----------
    out : path
        The labels file (``labels.csv``), or an existing folder (then ``labels.<ext>`` in it).
    fmt : str, optional
        ``parquet``, ``csv`` or ``jsonl``; default from ``out``'s suffix (parquet for a folder).
    as_of, guideline_version, up_to_event, progress : see :func:`build_export`.
    """
    target = Path(out)
    if target.is_dir():
        fmt = fmt or "parquet"
        if fmt not in FORMATS:
            raise AmendError(f"export format {fmt!r} is unknown; use one of {', '.join(FORMATS)}.")
        target = target / f"labels{SUFFIXES[fmt]}"
    fmt = format_for(target, fmt)
    name = target.name[: -len(target.suffix)] if target.suffix else target.name
    bundle = build_export(project, fmt=fmt, name=name, as_of=as_of, guideline_version=guideline_version,
                          up_to_event=up_to_event, progress=progress, suffix=target.suffix)
    from core.review import checkpoints

    written = bundle.write(target.parent)
    checkpoint = bundle.manifest["checkpoint"]
    checkpoints.record(project, checkpoint["size"], checkpoint["chain_head"], "export",
                       str(written[bundle.checkpoint_file].resolve()),
                       json.loads(bundle.files[bundle.checkpoint_file]))
    return bundle


def read_labels(path: str | os.PathLike) -> pd.DataFrame:
    """Read an exported labels (or trail) file back into a DataFrame, by suffix."""
    file = Path(path)
    fmt = format_for(file)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.read_table(file).to_pandas()
    if fmt == "jsonl":
        return pd.read_json(file, lines=True, dtype=False)
    return pd.read_csv(file, dtype=str, keep_default_na=False)


def utc_stamp() -> str:
    """A compact UTC time for default export names: 20261123T061502Z."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
