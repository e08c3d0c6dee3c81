"""One annotator's habit: is it reported, for the right annotator and pair, and only then?

CIFAR-10N training images (vectors given with --vectors/--ids) with their three real label sets
(random1..3) as three annotators, the cases of bench/annotators.py (r1: annotator 1's labels in
use; habit: annotator 1 also labels 60 % of the cats "dog"; two: two annotators) plus
habit+truck: the habit and annotator 3 labelling 40 % of the trucks "automobile". For each case,
``core.detect.detect`` with the annotators, and every habit it reports
(``evidence["annotator_habits"]``): the annotator, the pair, their share against the others', and
how many of its samples are truly of the class (clean labels). Beside it, from the same run,
cleanlab's CROWDLAB per-annotator quality (the baseline: it rates an annotator, not a pair).

    python bench/annotator_habits.py --vectors X.npy --ids ids.npy [--cases r1,habit,habit+truck,two]
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

from annotators import SHARED, case_labels  # noqa: E402
from core.detect import DetectConfig, detect  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vectors", type=Path, required=True)
    ap.add_argument("--ids", type=Path, required=True)
    ap.add_argument("--cases", default="r1,habit,habit+truck,two")
    args = ap.parse_args(argv)
    import pandas as pd

    names = (SHARED / "cifar10n" / "classes.txt").read_text().split()
    frame = pd.read_csv(SHARED / "cifar10n" / "labels.csv")
    lab = {c: frame[c].map(names.index).to_numpy() for c in ("clean", "random1", "random2", "random3", "aggregate")}
    x, ids = np.load(args.vectors), np.load(args.ids)
    clean = lab["clean"][ids]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; {x.shape[0]} images x {x.shape[1]}")
    for case in args.cases.split(","):
        annotations, labels = case_labels(case.split("+")[0], lab, ids, names)
        if case.endswith("+truck"):
            rng = np.random.default_rng(11)
            planted = (clean == names.index("truck")) & (rng.random(ids.size) < 0.4)
            annotations[planted, 2] = names.index("automobile")
        started = time.perf_counter()
        found = detect(x, labels, len(names), annotator_labels=annotations, config=DetectConfig(seed=0))
        evidence = found.results["annotators"].evidence
        quality = ", ".join(f"{s['annotator']}: {s['annotator_quality']:.3f}" for s in evidence["annotator_stats"])
        habits = evidence.get("annotator_habits") or []
        print(f"\n{case} ({time.perf_counter() - started:.0f} s): {len(habits)} habit(s); CROWDLAB annotator quality {quality}")
        for h in habits:
            truly = float((clean[h["members"]] == h["true"]).mean()) if h["members"] else float("nan")
            print(f"  annotator {h['annotator'] + 1} labels {h['share']:.0%} of about {h['of']:.0f} {names[h['true']]} as "
                  f"{names[h['said']]} (others {h['others_share']:.1%}, p {h['p_value']:.1e}); "
                  f"{len(h['members'])} samples, {truly:.0%} truly {names[h['true']]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
