"""Where captured training runs live in a project folder, and reading them back.

Layout (inside the project folder, beside ``lance/``)::

    capture/<run>/run.json                      model class, layers, pooling, classes, versions
    capture/<run>/<split>/epoch-000003/         one complete epoch (a LanceDB folder):
        epoch.json                              samples seen, batches, timings, layer dims
        stats.lance                             per sample: label, mean margin, p(label), correct, top other
        layer__<name>.lance                     per sample: the layer's pooled output
        logits.lance                            per sample: full logits (non-train splits by default)
    capture/<run>/<split>/.epoch-000003.partial-<pid>-<hex>/   an epoch being written

An epoch folder appears only by the rename at the end of its session, so readers never see a
half-written one. Captures sit outside ``lance/`` on purpose: they are written while a training
run goes on for hours, without the project's writer lock, and the lock's crash recovery (which
drops LanceDB tables no registry row points at) must not touch them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np

from core.errors import AmendError
from core.util import utc_now

if TYPE_CHECKING:
    import pyarrow as pa

    from core.capture.dynamics import EpochStats
    from core.store.project import Project

CAPTURE_DIR = "capture"
RUN_FILE = "run.json"
EPOCH_FILE = "epoch.json"
TRAIN_SPLIT = "train"
#: The fake extra class of threshold samples (Pleiss et al. 2020): name it last in
#: ``capture.session(classes=...)`` and give it to the samples :func:`threshold_samples` picks.
THRESHOLD_CLASS = "amend:threshold"
_EPOCH = re.compile(r"^epoch-(\d{6})$")
_PARTIAL = re.compile(r"^\.epoch-\d{6}\.partial-(\d+)-[0-9a-f]+$")


def run_dir(root: Path, run: str) -> Path:
    return Path(root) / CAPTURE_DIR / run


def epoch_dir(root: Path, run: str, split: str, epoch: int) -> Path:
    return run_dir(root, run) / split / f"epoch-{epoch:06d}"


def partial_dir(root: Path, run: str, split: str, epoch: int) -> Path:
    return run_dir(root, run) / split / f".epoch-{epoch:06d}.partial-{os.getpid()}-{os.urandom(4).hex()}"


def write_json(path: Path, data: dict) -> None:
    """Replace a JSON file atomically (temporary file beside it, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w") as out:
            json.dump(data, out, indent=2, sort_keys=True)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_partials(root: Path, run: str) -> list[Path]:
    """Remove the partial epochs of ``run`` whose writing process is gone (killed mid-epoch)."""
    removed = []
    base = run_dir(root, run)
    if not base.is_dir():
        return removed
    for split in base.iterdir():
        if not split.is_dir():
            continue
        for entry in split.iterdir():
            match = _PARTIAL.match(entry.name)
            if match and not _pid_alive(int(match.group(1))):
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
    return removed


def table_names(db) -> list[str]:
    result = db.list_tables()
    return list(getattr(result, "tables", result))


def vector_block(ids: Sequence[str], matrix: np.ndarray) -> "pa.Table":
    """(id, vector) rows for a layer or logits table."""
    import pyarrow as pa

    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    column = pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1), pa.float32()), matrix.shape[1])
    return pa.table({"id": pa.array(list(ids), pa.string()), "vector": column})


def update_run_record(root: Path, run: str, model_class: Optional[str], layers: dict, pooling: dict,
                      classes: list[str]) -> dict:
    """Create or extend ``run.json`` after an epoch commits (layers seen so far, versions, times)."""
    import platform

    import torch

    from core import __version__

    path = run_dir(root, run) / RUN_FILE
    record = json.loads(path.read_text()) if path.is_file() else {"run": run, "created_at": utc_now()}
    record["model_class"] = model_class or record.get("model_class")
    record["layers"] = {**record.get("layers", {}), **layers}
    record["pooling"] = {**record.get("pooling", {}), **pooling}
    record["classes"] = classes
    record["versions"] = {"amend": __version__, "torch": torch.__version__, "python": platform.python_version()}
    record["updated_at"] = utc_now()
    write_json(path, record)
    return record


