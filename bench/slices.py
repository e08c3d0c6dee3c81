"""Slices benchmark: the structured-noise protocol, k-means vs HDBSCAN, and map+slices wall time.

Protocol (per data set): cluster the representation into 12 groups with k-means (the ground
truth regions). In each run, take ONE cluster, its majority class A and the most common other
class B in it, and flip 20 % of A's labels inside that cluster to B. Compute out-of-sample
probabilities with a 5-fold cross-validated logistic probe on the noisy labels, find slices
(without looking at the labels), cut them down to where errors sit and carve the worst error
regions out at their own scale (the shipped pipeline; ``error_score_carved``; the other rankings
are measured on the slices before carving), build the slice table and take the top error slice.

A run is a *hit* when the top error slice is the planted region: most of its members (> 50 %)
lie in the planted cluster and it holds at least half of the flipped samples. One run per
cluster: 12 runs per data set.

Data: 20 Newsgroups MiniLM vectors from the shared data pack (``$AMEND_SHARED_DATA``, default
``<repo>/../shared/data``: ``news20/minilm.npy`` + labels from ``news20/test.jsonl``) when
present; synthetic Gaussian mixtures (10 classes x 4 modes, 512-d) at 10k and 100k always.

Usage: ``python bench/slices.py [--runs 12] [--probe auto|core|local] [--sizes 10000,100000]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core.slices import carve_error_regions, find_slices, project_2d, slice_table, name_slices, split_error_slices  # noqa: E402
from core.slices.projection import reduce  # noqa: E402
from core.slices.clustering import REDUCED_DIM  # noqa: E402
from core.slices.metrics import error_score  # noqa: E402

SHARED = Path(os.environ.get("AMEND_SHARED_DATA", REPO.parent / "shared" / "data"))


PROBE = "auto"


def probe_probabilities(vectors: np.ndarray, labels: np.ndarray, n_classes: int, seed: int) -> tuple[np.ndarray, str]:
    """Out-of-sample probabilities.

    ``--probe auto``: core.detect.probe.cross_validated_probabilities when it exists, else the
    local probe. ``--probe local``: 5-fold logistic regression (sklearn, C=10) on the 128-d PCA of
    the L2-normalised vectors: several times faster, for many runs on a small CPU.
    """
    if PROBE in ("auto", "core"):
        try:
            from core.detect.probe import cross_validated_probabilities

            return cross_validated_probabilities(vectors, labels, n_classes, folds=5, seed=seed, device="cpu"), "core.detect.probe"
        except ImportError:
            if PROBE == "core":
                raise
    import warnings

    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    x = reduce(vectors, 128, 0)
    out = np.zeros((x.shape[0], n_classes))
    for tr, te in StratifiedKFold(5, shuffle=True, random_state=seed).split(x, labels):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = LogisticRegression(C=10.0, max_iter=200).fit(x[tr], labels[tr])
        out[np.ix_(te, m.classes_)] = m.predict_proba(x[te])
    return out, "local 5-fold logistic on PCA-128"


def synthetic(n: int, d: int = 512, classes: int = 10, modes: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(classes * modes, d)).astype(np.float32)
    mode = rng.integers(0, classes * modes, n)
    x = centers[mode] * 0.35 + rng.normal(size=(n, d)).astype(np.float32) * (1.0 / np.sqrt(d) * 8)
    return x.astype(np.float32), (mode % classes).astype(np.int64)


def news20() -> tuple[np.ndarray, np.ndarray, list[str]] | None:
    vec_path, jsonl = SHARED / "news20" / "minilm.npy", SHARED / "news20" / "test.jsonl"
    if not (vec_path.is_file() and jsonl.is_file()):
        return None
    rows = [json.loads(line) for line in jsonl.open()]
    names = sorted({r["label"] for r in rows})
    idx = {c: i for i, c in enumerate(names)}
    return np.load(vec_path).astype(np.float32), np.array([idx[r["label"]] for r in rows]), names


def plant(labels: np.ndarray, regions: np.ndarray, region: int, rate: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    inside = regions == region
    counts = np.bincount(labels[inside], minlength=labels.max() + 1)
    a = int(np.argmax(counts))
    counts[a] = -1
    b = int(np.argmax(counts)) if counts.max() > 0 else (a + 1) % (labels.max() + 1)
    members = np.flatnonzero(inside & (labels == a))
    flip = rng.choice(members, int(round(rate * members.size)), replace=False)
    noisy = labels.copy()
    noisy[flip] = b
    mask = np.zeros(labels.shape[0], dtype=bool)
    mask[flip] = True
    return noisy, mask


def top_slices(table) -> dict[str, int]:
    """Top slice under the shipped error_score and four alternatives: the same without the
    confusion share (shipped until wave 2), the former error_score (excess vs the rest x
    min(1, -log10(p_Bonferroni) / 2)), excess x -log10 p, and unexpected errors alone."""
    ids = table["slice_id"].to_numpy()
    p = np.clip(table["p_value"].to_numpy(), 1e-300, 1)
    alt = np.maximum(table["excess_errors"].to_numpy(), 0) * -np.log10(p)
    former = np.maximum(table["excess_errors"].to_numpy(), 0) * np.minimum(1, -np.log10(np.clip(table["p_adjusted"].to_numpy(), 1e-300, 1)) / 2)
    without_share = error_score(table["unexpected_errors"].to_numpy(), table["unexpected_z"].to_numpy())
    return {
        "error_score": int(ids[np.argmax(table["error_score"].to_numpy())]),
        "without_confusion_share": int(ids[np.argmax(without_share)]),
        "former_error_score": int(ids[np.argmax(former)]),
        "excess_x_neglog10p": int(ids[np.argmax(alt)]),
        "unexpected_errors": int(ids[np.argmax(table["unexpected_errors"].to_numpy())]),
    }


def protocol(name: str, x: np.ndarray, y: np.ndarray, runs: int, methods: list[str], rate: float = 0.2) -> dict:
    from sklearn.cluster import KMeans

    n_classes = int(y.max()) + 1
    red = reduce(x, REDUCED_DIM, 0)
    regions = KMeans(12, n_init=3, random_state=0).fit_predict(x / np.linalg.norm(x, axis=1, keepdims=True))
    slicings = {}
    for m in methods:
        t = time.perf_counter()
        info: dict = {}
        slicings[m] = (find_slices(x, seed=0, method=m, reduced=red, info=info), time.perf_counter() - t, info)
    rankings = ("error_score", "without_confusion_share", "former_error_score", "excess_x_neglog10p", "unexpected_errors")
    hits = {m: {r: 0 for r in (*rankings, "error_score_carved")} for m in methods}
    jacc = {m: [] for m in methods}
    source = ""
    for r in range(runs):
        region = r % 12
        noisy, flipped = plant(y, regions, region, rate, seed=r)
        probs, source = probe_probabilities(x, noisy, n_classes, seed=r)
        planted = regions == region
        for m in methods:
            ids = split_error_slices(slicings[m][0], red, probs.argmax(1) != noisy, seed=0)
            table = slice_table(ids, noisy, probs, n_classes=n_classes)
            tops = top_slices(table)
            for ranking, top_id in tops.items():
                members = ids == top_id
                purity = planted[members].mean()
                caught = flipped[members].sum() / max(flipped.sum(), 1)
                hits[m][ranking] += int(purity > 0.5 and caught >= 0.5)
            # the shipped pipeline: the multi-resolution third pass, then the shipped ranking
            carved = carve_error_regions(ids, red, noisy, probs, seed=0)
            top_id = top_slices(slice_table(carved, noisy, probs, n_classes=n_classes))["error_score"]
            members = carved == top_id
            hits[m]["error_score_carved"] += int(planted[members].mean() > 0.5 and flipped[members].sum() >= 0.5 * max(flipped.sum(), 1))
            jacc[m].append((members & planted).sum() / (members | planted).sum())
    out = {"data": name, "n": x.shape[0], "runs": runs, "probe": source}
    for m in methods:
        out[m] = {
            "hit_rate": {r: hits[m][r] / runs for r in hits[m]},
            "mean_jaccard_top_vs_planted": float(np.mean(jacc[m])),
            "n_slices": slicings[m][2].get("n_slices"),
            "slicing_s": round(slicings[m][1], 2),
            "silhouette": slicings[m][2].get("silhouette"),
        }
    return out


def wall_time(n: int) -> dict:
    x, y = synthetic(n, seed=1)
    n_classes = int(y.max()) + 1
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(n_classes), n)  # timing only: the table cost does not depend on values
    t0 = time.perf_counter()
    coords = project_2d(x, seed=0)
    t1 = time.perf_counter()
    info: dict = {}
    ids = find_slices(x, seed=0, info=info)
    reduced = reduce(x, REDUCED_DIM, 0)
    ids = split_error_slices(ids, reduced, probs.argmax(1) != y, info=info)
    t_carve = time.perf_counter()
    ids = carve_error_regions(ids, reduced, y, probs, info=info)
    t2 = time.perf_counter()
    table = slice_table(ids, y, probs, n_classes=n_classes)
    name_slices(table, ids, x, [f"c{i}" for i in range(n_classes)])
    t3 = time.perf_counter()
    assert coords.shape == (n, 2)
    return {"n": n, "map_s": round(t1 - t0, 1), "slices_s": round(t2 - t1, 1), "table_names_s": round(t3 - t2, 1), "total_s": round(t3 - t0, 1), "carve_s": round(t2 - t_carve, 1), "k": info["n_slices"], "splits": info.get("splits", 0), "carved": info.get("carved", 0)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=12)
    ap.add_argument("--sizes", default="10000,100000", help="sizes for the wall-time figure")
    ap.add_argument("--protocol-sizes", default="10000", help="synthetic sizes for the hit-rate protocol")
    ap.add_argument("--methods", default="kmeans,hdbscan")
    ap.add_argument("--skip-timing", action="store_true")
    ap.add_argument("--probe", choices=["auto", "core", "local"], default="auto")
    args = ap.parse_args()
    global PROBE
    PROBE = args.probe
    methods = args.methods.split(",")
    results = []
    data = news20() if args.runs > 0 else None
    if data is not None:
        results.append(protocol("news20-minilm", data[0], data[1], args.runs, methods))
        print(json.dumps(results[-1]), flush=True)
    elif args.runs > 0:
        print(f"news20 vectors not found under {SHARED}; set AMEND_SHARED_DATA", flush=True)
    for n in [int(s) for s in args.protocol_sizes.split(",") if s and args.runs > 0]:
        x, y = synthetic(n)
        results.append(protocol(f"synthetic-{n // 1000}k-512d", x, y, args.runs, methods))
        print(json.dumps(results[-1]), flush=True)
    if not args.skip_timing:
        import umap  # noqa: F401  (import + numba warm-up is not part of the figure)

        project_2d(np.random.default_rng(0).normal(size=(300, 16)).astype(np.float32))
        for n in [int(s) for s in args.sizes.split(",") if s]:
            print(json.dumps(wall_time(n)), flush=True)


if __name__ == "__main__":
    main()
