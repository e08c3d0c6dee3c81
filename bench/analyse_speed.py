"""Wall time and peak memory of ``core.detect.detect`` on synthetic vectors, step by step.

Data: a clustered Gaussian mixture (``--classes`` classes, each a few sub-clusters) on the unit
sphere, with ``--noise`` of the labels replaced by a random other class. Vectors only (the probe
makes the probabilities), as in a project without a user model.

Run: ``python bench/analyse_speed.py --sizes 10000,100000 [--dim 512] [--slices]``.
``--slices`` then times the map and the slices as ``amend analyse`` makes them after detection
(:func:`core.slices.discover_slices` on detect's probabilities, reusing the structured-regions
detector's cut), in the same process: the map's first call includes UMAP's compilation, as in a
fresh ``amend analyse``.
Peak memory: ``tracemalloc`` for Python/numpy allocations during detect(), and the process's
peak resident set size (``resource.getrusage``) which also covers torch and BLAS buffers.
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core.detect import DetectConfig, detect  # noqa: E402


def mixture(n: int, dim: int, n_classes: int, noise: float, seed: int = 0):
    """(vectors float32 (n, dim), noisy labels, true labels)."""
    rng = np.random.default_rng(seed)
    sub = 4
    # scales chosen so classes overlap (a linear probe reaches roughly 90 % accuracy, not 100 %)
    centres = 0.12 * rng.normal(size=(n_classes, dim)).astype(np.float32)
    offsets = 0.08 * rng.normal(size=(n_classes, sub, dim)).astype(np.float32)
    truth = rng.integers(0, n_classes, n)
    which = rng.integers(0, sub, n)
    x = centres[truth] + offsets[truth, which]
    x += rng.normal(size=(n, dim)).astype(np.float32)
    labels = truth.copy()
    flip = rng.random(n) < noise
    labels[flip] = (truth[flip] + rng.integers(1, n_classes, flip.sum())) % n_classes
    return x, labels, truth


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000", help="comma-separated sample counts")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--classes", type=int, default=20)
    ap.add_argument("--noise", type=float, default=0.05)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--knn", default="auto", help="kNN method: auto, exact or faiss")
    ap.add_argument("--slices", action="store_true", help="also time the map and the slices after detect")
    ap.add_argument("--slices-only", action="store_true",
                    help="time only the cut, the map and the slices (probabilities from a quick untimed probe)")
    args = ap.parse_args(argv)
    import torch

    print(f"machine: {platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}, "
          f"cuda {torch.cuda.is_available()}")
    print("| N x D | step | seconds |")
    print("|---|---|---|")
    for n in [int(s) for s in args.sizes.split(",")]:
        x, labels, truth = mixture(n, args.dim, args.classes, args.noise)
        if args.slices_only:
            time_slices_only(x, labels, args)
            continue
        tracemalloc.start()
        t0 = time.perf_counter()
        det = detect(x, labels, args.classes, config=DetectConfig(device=args.device, knn_method=args.knn))
        total = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        for step, sec in det.timings.items():
            print(f"| {n} x {args.dim} | {step} | {sec:.2f} |")
        print(f"| {n} x {args.dim} | **total detect()** | **{total:.2f}** |")
        from sklearn.metrics import average_precision_score

        wrong = labels != truth
        print(f"  kNN {det.graph.method}; peak traced {peak / 2**20:.0f} MiB, process peak RSS {rss:.0f} MiB; "
              f"planted errors {wrong.sum()}, flagged {det.flagged.sum()}, "
              f"AUPRC {average_precision_score(wrong, det.score):.3f}, "
              f"probe accuracy vs true labels {(det.probabilities.argmax(1) == truth).mean():.3f}", flush=True)
        if args.slices:
            from core.slices import discover_slices

            regions = det.results.get("regions")
            cut = (regions.evidence["region"], regions.evidence["slicing"]) if regions is not None else None
            t0 = time.perf_counter()
            found = discover_slices(x, labels, det.probabilities, det.flagged, device=args.device, cut=cut)
            total = time.perf_counter() - t0
            for step, sec in found.timings.items():
                print(f"| {n} x {args.dim} | slices.{step} | {sec:.2f} |")
            print(f"| {n} x {args.dim} | **map + slices (cut reused: {cut is not None})** | **{total:.2f}** |")
            print(f"  {len(found.table)} slices", flush=True)
    return 0


def time_slices_only(x: np.ndarray, labels: np.ndarray, args) -> None:
    """The analysis's slice steps alone, as `amend analyse` runs them after detection: the cut
    (error_aware_slices, which the structured-regions detector makes inside detect), then the
    map, table and names (discover_slices with that cut). The probabilities come from a quick
    out-of-sample probe on a 64-d reduction, made before any timing."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    from core.slices import discover_slices
    from core.slices.clustering import REDUCED_DIM, error_aware_slices
    from core.slices.projection import reduce

    n = x.shape[0]
    probs = cross_val_predict(LogisticRegression(max_iter=200), reduce(x, 64, 0), labels, cv=3, method="predict_proba")
    t0 = time.perf_counter()
    info: dict = {}
    ids = error_aware_slices(x, labels, probs, reduced=reduce(x, REDUCED_DIM, 0), info=info)
    cut_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    found = discover_slices(x, labels, probs, device=args.device, cut=(ids, info))
    rest_s = time.perf_counter() - t1
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"| {n} x {args.dim} | cut (three passes) | {cut_s:.2f} |")
    for step, sec in found.timings.items():
        print(f"| {n} x {args.dim} | slices.{step} | {sec:.2f} |")
    print(f"| {n} x {args.dim} | **map + slices, first call in this process** | **{cut_s + rest_s:.2f}** |")
    print(f"  {len(found.table)} slices; process peak RSS {rss:.0f} MiB", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