@dataclass(frozen=True)
class CaptureRun:
    """One captured training run: its record and its complete epochs per split."""

    name: str
    record: dict
    epochs: dict[str, list[int]]  # split -> sorted complete epochs

    def last_epoch(self, split: str) -> int:
        if not self.epochs.get(split):
            raise AmendError(f"capture run {self.name!r} has no complete epoch of split {split!r} "
                             f"(splits: {', '.join(self.epochs) or 'none'})")
        return self.epochs[split][-1]

    def epoch_record(self, root: Path, split: str, epoch: int) -> dict:
        return json.loads((epoch_dir(root, self.name, split, epoch) / EPOCH_FILE).read_text())

    def to_json(self, root: Path) -> dict:
        splits = {}
        for split, epochs in self.epochs.items():
            last = self.epoch_record(root, split, epochs[-1])
            splits[split] = {"epochs": epochs, "samples_last_epoch": last["samples_seen"],
                             "layers": last["layers"], "logits_kept": last["logits_kept"]}
        return {"run": self.name, "model_class": self.record.get("model_class"), "layers": self.record.get("layers", {}),
                "pooling": self.record.get("pooling", {}), "splits": splits, "updated_at": self.record.get("updated_at")}


def capture_runs(project: "Project") -> list[CaptureRun]:
    """Every run with at least one complete epoch, by name."""
    base = Path(project.path) / CAPTURE_DIR
    runs = []
    if not base.is_dir():
        return runs
    for entry in sorted(base.iterdir()):
        record_file = entry / RUN_FILE
        if not record_file.is_file():
            continue
        epochs: dict[str, list[int]] = {}
        for split in sorted(p for p in entry.iterdir() if p.is_dir()):
            found = sorted(int(m.group(1)) for m in (_EPOCH.match(e.name) for e in split.iterdir()) if m
                           and (split / m.group(0) / EPOCH_FILE).is_file())
            if found:
                epochs[split.name] = found
        if epochs:
            runs.append(CaptureRun(entry.name, json.loads(record_file.read_text()), epochs))
    return runs


def capture_run(project: "Project", name: str) -> CaptureRun:
    for run in capture_runs(project):
        if run.name == name:
            return run
    known = [r.name for r in capture_runs(project)]
    raise AmendError(
        f"no captured run {name!r} in {project.path} (runs with a complete epoch: {', '.join(known) or 'none'}); "
        "capture one with core.capture.watch and capture.session"
    )


def _open_table(project: "Project", run: str, split: str, epoch: int, table: str):
    import lancedb

    db = lancedb.connect(str(epoch_dir(project.path, run, split, epoch)))
    if table not in table_names(db):
        return None
    return db.open_table(table).to_arrow()


def epoch_stats(project: "Project", run: str, split: str = TRAIN_SPLIT) -> list["EpochStats"]:
    """Every complete epoch of ``split`` as :class:`core.capture.dynamics.EpochStats` over the
    project's samples (ids and label names mapped to positions and the current label indices;
    rows whose sample or label the project no longer has are left out)."""
    from core.capture.dynamics import EpochStats

    captured = capture_run(project, run)
    position = {sid: i for i, sid in enumerate(project.sample_ids())}
    label_index = {name: i for i, name in enumerate(project.labels())}
    # a runner-up that is the threshold class gets the index after the last label (no suggestion)
    other_index = {**label_index, THRESHOLD_CLASS: len(label_index)}
    out = []
    for epoch in captured.epochs.get(split, []):
        data = _open_table(project, run, split, epoch, "stats")
        if data is None:
            continue
        frame = data.to_pandas()
        # threshold samples were trained on the fake class: they are not judged as samples
        keep = frame["id"].isin(position) & frame["label"].isin(label_index) & frame["top_other"].isin(other_index)
        frame = frame[keep]
        out.append(EpochStats(
            epoch=epoch,
            positions=frame["id"].map(position).to_numpy(np.int64),
            label=frame["label"].map(label_index).to_numpy(np.int64),
            margin=frame["margin"].to_numpy(np.float64),
            p_label=frame["p_label"].to_numpy(np.float64),
            correct=frame["correct"].to_numpy(np.float64),
            top_other=frame["top_other"].map(other_index).to_numpy(np.int64),
        ))
    return out


def threshold_margins(project: "Project", run: str, split: str = TRAIN_SPLIT) -> np.ndarray:
    """The area under the margin of each threshold sample of ``run`` (its mean margin over the
    split's epochs; empty when the run had none), for :func:`core.capture.dynamics.aum_threshold`."""
    import pandas as pd

    captured = capture_run(project, run)
    frames = []
    for epoch in captured.epochs.get(split, []):
        data = _open_table(project, run, split, epoch, "stats")
        if data is not None:
            frame = data.select(["id", "label", "margin"]).to_pandas()
            frames.append(frame[frame["label"] == THRESHOLD_CLASS])
    if not frames:
        return np.zeros(0)
    return pd.concat(frames).groupby("id")["margin"].mean().to_numpy(np.float64)


