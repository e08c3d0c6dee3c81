"""Ingest: bring samples into a project, one reader per source kind, with a report of every row
not taken and why.

Sources (exactly one per ingest; a project holds one modality, image or text):

- ``images``: a folder of class folders, ``DIR/<label>/<file>``. Only direct, non-hidden files of
  each non-hidden label folder are read (nothing deeper: a folder inside a label folder is
  rejected "not a file"; a file at the top level is rejected "missing label"). Every file is tried
  whatever its extension: one Pillow cannot read is rejected "not an image".
- ``manifest``: a CSV / TSV, JSONL or Parquet table with ``path`` and ``label`` columns, optional
  ``id`` and ``split``; paths are relative to ``root`` (default: the manifest's folder).
- ``texts``: a CSV / TSV, JSONL or Parquet table with ``text`` and ``label``, optional ``id`` and
  ``split``.

Every column not used as id / label / split / path / text is metadata, stored as one JSON object
per sample whose values keep their types (CSV cells are typed per column: a column whose filled
cells are all integers is int, else float, else true/false, else string; an empty cell is null;
labels, ids and splits are always strings, surrounding blanks removed from labels and splits).
``annotator_columns`` name further label columns (several annotators): they must exist, are kept
in metadata as strings, and are recorded in the ingest's options.

Row numbers. A reject's ``row`` (and each sample's ``source_row``) is the 1-based position of the
record in its source, not counting a header:

- CSV / TSV: the first data record after the header is row 1; blank lines are not records and are
  not counted; a quoted field spanning several lines is still one record.
- JSONL: the line number in the file (1 = first line; blank lines are skipped but still counted).
- Parquet: the row index + 1.
- Image folders: the position in the sorted listing of the files (sorted by label folder, then by
  file name; top-level files, which have no label, sort first), 1-based.

Ids. The ``id`` column when present (stringified: 5.0 -> "5"; an empty id is rejected "missing
id"). Otherwise generated deterministically: images -> the POSIX path relative to the root
(``cat/001.jpg``); texts -> ``"t"`` + the first 16 hex digits of sha256(text), with ``-2``,
``-3``, ... for the 2nd, 3rd ... identical text in the same source. Identical texts are not
merged: conflicting duplicates stay visible to later analysis.

Re-ingest. A row whose id is already in the project with the same content hash and label counts
as ``unchanged`` (neither added nor rejected); the same id with another content hash or label is
rejected "id already in project with different content" (the given label never changes; a
correction is a decision). Ingesting the same source twice adds nothing.

Reject reasons (``reason`` is one of these stable phrases; ``detail`` says the specifics):
see :data:`REJECT_REASONS`.

Limits (:mod:`core.ingest.limits`, each set by an environment variable): a table source that is
not a regular file (a pipe, a device, a link to one) or is larger than ``AMEND_MAX_SOURCE_BYTES``
is refused whole; an image whose header gives more than ``AMEND_MAX_PIXELS`` pixels is rejected
"image too large" before it is decoded; a text, label, id or path longer than
``AMEND_MAX_TEXT_CHARS`` is rejected "text too long".

Content hashes: images, sha256 of the file bytes; texts, sha256 of the text's UTF-8 bytes.
Images are never copied: a sample keeps the dataset ``root`` (absolute, resolved) and its
``path`` relative to it; :mod:`core.ingest.media` re-checks the hash when the file is shown.

Atomicity: the rows of one ingest become visible together when the project commits the ingest
record (see :meth:`core.store.project.Project.ingest_transaction`); a process killed mid-ingest leaves
the project as it was, and the next writer removes what it had written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional

import numpy as np

from core.errors import AmendError
from core.ingest import images as _images
from core.ingest import limits as _limits
from core.ingest.tables import Table, as_text, is_missing, open_table, surrogate_at
from core.util import ProgressCallback, no_progress
from core.store.project import Project

logger = logging.getLogger(__name__)

__all__ = ["IngestOptions", "IngestReport", "REJECT_REASONS", "ingest"]

#: Every reject reason an ingest can give, with what it means.
REJECT_REASONS: dict[str, str] = {
    "bad row": "a JSONL line that is not a JSON object (or nests too deeply), a CSV record with the wrong number "
               "of fields, or a Parquet row holding a value Python cannot represent (a date past year 9999)",
    "bad encoding": "text not valid in the declared encoding (the detail gives the byte offset), or a file or "
                    "label folder name that is not UTF-8",
    "missing id": "the id column is present but empty for this row",
    "duplicate id": "an earlier row of the same source already has this id (the detail names it)",
    "id already in project with different content": "the id exists with another content hash or label",
    "missing label": "the label is empty, null, NaN or the text nan / NaN / <NA> (what pandas and numpy write for a "
                     "missing value), or an image is not inside a label folder",
    "structured value": "the id, text, path or label is a JSON object or list (or a nested Parquet value), not a "
                        "single value",
    "unknown label": "the label is outside the declared label set",
    "empty text": "the text is empty or whitespace only",
    "path escapes root": "'..' leading outside the root, an absolute path outside it, or a link whose target is",
    "missing file": "the path does not exist (or is empty)",
    "not a file": "the path is a folder (or a device, pipe or socket) where a file is expected",
    "unreadable file": "the file exists but cannot be read (permissions)",
    "empty file": "the file has zero bytes",
    "not an image": "Pillow cannot identify the file as an image",
    "image too large": "the image's header gives more pixels (width x height) than AMEND_MAX_PIXELS allows "
                       "(default 100,000,000); checked before it is decoded",
    "text too long": "the text, label, id or path has more characters than AMEND_MAX_TEXT_CHARS allows "
                     "(default 1,000,000)",
    "truncated image": "the image data ends early",
    "corrupt image": "the image is identified but does not decode",
}

PROGRESS_EVERY = 256
MISSING_LABEL_TEXTS = {"nan", "<na>"}  # lower-cased label texts of a table that mean "no label"


@dataclass
class IngestOptions:
    """What to ingest and how to read it. Give exactly one of ``images``, ``manifest``, ``texts``.

    Attributes
    ----------
    images : class folders ``DIR/<label>/<file>``.
    manifest : CSV / TSV, JSONL or Parquet with ``path,label`` (+ id, split, metadata).
    texts : CSV / TSV, JSONL or Parquet with ``text,label`` (+ id, split, metadata).
    root : manifest paths are relative to this (default: the manifest's folder).
    label_column, text_column, path_column : column names (defaults "label", "text", "path").
    id_column : used when present (default "id"); otherwise ids are generated.
    split_column : used when present (default "split").
    labels : the declared label set; rows with other labels are rejected "unknown label".
    encoding : the text encoding of CSV / JSONL files (default "utf-8").
    annotator_columns : extra label columns (several annotators), kept in metadata.
    """

    images: Optional[Path] = None
    manifest: Optional[Path] = None
    texts: Optional[Path] = None
    root: Optional[Path] = None
    label_column: str = "label"
    text_column: str = "text"
    path_column: str = "path"
    id_column: str = "id"
    split_column: str = "split"
    labels: Optional[list[str]] = None
    encoding: str = "utf-8"
    annotator_columns: Optional[list[str]] = None


@dataclass
class IngestReport:
    """What one ingest did. ``rejects``: ``{row, id, reason, detail}`` sorted by row; ``labels``:
    the project's label set after the ingest."""

    ingest_id: int
    taken: int
    unchanged: int
    rejected: int
    rejects: list[dict] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "ingest_id": self.ingest_id,
            "taken": self.taken,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
            "rejects": [dict(r) for r in self.rejects],
            "labels": list(self.labels),
        }


