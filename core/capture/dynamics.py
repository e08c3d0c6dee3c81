"""Per-sample training dynamics: what a user's model did with each sample while it trained.

A capture hook (elsewhere) reduces every epoch of one run to :class:`EpochStats`; this module
turns the epochs of one run into :class:`Dynamics` (:func:`run_dynamics`), merges several runs
(:func:`combine_runs`) and calibrates the area-under-the-margin cut from threshold samples
(:func:`aum_threshold`). The statistics are the published ones:

* area under the margin (AUM): the mean over epochs of ``logit[label] - max other logit``
  (Pleiss et al. 2020, "Identifying Mislabeled Data using the Area Under the Margin Ranking");
* confidence, variability and correctness of a data map (Swayamdipta et al. 2020, "Dataset
  Cartography");
* forgetting events, correct in one epoch and wrong in the next (Toneva et al. 2019, "An
  Empirical Study of Example Forgetting during Deep Neural Network Learning").

Pure numpy, no torch: the statistics are computed long after the run, from stored arrays. Memory
is O(n) per statistic plus the distinct (sample, runner-up class) pairs, whatever the number of
epochs, so one million samples over a hundred epochs fit where the captured epochs fit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["EpochStats", "Dynamics", "run_dynamics", "combine_runs", "aum_threshold"]


@dataclass(frozen=True)
class EpochStats:
    """What one epoch of one run's split saw, per sample (aligned arrays of length m).

    Attributes
    ----------
    epoch : int
        Epoch number (any integers; only their order matters).
    positions : np.ndarray
        int64 (m,), project sample positions (0..n-1) seen this epoch, unique.
    label : np.ndarray
        int64 (m,), the label the model was trained/evaluated against.
    margin : np.ndarray
        float64 (m,), mean over the epoch's occurrences of ``logit[label] - max other logit``.
    p_label : np.ndarray
        float64 (m,), mean softmax probability of ``label``.
    correct : np.ndarray
        float64 (m,), share of occurrences whose argmax == label (0..1).
    top_other : np.ndarray
        int64 (m,), class of the largest logit other than ``label`` (last occurrence); -1 = none.
    """

    epoch: int
    positions: np.ndarray
    label: np.ndarray
    margin: np.ndarray
    p_label: np.ndarray
    correct: np.ndarray
    top_other: np.ndarray

    def __post_init__(self) -> None:
        where = f"epoch {self.epoch}"
        ints = {name: np.asarray(getattr(self, name)) for name in ("positions", "label", "top_other")}
        floats = {name: np.asarray(getattr(self, name)) for name in ("margin", "p_label", "correct")}
        if ints["positions"].ndim != 1:
            raise ValueError(f"{where}: positions must be 1-D, got shape {ints['positions'].shape}")
        m = ints["positions"].shape[0]
        for name, array in {**ints, **floats}.items():
            if array.shape != (m,):
                raise ValueError(f"{where}: {name} has shape {array.shape}, expected ({m},) like positions")
        for name, array in ints.items():
            if array.size and not np.issubdtype(array.dtype, np.integer):
                raise ValueError(f"{where}: {name} must hold integers, got dtype {array.dtype}")
            object.__setattr__(self, name, array.astype(np.int64))
        for name, array in floats.items():
            array = array.astype(np.float64)
            if not np.isfinite(array).all():
                raise ValueError(f"{where}: {name} holds NaN or infinite values")
            object.__setattr__(self, name, array)
        if m and (self.label.min() < 0 or self.top_other.min() < -1):
            raise ValueError(f"{where}: labels must be >= 0 and top_other >= -1")
        if m and (self.p_label.min() < 0 or self.p_label.max() > 1 or self.correct.min() < 0 or self.correct.max() > 1):
            raise ValueError(f"{where}: p_label and correct must lie in [0, 1]")
        object.__setattr__(self, "epoch", int(self.epoch))

    def __len__(self) -> int:
        return int(self.positions.shape[0])


@dataclass(frozen=True)
class Dynamics:
    """Per-sample training dynamics over n project samples (unseen: NaN / -1 / 0 / False).

    Attributes
    ----------
    epochs_seen : np.ndarray
        int64 (n,), epochs that saw the sample with ``label`` (summed over runs).
    label : np.ndarray
        int64 (n,), the label trained on; -1 unseen. If it changed between epochs, the last one,
        and only the epochs with that label count in every other statistic.
    aum : np.ndarray
        float64 (n,), area under the margin = mean margin over epochs (Pleiss et al. 2020).
    confidence : np.ndarray
        float64 (n,), mean ``p_label`` over epochs (data maps, Swayamdipta et al. 2020).
    variability : np.ndarray
        float64 (n,), population standard deviation of ``p_label`` over epochs.
    correctness : np.ndarray
        float64 (n,), share of epochs in which the sample counted as correct (``correct >= 0.5``).
    forgetting : np.ndarray
        int64 (n,), forgetting events: epochs in which it was wrong after being correct in the
        previous epoch that saw it (Toneva et al. 2019).
    never_learned : np.ndarray
        bool (n,), seen but never correct in any epoch.
    last_correct : np.ndarray
        bool (n,), correct in the last epoch that saw it.
    suggested : np.ndarray
        int64 (n,), most frequent ``top_other`` over epochs (ties: the one seen last); -1 unseen.
    runs : np.ndarray
        int64 (n,), how many runs saw the sample (with ``label``).
    runs_flagging : np.ndarray
        int64 (n,), runs in which its AUM was below 0.
    runs_learned : np.ndarray
        int64 (n,), runs whose model got it right at its last epoch.
    n_epochs : int
        Most epochs of any run.
    """

    epochs_seen: np.ndarray
    label: np.ndarray
    aum: np.ndarray
    confidence: np.ndarray
    variability: np.ndarray
    correctness: np.ndarray
    forgetting: np.ndarray
    never_learned: np.ndarray
    last_correct: np.ndarray
    suggested: np.ndarray
    runs: np.ndarray
    runs_flagging: np.ndarray
    runs_learned: np.ndarray
    n_epochs: int

    def __len__(self) -> int:
        return int(self.epochs_seen.shape[0])

    @property
    def seen(self) -> np.ndarray:
        """bool (n,), samples at least one epoch saw."""
        return self.epochs_seen > 0


def _ordered(epochs: Sequence[EpochStats], n: int) -> list[EpochStats]:
    """The epochs sorted by number, after checking each against ``n``."""
    if int(n) != n or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    ordered = sorted(epochs, key=lambda e: e.epoch)
    numbers = [e.epoch for e in ordered]
    if len(set(numbers)) != len(numbers):
        raise ValueError(f"epoch numbers repeat in one run: {numbers}")
    for e in ordered:
        if not len(e):
            continue
        if e.positions.min() < 0 or e.positions.max() >= n:
            raise ValueError(
                f"epoch {e.epoch}: positions must lie in [0, {n - 1}], got [{e.positions.min()}, {e.positions.max()}]")
        # bincount instead of np.unique: O(n) rather than a sort of m per epoch
        if np.bincount(e.positions, minlength=n).max() > 1:
            raise ValueError(f"epoch {e.epoch}: a position occurs more than once")
    return ordered


class _PairCounts:
    """Counts of (sample, class) pairs with the last epoch each was seen, merged epoch by epoch.

    A dense (n, C) table would not fit for a million samples and a thousand classes; the
    distinct pairs a run produces are few per sample, so they are kept as sorted unique int64
    keys ``sample * C + class``. New pairs wait in a buffer until it is as large as the table, so
    a merge happens every few epochs rather than every one and its cost stays proportional to
    what was added.
    """

    #: Smallest buffer worth a merge: below it the merge's fixed cost dominates.
    MIN_FLUSH = 1 << 20

    def __init__(self, n: int, n_classes: int, n_steps: int) -> None:
        self.n_classes = max(int(n_classes), 1)
        self.n_steps = max(int(n_steps), 1)
        # The buffer is sorted as one int64 per entry, key * steps + step, when that fits:
        # a plain sort is several times faster than an argsort and its gathers.
        self.packed = max(int(n), 1) * self.n_classes * self.n_steps < 2 ** 62
        self.keys = np.zeros(0, dtype=np.int64)
        self.counts = np.zeros(0, dtype=np.int64)
        self.last = np.zeros(0, dtype=np.int64)
        self._pending: list[tuple[np.ndarray, int]] = []
        self._pending_size = 0

    def add(self, samples: np.ndarray, classes: np.ndarray, step: int) -> None:
        if not samples.size:
            return
        self._pending.append((samples * self.n_classes + classes, int(step)))
        self._pending_size += samples.size
        if self._pending_size >= max(self.keys.size, self.MIN_FLUSH):
            self._flush()

    def _pending_table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The buffer reduced to sorted unique keys, their counts and last steps."""
        if self.packed:
            values = np.sort(np.concatenate([k * self.n_steps + step for k, step in self._pending]))
            keys, steps = np.divmod(values, self.n_steps)
        else:
            keys = np.concatenate([k for k, _ in self._pending])
            steps = np.concatenate([np.full(k.size, step, dtype=np.int64) for k, step in self._pending])
            order = np.lexsort((steps, keys))
            keys, steps = keys[order], steps[order]
        ends = np.flatnonzero(np.r_[keys[1:] != keys[:-1], True])
        counts = np.diff(np.r_[-1, ends])
        # sorted by key then step: a key's last entry holds its latest step
        return keys[ends], counts.astype(np.int64), steps[ends]

    def _flush(self) -> None:
        if not self._pending:
            return
        new_keys, new_counts, new_last = self._pending_table()
        self._pending, self._pending_size = [], 0
        keys = np.concatenate([self.keys, new_keys])
        counts = np.concatenate([self.counts, new_counts])
        last = np.concatenate([self.last, new_last])
        # two sorted runs: the stable sort (timsort) merges them in linear time
        order = np.argsort(keys, kind="stable")
        keys, counts, last = keys[order], counts[order], last[order]
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        self.keys = keys[starts]
        self.counts = np.add.reduceat(counts, starts)
        self.last = np.maximum.reduceat(last, starts)

    def mode(self, n: int) -> np.ndarray:
        """Per sample the most counted class, ties to the one seen last; -1 where none."""
        self._flush()
        out = np.full(n, -1, dtype=np.int64)
        if not self.keys.size:
            return out
        samples, classes = np.divmod(self.keys, self.n_classes)
        # Sorted by sample, then count, then last epoch: the winner closes each sample's block.
        order = np.lexsort((self.last, self.counts, samples))
        samples, classes = samples[order], classes[order]
        ends = np.flatnonzero(np.r_[samples[1:] != samples[:-1], True])
        out[samples[ends]] = classes[ends]
        return out


