"""The planted-region acceptance check, run through the `amend` command line as a user would.

`bench/structured.py` measures the planted-region protocol on the library (``core.detect.detect``
on arrays). The issue's acceptance check drives the command line instead: a project, its vectors,
``amend analyse``, ``amend flags --flagged-only --format json``, ``amend slices --format json``,
``amend decide --accept-suggested``, ``amend export``, and a probe retrained on the exported labels.
This bench runs that path on the same plants (same split, clusters, seed and flips as
``bench/structured.py``) and, in the same run, the library path beside it, so any difference
between what the benches report and what a user gets shows up run by run.

Per run, through the command line: the flagged count, the rank of the planted region among the
error slices of ``amend slices --format json`` (the list order; a slice is the planted region when
over half of its members lie in the planted cluster and it holds at least half of the flips, as
in ``bench/structured.py``), how many labels the bulk acceptance changed and how many flips it
fixed, and the share of the cluster's test accuracy won back by a probe retrained on the
exported labels. The library's figures for the same run go beside them.

Data: 20 Newsgroups texts with their MiniLM vectors (default), or CIFAR-10N training images
(``--vectors V.npy --ids I.npy``: vectors of those image ids, e.g. EfficientNet-Lite0; the images
are written out of the data pack's tar so the project holds real image files; truth = the clean
labels). Only the training rows go into the project; the test rows are the user's held-out set.

    python bench/acceptance.py [--runs 12] [--vectors V.npy --ids I.npy] [--keep DIR]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from core.detect import DetectConfig, detect  # noqa: E402
from core.detect.probe import DEFAULT_C, fit_predict  # noqa: E402
from core.neighbours import normalise  # noqa: E402
from structured import SHARED, load_news20, planted_slice_rank, plants  # noqa: E402


def amend(*args: str) -> object:
    """One `amend` command, as a user runs it; its JSON output."""
    done = subprocess.run([sys.executable, "-m", "core.cli", *args, "--json"], cwd=REPO, capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise RuntimeError(f"amend {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout)


def write_texts(folder: Path, texts: dict[str, str], ids: list[str], labels: list[str]) -> Path:
    source = folder / "texts.jsonl"
    source.write_text("".join(json.dumps({"id": i, "text": texts[i], "label": label}) + "\n"
                              for i, label in zip(ids, labels)))
    return source


def extract_images(folder: Path, image_ids: np.ndarray, ids: list[str]) -> None:
    """The images of ``image_ids`` out of the data pack's tar into ``folder``, named by ``ids``
    (once: every run's project reads the same files)."""
    wanted = {int(i): sid for i, sid in zip(image_ids, ids)}
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(SHARED / "cifar10n" / "train_images.tar") as tar:
        for member in tar:
            if member.isfile() and int(Path(member.name).stem) in wanted:
                (folder / f"{wanted[int(Path(member.name).stem)]}.jpg").write_bytes(tar.extractfile(member).read())


def write_manifest(folder: Path, ids: list[str], labels: list[str]) -> Path:
    """A manifest of the extracted images (paths relative to the folder above ``folder``)."""
    manifest = folder / "manifest.csv"
    manifest.write_text("id,path,label\n" + "".join(f"{sid},images/{sid}.jpg,{label}\n"
                                                     for sid, label in zip(ids, labels)))
    return manifest


def _pair(pair: tuple, fmt=str) -> str:
    return f"{fmt(pair[0])} / {fmt(pair[1])}"


def _percent(value: float) -> str:
    return "n/a" if np.isnan(value) else f"{value:.0%}"


def _place(rank: int | None) -> str:
    return "> 3" if rank is None else str(rank)


def planted_rank_in(records: list[dict], position_of: dict[str, int], planted: np.ndarray,
                    flipped: np.ndarray) -> int | None:
    """1-based position of the planted region among the first three slices of ``amend slices``."""
    for position, record in enumerate(records[:3]):
        rows = np.array([position_of[m] for m in record["members"]], dtype=np.int64)
        if rows.size and planted[rows].mean() > 0.5 and flipped[rows].sum() >= 0.5 * flipped.sum():
            return position + 1
    return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=12, help="clusters to plant in (one run each, at most 12)")
    ap.add_argument("--only", help="comma-separated run numbers to run (default: the first --runs)")
    ap.add_argument("--vectors", type=Path, help="CIFAR-10N image vectors (.npy), rows = --ids")
    ap.add_argument("--ids", type=Path, help="with --vectors: .npy of the CIFAR-10N image ids of the rows")
    ap.add_argument("--rate", type=float, default=0.3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", type=Path, help="keep the projects in this folder (default: a temporary one)")
    args = ap.parse_args(argv)
    chosen = set(range(min(args.runs, 12))) if not args.only else {int(r) for r in args.only.split(",")}
    if not chosen <= set(range(12)):
        ap.error(f"--only takes run numbers 0..11, got {sorted(chosen - set(range(12)))}")
    import pandas as pd

    images = args.vectors is not None
    texts: dict[str, str] = {}
    if images:
        if args.ids is None:
            ap.error("--vectors needs --ids (the CIFAR-10N image ids of its rows)")
        classes = (SHARED / "cifar10n" / "classes.txt").read_text().split()
        image_ids = np.load(args.ids)
        y = pd.read_csv(SHARED / "cifar10n" / "labels.csv")["clean"].map(classes.index).to_numpy()[image_ids]
        x = np.load(args.vectors)
        names = [f"c{int(i):05d}" for i in image_ids]
    else:
        if not (SHARED / "news20").is_dir():
            print(f"shared data not found at {SHARED}; set AMEND_SHARED_DATA")
            return 1
        x, y, classes = load_news20()
        records = [json.loads(line) for line in (SHARED / "news20" / "test.jsonl").read_text().splitlines()]
        names = [r["id"] for r in records]
        texts = {r["id"]: r["text"] for r in records}
    x = normalise(x.astype(np.float32))
    n_classes = len(classes)
    clusters, test, planted = plants(x, y, n_classes, args.seed, args.rate)  # bench/structured.py's plants
    train = ~test
    work = args.keep or Path(tempfile.mkdtemp(prefix="amend-acceptance-"))
    threads = os.environ.get("OMP_NUM_THREADS", "unset")  # the timings move with it, the figures not (bench/README.md)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, OMP_NUM_THREADS {threads}; "
          f"data: {x.shape[0]} x {x.shape[1]}, {n_classes} classes "
          f"({'CIFAR-10N images' if images else '20 Newsgroups texts'}); projects in {work}")
    print("| run | A -> B | flips | flagged: CLI / library | planted slice rank: CLI / library | relabelled: CLI / "
          "library | flips fixed: CLI / library | recovered: CLI / library | analyse s |")
    print("|---|---|---|---|---|---|---|---|---|")
    rows = np.flatnonzero(train)
    ids = [names[i] for i in rows]
    position_of = {sid: k for k, sid in enumerate(ids)}
    if images:
        extract_images(work / "images", image_ids[rows], ids)
    clean_predicted = fit_predict(x[train], y[train], x, n_classes, DEFAULT_C, 200).argmax(axis=1)
    summary = []
    for run, (cluster, a, b, flipped) in enumerate(planted):
        if run not in chosen:
            continue
        in_cluster = clusters == cluster
        noisy = y.copy()
        noisy[flipped] = b
        folder = work / f"run{run:02d}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        given = [classes[k] for k in noisy[rows]]
        if images:
            source = write_manifest(folder, ids, given)
            amend("init", str(folder / "project"), "--manifest", str(source), "--root", str(work),
                  "--labels", ",".join(classes))
        else:
            source = write_texts(folder, texts, ids, given)
            amend("init", str(folder / "project"), "--texts", str(source), "--labels", ",".join(classes))
        project = str(folder / "project")
        np.save(folder / "vectors.npy", x[rows])
        (folder / "ids.txt").write_text("\n".join(ids) + "\n")
        amend("vectors", "import", project, str(folder / "vectors.npy"), "--ids", str(folder / "ids.txt"),
              "--name", "given")
        started = time.perf_counter()
        amend("analyse", project, "--representation", "given")
        seconds = time.perf_counter() - started
        flags = amend("flags", project, "--flagged-only", "--format", "json")
        records = amend("slices", project, "--format", "json")
        amend("decide", project, "--accept-suggested", "--reviewer", "acceptance-bench")
        amend("export", project, str(folder / "export.csv"))
        exported = pd.read_csv(folder / "export.csv", dtype={"id": str}).set_index("id")
        corrected = noisy.copy()
        corrected[rows] = [classes.index(label) for label in exported.loc[ids, "final_label"]]

        in_rows = in_cluster[rows]
        flipped_rows = np.isin(rows, flipped)
        rank_cli = planted_rank_in(records, position_of, in_rows, flipped_rows)

        # the library path on the same inputs (what bench/structured.py reports)
        found = detect(x[rows], noisy[rows], n_classes, config=DetectConfig(seed=args.seed))
        rank_library = planted_slice_rank(x[rows], noisy[rows], found, in_rows, flipped_rows, classes)
        bulk = found.accept_in_bulk
        library = noisy.copy()
        library[rows[bulk]] = found.suggested[bulk]

        evaluate = in_cluster & test
        accuracy = {"clean": float((clean_predicted[evaluate] == y[evaluate]).mean())}
        for name, labels in (("noisy", noisy), ("cli", corrected), ("library", library)):
            predicted = fit_predict(x[train], labels[train], x, n_classes, DEFAULT_C, 200).argmax(axis=1)
            accuracy[name] = float((predicted[evaluate] == y[evaluate]).mean())
        cost = accuracy["clean"] - accuracy["noisy"]
        share = {k: (accuracy[k] - accuracy["noisy"]) / cost if cost > 0.02 else float("nan")
                 for k in ("cli", "library")}
        row = {"run": run, "flagged": (len(flags), int(found.flagged.sum())), "rank": (rank_cli, rank_library),
               "relabelled": (int((corrected != noisy).sum()), int((library != noisy).sum())),
               "fixed": (int((corrected[flipped] == y[flipped]).sum()), int((library[flipped] == y[flipped]).sum())),
               "recovered": (share["cli"], share["library"])}
        summary.append(row)
        print(f"| {run} | {classes[a]} -> {classes[b]} | {flipped.size} | {_pair(row['flagged'])} | "
              f"{_pair(row['rank'], _place)} | {_pair(row['relabelled'])} | {_pair(row['fixed'])} | "
              f"{_pair(row['recovered'], _percent)} | {seconds:.0f} |", flush=True)
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)
    same = sum(r["flagged"][0] == r["flagged"][1] and r["rank"][0] == r["rank"][1]
               and r["relabelled"][0] == r["relabelled"][1] for r in summary)
    print(f"\nruns where the command line and the library agree on flags, planted slice rank and relabels: "
          f"{same} of {len(summary)}")
    top1 = sum(r["rank"][0] == 1 for r in summary)
    print(f"command line: planted region the top error slice in {top1} of {len(summary)} runs")
    shares = [r["recovered"][0] for r in summary if not np.isnan(r["recovered"][0])]
    if shares:
        print(f"command line: runs where the noise cost > 2 points {len(shares)}, recovered median "
              f"{np.median(shares):.0%}, min {min(shares):.0%}, >= 90 % in {sum(s >= 0.9 for s in shares)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