def ingest(project: Project, options: IngestOptions, progress: ProgressCallback = no_progress) -> IngestReport:
    """Read one source into ``project`` atomically and report what was taken and rejected.

    Raises AmendError (before anything is written) for a wrong set of sources, a missing file or
    column, a label set that contradicts the project's, or a source of the other modality.
    Calls ``progress("ingest", done, total)`` every few hundred rows.
    """
    plan = _plan(options)
    with project.writer("ingest"):
        held = project.modality()
        if held is not None and held != plan.modality:
            raise AmendError(
                f"{project.path} holds {held} samples; a project holds one modality, so {plan.modality}s "
                "cannot be added. Create another project for them."
            )
        declared = _declared_labels(project, options.labels)
        existing = {
            sid: (digest, label)
            for sid, digest, label in project.samples(columns=["id", "content_hash", "label"]).itertuples(index=False)
        }
        with project.ingest_transaction(plan.source, plan.kind, plan.root, plan.options) as writer:
            if options.labels is not None:
                writer.declared_labels = declared
            rows = _Rows(writer, existing, declared, progress, plan.total)
            plan.run(rows)
            writer.flush()  # the last partial batch: ingest_transaction commits what is in LanceDB
            rows.report_progress()
    rejects = sorted(writer.rejects, key=lambda r: (r["row"] is None, r["row"] or 0))
    report = IngestReport(
        ingest_id=writer.ingest_id,
        taken=writer.taken,
        unchanged=writer.unchanged,
        rejected=len(rejects),
        rejects=rejects,
        labels=project.labels(),
    )
    logger.info("ingest %d of %s: %d taken, %d unchanged, %d rejected",
                report.ingest_id, plan.source, report.taken, report.unchanged, report.rejected)
    return report


