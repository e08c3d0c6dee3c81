"""What the triage page needs, as pure functions over core's APIs (no streamlit here).

- :func:`load_flags` / :func:`apply_decisions`: a run's ranked evidence read once, with the
  labels in force overlaid from the decisions in the log (cheap to redo after every decision,
  so the run's evidence table is never re-read while reviewing).
- :class:`QueueFilter` / :func:`build_queue` / :func:`queue_progress`: the flagged queue, best
  first, narrowed by class, slice, detector, review state and a selection.
- :func:`evidence_in_words`: each detector's evidence as a sentence a reviewer reads.
- :class:`SampleView` / :func:`prepare_view`: everything shown for one sample (image decoded
  and verified or text, neighbours as thumbnails or snippets, guideline sections).
- :class:`Prefetcher`: prepares the next few samples' views in background threads so moving
  to the next sample is a dictionary look-up; :meth:`Prefetcher.view` is the call the page
  makes on "next" (and what bench/triage.py times).
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from core.analysis import runs
from core.detect.rank import cut_by_precision
from core.detect.wording import listed, number, percent
from core.errors import AmendError, SampleFileChanged
from core.ingest.media import open_image
from core.review import audit, guidelines, labels as labels_mod

logger = logging.getLogger(__name__)

#: A detector "points at" a sample (for the detector filter) when its score is at least this.
DETECTOR_THRESHOLD = 0.5
#: Longest side of a neighbour thumbnail, pixels.
THUMBNAIL_PX = 160
#: Longest side of the main image as prepared: larger images are shrunk to this (enough for the
#: page and its zoom; pathology tiles and X-rays are larger), smaller ones are enlarged to at least
#: :data:`IMAGE_MIN_PX` by whole pixels (a 32 px CIFAR image shown as 32 px blocks, never smoothed).
IMAGE_PX = 2048
IMAGE_MIN_PX = 512
#: Characters of a neighbour's text shown as a snippet.
SNIPPET_CHARS = 220
#: Columns of the queue table the page shows.
QUEUE_COLUMNS = ["rank", "id", "given_label", "current_label", "suggested_label", "score", "status", "slice_id"]

_SAMPLE_COLUMNS = ["id", "modality", "root", "path", "text", "label", "content_hash", "metadata"]


# --------------------------------------------------------------------------- flags + decisions
def load_flags(project: Any, run_id: Optional[str] = None) -> tuple[runs.RunInfo, pd.DataFrame]:
    """A run's evidence joined with the labels in force now (core.analysis.runs.flags), best first."""
    return runs.flags(project, run_id)


def apply_decisions(flags: pd.DataFrame, decisions: Iterable[audit.Event]) -> pd.DataFrame:
    """``flags`` with ``current_label``, ``status`` and ``last_event_id`` recomputed from the
    given labels and ``decisions`` (decision events in chain order; others are ignored).

    Only the rows of decided samples are replayed (core.review.labels.derive), so this stays cheap at
    100k samples with a few thousand decisions. Returns a new frame; ``flags`` is untouched.
    """
    decisions = [e for e in decisions if e.kind == "decision"]
    n = len(flags)
    current = flags["given_label"].to_numpy(dtype=object).copy()
    status = np.full(n, "unreviewed", dtype=object)
    last = np.zeros(n, dtype=np.int64)
    missing = np.ones(n, dtype=bool)
    decided = {e.sample_id for e in decisions}
    if decided:
        mask = flags["id"].isin(decided).to_numpy()
        subset = flags.loc[mask, ["id", "given_label"]].rename(columns={"given_label": "label"})
        derived = labels_mod.derive(subset, decisions)
        rows = np.flatnonzero(mask)  # derive keeps the order of ``subset``
        current[rows] = derived["current_label"].to_numpy(dtype=object)
        status[rows] = derived["status"].to_numpy(dtype=object)
        events = derived["last_event_id"]
        last[rows] = events.fillna(0).to_numpy(dtype=np.int64)
        missing[rows] = events.isna().to_numpy()
    # A shallow copy with whole columns replaced: the 100k-row evidence is not copied and
    # ``flags`` is left as it was.
    out = flags.copy(deep=False)
    # Kept as object columns, as load_flags gives them: letting pandas infer its string dtype
    # converted 1M Python strings per column on every decision (~0.5 s at 1M samples).
    out["current_label"] = pd.Series(current, index=flags.index, dtype=object)
    out["status"] = pd.Series(status, index=flags.index, dtype=object)
    out["last_event_id"] = pd.arrays.IntegerArray(last, missing)
    return out


