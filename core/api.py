"""Amend's Python face: the calls the CLI and the pages make, for notebooks and scripts.

>>> from core import api
>>> project = api.create_project("my-project")
>>> api.ingest(project, api.IngestOptions(texts=Path("posts.jsonl")))
>>> api.embed(project, api.EmbedOptions(embedder="offline"))
>>> api.embed(project, engine="ray", address="head:6379")  # the same, on Ray Data (pip install -e ".[scale]")
>>> result = api.analyse(project)              # detectors + slices, recorded as a run
>>> api.analyse(project, captures=["my-run"])  # + a run of your model captured with core.capture
>>> run, ranked = api.flags(project)           # every sample, most likely wrong first
>>> run, groups = api.metadata_groups(project)  # wrong labels by annotator, site, batch... worst first
>>> api.decide(project, "t1234", "relabel", reviewer="ann", label="sci.med", expected_event=0)
>>> api.compare(project).to_json()             # probe on given vs current labels, per slice
>>> api.export_vectors(project, "clip.parquet", "clip")   # a representation's vectors (id, vector)
>>> api.export(project, "labels.parquet")      # labels + trail + manifest + a signed checkpoint
>>> api.checkpoint(project, to="~/witness/")   # the log's signed (size, head), kept outside the project
>>> api.verify(project, checkpoints=["~/witness/"]).ok   # the chain, every recorded state, the checkpoints
>>> api.upgrade("old-project")                 # a folder from an earlier Amend, to this schema
>>> api.explain_failures(project, "http://127.0.0.1:11434", "qwen2.5vl:7b")  # why? one hypothesis per failure
>>> api.hypotheses(project)                    # them, with their cause / fix clusters and verdicts
>>> api.review_hypothesis(project, 3, "agree", reviewer="ann")   # recorded in the audit log
>>> api.hypothesis_actions(project)            # the fix clusters as a ranked list of targeted actions

For plain arrays (your own model's vectors or probabilities, no project), :func:`detect` returns
the ranked detection directly.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Mapping, Optional

from core.analysis.run import AnalysisResult, analyse
from core.analysis.runs import accept_suggested, annotator_habits, flags, metadata_groups, slices
from core.capture.store import CaptureRun, capture_runs
from core.detect import DetectConfig, Detection, detect
from core.embed.engines import embed as _embed
from core.embed.pipeline import EmbedOptions, EmbedReport
from core.errors import AmendError
from core.evaluate.compare import CompareResult, compare
from core.export import export
from core.hypotheses.generate import generate as explain_failures
from core.hypotheses.review import actions as hypothesis_actions
from core.hypotheses.review import listing as hypotheses
from core.hypotheses.review import review as review_hypothesis
from core.imports import import_predictions, import_vectors
from core.ingest import IngestOptions, IngestReport, ingest
from core.review.checkpoints import checkpoint, verify
from core.review.decisions import decide, decide_many, undo_last
from core.review.guidelines import publish as publish_guideline
from core.review.labels import current_labels
from core.store.migrations import upgrade
from core.store.project import Project
from core.util import ProgressCallback, no_progress
from core.store.vectors_export import export_vectors

__all__ = [
    "AnalysisResult", "CaptureRun", "CompareResult", "DetectConfig", "Detection", "EmbedOptions", "EmbedReport",
    "IngestOptions", "IngestReport", "Project", "accept_suggested", "analyse", "annotator_habits", "capture_runs",
    "checkpoint", "compare",
    "create_project",
    "current_labels", "decide", "decide_many", "undo_last", "detect", "embed", "explain_failures", "export", "flags",
    "hypotheses", "hypothesis_actions", "import_predictions", "review_hypothesis",
    "import_vectors", "export_vectors", "ingest", "metadata_groups", "open_project", "publish_guideline", "slices",
    "upgrade", "verify",
]


def open_project(path: str | Path) -> Project:
    """Open an existing project folder (refuses one from another schema version; one from an
    earlier Amend opens after :func:`upgrade`)."""
    return Project.open(path)


def create_project(path: str | Path, data: Optional[str] = None,
                   storage_options: Optional[Mapping[str, str]] = None) -> Project:
    """Create an empty project folder (atomically).

    ``data`` (default None: the folder's ``lance/``): an object-storage URI (``s3://bucket/prefix``,
    ``gs://``, ``az://``) for the LanceDB tables, as ``amend init --data``; ``storage_options``: non-secret
    Lance storage options kept with the project (credentials are refused: they come from the environment).
    """
    from core.store.location import DataLocation

    if data is None and storage_options:
        raise AmendError("storage_options apply to tables on object storage: give data='s3://...' with them.")
    location = DataLocation.parse(data, [f"{k}={v}" for k, v in (storage_options or {}).items()]) if data else None
    return Project.create(path, location)


def embed(project: Project, options: Optional[EmbedOptions] = None, progress: ProgressCallback = no_progress, *,
          engine: Optional[str] = None, address: Optional[str] = None) -> EmbedReport:
    """Embed every sample the representation does not hold yet (resumable: a stopped run goes on).

    Parameters
    ----------
    project : Project
    options : EmbedOptions, optional
        Model, device, batch size, representation name; default OpenCLIP ViT-B-32 with the offline
        fallback.
    progress : callable
        ``progress("embed", done, total)`` after every batch.
    engine : {"inprocess", "ray"}, optional
        Overrides ``options.engine``. ``"inprocess"`` (the default): this process. ``"ray"``: Ray
        Data, decoding in CPU tasks and embedding in one model per actor (a GPU each when the cluster
        has them); needs ``pip install -e ".[scale]"``. Same vectors, report and resumability.
    address : str, optional
        With ``engine="ray"``: a running cluster's head (``HOST:6379``); default: a local Ray.
    """
    options = options or EmbedOptions()
    if engine is not None or address is not None:
        options = dataclasses.replace(options, engine=engine or options.engine, address=address or options.address)
    return _embed(project, options, progress)
