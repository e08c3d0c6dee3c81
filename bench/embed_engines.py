"""Embedding engines side by side: ``amend embed`` in this process vs ``--engine ray`` (a local Ray
Data cluster on this machine), same images, same model, same run.

Images: the first N CIFAR-10N JPEGs of the shared data pack's ``cifar10n/train_images.tar``
(``<repo>/../shared/data`` or ``$AMEND_SHARED_DATA``); without the pack, the 400 images of
``sample_data/cifar10n`` repeated under new ids. Model: the offline EfficientNet-Lite0 (no network).
Both engines embed the same project into two representations; the script checks they agree
(cosine per row) and prints, per engine: images/s over the embedding itself (model loading and
Ray's start excluded) and over the whole call, Ray's start-up, and peak memory: of the process that
runs ``embed`` (each engine in a fresh one), and of it with every process under it (DataLoader
workers; Ray's GCS, raylet and workers), sampled every 0.2 s from /proc.

    python bench/embed_engines.py [--n 600] [--batch-size N] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from core.embed import EmbedOptions, embed  # noqa: E402
from core.util import usable_cores  # noqa: E402
from core.store.project import Project  # noqa: E402


def shared_data() -> Path:
    return Path(os.environ.get("AMEND_SHARED_DATA", REPO.parent / "shared" / "data")).resolve()


def write_images(n: int, folder: Path) -> tuple[list[str], str]:
    """n JPEGs under folder (relative paths) and where they came from."""
    tar_path = shared_data() / "cifar10n" / "train_images.tar"
    paths: list[str] = []
    if tar_path.is_file():
        with tarfile.open(tar_path) as tar:
            for member in tar:
                if member.isfile() and member.name.endswith(".jpg"):
                    target = folder / member.name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(tar.extractfile(member).read())
                    paths.append(member.name)
                    if len(paths) == n:
                        return paths, f"first {n} of {tar_path.name}"
    sample = sorted((REPO / "sample_data" / "cifar10n" / "images").glob("*.jpg"))
    paths = []
    for i in range(n):
        rel = f"images/{i:06d}.jpg"
        (folder / "images").mkdir(parents=True, exist_ok=True)
        shutil.copy(sample[i % len(sample)], folder / rel)
        paths.append(rel)
    return paths, f"sample_data/cifar10n's {len(sample)} images repeated to {n}"


def make_project(path: Path, folder: Path, rel: list[str]) -> Project:
    project = Project.create(path)
    with project.writer("ingest"), project.ingest_transaction("bench", "bench", None, {}) as writer:
        for n, p in enumerate(rel):
            writer.add({"id": f"i{n:06d}", "modality": "image", "root": str(folder), "path": p, "label": "x",
                        "content_hash": hashlib.sha256((folder / p).read_bytes()).hexdigest(), "split": None,
                        "width": None, "height": None, "metadata": "{}", "source_row": n, "text": None})
        writer.flush()
    return project


def _rss_bytes(pid: int) -> int:
    """Resident memory of a process from /proc (0 when it has gone)."""
    try:
        with open(f"/proc/{pid}/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _descendants(root: int) -> list[int]:
    """Every process under ``root`` (children, their children...), from /proc's parent ids."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, stack = [], [root]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


class PeakMemory:
    """Peak RSS of this process, and of this process plus all its descendants, sampled in a thread
    (Linux /proc; the same count for both engines: DataLoader workers, or Ray's processes)."""

    def __init__(self, every: float = 0.2) -> None:
        self.every = every
        self.driver = 0
        self.tree = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = os.getpid()
        while not self._stop.is_set():
            own = _rss_bytes(me)
            total = own + sum(_rss_bytes(pid) for pid in _descendants(me))
            self.driver = max(self.driver, own)
            self.tree = max(self.tree, total)
            self._stop.wait(self.every)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def run_engine(project: Project, engine: str, batch_size, n: int) -> dict:
    options = EmbedOptions(embedder="offline", device="cpu", batch_size=batch_size, name=engine, engine=engine)
    with PeakMemory() as memory:
        report = embed(project, options)
    assert report.embedded == n and not report.failed, report.to_json()
    overhead = report.timings.get("load", 0.0) + report.timings.get("start_ray", 0.0)
    return {"engine": engine, "n": n, "model": report.model, "device": report.device,
            "embed_per_s": n / (report.seconds - overhead), "wall_per_s": n / report.seconds,
            "seconds": report.seconds, "ray_start_s": report.timings.get("start_ray"),
            "load_s": report.timings.get("load", 0.0),
            "driver_peak_mib": memory.driver / 2**20, "tree_peak_mib": memory.tree / 2**20}


def machine() -> str:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{platform.machine()}, {usable_cores()} cores, {ram:.0f} GiB, {gpu}; torch {torch.__version__}, "
            f"ray {_ray_version()}, load average {os.getloadavg()[0]:.1f} at the end")


def _ray_version() -> str:
    try:
        import ray

        return ray.__version__
    except ImportError:
        return "not installed"


def run_in_fresh_process(engine: str, project: Path, batch_size) -> dict:
    """One engine in its own Python process, so its memory figures hold nothing of the other's."""
    command = [sys.executable, __file__, "--one-engine", engine, "--project", str(project)]
    if batch_size:
        command += ["--batch-size", str(batch_size)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{engine} run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=600, help="images (default 600: both engines in ~5 min on 2 cores)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--json", action="store_true", help="also print one JSON line per engine")
    parser.add_argument("--one-engine", choices=["inprocess", "ray"], help=argparse.SUPPRESS)
    parser.add_argument("--project", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.one_engine:  # the child: embed the prepared project with one engine, print the figures
        project = Project.open(args.project)
        print(json.dumps(run_engine(project, args.one_engine, args.batch_size, len(project.sample_ids()))))
        return 0

    with tempfile.TemporaryDirectory(prefix="amend-bench-engines-") as tmp:
        work = Path(tmp)
        rel, source = write_images(args.n, work / "images_root")
        make_project(work / "project", work / "images_root", rel)
        results = [run_in_fresh_process(engine, work / "project", args.batch_size) for engine in ("inprocess", "ray")]
        project = Project.open(work / "project")
        ids, local = project.vectors("inprocess")
        ray_ids, on_ray = project.vectors("ray")
        assert ids == ray_ids
        cosine = float(np.min(np.sum(local * on_ray, axis=1)))

    print(f"machine: {machine()}")
    print(f"images: {source}; model {results[0]['model']} on {results[0]['device']}; "
          f"lowest cosine between the engines' vectors: {cosine:.6f}")
    print("| engine | n | images/s (embedding) | images/s (whole call) | Ray start s | model load s | "
          "process peak MiB | process + children peak MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        start = "-" if r["ray_start_s"] is None else f"{r['ray_start_s']:.1f}"
        print(f"| {r['engine']} | {r['n']} | {r['embed_per_s']:.1f} | {r['wall_per_s']:.1f} | {start} | "
              f"{r['load_s']:.1f} | {r['driver_peak_mib']:.0f} | {r['tree_peak_mib']:.0f} |")
    if args.json:
        for r in results:
            print(json.dumps({**r, "min_cosine": cosine}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