# ------------------------------------------------------------------------------------ planning
@dataclass
class _Plan:
    modality: str
    kind: str
    source: str
    root: Optional[str]
    options: dict
    total: Optional[int]
    run: Callable[["_Rows"], None]


def _plan(options: IngestOptions) -> _Plan:
    given = [name for name in ("images", "manifest", "texts") if getattr(options, name) is not None]
    if len(given) != 1:
        what = "none" if not given else " and ".join(given)
        raise AmendError(
            f"give exactly one source: --images DIR, --manifest FILE or --texts FILE (got {what})."
        )
    if options.root is not None and not options.manifest:
        raise AmendError("--root only applies to --manifest (paths in a manifest are relative to it); drop it.")
    if options.annotator_columns and options.images:
        raise AmendError("--annotator-columns needs a table (--manifest or --texts), not an image folder.")
    recorded: dict[str, Any] = {
        "labels": list(options.labels) if options.labels is not None else None,
        "annotator_columns": list(options.annotator_columns or []),
    }
    if options.images is not None:
        return _plan_folder(Path(options.images), recorded)
    recorded.update(
        encoding=options.encoding,
        label_column=options.label_column,
        id_column=options.id_column,
        split_column=options.split_column,
    )
    if options.manifest is not None:
        recorded["path_column"] = options.path_column
        return _plan_manifest(Path(options.manifest), options, recorded)
    recorded["text_column"] = options.text_column
    return _plan_texts(Path(options.texts), options, recorded)


def _declared_labels(project: Project, given: Optional[list[str]]) -> Optional[list[str]]:
    """The label set rows are checked against: ``--labels``, else the project's declared set."""
    held = project.declared_labels()
    if given is None:
        return held
    labels = [str(label).strip() for label in given]
    if not labels or any(not label for label in labels):
        raise AmendError("--labels needs a comma-separated list of non-empty label names.")
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:
        raise AmendError(f"--labels names {', '.join(twice)} more than once; give each label once.")
    if held is not None:
        if set(held) != set(labels):
            raise AmendError(
                f"this project's label set was declared as {', '.join(held)}; ingest with the same --labels "
                "or without --labels."
            )
        return held
    outside = sorted(set(project.labels()) - set(labels))
    if outside:
        raise AmendError(
            f"this project already holds labels outside --labels ({', '.join(outside)}); "
            "include them in --labels or ingest without it."
        )
    return labels


def _columns(table: Table, options: IngestOptions, required: dict[str, str]) -> dict[str, Optional[str]]:
    """Check the table has the columns it needs; return role -> column (None: absent optional)."""
    have = table.columns
    shown = ", ".join(have) if have else "(none)"
    for role, column in required.items():
        if column not in have:
            raise AmendError(
                f"{table.path} has no {column!r} column for the {role}; its columns are: {shown}. "
                f"Name the right one with --{role}-column."
            )
    roles: dict[str, Optional[str]] = dict(required)
    for role, column, default in (("id", options.id_column, "id"), ("split", options.split_column, "split")):
        if column in have:
            roles[role] = column
        elif column != default:
            raise AmendError(f"{table.path} has no {column!r} column for the {role}; its columns are: {shown}.")
        else:
            roles[role] = None
    for column in options.annotator_columns or []:
        if column not in have:
            raise AmendError(f"{table.path} has no annotator column {column!r}; its columns are: {shown}.")
        if column in roles.values():
            raise AmendError(f"annotator column {column!r} is already used as the {_role_of(roles, column)}.")
    return roles


def _role_of(roles: dict[str, Optional[str]], column: str) -> str:
    return next(role for role, name in roles.items() if name == column)


