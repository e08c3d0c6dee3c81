"""How faithful and how fast the 2-D map is: the shipped settings beside the previous ones.

The map (``core.slices.project_2d``) is only for looking; the slices are cut on the PCA reduction.
A map is faithful when the points drawn next to each other are neighbours in the representation:
sklearn's ``trustworthiness`` (1 = no false neighbours among each point's 15 nearest on the map),
computed on a seeded subsample of 3,000 rows against the L2-normalised vectors.

Settings compared in one run, on the same vectors:
- shipped: ``project_2d`` with its defaults (laid out from the slice cut's 32-d reduction,
  ``MAP_EPOCHS`` layout epochs);
- before: laid out from a 50-d reduction with 200 epochs (umap-learn's own choice above 10,000
  rows), the settings up to this bench's first run.

The seconds are the map alone in this process with the PCA included for both (in ``amend
analyse`` the shipped map's PCA is the slice cut's, already made); UMAP is imported and its
compiled code loaded before the first timing.

Data: a 10,000 x 1,280 clustered mixture (``bench/analyse_speed.py``'s, 10 classes) always;
``--vectors FILE.npy`` adds a saved representation (e.g. image embeddings), and 20 Newsgroups'
MiniLM vectors are added when ``../shared/data/news20/minilm.npy`` exists.

    python bench/map_quality.py [--vectors V.npy] [--rows 10000]
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

from core.neighbours import normalise  # noqa: E402
from core.slices.projection import project_2d  # noqa: E402

TRUST_ROWS = 3_000
TRUST_NEIGHBOURS = 15
SETTINGS = {"shipped": {}, "before (50-d, 200 epochs)": {"input_dim": 50, "n_epochs": 200}}


def data_sets(vectors: str | None, rows: int) -> dict[str, np.ndarray]:
    from analyse_speed import mixture

    sets = {f"mixture {rows} x 1280": mixture(rows, 1280, 10, 0.1, seed=0)[0]}
    if vectors:
        sets[Path(vectors).name] = np.load(vectors)[:rows].astype(np.float32)
    news = REPO.parent / "shared" / "data" / "news20" / "minilm.npy"
    if news.exists():
        sets["20 Newsgroups MiniLM"] = np.load(news)[:rows].astype(np.float32)
    return sets


def main(argv=None) -> int:
    from sklearn.manifold import trustworthiness

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vectors", help="a saved (N, D) .npy representation to map as well")
    ap.add_argument("--rows", type=int, default=10_000, help="rows of each set to map")
    args = ap.parse_args(argv)
    project_2d(np.random.default_rng(0).normal(size=(300, 16)).astype(np.float32))  # load compiled code
    print(f"machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores")
    print("| set | rows | settings | map s | trustworthiness |")
    print("|---|---:|---|---:|---:|")
    for name, x in data_sets(args.vectors, args.rows).items():
        sub = np.random.default_rng(1).choice(x.shape[0], min(TRUST_ROWS, x.shape[0]), replace=False)
        unit = normalise(x)[sub]
        for label, settings in SETTINGS.items():
            start = time.perf_counter()
            coords = project_2d(x, seed=0, device="cpu", **settings)
            seconds = time.perf_counter() - start
            trust = trustworthiness(unit, coords[sub], n_neighbors=TRUST_NEIGHBOURS)
            print(f"| {name} | {x.shape[0]} | {label} | {seconds:.2f} | {trust:.4f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
