"""Several annotators on real data: CIFAR-10N's three human labels per image.

CIFAR-10N had every CIFAR-10 training image labelled by three crowd workers (``random1..3``,
about 17-18 % wrong each) and publishes their majority vote (``aggregate``, 9 % wrong); the
clean CIFAR-10 label is the truth. On the ``--vectors`` images (EfficientNet-Lite0 vectors,
rows ``--ids``), each case gives the detectors the three annotations and one set of labels in
use:

  one annotator's labels   labels = random1
  majority vote            labels = aggregate
  a habit, theirs in use   annotator 1 also calls 60 % of the cats "dog" (seeded, on top of
                           the real labels); labels = annotator 1's
  a habit, vote in use     the same habit; labels = the three annotators' majority vote
  some images once         each annotation dropped with probability 0.4, at least one kept
                           per image; labels = the first annotation left
  two annotators           random1 and random2 only; labels = random1

Methods, same vectors and labels, same run:

  Amend                     ``core.detect.detect`` with the annotations (the CLI's ``analyse``
                            with an annotator table)
  Amend, no annotations     ``detect`` on vectors and labels alone
  cleanlab                  ``find_label_issues`` on the probabilities Amend pooled without the
                            annotations (no annotations)
  CROWDLAB                  cleanlab's multi-annotator method as its documentation runs it: a
                            probe (Amend's, strength chosen the same way) trained on the
                            majority vote, its out-of-sample probabilities into
                            ``get_label_quality_multiannotator``; flagged where the consensus
                            differs from the label in use; ranked with the disagreeing first,
                            by consensus quality
  majority vote             flagged where the majority vote differs from the label in use

    python bench/annotators.py --vectors cifar.npy --ids ids.npy [--cases r1,agg,...]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from sklearn.metrics import average_precision_score  # noqa: E402

from core.detect import DetectConfig, detect  # noqa: E402
from core.detect.probe import choose_and_predict  # noqa: E402
from quality import SHARED, cifar_labels  # noqa: E402

CASES = {
    "r1": "one annotator's labels",
    "agg": "majority vote",
    "habit": "a habit, theirs in use",
    "habit-vote": "a habit, vote in use",
    "sparse": "some images once",
    "two": "two annotators",
}


def majority_vote(annotations: np.ndarray, n_classes: int) -> np.ndarray:
    """cleanlab's majority vote (-1 = missing); here rather than Amend's so the baseline runs on
    any revision."""
    import pandas as pd
    from cleanlab.multiannotator import get_majority_vote_label

    frame = pd.DataFrame(np.where(annotations >= 0, annotations, np.nan))
    return np.asarray(get_majority_vote_label(frame, verbose=False), dtype=np.int64)


def case_labels(case: str, lab: dict, ids: np.ndarray, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(annotations (N, M) with -1 = missing, labels in use) for one case (seeded)."""
    rng = np.random.default_rng(7)
    annotations = np.stack([lab["random1"][ids], lab["random2"][ids], lab["random3"][ids]], axis=1)
    clean = lab["clean"][ids]
    if case in ("habit", "habit-vote"):
        habit = (clean == names.index("cat")) & (rng.random(ids.size) < 0.6)
        annotations[habit, 0] = names.index("dog")
    if case == "sparse":
        dropped = rng.random(annotations.shape) < 0.4
        dropped[np.arange(ids.size), rng.integers(0, 3, ids.size)] = False
        annotations[dropped] = -1
        first = np.argmax(annotations >= 0, axis=1)
        return annotations, annotations[np.arange(ids.size), first]
    if case == "two":
        annotations = annotations[:, :2]
    if case in ("agg",):
        return annotations, lab["aggregate"][ids].copy()
    if case == "habit-vote":
        return annotations, majority_vote(annotations, len(names))
    return annotations, annotations[:, 0].copy()


def crowdlab(vectors: np.ndarray, annotations: np.ndarray, labels: np.ndarray, n_classes: int):
    """cleanlab's CROWDLAB as documented: (flagged, score)."""
    import pandas as pd
    from cleanlab.multiannotator import get_label_quality_multiannotator

    vote = majority_vote(annotations, n_classes)
    probabilities = choose_and_predict(vectors, vote, n_classes, seed=0, device="cpu").probabilities
    frame = pd.DataFrame(np.where(annotations >= 0, annotations, np.nan))
    quality = get_label_quality_multiannotator(frame, probabilities, verbose=False)["label_quality"]
    consensus = quality["consensus_label"].to_numpy()
    q = quality["consensus_quality_score"].to_numpy()
    disagrees = consensus != labels
    return disagrees, np.where(disagrees, 0.5 + 0.5 * q, 0.5 * (1.0 - q))


def figures(wrong: np.ndarray, flagged: np.ndarray, score: np.ndarray | None) -> str:
    tp = int((flagged & wrong).sum())
    f1 = 2 * tp / max(1, int(flagged.sum()) + int(wrong.sum()))
    auprc = "" if score is None else f"{average_precision_score(wrong, score):.3f}"
    return f"{auprc} | {f1:.3f} | {int(flagged.sum())}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vectors", required=True, help="(N, D) image vectors, rows = --ids")
    ap.add_argument("--ids", required=True, help="(N,) CIFAR-10N image ids of the vectors' rows")
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma list of {list(CASES)}")
    args = ap.parse_args(argv)
    if not (SHARED / "cifar10n" / "labels.csv").exists():
        print(f"CIFAR-10N labels not found under {SHARED}; set AMEND_SHARED_DATA")
        return 1
    vectors, ids = np.load(args.vectors), np.load(args.ids)
    names, lab = cifar_labels()
    n_classes = len(names)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; {ids.size} CIFAR-10N images "
          f"{ids.min()}..{ids.max()}, vectors {vectors.shape[1]}-d; truth = the clean label\n")
    print("| case | wrong | method | AUPRC | flag F1 | flags |")
    print("|---|---:|---|---:|---:|---:|")
    config = DetectConfig(device="cpu")
    for case in args.cases.split(","):
        annotations, labels = case_labels(case, lab, ids, names)
        wrong = labels != lab["clean"][ids]
        t0 = time.perf_counter()
        with_annotations = detect(vectors, labels, n_classes, annotator_labels=annotations, config=config)
        seconds = time.perf_counter() - t0
        alone = detect(vectors, labels, n_classes, config=config)
        from cleanlab.filter import find_label_issues

        cleanlab_flags = np.asarray(find_label_issues(labels, alone.probabilities, n_jobs=1), dtype=bool)
        rows = [
            (f"Amend ({seconds:.0f} s)", with_annotations.flagged, with_annotations.score),
            ("Amend, no annotations", alone.flagged, alone.score),
            ("cleanlab, no annotations", cleanlab_flags, None),
            ("CROWDLAB", *crowdlab(vectors, annotations, labels, n_classes)),
            ("majority vote", majority_vote(annotations, n_classes) != labels, None),
        ]
        for i, (method, flagged, score) in enumerate(rows):
            head = f"{CASES[case]} | {int(wrong.sum())}" if i == 0 else " | "
            print(f"| {head} | {method} | {figures(wrong, flagged, score)} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