# ------------------------------------------------------------------------------------ row sink
class _Rows:
    """Final checks shared by every reader (label, duplicate id, already in the project) in front
    of the IngestWriter, plus progress."""

    def __init__(self, writer, existing: dict[str, tuple[str, str]], declared: Optional[list[str]],
                 progress: ProgressCallback, total: Optional[int]) -> None:
        self.writer = writer
        self.existing = existing
        self.declared = declared
        self.declared_set = set(declared) if declared is not None else None
        self.progress = progress
        self.total = total
        self.done = 0
        self.claimed: dict[str, int] = {}  # id -> the row that has it in this source
        self.max_chars = _limits.max_text_chars()

    def tick(self) -> None:
        self.done += 1
        if self.done % PROGRESS_EVERY == 0:
            self.report_progress()

    def report_progress(self) -> None:
        self.progress("ingest", self.done, self.total)

    def reject(self, row: int, sample_id: Optional[str], reason: str, detail: str) -> None:
        assert reason in REJECT_REASONS, reason
        self.writer.reject(row, sample_id, reason, detail)
        self.tick()

    def text_value(self, row: int, sample_id: Optional[str], value: Any, what: str, encoding: str) -> Optional[str]:
        """``value`` as a string, or None after rejecting it "structured value" or "bad encoding"."""
        if isinstance(value, (dict, list, tuple, np.ndarray)):
            # A JSON object / list (or a nested Parquet value) has no one string form: its Python
            # repr would become an id or label nobody typed.
            kind = "object" if isinstance(value, dict) else "list"
            self.reject(row, sample_id, "structured value",
                        f"The {what} is a JSON {kind}, not a single value; give it as a string.")
            return None
        try:
            text = value if isinstance(value, str) else as_text(value, encoding)
        except UnicodeDecodeError as exc:
            self.reject(row, sample_id, "bad encoding",
                        f"The {what} has byte 0x{exc.object[exc.start]:02X} at offset {exc.start} of the value, "
                        f"not valid {encoding}.")
            return None
        if len(text) > self.max_chars:
            self.reject(row, sample_id, "text too long",
                        f"The {what} has {len(text):,} characters, over the limit of {self.max_chars:,} "
                        "(set AMEND_MAX_TEXT_CHARS to allow more).")
            return None
        index = surrogate_at(text)
        if index is not None:
            self.reject(row, sample_id, "bad encoding",
                        f"The {what} holds a lone surrogate (U+{ord(text[index]):04X}) at character {index}, "
                        "which is not text (an escaped undecodable byte?).")
            return None
        return text

    def label(self, row: int, sample_id: Optional[str], value: Any, encoding: str,
              from_table: bool = True) -> Optional[str]:
        """The row's label, or None after rejecting the row. In a table (``from_table``), the text
        "nan" in any case and "<NA>" count as missing: they are what pandas and numpy write for a
        missing value, never a class someone named (an image folder's name is taken as it is)."""
        if is_missing(value):
            self.reject(row, sample_id, "missing label", f"Row {row} has no label.")
            return None
        label = self.text_value(row, sample_id, value, "label", encoding)
        if label is None:
            return None
        label = label.strip()
        if from_table and label.lower() in MISSING_LABEL_TEXTS:
            self.reject(row, sample_id, "missing label",
                        f"Row {row}'s label is {label!r}, the text pandas and numpy write for a missing value, "
                        "not a class name; give the row its label or leave it out.")
            return None
        if self.declared_set is not None and label not in self.declared_set:
            shown = ", ".join(self.declared[:20]) + (", ..." if len(self.declared) > 20 else "")
            self.reject(row, sample_id, "unknown label", f"Label {label!r} is not in the declared label set ({shown}).")
            return None
        return label

    def keep(self, row: int, sample: dict[str, Any]) -> None:
        """Add a row that passed its own checks, unless its id is taken or already in the project."""
        sid = sample["id"]
        first = self.claimed.get(sid)
        if first is not None:
            self.reject(row, sid, "duplicate id", f"Id {sid!r} was already given by row {first}, which won.")
            return
        self.claimed[sid] = row
        held = self.existing.get(sid)
        if held is not None:
            digest, label = held
            if digest == sample["content_hash"] and label == sample["label"]:
                self.writer.unchanged += 1
                self.tick()
            elif digest != sample["content_hash"]:
                self.reject(row, sid, "id already in project with different content",
                            f"Id {sid!r} is in the project with content sha256 {digest[:12]}..., this row has "
                            f"{sample['content_hash'][:12]}...; give it another id.")
            else:
                self.reject(row, sid, "id already in project with different content",
                            f"Id {sid!r} is in the project with label {label!r}, this row says {sample['label']!r}; "
                            "a given label never changes (record a decision to correct it).")
            return
        self.writer.add(dict(sample, source_row=row))
        self.tick()