def _unseen(n: int, n_epochs: int = 0) -> dict:
    return {
        "epochs_seen": np.zeros(n, dtype=np.int64),
        "label": np.full(n, -1, dtype=np.int64),
        "aum": np.full(n, np.nan),
        "confidence": np.full(n, np.nan),
        "variability": np.full(n, np.nan),
        "correctness": np.full(n, np.nan),
        "forgetting": np.zeros(n, dtype=np.int64),
        "never_learned": np.zeros(n, dtype=bool),
        "last_correct": np.zeros(n, dtype=bool),
        "suggested": np.full(n, -1, dtype=np.int64),
        "runs": np.zeros(n, dtype=np.int64),
        "runs_flagging": np.zeros(n, dtype=np.int64),
        "runs_learned": np.zeros(n, dtype=np.int64),
        "n_epochs": int(n_epochs),
    }


# Columns of run_dynamics' per-sample accumulator.
_COUNT, _MARGIN, _MEAN, _M2, _CORRECT, _STATE, _FORGOT = range(7)
_COLUMNS = 8  # seven used, padded to 64 bytes


def run_dynamics(epochs: Sequence[EpochStats], n: int) -> Dynamics:
    """Per-sample dynamics of one training run.

    Parameters
    ----------
    epochs : sequence of EpochStats
        The run's epochs, in any order (sorted here by ``epoch``); numbers must not repeat.
    n : int
        Number of project samples; every position must lie in ``[0, n)``.

    Returns
    -------
    Dynamics
        ``runs`` is 1 for every seen sample, ``runs_flagging`` 1 where its AUM < 0,
        ``runs_learned`` 1 where it was correct in its last epoch; ``n_epochs`` = len(epochs).
        An epoch counts a sample as correct when at least half its occurrences were
        (``correct >= 0.5``); that binary value drives correctness, forgetting, never_learned
        and last_correct.

    Raises
    ------
    ValueError
        Positions out of range or repeated within an epoch, repeated epoch numbers.
    """
    ordered = _ordered(epochs, n)
    out = _unseen(n, len(ordered))
    if not ordered:
        return Dynamics(**out)
    # Pass 1: the label in force at the end of the run. A label corrected mid-run makes the
    # earlier epochs evidence about another label, so they must not count for this one.
    final = out["label"]
    n_classes = 1
    for e in ordered:
        final[e.positions] = e.label
        if len(e):
            n_classes = max(n_classes, int(e.label.max()) + 1, int(e.top_other.max()) + 1)

    # One row of running statistics per sample: an epoch visits its samples in random order, and
    # one gather and one scatter of a 64-byte row (one cache line) cost about a third of what
    # seven separate arrays do. The rows are moved as opaque 64-byte items because numpy's 1-D
    # take/put of those is several times faster than 2-D fancy indexing. Counts are exact in
    # float64 (far below 2**53).
    acc = np.zeros((n, _COLUMNS))
    acc[:, _STATE] = -1.0  # correctness in the previous counted epoch; -1 = none yet
    items = acc.view(np.dtype((np.void, _COLUMNS * 8))).reshape(n)
    pairs = _PairCounts(n, n_classes, len(ordered))
    for step, e in enumerate(ordered):
        keep = final[e.positions] == e.label
        # the usual case, nothing relabelled: a slice is a view, no copies of the epoch's arrays
        sel = slice(None) if keep.all() else keep
        pos = e.positions[sel]
        if not pos.size:
            continue
        packed = items[pos]
        rows = packed.view(np.float64).reshape(-1, _COLUMNS)  # a view: edits land in packed
        count = rows[:, _COUNT] + 1.0
        rows[:, _COUNT] = count
        rows[:, _MARGIN] += e.margin[sel]
        # Welford's update: a plain sum of squares loses the small variances of confident samples
        p = e.p_label[sel]
        delta = p - rows[:, _MEAN]
        rows[:, _MEAN] += delta / count
        rows[:, _M2] += delta * (p - rows[:, _MEAN])
        correct = e.correct[sel] >= 0.5
        rows[:, _CORRECT] += correct
        rows[:, _FORGOT] += (rows[:, _STATE] == 1.0) & ~correct
        rows[:, _STATE] = correct
        np.put(items, pos, packed)  # positions are unique within an epoch, so no update is lost
        other = e.top_other[sel]
        has = other >= 0
        pairs.add(pos[has], other[has], step)

    count = acc[:, _COUNT].astype(np.int64)
    n_correct = acc[:, _CORRECT]
    seen = count > 0
    safe = np.maximum(count, 1)
    out["epochs_seen"] = count
    out["aum"] = np.where(seen, acc[:, _MARGIN] / safe, np.nan)
    out["confidence"] = np.where(seen, acc[:, _MEAN], np.nan)
    out["variability"] = np.where(seen, np.sqrt(np.maximum(acc[:, _M2], 0.0) / safe), np.nan)
    out["correctness"] = np.where(seen, n_correct / safe, np.nan)
    out["forgetting"] = acc[:, _FORGOT].astype(np.int64)
    out["never_learned"] = seen & (n_correct == 0)
    out["last_correct"] = acc[:, _STATE] == 1.0
    out["suggested"] = pairs.mode(n)
    out["runs"] = seen.astype(np.int64)
    out["runs_flagging"] = (seen & (out["aum"] < 0)).astype(np.int64)
    out["runs_learned"] = out["last_correct"].astype(np.int64)
    logger.debug("dynamics of %d epochs: %d of %d samples seen", len(ordered), int(seen.sum()), n)
    return Dynamics(**out)