def slice_titles(project: Any, run_id: str) -> dict[int, str]:
    """slice id -> its one name on every page ("#1 cat, dog": error rank, then the class mix), in
    error-rank order; empty when the run has no slices."""
    from core.views.overview import slice_labels

    try:
        _, table = runs.slices(project, run_id)
    except AmendError:
        return {}
    if table is None or table.empty:
        return {}
    return slice_labels(table.sort_values("error_rank", kind="stable"))


def detector_names(flags: pd.DataFrame) -> list[str]:
    """The detectors that scored this run (``det_<name>`` columns), in column order."""
    return [c[4:] for c in runs.detector_columns(flags)]


# --------------------------------------------------------------------------- the queue
@dataclass(frozen=True)
class QueueFilter:
    """How the queue is narrowed; every part optional, and they combine (AND).

    Attributes
    ----------
    classes : labels; keeps samples whose given, current or suggested label is one of them.
    slices : slice ids (from the run's slices).
    detectors : detector names; keeps samples that any of them scores at or above
        ``detector_threshold`` (default :data:`DETECTOR_THRESHOLD`).
    reviewed : None = all, False = not reviewed yet, True = reviewed.
    ids : a selection's sample ids (e.g. sent from the overview map); None = no selection.
    flagged_only : default True; False queues every sample of the run, ranked.
    min_precision : None = no cut; else keep the best-ranked part of the queue whose expected
        precision (mean estimated probability of a wrong label) is at least this.
    """

    classes: tuple[str, ...] = ()
    slices: tuple[int, ...] = ()
    detectors: tuple[str, ...] = ()
    reviewed: Optional[bool] = None
    ids: Optional[tuple[str, ...]] = None
    flagged_only: bool = True
    min_precision: Optional[float] = None
    detector_threshold: float = DETECTOR_THRESHOLD


def build_queue(flags: pd.DataFrame, queue_filter: QueueFilter = QueueFilter()) -> pd.DataFrame:
    """The rows of ``flags`` the filter keeps, best first (by rank), index reset."""
    f = queue_filter
    mask = np.ones(len(flags), dtype=bool)
    if f.flagged_only:
        mask &= flags["flagged"].to_numpy(dtype=bool)
    if f.classes:
        wanted = list(f.classes)
        mask &= (flags["given_label"].isin(wanted) | flags["current_label"].isin(wanted)
                 | flags["suggested_label"].isin(wanted)).to_numpy()
    if f.slices:
        if "slice_id" not in flags:
            raise AmendError("this run has no slices (it ran without vectors); clear the slice filter.")
        mask &= flags["slice_id"].isin([int(s) for s in f.slices]).to_numpy()
    if f.detectors:
        hit = np.zeros(len(flags), dtype=bool)
        for name in f.detectors:
            column = f"det_{name}"
            if column not in flags:
                raise AmendError(f"detector {name!r} did not run in this analysis; "
                                 f"it ran: {', '.join(detector_names(flags))}.")
            hit |= flags[column].fillna(0.0).to_numpy() >= f.detector_threshold
        mask &= hit
    if f.reviewed is not None:
        reviewed = (flags["status"] != "unreviewed").to_numpy()
        mask &= reviewed if f.reviewed else ~reviewed
    if f.ids is not None:
        mask &= flags["id"].isin(list(f.ids)).to_numpy()
    queue = flags[mask].sort_values("rank", kind="stable").reset_index(drop=True)
    if f.min_precision is not None:
        if "error_probability" not in queue:
            raise AmendError("this run has no error probabilities (an earlier Amend made it); re-run the analysis.")
        queue = queue.head(cut_by_precision(queue["error_probability"].to_numpy(), f.min_precision))
    return queue