def _metadata(table: Table, values: dict[str, Any], meta_columns: list[str], annotators: list[str],
              encoding: str) -> str:
    """The row's metadata JSON, in source column order (annotator labels as strings)."""
    meta: dict[str, Any] = {}
    for column in meta_columns:
        value = values.get(column)
        if column not in annotators:
            meta[column] = table.meta_value(column, value)
        elif is_missing(value):
            meta[column] = None
        else:
            try:
                meta[column] = as_text(value, encoding).strip()
            except UnicodeDecodeError:
                meta[column] = None
    return json.dumps(meta)


def _split(value: Any, encoding: str) -> Optional[str]:
    if is_missing(value):
        return None
    try:
        return as_text(value, encoding).strip()
    except UnicodeDecodeError:
        return None


def _row_id(rows: _Rows, row: int, values: dict[str, Any], column: Optional[str], encoding: str) -> tuple[bool, Optional[str]]:
    """(ok, id from the id column or None when there is no id column)."""
    if column is None:
        return True, None
    raw = values.get(column)
    if is_missing(raw):
        rows.reject(row, None, "missing id", f"Row {row} has an empty {column!r}.")
        return False, None
    sid = rows.text_value(row, None, raw, "id", encoding)
    return sid is not None, sid


# ------------------------------------------------------------------------------------ texts
def _plan_texts(path: Path, options: IngestOptions, recorded: dict) -> _Plan:
    table = open_table(path, options.encoding)
    roles = _columns(table, options, {"text": options.text_column, "label": options.label_column})
    annotators = list(options.annotator_columns or [])
    used = {c for c in roles.values() if c}
    meta_columns = [c for c in table.columns if c not in used]  # annotator columns included
    recorded["format"] = table.format
    encoding = options.encoding

    def run(rows: _Rows) -> None:
        seen: dict[str, int] = {}
        for record in table.records:
            row = record.row
            if record.reason:
                rows.reject(row, None, record.reason, record.detail)
                continue
            values = record.values
            ok, sid = _row_id(rows, row, values, roles["id"], encoding)
            if not ok:
                continue
            raw = values.get(roles["text"])
            if is_missing(raw):
                rows.reject(row, sid, "empty text", f"Row {row} has no text (empty or whitespace only).")
                continue
            text = rows.text_value(row, sid, raw, "text", encoding)
            if text is None:
                continue
            digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
            if sid is None:
                seen[digest] = seen.get(digest, 0) + 1
                sid = "t" + digest[:16] + (f"-{seen[digest]}" if seen[digest] > 1 else "")
            label = rows.label(row, sid, values.get(roles["label"]), encoding)
            if label is None:
                continue
            rows.keep(row, {
                "id": sid, "modality": "text", "root": None, "path": None, "text": text, "label": label,
                "split": _split(values.get(roles["split"]), encoding) if roles["split"] else None,
                "content_hash": digest, "width": None, "height": None,
                "metadata": _metadata(table, values, meta_columns, annotators, encoding),
            })

    return _Plan("text", "texts", str(path.resolve()), None, recorded, table.total, run)


# ------------------------------------------------------------------------------------ images
@dataclass
class _Candidate:
    row: int
    sample: dict[str, Any]
    full: str


def _take_images(rows: _Rows, candidates: Iterable[_Candidate], window: int = 1024) -> None:
    """Check candidate files in the pool, ``window`` at a time, and keep them in source order."""
    candidates = iter(candidates)
    while True:
        block = [c for _, c in zip(range(window), candidates)]
        if not block:
            return
        for cand, found in zip(block, _images.check_files([c.full for c in block], window=window)):
            sid = cand.sample["id"]
            if found.reason:
                rows.reject(cand.row, sid, found.reason, found.detail)
                continue
            rows.keep(cand.row, dict(cand.sample, content_hash=found.content_hash,
                                     width=found.width, height=found.height))


def _image_sample(sid: str, root: str, rel: str, label: str, split: Optional[str], metadata: str) -> dict[str, Any]:
    return {"id": sid, "modality": "image", "root": root, "path": rel, "text": None, "label": label,
            "split": split, "metadata": metadata}


