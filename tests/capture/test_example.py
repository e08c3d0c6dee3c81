"""examples/capture_sample_data.py, the script a new user runs on the sample data, end to end on a
60-image slice of sample_data/cifar10n (2 epochs: it must finish, not find anything)."""

from __future__ import annotations

import importlib.util

import pandas as pd
import pytest

import builders
from core.analysis.runs import list_runs
from core.capture.store import capture_runs
from core.ingest import IngestOptions, ingest
from core.store.project import Project

EXAMPLE = builders.REPO / "examples" / "capture_sample_data.py"
CIFAR = builders.SAMPLE_DATA / "cifar10n"


def _example():
    spec = importlib.util.spec_from_file_location("capture_sample_data", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _small_sample_project(folder, n: int = 60) -> Project:
    """The first ``n`` rows of the sample manifest, ingested for real; vectors imported (no embedder)."""
    manifest = pd.read_csv(CIFAR / "manifest.csv", dtype=str).head(n)
    manifest.to_csv(folder / "manifest.csv", index=False)
    project = Project.create(folder / "cifar10n-sample")
    ingest(project, IngestOptions(manifest=folder / "manifest.csv", root=CIFAR,
                                  annotator_columns=["annotator1", "annotator2", "annotator3"]))
    all_ids, truth = builders.sample_truth("cifar10n-sample")
    true_label = dict(zip(all_ids, truth))
    ids = project.sample_ids()
    assert len(ids) == n
    builders.import_vectors(project, "vectors", ids, builders.clustered_vectors([true_label[sid] for sid in ids]),
                            folder=folder / "vectors")
    return project


@pytest.mark.slow
def test_example_trains_captures_and_analyses(tmp_path, capsys):
    project = _small_sample_project(tmp_path)
    assert _example().main([str(project.path), "--epochs", "2", "--no-slices"]) == 0
    out = capsys.readouterr().out
    runs = {run.name: run for run in capture_runs(project)}
    assert set(runs) == {"cnn-fold0", "cnn-fold1"}
    assert all(run.epochs == {"eval": [0, 1], "train": [0, 1]} for run in runs.values())
    latest = list_runs(project)[-1].record
    assert "aum" in latest["detectors"]
    assert sorted(latest["captures"]["runs"]) == ["cnn-fold0", "cnn-fold1"]
    assert latest["representation"]["name"] == "vectors"
    assert "Known errors" in out and f"amend app {project.path}" in out
