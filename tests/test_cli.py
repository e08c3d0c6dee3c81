"""The `amend` command end to end on a temporary copy of sample_data/, through a real subprocess,
checking the --json contract of ../shared/CLI.md and the exit codes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]


def amend(*args: str, expect: int = 0) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "core.cli", *args], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == expect, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return result


def as_json(result: subprocess.CompletedProcess) -> dict:
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"--json must print exactly one line of JSON, got: {result.stdout!r}"
    return json.loads(lines[0])


@pytest.fixture()
def data(tmp_path) -> Path:
    """A writable copy of sample_data with a few bad rows appended to the image manifest."""
    copy = tmp_path / "data"
    shutil.copytree(REPO / "sample_data", copy)
    manifest = copy / "cifar10n" / "manifest.csv"
    frame = pd.read_csv(manifest, dtype=str)
    (copy / "cifar10n" / "images" / "empty.jpg").write_bytes(b"")
    bad = pd.DataFrame(
        [
            {"id": "bad-missing", "path": "images/does-not-exist.jpg", "label": "cat"},
            {"id": "bad-empty", "path": "images/empty.jpg", "label": "cat"},
            {"id": "bad-escape", "path": "../../etc/passwd", "label": "cat"},
            {"id": frame["id"].iloc[0], "path": frame["path"].iloc[1], "label": "cat"},
        ]
    )
    pd.concat([frame, bad], ignore_index=True).to_csv(manifest, index=False)
    return copy


@pytest.mark.slow  # the offline embedder on 400 images; tests/cli/ covers every command fast
def test_init_embed_and_imports_follow_the_contract(data, tmp_path):
    project = tmp_path / "cifar"
    report = as_json(amend("init", str(project), "--manifest", str(data / "cifar10n" / "manifest.csv"), "--json"))
    assert report["taken"] == 400 and report["rejected"] == 4
    reasons = {r["id"]: r["reason"] for r in report["rejects"]}
    assert reasons["bad-missing"] == "missing file"
    assert reasons["bad-empty"] == "empty file"
    assert reasons["bad-escape"] == "path escapes root"
    assert "duplicate id" in [r["reason"] for r in report["rejects"]]
    assert all(set(r) >= {"row", "id", "reason"} for r in report["rejects"])
    assert len(report["labels"]) == 10 and "cat" in report["labels"]

    again = as_json(amend("ingest", str(project), "--manifest", str(data / "cifar10n" / "manifest.csv"), "--json"))
    assert again["taken"] == 0  # same source twice adds nothing

    embedded = as_json(amend("embed", str(project), "--embedder", "offline", "--json"))
    assert embedded["embedded"] == 400 and embedded["skipped"] == 0
    assert embedded["dim"] == 1280 and embedded["model"].startswith("offline:efficientnet-lite0")
    assert embedded["device"] == "cpu" and embedded["seconds"] > 0
    assert {"representation", "embedded", "skipped", "dim", "model", "device", "seconds"} <= set(embedded)
    resumed = as_json(amend("embed", str(project), "--embedder", "offline", "--json"))
    assert resumed["embedded"] == 0 and resumed["skipped"] == 400

    ids = pd.read_csv(data / "cifar10n" / "manifest.csv", dtype=str)["id"].iloc[:400].tolist()
    (tmp_path / "ids.txt").write_text("\n".join(ids) + "\n")
    rng = np.random.default_rng(0)
    np.save(tmp_path / "vectors.npy", rng.normal(size=(400, 16)).astype(np.float32))
    imported = as_json(amend("vectors", "import", str(project), str(tmp_path / "vectors.npy"), "--ids", str(tmp_path / "ids.txt"), "--name", "mine", "--json"))
    assert imported == {**imported, "representation": "mine", "imported": 400, "dim": 16}

    probabilities = rng.dirichlet(np.ones(10), size=400)
    np.save(tmp_path / "probs.npy", probabilities)
    predicted = as_json(amend("predictions", "import", str(project), str(tmp_path / "probs.npy"), "--ids", str(tmp_path / "ids.txt"), "--json"))
    assert predicted["imported"] == 400 and len(predicted["classes"]) == 10

    probabilities[3, 2] = np.nan
    np.save(tmp_path / "bad.npy", probabilities)
    failed = amend("predictions", "import", str(project), str(tmp_path / "bad.npy"), "--ids", str(tmp_path / "ids.txt"), "--name", "bad", "--json", expect=1)
    assert failed.stdout == "" and "NaN" in failed.stderr and len(failed.stderr.strip().splitlines()) == 1


@pytest.mark.slow  # a fresh process per command; tests/cli/ checks the same contract in-process
def test_texts_project_and_user_errors(data, tmp_path):
    project = tmp_path / "news"
    report = as_json(amend("init", str(project), "--texts", str(data / "news20" / "texts.jsonl"), "--json"))
    assert report["taken"] == 300 and report["rejected"] == 0 and len(report["labels"]) == 20
    human = amend("ingest", str(project), "--texts", str(data / "news20" / "texts.jsonl"))
    assert "taken 0" in human.stdout

    missing = amend("init", str(tmp_path / "other"), "--texts", str(tmp_path / "nope.jsonl"), expect=1)
    assert "nope.jsonl" in missing.stderr and not (tmp_path / "other").exists()
    taken = amend("init", str(project), "--texts", str(data / "news20" / "texts.jsonl"), expect=1)
    assert "not empty" in taken.stderr
    not_project = amend("embed", str(tmp_path), expect=1)
    assert "not an Amend project" in not_project.stderr
    mixed = amend("ingest", str(project), "--manifest", str(data / "cifar10n" / "manifest.csv"), expect=1)
    assert mixed.stderr.startswith("amend: error:")


@pytest.mark.slow  # a fresh process per command; tests/cli/ checks the same contract in-process
def test_decide_conflict_guideline_and_verify_through_the_cli(data, tmp_path):
    project = tmp_path / "news"
    as_json(amend("init", str(project), "--texts", str(data / "news20" / "texts.jsonl"), "--json"))
    first = as_json(amend("decide", str(project), "--id", "n0038", "--keep", "--reviewer", "ann", "--expected-event", "0", "--json"))
    assert first["old_label"] == first["new_label"] == "misc.forsale"
    stale = amend("decide", str(project), "--id", "n0038", "--exclude", "--reviewer", "bob", "--expected-event", "0", "--json", expect=3)
    assert stale.stdout == "" and f"event {first['event_id']} by ann" in stale.stderr
    (tmp_path / "guide.md").write_text("# misc.forsale\nAds for things to sell.\n")
    published = as_json(amend("guideline", str(project), "publish", str(tmp_path / "guide.md"), "--version", "v1", "--author", "lee", "--json"))
    assert published["version"] == "v1" and len(published["sha256"]) == 64
    refused = amend("guideline", str(project), "publish", str(tmp_path / "guide.md"), "--version", "v2", "--author", "ann", expect=1)
    assert "lead" in refused.stderr
    verified = as_json(amend("audit", "verify", str(project), "--json"))
    assert verified["ok"] is True and verified["events"] >= 3 and len(verified["chain_head"]) == 64