@dataclass(frozen=True)
class QueueProgress:
    """Review progress: of the run's flagged samples, and of the queue as filtered."""

    flagged: int
    flagged_reviewed: int
    queue: int
    queue_reviewed: int

    @property
    def fraction(self) -> float:
        return self.flagged_reviewed / self.flagged if self.flagged else 1.0

    def sentence(self) -> str:
        return (f"{self.flagged_reviewed:,} of {self.flagged:,} flagged samples reviewed; "
                f"{self.queue_reviewed:,} of {self.queue:,} in this queue.")


def pace_sentence(decisions: int, seconds: float) -> str:
    """How this reviewing session went, in words: "You: 12 decisions in 9 min (45 s each)"."""
    if decisions <= 0:
        return "You have not decided anything in this session yet."
    minutes = seconds / 60
    took = f"{minutes:.0f} min" if minutes >= 1 else f"{seconds:.0f} s"
    return f"You: {decisions:,} decision{'s' if decisions != 1 else ''} in {took} ({seconds / decisions:.0f} s each)."


def queue_progress(flags: pd.DataFrame, queue: pd.DataFrame) -> QueueProgress:
    flagged = flags[flags["flagged"].astype(bool)]
    return QueueProgress(
        flagged=len(flagged), flagged_reviewed=int((flagged["status"] != "unreviewed").sum()),
        queue=len(queue), queue_reviewed=int((queue["status"] != "unreviewed").sum()),
    )


def step(queue_ids: Sequence[str], current: Optional[str], offset: int) -> Optional[str]:
    """The id ``offset`` places from ``current`` in the queue (clamped to its ends); the first
    id when ``current`` is None or no longer in the queue; None for an empty queue."""
    if not len(queue_ids):
        return None
    ids = list(queue_ids)
    if current not in ids:
        return ids[0]
    position = min(max(ids.index(current) + offset, 0), len(ids) - 1)
    return ids[position]


def first_after(queue: pd.DataFrame, rank: int) -> Optional[str]:
    """The queue's first sample ranked after ``rank`` (the queue is in rank order), else its first;
    None for an empty queue. Where the page goes when the sample it was about to show left the
    queue meanwhile (another reviewer decided it)."""
    if queue.empty:
        return None
    later = queue.loc[queue["rank"] > rank, "id"]
    return str(later.iloc[0]) if len(later) else str(queue["id"].iloc[0])


def following(queue_ids: Sequence[str], current: Optional[str], count: int) -> list[str]:
    """Up to ``count`` ids after ``current`` (what to prefetch), then the one before it."""
    ids = list(queue_ids)
    if not ids:
        return []
    start = ids.index(current) + 1 if current in ids else 0
    out = ids[start:start + count]
    if current in ids and start - 2 >= 0:
        out.append(ids[start - 2])
    return out


# --------------------------------------------------------------------------- evidence in words
def confidence_in_words(row: Mapping[str, Any]) -> Optional[str]:
    """The model's confidence: 'The model gives 'cat' 12%; it prefers 'dog' (81%).'"""
    p_label = number(row.get("p_label"))
    if p_label is None:
        return None
    analysed = row.get("label_analysed") or row.get("current_label")
    text = f"The model (never trained on this sample) gives its label '{analysed}' {percent(p_label)}"
    top = row.get("p_top_label")
    p_suggested = number(row.get("p_suggested"))
    suggested = row.get("suggested_label")
    if isinstance(suggested, str) and p_suggested is not None:
        text += f"; '{suggested}' gets {percent(p_suggested)}"
    if isinstance(top, str) and top != analysed and top != suggested:
        text += f"; its top class is '{top}'"
    return text + "."