def _weighted_mode(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per column the value of ``values`` (R, n) with the most weight; ties to the later row; -1
    where no row with a value >= 0 has weight. R is the number of runs, so R * R is small."""
    valid = (values >= 0) & (weights > 0)
    support = np.zeros(values.shape, dtype=np.int64)
    for r in range(values.shape[0]):
        support[r] = np.where(valid & (values == values[r]), weights, 0).sum(axis=0)
    support = np.where(valid, support, -1)
    r_count = values.shape[0]
    # support * R + r: the most supported row, and among equals the later one
    best = np.argmax(support * r_count + np.arange(r_count)[:, None], axis=0)
    columns = np.arange(values.shape[1])
    return np.where(support[best, columns] > 0, values[best, columns], -1).astype(np.int64)


def combine_runs(runs: Sequence[Dynamics]) -> Dynamics:
    """Merge the dynamics of several runs (seeds, folds, restarts) over the same n samples.

    Parameters
    ----------
    runs : sequence of Dynamics
        Single runs (:func:`run_dynamics`) or earlier combinations; each weighs as many runs as
        its ``runs`` says, so combining combinations gives the same means as combining the runs.

    Returns
    -------
    Dynamics
        ``label``: the label most runs trained the sample on; when runs disagree, the most
        common one, ties to the later run in ``runs`` (the later a run, the likelier its label is
        a correction). Only the runs that trained on that label count in every other field, as
        within one run. ``aum``, ``confidence``, ``variability`` and ``correctness``: means over
        those runs; ``forgetting``, ``epochs_seen``, ``runs``, ``runs_flagging`` and
        ``runs_learned``: sums; ``never_learned``: no run ever learned it; ``last_correct``:
        a strict majority of the runs learned it by their last epoch; ``suggested``: the
        suggestion most runs made, ties to the later run; ``n_epochs``: the most of any run.

    Raises
    ------
    ValueError
        No runs, or runs over different numbers of samples.
    """
    runs = list(runs)
    if not runs:
        raise ValueError("combine_runs needs at least one run")
    sizes = {len(d) for d in runs}
    if len(sizes) != 1:
        raise ValueError(f"runs cover different numbers of samples: {sorted(sizes)}")
    n = sizes.pop()

    def stack(field: str) -> np.ndarray:
        return np.stack([np.asarray(getattr(d, field)) for d in runs]) if n else np.zeros((len(runs), 0))

    labels = stack("label").astype(np.int64)
    weight = np.where(labels >= 0, stack("runs"), 0).astype(np.int64)
    label = _weighted_mode(labels, weight)
    agree = (labels == label[None, :]) & (label >= 0)[None, :] & (weight > 0)
    w = np.where(agree, weight, 0)
    total = w.sum(axis=0)
    seen = total > 0
    safe = np.maximum(total, 1)

    def mean(field: str) -> np.ndarray:
        # where(agree, ...) first: a run that did not see the sample holds NaN there
        return np.where(seen, (np.where(agree, stack(field), 0.0) * w).sum(axis=0) / safe, np.nan)

    def summed(field: str) -> np.ndarray:
        return np.where(agree, stack(field), 0).sum(axis=0).astype(np.int64)

    runs_learned = summed("runs_learned")
    return Dynamics(
        epochs_seen=summed("epochs_seen"),
        label=label,
        aum=mean("aum"),
        confidence=mean("confidence"),
        variability=mean("variability"),
        correctness=mean("correctness"),
        forgetting=summed("forgetting"),
        never_learned=seen & np.where(agree, stack("never_learned").astype(bool), True).all(axis=0),
        last_correct=seen & (2 * runs_learned > total),
        suggested=_weighted_mode(np.where(agree, stack("suggested"), -1).astype(np.int64), w),
        runs=total.astype(np.int64),
        runs_flagging=summed("runs_flagging"),
        runs_learned=runs_learned,
        n_epochs=max(int(d.n_epochs) for d in runs),
    )


def aum_threshold(threshold_aum: np.ndarray, percentile: float = 99.0) -> float:
    """The AUM cut calibrated on threshold samples (Pleiss et al. 2020).

    Threshold samples are given a fake extra class on purpose, so they are mislabelled by
    construction; a real sample whose AUM is below the ``percentile`` of theirs looks as
    mislabelled as they do.

    Parameters
    ----------
    threshold_aum : np.ndarray
        AUM of the threshold samples; NaN (a threshold sample no epoch saw) is ignored.
    percentile : float, default 99.0
        Pleiss et al. use the 99th.

    Returns
    -------
    float
        The cut (linear interpolation between samples, numpy's default).

    Raises
    ------
    ValueError
        No threshold sample with an AUM, or a percentile outside [0, 100].
    """
    if not 0.0 <= float(percentile) <= 100.0:
        raise ValueError(f"percentile must lie in [0, 100], got {percentile}")
    values = np.asarray(threshold_aum, dtype=np.float64).ravel()
    values = values[~np.isnan(values)]
    if not values.size:
        raise ValueError("aum_threshold needs the AUM of at least one threshold sample")
    return float(np.percentile(values, percentile))


def train_accuracy(epochs: Sequence[EpochStats]) -> list[tuple[int, float]]:
    """(epoch, share of the samples seen that epoch whose label was the model's top choice),
    epochs in order: how far the model has fitted the labels it is given."""
    ordered = sorted(epochs, key=lambda e: e.epoch)
    return [(e.epoch, float(np.mean(np.asarray(e.correct) >= 0.5)) if len(e.positions) else 0.0) for e in ordered]


class CapturedDynamics:
    """The epochs of one or more captured runs, aggregated on demand.

    Attribute access reads the dynamics over every epoch (``.full``), so it stands in for a
    :class:`Dynamics`. :meth:`before_memorisation` keeps, per run, only the epochs before the model
    fitted more of its labels than can be right: once the share of the given labels it gets right
    exceeds 1 - the estimated noise rate, it is learning the wrong labels too, and margins from
    then on no longer tell them apart (the reason Pleiss et al. compute the AUM before the
    learning rate drops).
    """

    def __init__(self, runs: Sequence[Sequence[EpochStats]], n: int) -> None:
        self.run_epochs = [sorted(epochs, key=lambda e: e.epoch) for epochs in runs if len(epochs)]
        if not self.run_epochs:
            raise ValueError("CapturedDynamics needs at least one run with an epoch")
        self.n = int(n)
        self.full = self._aggregate(self.run_epochs)

    def _aggregate(self, runs: Sequence[Sequence[EpochStats]]) -> Dynamics:
        per_run = [run_dynamics(epochs, self.n) for epochs in runs]
        return per_run[0] if len(per_run) == 1 else combine_runs(per_run)

    def __getattr__(self, name: str) -> Any:
        if name in ("run_epochs", "n", "full"):  # not set yet (during construction): no recursion
            raise AttributeError(name)
        return getattr(self.full, name)

    def __len__(self) -> int:
        return self.n

    def before_memorisation(self, max_accuracy: float, fitted_accuracy: Optional[float] = None
                            ) -> tuple[Dynamics, list[list[int]], list[bool]]:
        """Dynamics over each run's epochs before its training accuracy first exceeds
        ``max_accuracy`` (at least its first epoch), the epochs used per run, and per run whether
        its accuracy ever reached ``fitted_accuracy`` (default ``max_accuracy``; False: training
        stopped while the model was still underfitting)."""
        fitted = max_accuracy if fitted_accuracy is None else fitted_accuracy
        kept, used, reached = [], [], []
        for epochs in self.run_epochs:
            accuracy = train_accuracy(epochs)
            stop = next((i for i, (_, acc) in enumerate(accuracy) if acc > max_accuracy), None)
            chosen = list(epochs[: max(1, len(epochs) if stop is None else stop)])
            kept.append(chosen)
            used.append([e.epoch for e in chosen])
            reached.append(any(acc >= fitted for _, acc in accuracy))
        return self._aggregate(kept), used, reached
