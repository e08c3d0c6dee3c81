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
    args = ap.parse_args(argv)
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


if __name__ == "__main__":
    raise SystemExit(main())
