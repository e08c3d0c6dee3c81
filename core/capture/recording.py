"""``capture.session(project, run=, epoch=, split=)``: one epoch of one split of a training run,
recorded into the project.

While a session is open, every forward call of a watched model (:mod:`core.capture.hooks`) that
carries ``sample_ids=`` hands its logits and layer outputs to the session's recorder. The
training thread only starts the copies off the device (``non_blocking``) and puts the batch on
a bounded queue (a full queue makes training wait: memory stays bounded); a background thread
waits for the copies, turns logits into per-sample statistics (running sums over the epoch, so
full logits are not kept unless asked) and appends layer vectors to LanceDB tables in blocks.

Commit point: an epoch is written into a hidden ``.partial`` folder and renamed to its final
name when the session ends without an exception. A killed or failed epoch leaves no visible
trace (its partial folder is removed by the next session of the run), so the last complete
epoch is always usable. The layout is :mod:`core.capture.store`'s.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import shutil
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import numpy as np

from core.capture import store
from core.errors import AmendError
from core.store.schema import check_name
from core.util import utc_now

logger = logging.getLogger(__name__)

__all__ = ["session", "active_recorder", "Recorder"]

_ACTIVE: list["Recorder"] = []
_ACTIVE_LOCK = threading.Lock()
_STOP = object()


def active_recorder() -> Optional["Recorder"]:
    """The innermost open session's recorder, or None."""
    return _ACTIVE[-1] if _ACTIVE else None


