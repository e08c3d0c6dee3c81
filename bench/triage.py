"""Triage latency at scale: how long "move to the next sample" takes at 100k samples.

Builds a synthetic image project (Project.create + an ingest of N samples whose files are a pool
of small PNGs, each sample verified against its file's sha256 + an imported representation + a
run saved with core.analysis.runs.save_run carrying every evidence column analyse writes), then times
the calls the triage page makes:

- once per run / filter: load_flags (the run's evidence joined with the labels in force),
  apply_decisions, build_queue;
- after each decision: reading the decisions and re-deriving labels in force + the queue;
- move to the next sample, the page's call ``Prefetcher.view(next_id)``: cold (nothing prepared
  ahead) and with prefetch (the page asks for the next 5 after showing a sample; a reviewer
  looks at a sample for at least ``--think`` seconds before pressing N);
- the overview page's data: ``load_overview`` (the run with labels in force and metadata), the
  map for three colourings (``map_data``, with the density grid past 20,000 samples) and a lasso
  selection over every sample (``selected_ids``).

    python bench/triage.py [--samples 100000] [--moves 200] [--think 0.3] [--keep DIR]

Prints one line per figure; bench/README.md "Triage" records a run.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.views import triage  # noqa: E402
from core.review import audit, decisions
from core.analysis.run import _slices_frame  # noqa: E402
from core.analysis.runs import new_run_id, save_run  # noqa: E402
from core.slices import drawing_sample, slice_table  # noqa: E402
from core.slices.discover import SliceResult  # noqa: E402
from core.views import overview  # noqa: E402
from core.store.project import Project  # noqa: E402

LABELS = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
DETECTORS = ["confident", "duplicates", "neighbours_vote", "outliers"]
K = 10
SLICES = 40


def _png_pool(folder: Path, count: int, rng: np.random.Generator) -> list[tuple[str, str]]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    pool = []
    for i in range(count):
        pixels = rng.integers(0, 255, size=(32, 32, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")
        name = f"img{i:04d}.png"
        (folder / name).write_bytes(buffer.getvalue())
        pool.append((name, hashlib.sha256(buffer.getvalue()).hexdigest()))
    return pool


def ingest_image_project(path: Path, n: int, rng: np.random.Generator, given: np.ndarray | None = None,
                         id_format: str = "s{:06d}") -> tuple[Project, list[str], np.ndarray]:
    """A new image project at ``path`` with ``n`` samples whose files are a pool of 500 small PNGs
    beside it (each read verified against its sha256). ``given``: label indices into LABELS (drawn
    from ``rng`` when None). Returns (project, ids, given)."""
    images = path.parent / (path.name + "-images")
    pool = _png_pool(images, 500, rng)
    project = Project.create(path)
    if given is None:
        given = rng.integers(0, len(LABELS), size=n)
    ids = [id_format.format(i) for i in range(n)]
    with project.writer("bench"):
        with project.ingest_transaction("bench manifest", "manifest", str(images), {}) as writer:
            for i, sid in enumerate(ids):
                name, digest = pool[i % len(pool)]
                writer.add(dict(id=sid, modality="image", root=str(images), path=name, label=LABELS[given[i]],
                                content_hash=digest, width=32, height=32, metadata='{"site": %d}' % (i % 7),
                                source_row=i + 1))
    return project, ids, given


def build_project(path: Path, n: int, seed: int = 0) -> Project:
    rng = np.random.default_rng(seed)
    project, ids, given = ingest_image_project(path, n, rng)
    vectors = rng.standard_normal((n, 32)).astype(np.float32)
    project.import_vectors("bench", ids, vectors, model="synthetic", settings={})
    score = rng.random(n)
    order = np.argsort(-score, kind="stable")
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(1, n + 1)
    suggested = (given + rng.integers(1, len(LABELS), size=n)) % len(LABELS)
    neighbours = rng.integers(0, n, size=(n, K))
    names = np.array(LABELS, dtype=object)
    id_array = np.array(ids, dtype=object)
    evidence = pd.DataFrame({
        "id": ids, "rank": rank, "score": score, "flagged": rank <= n // 10,
        "label_analysed": names[given], "suggested_label": names[suggested], "suggested_by": "confident",
        "p_label": rng.random(n) * 0.3, "p_suggested": 0.5 + rng.random(n) * 0.5, "p_top_label": names[suggested],
        **{f"det_{d}": rng.random(n) for d in DETECTORS},
        "neighbour_ids": [list(id_array[row]) for row in neighbours],
        "neighbour_similarities": [sorted(rng.random(K).tolist(), reverse=True) for _ in range(n)],
        "neighbour_labels": [list(names[given[row]]) for row in neighbours],
        "support_ids": [list(id_array[row[:3]]) for row in neighbours],
        "neighbour_votes_suggested": rng.integers(0, K + 1, size=n),
        "neighbour_votes_own": rng.integers(0, K + 1, size=n),
    })
    # A map for the overview: 40 slices, each a blob around its own centre, drawn as the analysis
    # draws them (a per-slice sample of 20,000), with the slices table the analysis writes.
    slice_ids = rng.integers(0, SLICES, size=n)
    centres = rng.normal(0, 10, size=(SLICES, 2))
    xy = (centres[slice_ids] + rng.normal(0, 1.5, size=(n, 2))).astype(np.float32)
    probabilities = np.full((n, len(LABELS)), 0.3 / (len(LABELS) - 1))
    probabilities[np.arange(n), suggested] = 0.7
    table = slice_table(slice_ids, given, probabilities, evidence["flagged"].to_numpy(), len(LABELS), LABELS, None)
    table.insert(1, "name", [f"mostly {LABELS[s % len(LABELS)]} ({s})" for s in table["slice_id"]])
    drawn = drawing_sample(slice_ids, seed=seed)
    evidence["slice_id"] = slice_ids.astype(np.int64)
    evidence["x"], evidence["y"] = xy[:, 0], xy[:, 1]
    evidence["drawn"] = np.isin(np.arange(n), drawn)
    slices = _slices_frame(SliceResult(xy, drawn, slice_ids, table), ids)
    save_run(project, new_run_id(), evidence, slices, {"config": {"duplicate_threshold": 0.98}, "counts": {}}, "bench")
    return project


def _ms(values: list[float]) -> str:
    a = np.asarray(values) * 1000
    return f"p50 {np.percentile(a, 50):.1f} ms, p95 {np.percentile(a, 95):.1f} ms, max {a.max():.1f} ms (n={a.size})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--moves", type=int, default=200)
    parser.add_argument("--think", type=float, default=0.3, help="seconds a reviewer looks before pressing N")
    parser.add_argument("--keep", type=Path, help="build (or reuse) the project here instead of a temp folder")
    args = parser.parse_args()
    temp = None
    if args.keep is not None and (args.keep / "amend.json").exists():
        project = Project.open(args.keep)
        print(f"reusing {args.keep}")
    else:
        target = args.keep or Path(tempfile.mkdtemp(prefix="amend-bench-triage-")) / "project"
        temp = None if args.keep else target.parent
        t = time.perf_counter()
        project = build_project(target, args.samples)
        print(f"built a {args.samples:,}-sample image project in {time.perf_counter() - t:.1f} s")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, python "
          f"{platform.python_version()}")
    try:
        t = time.perf_counter()
        run, flags = triage.load_flags(project)
        load_s = time.perf_counter() - t
        t = time.perf_counter()
        queue = triage.build_queue(flags)
        queue_s = time.perf_counter() - t
        print(f"load_flags (once per run): {load_s * 1000:.0f} ms; build_queue (once per filter): "
              f"{queue_s * 1000:.0f} ms; queue = {len(queue):,} flagged of {len(flags):,}")
        ids = queue["id"].tolist()
        context = triage.ViewContext.build(project, run, flags)

        cold = triage.Prefetcher(project, context, flags, workers=2)
        times = []
        for sid in ids[: args.moves // 2]:
            t = time.perf_counter()
            cold.view(sid)
            times.append(time.perf_counter() - t)
        cold.close(wait=True)
        print(f"next sample, cold (no prefetch): {_ms(times)}")

        warm = triage.Prefetcher(project, context, flags, workers=2)
        warm.view(ids[0])
        times = []
        for position in range(1, args.moves + 1):
            warm.prefetch(triage.following(ids, ids[position - 1], 5))
            time.sleep(args.think)
            t = time.perf_counter()
            warm.view(ids[position])
            times.append(time.perf_counter() - t)
        warm.close(wait=True)
        print(f"next sample, with prefetch (think {args.think:.1f} s): {_ms(times)}")

        decided = []
        for sid in ids[:200]:
            decided.append(decisions.Decision(sample_id=sid, kind="keep", expected_event=0))
        decisions.decide_many(project, decided, "bench", run_id=run.run_id)
        times = []
        for _ in range(10):
            t = time.perf_counter()
            current = triage.apply_decisions(flags, audit.read_events(project, kinds=["decision"]))
            triage.build_queue(current, triage.QueueFilter(reviewed=False))
            times.append(time.perf_counter() - t)
        print(f"after a decision (labels in force + queue, 200 decisions in the log): {_ms(times)}")

        # The overview page: loaded once per run and again after any decision (its cache key is the
        # audit chain's head), then one map per colouring and a lasso over the map.
        t = time.perf_counter()
        data = overview.load_overview(project)
        load_s = time.perf_counter() - t
        times = []
        for column in ("slice", "score", "status"):
            t = time.perf_counter()
            drawn = overview.map_data(data, column)
            times.append(time.perf_counter() - t)
        x, y = data.points["x"].to_numpy(), data.points["y"].to_numpy()
        cx, cy = float(np.median(x)), float(np.median(y))
        lasso = {"lasso": [{"x": [cx - 3, cx + 3, cx + 3, cx - 3], "y": [cy - 3, cy - 3, cy + 3, cy + 3]}]}
        t = time.perf_counter()
        chosen = overview.selected_ids(data.points, lasso)
        lasso_s = time.perf_counter() - t
        print(f"overview: load_overview (once per run and after decisions) {load_s:.1f} s; map_data per colouring "
              f"{_ms(times)} ({drawn.drawn:,} drawn of {drawn.total:,}, density grid "
              f"{'yes' if drawn.density is not None else 'no'}); a lasso over the map {lasso_s * 1000:.0f} ms "
              f"({len(chosen):,} samples)")
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    main()