def evidence_in_words(row: Mapping[str, Any], detectors: Sequence[str],
                      detector_params: Optional[Mapping[str, Mapping[str, Any]]] = None,
                      annotator_votes: Optional[Mapping[str, int]] = None) -> list[tuple[str, float, str]]:
    """Each detector's evidence on one sample as (detector, score, sentence), strongest first.

    ``row``: one row of :func:`load_flags` (a mapping). ``detector_params``: the run's detector
    parameters (name -> params, as recorded). ``annotator_votes``: label -> number of
    annotators who gave it, when the project has annotator columns. Each sentence comes from
    the detector's own ``explain`` in the registry; a detector without one (or with nothing to
    say) is described by its registry description.
    """
    from core.detect import REGISTRY

    context = {"params": dict(detector_params or {}), "annotator_votes": dict(annotator_votes or {})}
    out: list[tuple[str, float, str]] = []
    for name in detectors:
        score = number(row.get(f"det_{name}"))
        if score is None:
            continue
        spec = REGISTRY.get(name)
        sentence = spec.explain(row, context) if spec is not None and spec.explain is not None else None
        if sentence is None:
            sentence = spec.description if spec is not None else f"detector {name} scored this sample"
        out.append((name, score, sentence[0].upper() + sentence[1:] + ("" if sentence.endswith(".") else ".")))
    out.sort(key=lambda item: -item[1])
    return out


def error_probability_source(annotator_votes: Optional[Mapping[str, int]],
                             detector_params: Optional[Mapping[str, Mapping[str, Any]]]) -> str:
    """Where a sample's P(label wrong) comes from, in words: the annotators' posterior where
    enough of them labelled it and the run weighed them with a model
    (evidence ``decided`` of :mod:`core.detect.annotators`), else confident learning's noise estimate."""
    from core.detect.annotators import ANNOTATIONS_TO_DECIDE

    weighed = ((detector_params or {}).get("annotators") or {}).get("posterior")
    if weighed and annotator_votes and sum(annotator_votes.values()) >= ANNOTATIONS_TO_DECIDE:
        return ("P(label wrong) comes from weighing the annotators' labels, each by their record on these classes, "
                "with the model: it assumes annotators err independently, so where they agree it can be too sure.")
    return ("P(label wrong) comes from this data set's own noise estimate (confident learning): "
            "conservative with a strong model's probabilities, can be optimistic with the probe alone.")


def decision_evidence(row: Mapping[str, Any], run_id: str, detectors: Sequence[str]) -> dict:
    """What the reviewer saw, recorded with the decision (plain JSON)."""
    out: dict[str, Any] = {
        "run_id": run_id, "rank": int(row["rank"]), "score": round(float(row["score"]), 6),
        "suggested_label": row.get("suggested_label") if isinstance(row.get("suggested_label"), str) else None,
        "suggested_by": row.get("suggested_by") or None,
        "detectors": {},
    }
    for name in detectors:
        value = number(row.get(f"det_{name}"))
        if value is not None:
            out["detectors"][name] = round(value, 6)
    p_label = number(row.get("p_label"))
    if p_label is not None:
        out["p_label"] = round(p_label, 6)
    return out


# --------------------------------------------------------------------------- the sample view
@dataclass(frozen=True)
class Neighbour:
    """One nearest neighbour as shown: a thumbnail (images) or a snippet (texts)."""

    sample_id: str
    label: str
    similarity: float
    thumbnail: Any = None  # PIL.Image or None
    snippet: Optional[str] = None
    problem: Optional[str] = None  # why the thumbnail is missing (file moved or changed)


@dataclass(frozen=True)
class SampleView:
    """Everything the page shows for one sample of a run."""

    sample_id: str
    modality: str
    row: dict  # the flags row (evidence, labels in force when prepared)
    image: Any = None  # PIL.Image (verified against its ingest hash) or None
    text: Optional[str] = None
    problem: Optional[str] = None  # the file moved or changed
    metadata: dict = field(default_factory=dict)
    evidence: list = field(default_factory=list)  # (detector, score, sentence)
    confidence: Optional[str] = None
    neighbours: list = field(default_factory=list)  # Neighbour
    guideline_version: Optional[str] = None
    guideline_sections: dict = field(default_factory=dict)  # label -> markdown section
    latest_event: Optional[audit.Event] = None  # the newest event on the sample when prepared
    error_probability_note: str = ""  # where P(label wrong) comes from (error_probability_source)

    @property
    def latest_event_id(self) -> int:
        return self.latest_event.event_id if self.latest_event is not None else 0