class Recorder:
    """Collects one epoch of one split; see the module docstring."""

    def __init__(self, root: Path, ids: list[str], project_labels: list[str], run: str, epoch: int, split: str,
                 classes: Optional[Sequence[str]], keep_logits: bool, layers: bool, queue_batches: int,
                 block_rows: int) -> None:
        self.root, self.run, self.epoch, self.split = root, run, epoch, split
        self.ids = ids
        self.position = {sid: i for i, sid in enumerate(ids)}
        self.project_labels = project_labels
        self.classes = list(classes) if classes is not None else list(project_labels)
        unknown = [c for c in self.classes if c not in project_labels and c != store.THRESHOLD_CLASS]
        if unknown:
            raise AmendError(f"classes {unknown[:5]} are not labels of the project (it has {project_labels[:10]})")
        if len(set(self.classes)) != len(self.classes):
            raise AmendError("classes name one model output each; a name appears twice")
        # The threshold class (Pleiss et al.'s fake extra class) is no project label: it gets
        # the index after the last one and keeps its name in the statistics.
        self.stat_names = list(project_labels) + [store.THRESHOLD_CLASS]
        label_index = {name: i for i, name in enumerate(self.stat_names)}
        # model output index -> index into stat_names
        self.to_project = np.array([label_index[c] for c in self.classes], dtype=np.int64)
        self.keep_logits = keep_logits
        self.capture_layers = layers
        self.block_rows = block_rows
        n = len(ids)
        self.sum_margin = np.zeros(n)
        self.sum_p = np.zeros(n)
        self.sum_correct = np.zeros(n)
        self.count = np.zeros(n, dtype=np.int64)
        self.label = np.full(n, -1, dtype=np.int64)
        self.top_other = np.full(n, -1, dtype=np.int64)
        self.rows = 0
        self.batches = 0
        self.train_mode_batches = 0
        self.calls_without_ids = 0
        self.model_class: Optional[str] = None
        self.layer_paths: dict[str, str] = {}
        self.pooling: dict[str, str] = {}
        self.layer_dims: dict[str, int] = {}
        self.buffers: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
        self.buffered_rows: dict[str, int] = {}
        self.partial = store.partial_dir(root, run, split, epoch)
        self.partial.mkdir(parents=True)
        self._db = None
        self.error: Optional[BaseException] = None
        self.queue: queue.Queue = queue.Queue(maxsize=queue_batches)
        self.started = time.perf_counter()
        self.started_at = utc_now()
        self.thread = threading.Thread(target=self._drain, name=f"amend-capture-{run}", daemon=True)
        self.thread.start()

    # ------------------------------------------------------------------ training thread
    def note_missing_ids(self) -> None:
        self.calls_without_ids += 1

    def record(self, watcher, logits, labels, sample_ids, layers: dict) -> None:
        """Hand one batch on (called from the watched model's forward hook)."""
        import torch

        if self.error is not None:
            raise AmendError(f"capture stopped: {self.error}") from self.error
        if labels is None:
            raise AmendError("capture: pass labels= (class indices) with sample_ids= to the watched model")
        if self.model_class is None:
            self.model_class = watcher.model_class
        self.layer_paths.update(watcher.layers)
        self.pooling.update(watcher.pooling_used)
        if watcher.model.training:
            self.train_mode_batches += 1
        if not isinstance(sample_ids, torch.Tensor):
            sample_ids = list(sample_ids)
        tensors = {"logits": logits, "labels": torch.as_tensor(labels)}
        if self.capture_layers:
            tensors.update({f"layer:{name}": value for name, value in layers.items()})
        if isinstance(sample_ids, torch.Tensor):
            tensors["ids"] = sample_ids
        event = None
        moved = {}
        for key, tensor in tensors.items():
            if tensor.is_cuda:
                moved[key] = tensor.to("cpu", non_blocking=True)
            else:
                moved[key] = tensor.detach()
        if any(t.is_cuda for t in tensors.values()):
            event = torch.cuda.Event()
            event.record()
        if "ids" not in moved:
            moved["ids"] = sample_ids
        self.queue.put((event, moved))

    # ------------------------------------------------------------------ writer thread
    def _drain(self) -> None:
        while True:
            item = self.queue.get()
            if item is _STOP:
                return
            if self.error is not None:
                continue  # keep draining so the training thread never blocks on a full queue
            try:
                event, batch = item
                if event is not None:
                    event.synchronize()
                self._take(batch)
            except BaseException as exc:  # surfaced in the training thread at the next call or at exit
                self.error = exc

    def _positions(self, ids: Any) -> np.ndarray:
        if isinstance(ids, list):
            unknown = [sid for sid in ids if sid not in self.position]
            if unknown:
                raise AmendError(
                    f"sample id {str(unknown[0])!r} is not in the project ({len(unknown)} unknown in one batch); "
                    "pass the project's sample ids or int positions"
                )
            return np.fromiter((self.position[sid] for sid in ids), dtype=np.int64, count=len(ids))
        positions = ids.numpy().astype(np.int64).reshape(-1)
        if positions.size and (positions.min() < 0 or positions.max() >= len(self.ids)):
            raise AmendError(
                f"sample position {int(positions.max() if positions.max() >= len(self.ids) else positions.min())} "
                f"is outside the project's {len(self.ids)} samples"
            )
        return positions

    def _take(self, batch: dict) -> None:
        positions = self._positions(batch["ids"])
        logits = batch["logits"].float().numpy()
        labels = batch["labels"].numpy().astype(np.int64).reshape(-1)
        b, c = logits.shape
        if c != len(self.classes):
            raise AmendError(
                f"the model gives {c} logits but the session knows {len(self.classes)} classes; pass classes= "
                "(the class name of each output, in order)"
            )
        if positions.shape[0] != b or labels.shape[0] != b:
            raise AmendError(f"batch of {b} logits came with {labels.shape[0]} labels and {positions.shape[0]} sample ids")
        if b and (labels.min() < 0 or labels.max() >= c):
            raise AmendError(f"labels must be class indices 0..{c - 1}, got {int(labels.min())}..{int(labels.max())}")
        rows = np.arange(b)
        given = logits[rows, labels]
        others = logits.copy()
        others[rows, labels] = -np.inf
        top_other = others.argmax(axis=1)
        shifted = logits - logits.max(axis=1, keepdims=True)
        p = np.exp(shifted)
        p /= p.sum(axis=1, keepdims=True)
        # np.add.at: a sample seen twice in one batch counts twice.
        np.add.at(self.sum_margin, positions, given - others[rows, top_other])
        np.add.at(self.sum_p, positions, p[rows, labels])
        np.add.at(self.sum_correct, positions, (logits.argmax(axis=1) == labels).astype(np.float64))
        np.add.at(self.count, positions, 1)
        self.label[positions] = self.to_project[labels]
        self.top_other[positions] = self.to_project[top_other]
        self.rows += b
        self.batches += 1
        for key, tensor in batch.items():
            if key.startswith("layer:"):
                name = key[len("layer:"):]
                matrix = tensor.float().numpy().reshape(b, -1)
                dim = self.layer_dims.setdefault(name, matrix.shape[1])
                if matrix.shape[1] != dim:
                    raise AmendError(f"layer {name!r} gave {matrix.shape[1]} features after {dim} in earlier batches")
                self._buffer(f"layer__{name}", positions, matrix)
        if self.keep_logits:
            self._buffer("logits", positions, logits)

    def _buffer(self, table: str, positions: np.ndarray, matrix: np.ndarray) -> None:
        self.buffers.setdefault(table, []).append((positions, matrix.astype(np.float32)))
        self.buffered_rows[table] = self.buffered_rows.get(table, 0) + len(positions)
        if self.buffered_rows[table] >= self.block_rows:
            self._flush(table)

    def _flush(self, table: str) -> None:
        parts = self.buffers.pop(table, [])
        self.buffered_rows[table] = 0
        if not parts:
            return
        positions = np.concatenate([p for p, _ in parts])
        matrix = np.concatenate([m for _, m in parts])
        ids = [self.ids[i] for i in positions]
        data = store.vector_block(ids, matrix)
        if self._db is None:
            import lancedb

            self._db = lancedb.connect(str(self.partial))
        if table in store.table_names(self._db):
            self._db.open_table(table).add(data)
        else:
            self._db.create_table(table, data=data)

    # ------------------------------------------------------------------ end of the epoch
    def _stop_writer(self) -> None:
        self.queue.put(_STOP)
        self.thread.join()

    def finish(self) -> Path:
        """Write the rest, the epoch's statistics and record; then make the epoch visible."""
        self._stop_writer()
        if self.error is not None:
            raise AmendError(f"capture failed: {self.error}") from self.error
        for table in list(self.buffers):
            self._flush(table)
        seen = np.flatnonzero(self.count > 0)
        counts = self.count[seen]
        stats = {
            "id": [self.ids[i] for i in seen],
            "label": [self.stat_names[i] for i in self.label[seen]],
            "margin": self.sum_margin[seen] / counts,
            "p_label": self.sum_p[seen] / counts,
            "correct": self.sum_correct[seen] / counts,
            "top_other": [self.stat_names[i] for i in self.top_other[seen]],
            "count": counts,
        }
        import lancedb
        import pyarrow as pa

        if self._db is None:
            self._db = lancedb.connect(str(self.partial))
        self._db.create_table("stats", data=pa.table(stats))
        record = {
            "run": self.run, "split": self.split, "epoch": self.epoch,
            "samples_seen": int(seen.size), "rows": int(self.rows), "batches": int(self.batches),
            "train_mode_batches": int(self.train_mode_batches), "calls_without_ids": int(self.calls_without_ids),
            "layers": dict(self.layer_dims), "pooling": dict(self.pooling), "logits_kept": bool(self.keep_logits),
            "classes": self.classes, "started_at": self.started_at, "completed_at": utc_now(),
            "seconds": round(time.perf_counter() - self.started, 3),
        }
        store.write_json(self.partial / store.EPOCH_FILE, record)
        final = store.epoch_dir(self.root, self.run, self.split, self.epoch)
        os.rename(self.partial, final)  # the commit point
        store.update_run_record(self.root, self.run, self.model_class, self.layer_paths, self.pooling, self.classes)
        if self.calls_without_ids:
            logger.warning("capture %s epoch %d: %d forward calls came without sample_ids= and were not recorded",
                           self.run, self.epoch, self.calls_without_ids)
        return final

    def abort(self) -> None:
        """Drop everything this epoch wrote."""
        self._stop_writer()
        shutil.rmtree(self.partial, ignore_errors=True)


