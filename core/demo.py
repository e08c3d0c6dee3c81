"""The sample projects behind the README's first command: built from ``sample_data/`` with the
offline embedders (no network needed), idempotently: a second run adds nothing and embeds nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from core.util import ProgressCallback, no_progress
from core.store.project import Project

SAMPLE_DATA = Path(__file__).resolve().parents[1] / "sample_data"


def _sample_sources(sample_data: Path) -> list[tuple[str, dict]]:
    from core.ingest import IngestOptions

    return [
        (
            "cifar10n-sample",
            dict(options=IngestOptions(
                manifest=sample_data / "cifar10n" / "manifest.csv",
                annotator_columns=["annotator1", "annotator2", "annotator3"],
            )),
        ),
        ("news20-sample", dict(options=IngestOptions(texts=sample_data / "news20" / "texts.jsonl"))),
    ]


def open_or_create(path: Path, log: Callable[[str], None] = lambda message: None) -> Project:
    """The sample project at ``path``, created when missing. One built by an earlier Amend's start
    command is brought to this schema first (its log and chain are kept) instead of stopping the
    start with "run amend upgrade": these are Amend's own sample projects."""
    if not (path / "amend.json").exists():
        return Project.create(path)
    from core.store.migrations import upgrade

    if upgrade(path)["upgraded"]:
        log(f"{path.name}: upgraded to this Amend's project schema")
    return Project.open(path)


def prepare_sample_projects(
    directory: Path,
    sample_data: Path = SAMPLE_DATA,
    progress: ProgressCallback = no_progress,
    log: Callable[[str], None] = lambda message: None,
    analyse: bool = True,
) -> list[Path]:
    """Create (or bring up to date) one project per sample dataset under ``directory``.

    Returns the project folders. Each is ingested, embedded with the offline embedder of its
    modality and analysed (again only when ingest or embedding changed something).
    """
    from core.analysis.run import analyse as run_analysis
    from core.analysis.runs import list_runs
    from core.embed.pipeline import EmbedOptions, embed
    from core.ingest import ingest
    from core.views.words import expected_wrong

    if not sample_data.is_dir():
        raise FileNotFoundError(f"{sample_data} is missing; run from a full checkout of Amend.")
    directory.mkdir(parents=True, exist_ok=True)
    made: list[Path] = []
    for name, spec in _sample_sources(sample_data):
        path = directory / name
        project = open_or_create(path, log)
        report = ingest(project, spec["options"], progress=progress)
        log(f"{name}: {report.taken} new samples, {report.unchanged} unchanged, {report.rejected} rejected")
        result = embed(project, EmbedOptions(embedder="offline"), progress=progress)
        log(f"{name}: embedded {result.embedded} with {result.model} ({result.skipped} already done)")
        if analyse and (report.taken or result.embedded or not list_runs(project)):
            run = run_analysis(project, progress=progress).run
            counts = run.record["counts"]
            log(f"{name}: analysis {run.run_id} flagged {counts['flagged']} samples{expected_wrong(counts)}")
        made.append(path.resolve())
    return made
