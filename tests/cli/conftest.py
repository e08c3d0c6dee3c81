"""The one tiny project the CLI tests share, built through `amend` itself, and the runners.

Sixty texts in three well separated clusters of imported 16-d vectors (no embedder: fast on two
cores); s5 and s10 carry a wrong given label; every fourth sample is in the test split.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from core.cli import main

REPO = Path(__file__).resolve().parents[2]
LABELS = ("a", "b", "c")
PLANTED = {"s5": "a", "s10": "c"}  # sample -> the wrong label it is given (its true label: "c", "b")


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self):
        """The --json contract: exactly one line on stdout, and it is JSON."""
        lines = self.out.splitlines()
        assert len(lines) == 1, f"--json must print exactly one line, got {self.out!r}"
        return json.loads(lines[0])


def run_amend(*args, expect: int = 0) -> Result:
    """`amend ARGS...` in this process (the entry point's main), its exit status checked."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([str(a) for a in args])
    result = Result(code, out.getvalue(), err.getvalue())
    assert code == expect, f"amend {' '.join(map(str, args))}: exit {code}, expected {expect}\n{result}"
    return result


def assert_one_error_line(result: Result, says: str) -> None:
    """A user error or conflict: nothing on stdout, one `amend: error:` line on stderr that says ``says``."""
    assert result.out == "", f"stdout must stay empty on an error, got {result.out!r}"
    lines = result.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("amend: error: "), f"expected one error line, got {result.err!r}"
    assert says in lines[0], f"{says!r} not in {lines[0]!r}"


class Amend:
    """The `amend` fixture: ``amend(*args)`` runs and expects exit 0; ``amend.fails(*args, says=...)``
    expects a user error (exit 1, or ``code=3`` for a conflict) reported as one line."""

    def __call__(self, *args, expect: int = 0) -> Result:
        return run_amend(*args, expect=expect)

    def json(self, *args):
        return run_amend(*args, "--json").json()

    def fails(self, *args, says: str, code: int = 1) -> Result:
        result = run_amend(*args, expect=code)
        assert_one_error_line(result, says)
        return result


@pytest.fixture()
def amend() -> Amend:
    return Amend()


@pytest.fixture()
def amend_process():
    """`amend ARGS...` as a real process (``python -m core.cli``, this checkout's code)."""

    def run(*args, expect: int = 0, python_args=()) -> Result:
        completed = subprocess.run(
            [sys.executable, *python_args, "-m", "core.cli", *map(str, args)], cwd=REPO, capture_output=True,
            text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        result = Result(completed.returncode, completed.stdout, completed.stderr)
        assert result.code == expect, f"exit {result.code}, expected {expect}\n{result}"
        return result

    return run


@dataclass
class TinyData:
    texts: Path
    vectors: Path
    ids: Path
    probabilities: Path
    truth: dict  # sample id -> its true label


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> TinyData:
    """The source files: texts.jsonl, vectors.npy, ids.txt, probs.npy (a model that knows the truth)."""
    folder = tmp_path_factory.mktemp("tiny-data")
    rng = np.random.default_rng(0)
    centres = np.eye(16, dtype=np.float32)[:3] * 4
    records, vectors, truth = [], [], {}
    for i in range(60):
        sid, cls = f"s{i}", i % 3
        truth[sid] = LABELS[cls]
        vectors.append(centres[cls] + rng.normal(size=16).astype(np.float32) * 0.3)
        records.append({"id": sid, "text": f"sample number {i}", "label": PLANTED.get(sid, LABELS[cls]),
                        "split": "test" if i % 4 == 0 else "train", "source": "web" if i % 2 else "scan"})
    data = TinyData(folder / "texts.jsonl", folder / "vectors.npy", folder / "ids.txt", folder / "probs.npy", truth)
    data.texts.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    np.save(data.vectors, np.stack(vectors))
    data.ids.write_text("\n".join(truth) + "\n", encoding="utf-8")
    onehot = np.eye(3)[[LABELS.index(truth[sid]) for sid in truth]]
    np.save(data.probabilities, 0.8 * onehot + 0.2 / 3)
    return data


def build_project(folder: Path, data: TinyData) -> Path:
    """init + vectors import, through the CLI."""
    run_amend("init", folder, "--texts", data.texts, "--json")
    run_amend("vectors", "import", folder, data.vectors, "--ids", data.ids, "--name", "mine", "--json")
    return folder


@pytest.fixture()
def tiny_project(tmp_path, tiny_data) -> Path:
    """A fresh tiny project with vectors and no analysis."""
    return build_project(tmp_path / "tiny", tiny_data)


@pytest.fixture(scope="session")
def analysed_once(tmp_path_factory, tiny_data) -> tuple[Path, dict]:
    """The tiny project analysed once (slices included) for the session: (folder, analyse's JSON). Read only."""
    folder = build_project(tmp_path_factory.mktemp("analysed") / "tiny", tiny_data)
    payload = run_amend("analyse", folder, "--json").json()
    return folder, payload


@pytest.fixture()
def analysed(analysed_once, tmp_path) -> Path:
    """A private copy of the analysed tiny project, free to change."""
    copy = tmp_path / "analysed"
    shutil.copytree(analysed_once[0], copy)
    return copy
