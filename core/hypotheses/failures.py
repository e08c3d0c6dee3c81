"""Which samples to explain, and what a model server is shown of each.

A failure carries its given label, the top-3 predictions of the analysis with their
probabilities, and the sample itself: the image file's bytes (checked against the hash taken at
ingest; base64 is done by the client) or the text. Sources:

- ``errors``: the latest analysis' most probable class differs from the given label (the
  probe's, or the user's model when the analysis used imported predictions);
- ``flagged``: the flagged queue of the latest analysis, best first;
- a named selection (core.store.selections) or one slice of the analysis.

Failures come best-ranked first, so ``--limit N`` explains the N the triage queue shows first.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import pandas as pd

from core.errors import AmendError, SampleFileChanged
from core.util import listed

from core.hypotheses import SOURCES  # noqa: F401 (the CLI's choices)
#: Image types every server above accepts as they are; others are sent as PNG.
_PASSED_AS_IS = {"JPEG": "image/jpeg", "PNG": "image/png"}


@dataclass(frozen=True)
class Failure:
    """One sample to explain and what the model server is shown of it."""

    sample_id: str
    modality: str  # "image" | "text"
    given_label: str
    predictions: tuple[tuple[str, float], ...]  # the top 3 (label, probability), most probable first
    predictions_source: str  # "analysis" (probe / the user's model) or "neighbours" (their vote)
    text: Optional[str] = None
    image: Optional[bytes] = None  # the bytes sent (the file's own for JPEG / PNG)
    image_type: Optional[str] = None  # MIME type of ``image``
    slice_id: Optional[int] = None
    problem: Optional[str] = None  # why the sample cannot be sent (its file moved or changed)

    @property
    def predicted(self) -> Optional[str]:
        return self.predictions[0][0] if self.predictions else None

    def image_base64(self) -> Optional[str]:
        return base64.b64encode(self.image).decode("ascii") if self.image is not None else None


def _top(row: dict) -> tuple[tuple[tuple[str, float], ...], str]:
    labels, probs = listed(row.get("top_labels")), listed(row.get("top_probabilities"))
    if labels and probs:
        return tuple((str(l), float(p)) for l, p in zip(labels, probs)), "analysis"
    # Runs written before the top-3 columns: the neighbours' similarity-weighted vote instead.
    names, sims = listed(row.get("neighbour_labels")), listed(row.get("neighbour_similarities"))
    if not names or not sims:
        top = row.get("p_top_label")
        return ((str(top), float("nan")),) if isinstance(top, str) else (), "analysis"
    weights: dict[str, float] = {}
    for name, sim in zip(names, sims):
        weights[str(name)] = weights.get(str(name), 0.0) + max(float(sim), 0.0)
    total = sum(weights.values()) or 1.0
    ranked = sorted(weights.items(), key=lambda kv: -kv[1])[:3]
    return tuple((k, v / total) for k, v in ranked), "neighbours"


def select(project: Any, failures: str = "errors", selection: Optional[str] = None, slice_id: Optional[int] = None,
           run_id: Optional[str] = None) -> tuple[str, pd.DataFrame]:
    """(analysis run id, the evidence rows to explain, best-ranked first, with ``given_label``).

    ``selection`` (a stored selection's name or number) or ``slice_id`` narrow ``failures``
    further when given with it; alone, they take every sample in them.
    """
    from core.analysis.runs import evidence

    if failures not in SOURCES and failures is not None:
        raise AmendError(f"--failures takes one of {', '.join(SOURCES)} (got {failures!r}).")
    run, frame = evidence(project, run_id)
    given = project.samples(columns=["id", "label"]).rename(columns={"label": "given_label"})
    frame = frame.merge(given, on="id", how="left", validate="one_to_one")
    mask = pd.Series(True, index=frame.index)
    if failures == "errors":
        if "p_top_label" not in frame.columns:
            raise AmendError(f"analysis {run.run_id} has no probabilities; run `amend analyse` with vectors or "
                             "predictions, or use --failures flagged.")
        mask &= frame["p_top_label"].astype(str) != frame["given_label"].astype(str)
    elif failures == "flagged":
        mask &= frame["flagged"].astype(bool)
    if selection is not None:
        mask &= frame["id"].isin(_selection_ids(project, selection))
    if slice_id is not None:
        if "slice_id" not in frame.columns:
            raise AmendError(f"analysis {run.run_id} has no slices; choose --failures or --selection instead.")
        mask &= frame["slice_id"] == int(slice_id)
    return run.run_id, frame[mask].sort_values("rank", kind="stable").reset_index(drop=True)


def _selection_ids(project: Any, selection: str) -> set[str]:
    from core.store.selections import list_selections

    stored = list_selections(project)  # newest first: a reused name means the latest
    for each in stored:
        if each.name == selection or str(each.selection_id) == str(selection):
            return set(each.ids)
    names = ", ".join(sorted({s.name for s in stored})[:5]) or "none yet"
    raise AmendError(f"no selection {selection!r} in this project (selections: {names}).")


def payloads(project: Any, rows: pd.DataFrame) -> list[Failure]:
    """What each row's sample is shown as. A sample whose file moved or changed is returned with
    ``problem`` set (the run records it as failed with that reason) instead of stopping the run."""
    from core.ingest.media import read_image_bytes

    if rows.empty:
        return []
    ids = rows["id"].astype(str).tolist()
    quoted = ",".join("'" + i.replace("'", "''") + "'" for i in ids)
    samples = project.samples(columns=["id", "modality", "root", "path", "text", "content_hash"],
                              where=f"id IN ({quoted})").set_index("id")
    out = []
    for row in rows.to_dict(orient="records"):
        sid = str(row["id"])
        sample = samples.loc[sid]
        top, source = _top(row)
        slice_value = row.get("slice_id")
        slice_id = None if slice_value is None or (isinstance(slice_value, float) and math.isnan(slice_value)) \
            else int(slice_value)
        common = dict(sample_id=sid, modality=str(sample["modality"]), given_label=str(row["given_label"]),
                      predictions=top, predictions_source=source, slice_id=slice_id)
        if sample["modality"] == "text":
            out.append(Failure(text=str(sample["text"]), **common))
            continue
        try:
            data = read_image_bytes(sample["root"], sample["path"], sample["content_hash"])
            data, kind = _sendable(data)
        except (SampleFileChanged, OSError, ValueError) as exc:
            out.append(Failure(problem=str(exc), **common))
            continue
        out.append(Failure(image=data, image_type=kind, **common))
    return out


def _sendable(data: bytes) -> tuple[bytes, str]:
    """The file's own bytes when servers take its type (JPEG, PNG), else the image as PNG."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        kind = _PASSED_AS_IS.get(image.format or "")
        if kind is not None:
            return data, kind
        buffer = io.BytesIO()
        image.convert("RGBA" if "A" in image.getbands() else "RGB").save(buffer, format="PNG")
        return buffer.getvalue(), "image/png"


def class_pair(failure_given: str, predicted: Optional[str]) -> str:
    """'given → predicted', how counts per class pair are keyed."""
    return f"{failure_given} → {predicted if predicted is not None else '?'}"


@dataclass(frozen=True)
class Shown:
    """A sample as the hypotheses page shows it: the image (PIL, small ones enlarged by whole
    pixels) or the text, or why it cannot be shown."""

    sample_id: str
    modality: str
    image: Any = None
    text: Optional[str] = None
    problem: Optional[str] = None


def show(project: Any, sample_id: str, at_least: int = 320) -> Shown:
    """One sample for display (the file checked against its ingest hash, as triage does)."""
    from core.ingest.media import open_image
    from core.views.triage import pixel_exact

    quoted = "'" + str(sample_id).replace("'", "''") + "'"
    rows = project.samples(columns=["id", "modality", "root", "path", "text", "content_hash"], where=f"id = {quoted}")
    if rows.empty:
        return Shown(str(sample_id), "unknown", problem=f"sample {sample_id!r} is no longer in the project")
    row = rows.iloc[0]
    if row["modality"] == "text":
        return Shown(str(sample_id), "text", text=str(row["text"]))
    try:
        image = open_image(row["root"], row["path"], row["content_hash"])
    except (SampleFileChanged, OSError) as exc:
        return Shown(str(sample_id), "image", problem=str(exc))
    if image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    return Shown(str(sample_id), "image", image=pixel_exact(image, at_least))
