"""Wall time and peak memory of ``core.detect.detect`` on synthetic vectors, step by step.

Data: a clustered Gaussian mixture (``--classes`` classes, each a few sub-clusters) on the unit
sphere, with ``--noise`` of the labels replaced by a random other class. Vectors only (the probe
makes the probabilities), as in a project without a user model.

Run: ``python bench/analyse_speed.py --sizes 10000,100000 [--dim 512]``.
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
    args = ap.parse_args(argv)
    import torch

    print(f"machine: {platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}, "
          f"cuda {torch.cuda.is_available()}")
    print("| N x D | step | seconds |")
    print("|---|---|---|")
    for n in [int(s) for s in args.sizes.split(",")]:
        x, labels, truth = mixture(n, args.dim, args.classes, args.noise)
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