@contextlib.contextmanager
def session(
    project: Any,
    run: str,
    epoch: int,
    split: str = "train",
    *,
    classes: Optional[Sequence[str]] = None,
    keep_logits: Optional[bool] = None,
    layers: bool = True,
    queue_batches: int = 64,
    block_rows: int = 8192,
) -> Iterator[Recorder]:
    """Record one epoch of one split of a training run into a project.

    Parameters
    ----------
    project : str, path or core.store.project.Project
        The project whose samples the model sees (``sample_ids=`` are its ids or positions).
    run : str
        Name of the training run (letters, digits, ``_ - .``); several epochs and splits of one
        training share it; another seed or model is another run.
    epoch : int
        Epoch number (>= 0). An epoch already recorded for this run and split is refused.
    split : str, default "train"
        ``"train"`` for the samples the model learns from; any other name (``"eval"``,
        ``"val"``, ``"fold3"``) for samples it is evaluated on.
    classes : sequence of str, optional
        The class name of each model output, in order; default the project's labels in order.
        May end with :data:`core.capture.store.THRESHOLD_CLASS` for threshold samples
        (:func:`core.capture.threshold_samples`).
    keep_logits : bool, optional
        Also keep every sample's full logits; default True for non-train splits (they become
        predictions), False for ``train`` (its statistics are kept instead).
    layers : bool, default True
        Record the watched layers' outputs this epoch (False: logits and statistics only).
    queue_batches : int, default 64
        Batches waiting to be written before training waits (bounds memory).
    block_rows : int, default 8192
        Rows per LanceDB write.
    """
    from core.store.project import Project

    check_name("capture run", run)
    check_name("split", split)
    if not isinstance(epoch, (int, np.integer)) or isinstance(epoch, bool) or epoch < 0:
        raise AmendError(f"epoch must be an int >= 0, got {epoch!r}")
    opened = project if isinstance(project, Project) else Project.open(project)
    root = opened.path
    final = store.epoch_dir(root, run, split, int(epoch))
    if final.exists():
        raise AmendError(
            f"capture run {run!r} already has epoch {epoch} of split {split!r}; choose another run name "
            "(a finished epoch is never overwritten)"
        )
    store.remove_stale_partials(root, run)
    ids = opened.sample_ids()
    if not ids:
        raise AmendError(f"{root} has no samples; ingest the data set before capturing a run on it")
    recorder = Recorder(
        root, ids, opened.labels(), run, int(epoch), split, classes,
        keep_logits=(split != store.TRAIN_SPLIT) if keep_logits is None else bool(keep_logits),
        layers=layers, queue_batches=queue_batches, block_rows=block_rows,
    )
    with _ACTIVE_LOCK:
        _ACTIVE.append(recorder)
    try:
        yield recorder
    except BaseException:
        with _ACTIVE_LOCK:
            _ACTIVE.remove(recorder)
        recorder.abort()
        raise
    with _ACTIVE_LOCK:
        _ACTIVE.remove(recorder)
    try:
        recorder.finish()
    except BaseException:
        shutil.rmtree(recorder.partial, ignore_errors=True)
        raise