def threshold_samples(project: "Project | str | os.PathLike", fraction: Optional[float] = None, seed: int = 0) -> list[str]:
    """Ids to relabel as :data:`THRESHOLD_CLASS` while training, to calibrate the AUM cut.

    Pleiss et al. give N / (C + 1) samples the fake class: as many as an average class, so the
    fake class is learned as hard as a real one would be with wrong labels. ``fraction`` sets
    another share. These samples are not judged in that run; a second run with another ``seed``
    judges them. ``project``: a Project or its folder.
    """
    if not hasattr(project, "sample_ids"):
        from core.store.project import Project

        project = Project.open(project)
    ids = project.sample_ids()
    share = 1.0 / (len(project.labels()) + 1) if fraction is None else float(fraction)
    if not 0.0 < share < 1.0:
        raise AmendError(f"fraction of threshold samples must lie in (0, 1), got {share}")
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(ids), max(1, int(round(share * len(ids)))), replace=False)
    return [ids[i] for i in np.sort(chosen)]


def _last_rows(data: "pa.Table") -> tuple[list[str], np.ndarray]:
    """(ids, matrix) keeping the last row of a sample seen more than once in an epoch."""
    ids = data.column("id").to_pylist()
    width = data.schema.field("vector").type.list_size
    matrix = data.column("vector").combine_chunks().flatten().to_numpy(zero_copy_only=False).reshape(-1, width)
    last = {sid: i for i, sid in enumerate(ids)}
    rows = np.fromiter(last.values(), dtype=np.int64, count=len(last))
    return list(last), matrix[rows]


def layer_vectors(project: "Project", run: str, layer: str, epoch: Optional[int] = None,
                  split: Optional[str] = None) -> tuple[list[str], np.ndarray, dict]:
    """(ids in project order, vectors, where from) of one captured layer.

    Default: the last complete epoch of every split, the train split's vector first, so a
    k-fold run whose eval folds cover the rest still gives one vector per sample. ``epoch`` and
    ``split`` pick one exactly.
    """
    captured = capture_run(project, run)
    splits = [split] if split else sorted(captured.epochs, key=lambda s: (s != TRAIN_SPLIT, s))
    table = f"layer__{layer}"
    found: dict[str, np.ndarray] = {}
    sources = {}
    for name in splits:
        if name not in captured.epochs:
            raise AmendError(f"capture run {run!r} has no split {name!r} (it has {', '.join(captured.epochs)})")
        chosen = captured.last_epoch(name) if epoch is None else epoch
        if chosen not in captured.epochs[name]:
            raise AmendError(f"capture run {run!r} split {name!r} has no complete epoch {chosen} "
                             f"(it has {captured.epochs[name]})")
        data = _open_table(project, run, name, chosen, table)
        if data is None:
            continue
        ids, matrix = _last_rows(data)
        added = 0
        for sid, row in zip(ids, matrix):
            if sid not in found:
                found[sid] = row
                added += 1
        sources[name] = {"epoch": chosen, "samples": added}
    if not found:
        raise AmendError(f"capture run {run!r} recorded no layer {layer!r} "
                         f"(layers: {', '.join(captured.record.get('layers', {})) or 'none'})")
    order = [sid for sid in project.sample_ids() if sid in found]
    return order, np.stack([found[sid] for sid in order]).astype(np.float32), sources


def held_out_probabilities(project: "Project", run: str) -> tuple[list[str], np.ndarray, list[str], dict]:
    """Softmax of the kept logits of the run's non-train splits at their last epoch, for the
    samples the run never trained on (out-of-sample), in project order; (ids, probabilities in
    the run's class order, classes, where from). Empty when there are none."""
    captured = capture_run(project, run)
    trained: set[str] = set()
    for epoch in captured.epochs.get(TRAIN_SPLIT, []):
        data = _open_table(project, run, TRAIN_SPLIT, epoch, "stats")
        if data is not None:
            trained.update(data.column("id").to_pylist())
    classes = captured.record.get("classes") or []
    found: dict[str, np.ndarray] = {}
    sources = {}
    for split in sorted(s for s in captured.epochs if s != TRAIN_SPLIT):
        epoch = captured.last_epoch(split)
        data = _open_table(project, run, split, epoch, "logits")
        if data is None:
            continue
        ids, logits = _last_rows(data)
        in_sample = 0
        for sid, row in zip(ids, logits):
            if sid in trained:
                in_sample += 1
                continue
            found.setdefault(sid, row)
        sources[split] = {"epoch": epoch, "out_of_sample": len(ids) - in_sample, "in_sample_left_out": in_sample}
    order = [sid for sid in project.sample_ids() if sid in found]
    if not order:
        return [], np.zeros((0, len(classes))), classes, sources
    logits = np.stack([found[sid] for sid in order]).astype(np.float64)
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    return order, probs, classes, sources
