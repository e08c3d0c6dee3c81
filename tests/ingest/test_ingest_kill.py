"""A process killed mid-ingest leaves the project exactly as it was (real SIGKILL, real stores)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.ingest import IngestOptions, ingest
from core.store.project import Project
from core.store.schema import SAMPLES_TABLE

from ingest_helpers import jpeg_bytes, write, write_jsonl

REPO = Path(__file__).resolve().parents[2]

CHILD = """
import sys
sys.path.insert(0, {repo!r})
from pathlib import Path
from core.ingest import IngestOptions, ingest
from core.store.project import Project
from core.store.samples import IngestWriter
IngestWriter.batch_rows = 50  # flush small batches so the kill lands between appends
project = Project.open(sys.argv[1])
kind, source = sys.argv[2], Path(sys.argv[3])
ingest(project, IngestOptions(**{{kind: source}}))
print("finished", flush=True)
"""


def state(project: Project) -> dict:
    return {
        "count": project.sample_count(),
        "ids": project.sample_ids(),
        "labels": project.labels(),
        "ingests": project.ingests().drop(columns=["started_at", "committed_at"]).to_dict("records"),
        "rejects": project.rejects().to_dict("records"),
    }


def physical_rows(project: Project) -> int:
    return project.db.open_table(SAMPLES_TABLE).count_rows()


def data_files(project: Project) -> int:
    folder = project.path / "lance" / f"{SAMPLES_TABLE}.lance" / "data"
    return len(list(folder.glob("*"))) if folder.is_dir() else 0


def make_texts(tmp_path: Path) -> tuple[Path, Path, int]:
    first = write_jsonl(tmp_path / "first.jsonl",
                        [{"text": f"first {i}", "label": "ab"[i % 2]} for i in range(20)] + [{"text": "", "label": "a"}])
    big = [{"text": f"document {i} " + "word " * 20, "label": "cdx"[i % 3], "n": i} for i in range(3000)]
    return first, write_jsonl(tmp_path / "big.jsonl", big), 3000


def make_images(tmp_path: Path) -> tuple[Path, Path, int]:
    first = tmp_path / "first"
    for i in range(10):
        write(first / "ab"[i % 2] / f"{i}.jpg", jpeg_bytes(i, size=(8, 8)))
    write(first / "a" / "empty.jpg", b"")
    big = tmp_path / "big"
    for i in range(2000):
        write(big / "cdx"[i % 3] / f"{i:04d}.jpg", jpeg_bytes(1000 + i, size=(8, 8)))
    return first, big, 2000


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["texts", "images"])
def test_sigkill_mid_ingest_leaves_the_project_as_before(tmp_path: Path, kind: str) -> None:
    first, big, big_count = (make_texts if kind == "texts" else make_images)(tmp_path)
    project = Project.create(tmp_path / "project")
    ingest(project, IngestOptions(**{kind: first}))
    before = state(project)
    assert before["count"] == (20 if kind == "texts" else 10) and len(before["rejects"]) == 1
    baseline_files = data_files(project)
    baseline_rows = physical_rows(project)

    script = tmp_path / "child.py"
    script.write_text(CHILD.format(repo=str(REPO)))
    child = subprocess.Popen([sys.executable, str(script), str(project.path), kind, str(big)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while data_files(project) < baseline_files + 3 and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        still_running = child.poll() is None
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    out, err = child.stdout.read().decode(), child.stderr.read().decode()
    assert still_running, f"the child ended before it could be killed: {out} {err}"
    assert child.returncode == -signal.SIGKILL

    reopened = Project.open(project.path)
    stray = physical_rows(reopened) - baseline_rows
    assert 0 < stray < big_count  # the kill landed mid-ingest: rows written, not committed
    assert state(reopened) == before

    report = ingest(reopened, IngestOptions(**{kind: big}))  # the next writer recovers, then ingests
    assert (report.taken, report.rejected, report.unchanged) == (big_count, 0, 0)
    assert reopened.sample_count() == before["count"] + big_count
    assert physical_rows(reopened) == baseline_rows + big_count  # stray rows were removed
    assert reopened.labels() == ["a", "b", "c", "d", "x"]
    assert [row["ingest_id"] for row in state(reopened)["ingests"]] == [1, 2]
    assert len(set(reopened.sample_ids())) == reopened.sample_count()
    if kind == "texts":
        assert json.loads(reopened.samples(where="ingest_id = 2")["metadata"].iloc[-1]) == {"n": 2999}