def _utf8_root(root: str) -> str:
    """The dataset root, which every image sample stores: refused when its path is not UTF-8."""
    if surrogate_at(root) is not None:
        shown = os.fsencode(root).decode("utf-8", "backslashreplace")
        raise AmendError(f"the folder path {shown} is not valid UTF-8, so it cannot be stored; rename or move the folder.")
    return root


def _plan_folder(folder: Path, recorded: dict) -> _Plan:
    if not folder.exists():
        raise AmendError(f"{folder} does not exist; give a folder of class folders (DIR/<label>/<file>).")
    if not folder.is_dir():
        raise AmendError(f"{folder} is not a folder; --images takes a folder of class folders (DIR/<label>/<file>).")
    root = _utf8_root(os.path.realpath(folder))
    entries = _images.list_class_folders(Path(root))
    if not entries:
        raise AmendError(f"{folder} holds no files; --images expects class folders, DIR/<label>/<file>.")
    if all(label is None for _, label in entries):
        raise AmendError(
            f"{folder} has no class folders ({len(entries)} file(s) directly in it); --images expects one folder "
            f"per label holding its images, DIR/<label>/<file> (e.g. {folder}/cat/001.jpg)."
        )
    recorded["format"] = "class-folders"

    def candidates(rows: _Rows) -> Iterator[_Candidate]:
        for row, (rel, folder_label) in enumerate(entries, 1):
            if surrogate_at(rel) is not None:
                # A name that is not UTF-8 (os.scandir escapes its bytes as surrogates) cannot be an id
                # or a label, and cannot even be stored in the report: it is shown with its bytes.
                shown = os.fsencode(rel).decode("utf-8", "backslashreplace")
                what = "label folder" if folder_label is not None and surrogate_at(folder_label) is not None else "file"
                rows.reject(row, shown, "bad encoding",
                            f"The {what} name in '{shown}' is not valid UTF-8; rename it with UTF-8 characters.")
                continue
            if folder_label is None:
                rows.reject(row, rel, "missing label",
                            f"{rel} is not inside a label folder; images go in DIR/<label>/<file>.")
                continue
            label = rows.label(row, rel, folder_label, "utf-8", from_table=False)
            if label is None:
                continue
            resolved, problem = _images.resolve_path(root, rel)
            if problem:
                rows.reject(row, rel, "path escapes root", problem)
                continue
            yield _Candidate(row, _image_sample(rel, root, resolved, label, None, "{}"), os.path.join(root, resolved))

    return _Plan("image", "images", root, root, recorded, len(entries), lambda rows: _take_images(rows, candidates(rows)))


def _plan_manifest(path: Path, options: IngestOptions, recorded: dict) -> _Plan:
    table = open_table(path, options.encoding)
    roles = _columns(table, options, {"path": options.path_column, "label": options.label_column})
    base = Path(options.root) if options.root is not None else path.resolve().parent
    if not base.is_dir():
        raise AmendError(f"the root {base} is not a folder; give --root the folder the manifest's paths start from.")
    root = _utf8_root(os.path.realpath(base))
    annotators = list(options.annotator_columns or [])
    used = {c for c in roles.values() if c}
    meta_columns = [c for c in table.columns if c not in used]  # annotator columns included
    recorded.update(format=table.format, root=root)
    encoding = options.encoding

    def candidates(rows: _Rows) -> Iterator[_Candidate]:
        for record in table.records:
            row = record.row
            if record.reason:
                rows.reject(row, None, record.reason, record.detail)
                continue
            values = record.values
            ok, sid = _row_id(rows, row, values, roles["id"], encoding)
            if not ok:
                continue
            raw = values.get(roles["path"])
            if is_missing(raw):
                rows.reject(row, sid, "missing file", f"Row {row} has an empty {roles['path']!r}.")
                continue
            given = rows.text_value(row, sid, raw, "path", encoding)
            if given is None:
                continue
            label = rows.label(row, sid, values.get(roles["label"]), encoding)
            if label is None:
                continue
            rel, problem = _images.resolve_path(root, given)
            if problem:
                rows.reject(row, sid, "path escapes root", problem)
                continue
            split = _split(values.get(roles["split"]), encoding) if roles["split"] else None
            metadata = _metadata(table, values, meta_columns, annotators, encoding)
            yield _Candidate(row, _image_sample(sid or rel, root, rel, label, split, metadata), os.path.join(root, rel))

    return _Plan("image", "manifest", str(path.resolve()), root, recorded, table.total,
                 lambda rows: _take_images(rows, candidates(rows)))
