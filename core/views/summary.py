"""What the home page (and `amend` users in a notebook) see of a project at a glance."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pandas as pd

from core.store.project import Project

OFFLINE_PREFIX = "offline:"


@dataclass
class ProjectSummary:
    path: Path
    name: str
    modality: str | None
    samples: int
    labels: list[str]
    label_counts: pd.DataFrame  # label, samples, share
    split_counts: dict[str, int]
    metadata_columns: dict[str, str]  # column -> type seen in the data
    representations: pd.DataFrame  # name, model, dim, vectors, coverage, source, created_at, offline
    predictions: pd.DataFrame  # name, classes, source, created_at
    ingests: pd.DataFrame
    rejects: pd.DataFrame
    notices: list[str] = field(default_factory=list)
    #: captured training runs: run, model, layers, splits (epochs), updated_at
    captures: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: the latest analysis' flagged samples and how many of them someone decided (None: no analysis)
    review: Optional["ReviewState"] = None


@dataclass(frozen=True)
class ReviewState:
    """Where reviewing stands on the latest analysis, in the words the project page uses."""

    flagged: int
    reviewed: int
    analysed_at: str

    @property
    def left(self) -> int:
        return self.flagged - self.reviewed

    def sentence(self) -> str:
        if self.flagged == 0:
            return "The latest analysis flagged no sample."
        if self.left == 0:
            return f"All {self.flagged:,} flagged samples are reviewed."
        done = f" ({self.reviewed:,} reviewed, {self.left:,} to go)" if self.reviewed else ""
        return f"{self.flagged:,} flagged{done} — start reviewing"


def review_state(project) -> Optional[ReviewState]:
    """The latest analysis' flagged count and how many of those samples have a decision."""
    from core.analysis.runs import list_runs
    from core.review import audit
    from core.views import triage, words

    runs = list_runs(project)
    if not runs:
        return None
    run, flags = triage.load_flags(project, runs[-1].run_id)
    current = triage.apply_decisions(flags, audit.read_events(project, kinds=["decision"]))
    progress = triage.queue_progress(current, current.iloc[0:0])
    return ReviewState(progress.flagged, progress.flagged_reviewed, words.plain_time(run.created_at))


def _type_name(values: list) -> str:
    kinds = {type(v).__name__ for v in values if v is not None}
    if not kinds:
        return "empty"
    if kinds <= {"int"}:
        return "integer"
    if kinds <= {"int", "float"}:
        return "number"
    if kinds <= {"bool"}:
        return "boolean"
    if kinds <= {"str"}:
        return "text"
    return "mixed"


def summarise(project: Project) -> ProjectSummary:
    """Counts, labels, representations (with the model that really made them), the ingest
    history and the reject report of one project."""
    frame = project.samples(columns=["id", "modality", "label", "split", "metadata"])
    labels = project.labels()
    counts = frame["label"].value_counts() if len(frame) else pd.Series(dtype=int)
    label_counts = pd.DataFrame({"label": labels, "samples": [int(counts.get(l, 0)) for l in labels]})
    total = max(len(frame), 1)
    label_counts["share"] = (label_counts["samples"] / total).round(4)

    metadata_values: dict[str, list] = {}
    for raw in frame["metadata"] if len(frame) else []:
        for key, value in json.loads(raw).items():
            metadata_values.setdefault(key, []).append(value)

    reps = []
    notices = []
    for rep in project.representations():
        n_vectors = len(project.embedded_ids(rep))
        offline = rep.model.startswith(OFFLINE_PREFIX)
        reps.append(
            {
                "name": rep.name, "model": rep.model, "dim": rep.dim, "vectors": n_vectors,
                "coverage": round(n_vectors / total, 4), "source": rep.source,
                "created_at": rep.created_at, "offline": offline,
            }
        )
        if offline and rep.settings.get("fallback_message"):
            notices.append(f"Representation '{rep.name}': {rep.settings['fallback_message']}")
        elif offline:
            notices.append(
                f"Representation '{rep.name}' comes from the offline embedder {rep.model}, not OpenCLIP "
                "(its weights were not used). With OpenCLIP weights in the Hugging Face cache or a local "
                f"checkpoint, `amend embed {project.path} --model ViT-B-32 --checkpoint PATH` adds an OpenCLIP representation."
            )
        if n_vectors < len(frame):
            notices.append(
                f"Representation '{rep.name}' covers {n_vectors} of {len(frame)} samples; "
                f"run `amend embed {project.path} --name {rep.name}` to finish it."
            )
    preds = [
        {"name": p.name, "classes": len(p.classes), "source": p.source, "created_at": p.created_at}
        for p in project.prediction_sets()
    ]
    splits = frame["split"].fillna("(none)").value_counts().to_dict() if len(frame) else {}
    return ProjectSummary(
        path=project.path,
        name=project.path.name,
        modality=str(frame["modality"].iloc[0]) if len(frame) else None,
        samples=len(frame),
        labels=labels,
        label_counts=label_counts,
        split_counts={str(k): int(v) for k, v in splits.items()},
        metadata_columns={k: _type_name(v) for k, v in sorted(metadata_values.items())},
        representations=pd.DataFrame(reps, columns=["name", "model", "dim", "vectors", "coverage", "source", "created_at", "offline"]),
        predictions=pd.DataFrame(preds, columns=["name", "classes", "source", "created_at"]),
        ingests=project.ingests(),
        rejects=project.rejects(),
        notices=notices,
        captures=_captures(project),
        review=review_state(project),
    )


def _captures(project) -> pd.DataFrame:
    """One row per captured training run (core.capture), for the home page."""
    from core.capture.store import capture_runs

    rows = []
    for run in capture_runs(project):
        record = run.to_json(project.path)
        rows.append({
            "run": record["run"], "model": record["model_class"],
            "layers": ", ".join(f"{name} ({path})" for name, path in record["layers"].items()) or "logits only",
            "splits": " · ".join(f"{split}: {len(s['epochs'])} epoch{'s' if len(s['epochs']) != 1 else ''}, "
                                 f"{s['samples_last_epoch']:,} samples"
                                 for split, s in record["splits"].items()),
            "updated_at": record["updated_at"],
        })
    return pd.DataFrame(rows, columns=["run", "model", "layers", "splits", "updated_at"])
