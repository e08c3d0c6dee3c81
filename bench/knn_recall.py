"""Recall@k of the approximate kNN graph (faiss IVF, what `amend analyse` uses on CPU above
``core.neighbours.EXACT_MAX_CPU`` rows) against exact search, on a sample of query rows.

Data: the clustered mixture of ``bench/analyse_speed.py``. The whole graph is built with
``build_knn_graph(method="faiss")``; then ``--queries`` rows get their exact k nearest neighbours
(one blocked product against every row) and recall@k is the share of those the graph holds.
Beside it, the share of neighbours with the query's true class, for the graph and for exact search:
what the neighbour vote needs. On these noise-dominated mixtures exact neighbours are close to
arbitrary, so recall alone says little there; real embeddings are far more clustered.

    python bench/knn_recall.py [--sizes 100000] [--dim 512] [--k 10] [--queries 2000]
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

from analyse_speed import mixture  # noqa: E402
from core.neighbours import build_knn_graph, exact_neighbours, normalise  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--classes", type=int, default=20)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--queries", type=int, default=2000)
    args = ap.parse_args(argv)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; {args.dim}-d mixture, {args.classes} classes, k={args.k}")
    print("| N | method | build s | recall@k (sampled queries) | same true class: graph / exact |")
    print("|---|---|---:|---:|---:|")
    for n in [int(s) for s in args.sizes.split(",")]:
        x, _, truth_class = mixture(n, args.dim, args.classes, 0.05)
        x = normalise(x)
        started = time.perf_counter()
        graph = build_knn_graph(x, k=args.k, method="faiss", device="cpu")
        built = time.perf_counter() - started
        rows = np.random.default_rng(0).choice(n, min(args.queries, n), replace=False)
        truth = exact_neighbours(x, rows, args.k)
        hits = sum(np.isin(truth[i], graph.indices[row]).sum() for i, row in enumerate(rows))
        same_graph = (truth_class[graph.indices[rows]] == truth_class[rows, None]).mean()
        same_exact = (truth_class[truth] == truth_class[rows, None]).mean()
        print(f"| {n:,} | {graph.method} | {built:.1f} | {hits / truth.size:.4f} | {same_graph:.3f} / {same_exact:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