def _fetch_samples(project: Any, ids: Sequence[str]) -> dict[str, dict]:
    if not ids:
        return {}
    quoted = ",".join("'" + str(i).replace("'", "''") + "'" for i in ids)
    frame = project.samples(columns=_SAMPLE_COLUMNS, where=f"id IN ({quoted})")
    return {str(r["id"]): r for r in frame.to_dict(orient="records")}


def _shrink(image: Any, size: int) -> Any:
    copy = image.convert("RGB") if image.mode not in ("RGB", "L") else image.copy()
    copy.thumbnail((size, size))
    return copy


def pixel_exact(image: Any, at_least: int) -> Any:
    """``image`` unchanged when its longest side is at least ``at_least``; otherwise enlarged by the
    smallest whole factor that reaches it, each pixel becoming a block of identical pixels
    (nearest neighbour). A browser that scales a 32 px image up smooths it into a blur; a reviewer
    must see the pixels that were labelled."""
    longest = max(image.size)
    if longest >= at_least:
        return image
    factor = -(-at_least // longest)  # ceil: small images reach at least ``at_least``
    from PIL import Image

    return image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)


def adjusted(image: Any, brightness: float = 1.0, contrast: float = 1.0) -> Any:
    """``image`` with brightness and contrast scaled (1.0 = unchanged), for greyscale X-rays and
    faint stains. The sample's file is never changed."""
    from PIL import ImageEnhance

    out = image
    if brightness != 1.0:
        out = ImageEnhance.Brightness(out).enhance(float(brightness))
    if contrast != 1.0:
        out = ImageEnhance.Contrast(out).enhance(float(contrast))
    return out


def text_as_html(text: str, find: str = "") -> str:
    """``text`` as HTML that shows it verbatim: escaped (no markup, links or images from the data),
    every space and line kept, long lines wrapped; occurrences of ``find`` (case-insensitive)
    marked so the label-bearing passage can be found."""
    import html
    import re

    if not find.strip():
        return html.escape(text)
    pattern = re.compile(re.escape(find.strip()), re.IGNORECASE)
    parts, last = [], 0
    for match in pattern.finditer(text):
        parts.append(html.escape(text[last:match.start()]))
        parts.append(f"<mark>{html.escape(match.group(0))}</mark>")
        last = match.end()
    parts.append(html.escape(text[last:]))
    return "".join(parts)


def count_matches(text: str, find: str) -> int:
    """How many times ``find`` occurs in ``text`` (case-insensitive; 0 for an empty search)."""
    return text.lower().count(find.strip().lower()) if find.strip() else 0


def _snippet(text: Optional[str], limit: int = SNIPPET_CHARS) -> str:
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def annotator_columns(project: Any) -> list[str]:
    """The annotator columns declared at ingest (metadata keys), in order."""
    columns: list[str] = []
    for options in project.ingests()["options"]:
        for column in json.loads(options).get("annotator_columns") or []:
            if column not in columns:
                columns.append(column)
    return columns


def guideline_for(labels: Iterable[Optional[str]], guideline: Optional[guidelines.GuidelineVersion],
                  label_set: Sequence[str]) -> dict[str, str]:
    """The sections of ``guideline`` about ``labels`` (label -> markdown), in label order."""
    if guideline is None:
        return {}
    sections = guidelines.class_sections(guideline.text, label_set)
    wanted = [lab for lab in dict.fromkeys(labels) if isinstance(lab, str)]
    return {lab: sections[lab] for lab in wanted if lab in sections}


@dataclass
class ViewContext:
    """What every view of one run shares (read once): the run, its detectors, the label set,
    the latest guideline, annotator columns, the detector parameters the run used."""

    run: runs.RunInfo
    detectors: list[str]
    label_set: list[str]
    guideline: Optional[guidelines.GuidelineVersion]
    annotator_columns: list[str]
    detector_params: dict
    neighbours_shown: int = 8

    @classmethod
    def build(cls, project: Any, run: runs.RunInfo, flags: pd.DataFrame) -> "ViewContext":
        return cls(run=run, detectors=detector_names(flags), label_set=project.labels(),
                   guideline=guidelines.latest(project), annotator_columns=annotator_columns(project),
                   detector_params=dict(run.record.get("detector_params") or {}))


