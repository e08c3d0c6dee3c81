"""`amend analyse` end to end on a large synthetic project: wall time and peak memory of the command.

Builds an image project of N samples (their files a pool of 500 small PNGs, as bench/triage.py
does), imports D-dimensional vectors from bench/analyse_speed.py's clustered mixture (10 classes,
5 % of the labels wrong) as its representation, then runs, each in its own process as a user
would: `amend analyse PROJECT` (first analysis: kNN graph, detectors, map, slices, evidence
written), a bulk decision on the top 1 % (`amend decide --accept-suggested`), and `amend analyse`
again (the re-analysis reuses the kNN graph and the map). Prints the wall time and peak RSS of
each command, the steps the run recorded, and the label AUPRC of the ranking against the planted
errors; `detect()` alone on the same vectors in this process is the baseline in the same run.

    python bench/analyse_project.py [--samples 100000] [--dim 512] [--keep DIR]

bench/README.md "Analyse speed" records a run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from analyse_speed import mixture  # noqa: E402
from triage import LABELS, ingest_image_project  # noqa: E402


def build(path: Path, n: int, dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    rng = np.random.default_rng(0)
    x, labels, truth = mixture(n, dim, len(LABELS), 0.05)
    project, ids, _ = ingest_image_project(path, n, rng, given=labels, id_format="s{:07d}")
    project.import_vectors("mixture", ids, x, model="synthetic mixture", settings={})
    return x, labels, truth, ids


def amend(*args: str) -> tuple[dict, float, float]:
    """Run one `amend` command in its own process: (its JSON, wall seconds, peak RSS MiB)."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "core.cli", *args, "--json"], cwd=REPO, capture_output=True,
                          text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"amend {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest child so far
    return json.loads(done.stdout), wall, peak


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--keep", type=Path, help="build the project here (kept) instead of a temporary folder")
    args = ap.parse_args(argv)
    work = args.keep or Path(tempfile.mkdtemp(prefix="amend-analyse-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    project = work / "project"
    try:
        started = time.perf_counter()
        x, labels, truth, ids = build(project, args.samples, args.dim)
        print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}; "
              f"built a {args.samples:,} x {args.dim} project in {time.perf_counter() - started:.0f} s")
        from sklearn.metrics import average_precision_score

        from core.analysis.runs import flags
        from core.store.project import Project

        first, wall, peak = amend("analyse", str(project))
        _, frame = flags(Project.open(project), first["run_id"])
        by_id = frame.set_index("id")["score"]
        auprc = average_precision_score(labels != truth, by_id.reindex(ids).to_numpy())
        print(f"| command | wall s | peak RSS MiB | notes |\n|---|---:|---:|---|")
        print(f"| amend analyse (first) | {wall:.1f} | {peak:,.0f} | {first['flagged']:,} flagged, label AUPRC "
              f"{auprc:.3f}; the run's own seconds {first['seconds']:.1f} |")
        top = max(1, args.samples // 100)
        decided, wall_d, _ = amend("decide", str(project), "--accept-suggested", "--top", str(top),
                                   "--reviewer", "bench")
        print(f"| amend decide --accept-suggested --top {top:,} | {wall_d:.1f} | | {decided['decided']:,} decided |")
        again, wall2, peak2 = amend("analyse", str(project))
        print(f"| amend analyse (again, after the decisions) | {wall2:.1f} | {peak2:,.0f} | {again['flagged']:,} "
              f"flagged; the run's own seconds {again['seconds']:.1f} |")
        # Baseline in the same run: detect() alone on the same vectors and labels, in this process.
        from core.detect import detect

        t0 = time.perf_counter()
        detect(x, labels, len(LABELS))
        print(f"| detect() alone in this process (baseline: no map, no slices, no reads or writes) | "
              f"{time.perf_counter() - t0:.1f} | | |")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
