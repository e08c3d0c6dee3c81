"""Wrong labels by metadata value: is one annotator's shared mistake found as a group?

Protocol (real vectors, a synthetic annotator column): every sample gets one of five annotators
at random; in each run one annotator labels 30 % of the class-A samples it was given as class B
(A and B: a pair the clean probe confuses, a different pair each run), so the mistake is spread
over all of class A's region, not one cluster of it. ``core.detect.detect`` runs on the vectors
and the labels (vectors only), then :func:`core.slices.groups.metadata_error_groups` compares
every (column, value): the five annotators and a second, unrelated column (site, two values).
Reported per run: the planted annotator's rank among the values and whether it passes the test
(Bonferroni, family-wise 0.01), whether its finding names the planted pair, and how many of its
flips the finding's samples hold. The same without any plant (the labels as they are) counts the
values that pass by chance.

    python bench/groups.py [--runs 12] [--vectors X.npy --ids ids.npy]   (CIFAR-10N images, clean labels)
    python bench/groups.py [--runs 12]                                     (20 Newsgroups MiniLM)

``--speed ROWS`` times the test itself instead, at scale: synthetic labels and probabilities
(10 classes), a metadata column of ``--values`` values (a comma list: one timing each), against
the same statistics computed one value at a time (a mask of the value's rows, its sums and
:func:`core.detect.regions.confusion_excess`), as the code did before it counted a column's
values together. The baseline runs the confusion test only; the values it passes must be among
those the test itself finds.

    python bench/groups.py --speed 1000000 --values 100,5000
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from core.detect import DetectConfig, detect  # noqa: E402
from core.detect.probe import cross_validated_probabilities  # noqa: E402
from core.slices.groups import metadata_error_groups  # noqa: E402

SHARED = Path(os.environ.get("AMEND_SHARED_DATA", REPO / ".." / "shared" / "data"))
ANNOTATORS = ("ann-1", "ann-2", "ann-3", "ann-4", "ann-5")


def confused_pairs(labels: np.ndarray, probabilities: np.ndarray, n_classes: int, count: int) -> list[tuple[int, int]]:
    """The ``count`` (A, B) pairs the probe confuses most (A labelled, B predicted), A distinct."""
    predicted = probabilities.argmax(axis=1)
    pairs = np.bincount(labels * n_classes + predicted, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    np.fill_diagonal(pairs, 0)
    out, used = [], set()
    for code in np.argsort(-pairs, axis=None):
        a, b = divmod(int(code), n_classes)
        if a not in used:
            out.append((a, b))
            used.add(a)
        if len(out) == count:
            break
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=12)
    ap.add_argument("--vectors", type=Path)
    ap.add_argument("--ids", type=Path, help="with --vectors: CIFAR-10N image ids of the rows (labels = clean labels)")
    ap.add_argument("--rate", type=float, default=0.3)
    ap.add_argument("--speed", type=int, metavar="ROWS", help="time the test at this many rows instead")
    ap.add_argument("--values", default="100,5000", help="with --speed: values of the metadata column")
    args = ap.parse_args(argv)
    if args.speed:
        return speed(args.speed, [int(v) for v in args.values.split(",")])
    if args.vectors is not None:
        classes = (SHARED / "cifar10n" / "classes.txt").read_text().split()
        frame = pd.read_csv(SHARED / "cifar10n" / "labels.csv")
        x = np.load(args.vectors).astype(np.float32)
        y = frame["clean"].map(classes.index).to_numpy()[np.load(args.ids)]
        data = f"CIFAR-10N images ({len(y)}), clean labels"
    else:
        from structured import load_news20

        x, y, classes = load_news20()
        x = x.astype(np.float32)
        data = f"20 Newsgroups ({len(y)}), MiniLM, given labels"
    n_classes = len(classes)
    probe = cross_validated_probabilities(x, y, n_classes)
    pairs = confused_pairs(y, probe, n_classes, n_classes)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; data: {data}; one of five annotators labels "
          f"{args.rate:.0%} of its class A as B")
    print("| run | annotator | A -> B | flips | planted rank | passes | finding | flips in finding | other values passing | detect s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    ranks, passes, named, null_passing = [], [], [], []
    for run in range(args.runs):
        rng = np.random.default_rng(run)
        annotator = rng.choice(ANNOTATORS, y.size)
        site = np.where(rng.random(y.size) < 0.5, "north", "south")
        metadata = pd.DataFrame({"annotator": annotator, "site": site})
        planted = ANNOTATORS[run % len(ANNOTATORS)]
        a, b = pairs[run % len(pairs)]
        candidates = np.flatnonzero((annotator == planted) & (y == a))
        flips = rng.choice(candidates, int(round(args.rate * candidates.size)), replace=False)
        labels = y.copy()
        labels[flips] = b
        t = time.perf_counter()
        d = detect(x, labels, n_classes, config=DetectConfig(device="cpu"))
        seconds = time.perf_counter() - t
        groups = metadata_error_groups(metadata, labels, d.probabilities, d.error_probability, d.flagged,
                                       d.suggested, classes)
        position = next(i for i, g in enumerate(groups) if (g["column"], g["value"]) == ("annotator", planted))
        mine = groups[position]
        finding = mine["finding"]
        right_pair = finding is not None and (finding["label"], finding["looks_like"]) == (classes[b], classes[a])
        held = int(np.isin(mine["finding_rows"], flips).sum())
        others = sum(g["significant"] for i, g in enumerate(groups) if i != position)
        ranks.append(position + 1)
        passes.append(mine["significant"])
        named.append(right_pair)
        # the same annotators without the plant: which values pass by chance?
        d0 = detect(x, y, n_classes, config=DetectConfig(device="cpu"))
        null = metadata_error_groups(metadata, y, d0.probabilities, d0.error_probability, d0.flagged, d0.suggested,
                                     classes)
        null_passing.append(sum(g["significant"] for g in null))
        print(f"| {run} | {planted} | {classes[a]} -> {classes[b]} | {flips.size} | {position + 1} | "
              f"{'yes' if mine['significant'] else 'no'} (z {mine['z']:.1f}) | "
              f"{finding['sentence'] if finding else '-'} | {held} of {flips.size} | {others} | {seconds:.1f} |")
    print(f"\nplanted annotator first in {sum(r == 1 for r in ranks)} of {args.runs} runs, passing the test in "
          f"{sum(passes)}, its finding naming the planted pair in {sum(named)}")
    print(f"without the plant (same annotator columns, {args.runs} runs x {len(ANNOTATORS) + 2} values): "
          f"{sum(null_passing)} values passed")
    return 0


def one_value_at_a_time(column: np.ndarray, labels: np.ndarray, probabilities: np.ndarray,
                        error: np.ndarray, min_size: int = 10) -> dict:
    """value -> (expected wrong labels, confusion p-value) computed from each value's own mask: the
    per-value way, the baseline of ``--speed``."""
    from scipy.stats import hypergeom

    from core.detect.regions import confusion_excess

    predicted = probabilities.argmax(axis=1)
    n_classes = probabilities.shape[1]
    out = {}
    for value in pd.unique(column):
        inside = column == value
        size = int(inside.sum())
        if size < min_size:
            continue
        found = confusion_excess(labels, predicted, inside, n_classes)
        p_pair = 1.0
        if found is not None and found[2] >= 5:
            given, looks, count, _, shown = found
            carries = labels == given
            p_pair = min(1.0, shown * float(hypergeom.sf(count - 1, carries.sum(),
                                                         (carries & (predicted == looks)).sum(),
                                                         (carries & inside).sum())))
        out[value] = (float(error[inside].sum()), p_pair)
    return out


def speed(rows: int, value_counts: list[int]) -> int:
    import resource

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; {rows:,} rows, 10 classes, one metadata column")
    print("| values | one pass per column s | one value at a time s | ratio | values passing (both) |")
    print("|---:|---:|---:|---:|---|")
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, rows)
    probabilities = rng.dirichlet(np.full(10, 0.4), rows)
    probabilities[np.arange(rows), labels] += 0.6
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    error = 1.0 - probabilities[np.arange(rows), labels]
    flagged = error > 0.6
    suggested = np.where(flagged, probabilities.argmax(axis=1), -1)
    classes = [f"class-{i}" for i in range(10)]
    for count in value_counts:
        column = np.array([f"batch-{v}" for v in range(count)], dtype=object)[rng.integers(0, count, rows)]
        # one batch whose labeller read class 0 as class 1: half its class-0 rows predicted as 1
        bad = np.flatnonzero((column == "batch-3") & (labels == 0))
        bad = bad[: bad.size // 2]
        probabilities[bad] = probabilities[bad][:, [1, 0, *range(2, 10)]]
        t = time.perf_counter()
        groups = metadata_error_groups(pd.DataFrame({"batch": column}), labels, probabilities, error, flagged,
                                       suggested, classes)
        together = time.perf_counter() - t
        t = time.perf_counter()
        alone = one_value_at_a_time(column, labels, probabilities, error)
        apart = time.perf_counter() - t
        passing = sorted(g["value"] for g in groups if g["significant"])
        tested = len(groups)
        passing_alone = sorted(v for v, (_, p_pair) in alone.items() if min(1.0, 2 * p_pair) * tested < 0.01)
        same = "same" if set(passing_alone) <= set(passing) else f"differ: {passing_alone}"
        print(f"| {count:,} | {together:.2f} | {apart:.2f} | {apart / together:.0f}x | {passing} ({same}) |", flush=True)
        probabilities[bad] = probabilities[bad][:, [1, 0, *range(2, 10)]]  # put the batch back
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