def prepare_view(project: Any, row: Mapping[str, Any], context: ViewContext,
                 sample: Optional[dict] = None, neighbour_samples: Optional[dict[str, dict]] = None) -> SampleView:
    """Build one sample's view: read the sample (and its neighbours) unless given, decode and
    verify the image (a moved or changed file becomes ``problem``, not an exception), write the
    evidence in words, pick the guideline sections, read the latest event."""
    sample_id = str(row["id"])
    neighbour_ids = [str(x) for x in listed(row.get("neighbour_ids"))][: context.neighbours_shown]
    if sample is None or neighbour_samples is None:
        fetched = _fetch_samples(project, [sample_id, *neighbour_ids])
        sample = sample or fetched.get(sample_id)
        neighbour_samples = fetched if neighbour_samples is None else neighbour_samples
    if sample is None:
        raise AmendError(f"sample {sample_id!r} is not in the project any more; re-run the analysis.")
    metadata = json.loads(sample.get("metadata") or "{}")
    image = text = problem = None
    if sample["modality"] == "image":
        try:
            image = pixel_exact(_shrink(open_image(sample["root"], sample["path"], sample["content_hash"]), IMAGE_PX),
                                IMAGE_MIN_PX)
        except SampleFileChanged as exc:
            problem = str(exc)
    else:
        text = sample.get("text") or ""
    votes = None
    if context.annotator_columns:
        given = [str(metadata[c]) for c in context.annotator_columns if metadata.get(c) not in (None, "")]
        votes = dict(pd.Series(given, dtype=object).value_counts().astype(int)) if given else None
    sims = [float(s) for s in listed(row.get("neighbour_similarities"))]
    labels = [str(x) for x in listed(row.get("neighbour_labels"))]
    neighbours = []
    for i, nid in enumerate(neighbour_ids):
        other = neighbour_samples.get(nid)
        thumb = snippet = trouble = None
        if other is None:
            trouble = "not in the project any more"
        elif other["modality"] == "image":
            try:
                thumb = pixel_exact(_shrink(open_image(other["root"], other["path"], other["content_hash"]),
                                            THUMBNAIL_PX), THUMBNAIL_PX // 2)
            except SampleFileChanged as exc:
                trouble = str(exc)
        else:
            snippet = _snippet(other.get("text"))
        neighbours.append(Neighbour(nid, labels[i] if i < len(labels) else "?", sims[i] if i < len(sims) else float("nan"),
                                    thumb, snippet, trouble))
    in_question = [row.get("given_label"), row.get("current_label"), row.get("suggested_label")]
    return SampleView(
        sample_id=sample_id, modality=str(sample["modality"]), row=dict(row), image=image, text=text,
        problem=problem, metadata=metadata,
        evidence=evidence_in_words(row, context.detectors, context.detector_params, votes),
        confidence=confidence_in_words(row), neighbours=neighbours,
        guideline_version=context.guideline.version if context.guideline else None,
        guideline_sections=guideline_for(in_question, context.guideline, context.label_set),
        latest_event=latest_event(project, sample_id),
        error_probability_note=error_probability_source(votes, context.detector_params),
    )


def latest_event(project: Any, sample_id: str) -> Optional[audit.Event]:
    """The newest event on a sample (None when it has none): one indexed read of the log."""
    found = audit.read_events(project, sample_id=sample_id)
    return found[-1] if found else None


def refreshed(project: Any, view: SampleView, row: Optional[Mapping[str, Any]] = None) -> SampleView:
    """``view`` with the latest event re-read (and the flags row replaced when given)."""
    return replace(view, latest_event=latest_event(project, view.sample_id),
                   row=dict(row) if row is not None else view.row)


# --------------------------------------------------------------------------- prefetch
class Prefetcher:
    """Prepared views of one run, with the next few prepared ahead in background threads.

    :meth:`view` returns a sample's view: from the cache when prefetched (waiting for it when
    its preparation is under way), prepared now otherwise; the latest event is always re-read,
    so what the reviewer sees as "the newest decision" is never older than the call.
    :meth:`prefetch` starts preparing ids not yet cached. Holds at most ``capacity`` views.
    Thread-safe.
    """

    def __init__(self, project: Any, context: ViewContext, flags: pd.DataFrame,
                 capacity: int = 64, workers: int = 2) -> None:
        self.project = project
        self.context = context
        self._rows = flags.set_index("id", drop=False)
        self._capacity = capacity
        self._views: "OrderedDict[str, SampleView]" = OrderedDict()
        self._pending: dict[str, Future] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="amend-prefetch")

    def update_flags(self, flags: pd.DataFrame) -> None:
        """Use a newer flags frame (labels in force after decisions) for rows from now on."""
        with self._lock:
            self._rows = flags.set_index("id", drop=False)

    def _row(self, sample_id: str) -> dict:
        with self._lock:
            rows = self._rows
        if sample_id not in rows.index:
            raise AmendError(f"sample {sample_id!r} is not in run {self.context.run.run_id}.")
        return rows.loc[sample_id].to_dict()

    def _prepare(self, sample_id: str) -> SampleView:
        view = prepare_view(self.project, self._row(sample_id), self.context)
        with self._lock:
            self._views[sample_id] = view
            self._views.move_to_end(sample_id)
            while len(self._views) > self._capacity:
                self._views.popitem(last=False)
            self._pending.pop(sample_id, None)
        return view

    def _prepare_many(self, ids: list[str]) -> None:
        rows = {sid: self._row(sid) for sid in ids}
        wanted = set(ids)
        for row in rows.values():
            wanted.update(str(x) for x in listed(row.get("neighbour_ids"))[: self.context.neighbours_shown])
        fetched = _fetch_samples(self.project, sorted(wanted))
        for sid in ids:
            try:
                view = prepare_view(self.project, rows[sid], self.context, fetched.get(sid), fetched)
            except AmendError as exc:  # left for view() to raise in the foreground
                logger.info("prefetch of %s skipped: %s", sid, exc)
                with self._lock:
                    self._pending.pop(sid, None)
                continue
            with self._lock:
                self._views[sid] = view
                self._views.move_to_end(sid)
                while len(self._views) > self._capacity:
                    self._views.popitem(last=False)

    def _finish(self, ids: list[str], future: Future) -> None:
        with self._lock:
            for sid in ids:
                if self._pending.get(sid) is future:
                    self._pending.pop(sid, None)

    def prefetch(self, ids: Sequence[str]) -> Optional[Future]:
        """Prepare ``ids`` not cached or under way, in one background batch (one sample read)."""
        with self._lock:
            todo = [str(i) for i in ids if str(i) not in self._views and str(i) not in self._pending]
            if not todo:
                return None
            future = self._pool.submit(self._prepare_many, todo)
            for sid in todo:
                self._pending[sid] = future
        future.add_done_callback(lambda f, todo=todo: self._finish(todo, f))
        return future

    def cached(self, sample_id: str) -> bool:
        with self._lock:
            return sample_id in self._views

    def view(self, sample_id: str, row: Optional[Mapping[str, Any]] = None) -> SampleView:
        """The sample's view with a freshly read latest event (and ``row`` when given)."""
        sample_id = str(sample_id)
        with self._lock:
            pending = self._pending.get(sample_id)
        if pending is not None:
            try:
                pending.result(timeout=30)
            except Exception:  # noqa: BLE001 - prepared again below, where the error surfaces
                logger.info("prefetch of %s failed; preparing it now", sample_id)
        with self._lock:
            view = self._views.get(sample_id)
            if view is not None:
                self._views.move_to_end(sample_id)
        if view is None:
            view = self._prepare(sample_id)
        return refreshed(self.project, view, row if row is not None else self._row(sample_id))

    def close(self, wait: bool = False) -> None:
        """Stop the background threads (``wait``: until the one under way has finished)."""
        self._pool.shutdown(wait=wait, cancel_futures=True)
