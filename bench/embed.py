"""Embedding throughput: Amend's pipeline against a naive single-process loop, same model, same run.

Images: CIFAR-10N JPEGs read straight from the shared data pack's tar into a temp folder.
Texts: 20 Newsgroups test texts. Data pack: ``<repo>/../shared/data`` or ``$AMEND_SHARED_DATA``.

Baseline (per batch, one process): open + decode + preprocess each file, stack, forward.
Amend: ``core.embed.embed`` on a project holding the same samples (DataLoader workers read, verify
the sha256, decode and preprocess while the main process runs the model; each batch is written to
LanceDB as it finishes). Model loading is excluded from both; the pipeline's figure includes its
hash checks and vector writes.

    python bench/embed.py [--device auto|cpu|cuda] [--n 2000] [--n-texts 1000] [--batch-size N]
                          [--num-workers N] [--model M --pretrained T | --checkpoint P | --embedder offline]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from core.util import usable_cores  # noqa: E402
from core.embed.fallback import resolve_embedder  # noqa: E402
from core.embed.pipeline import EmbedOptions, batch_and_workers, embed  # noqa: E402
from core.store.project import Project  # noqa: E402


def shared_data() -> Path:
    return Path(os.environ.get("AMEND_SHARED_DATA", REPO.parent / "shared" / "data")).resolve()


def extract_images(n: int, folder: Path) -> list[str]:
    """The first n members of train_images.tar written under folder; relative paths."""
    tar_path = shared_data() / "cifar10n" / "train_images.tar"
    paths = []
    with tarfile.open(tar_path) as tar:
        for member in tar:
            if not (member.isfile() and member.name.endswith(".jpg")):
                continue
            target = folder / member.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(tar.extractfile(member).read())
            paths.append(member.name)
            if len(paths) == n:
                break
    return paths


def read_texts(n: int) -> list[dict]:
    with open(shared_data() / "news20" / "test.jsonl", encoding="utf-8") as handle:
        rows = []
        for line in handle:
            rows.append(json.loads(line))
            if len(rows) == n:
                break
    return rows


def make_project(path: Path, rows: list[dict]) -> Project:
    project = Project.create(path)
    with project.writer("ingest"), project.ingest_transaction("bench", "bench", None, {}) as writer:
        for n, row in enumerate(rows):
            writer.add({"split": None, "width": None, "height": None, "metadata": "{}", "source_row": n,
                        "root": None, "path": None, "text": None, "label": "x", **row})
        writer.flush()
    return project


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bench_images(args, work: Path) -> dict:
    folder = work / "images_root"
    rel = extract_images(args.n, folder)
    embedder, message = resolve_embedder("image", model=args.model, pretrained=args.pretrained,
                                         checkpoint=args.checkpoint, embedder=args.embedder, device=args.device)
    device = embedder.device
    options = EmbedOptions(model=args.model, pretrained=args.pretrained, checkpoint=args.checkpoint,
                           embedder=args.embedder, device=args.device, batch_size=args.batch_size,
                           num_workers=args.num_workers)
    batch, workers = batch_and_workers(options, "image", device, len(rel))
    # warm-up (kernels, allocator, autocast caches)
    warm = [Image.open(folder / p).convert("RGB") for p in rel[:batch]]
    embedder.embed_images(torch.stack([embedder.preprocess(im) for im in warm]))
    sync(device)

    decode = forward = 0.0
    start = time.perf_counter()
    for i in range(0, len(rel), batch):
        t = time.perf_counter()
        pixels = torch.stack([embedder.preprocess(Image.open(folder / p).convert("RGB")) for p in rel[i:i + batch]])
        decode += time.perf_counter() - t
        t = time.perf_counter()
        embedder.embed_images(pixels)
        sync(device)
        forward += time.perf_counter() - t
    baseline = time.perf_counter() - start

    rows = [{"id": Path(p).stem, "modality": "image", "root": str(folder), "path": p,
             "content_hash": hashlib.sha256((folder / p).read_bytes()).hexdigest()} for p in rel]
    project = make_project(work / "proj_images", rows)
    report = embed(project, options)
    assert report.embedded == len(rel) and not report.failed, report.to_json()
    pipeline = report.seconds - report.timings["load"]
    return {
        "what": "images", "n": len(rel), "model": embedder.name, "device": device, "batch": batch,
        "workers": workers, "fallback": message,
        "baseline_per_s": len(rel) / baseline, "baseline_decode_share": decode / baseline,
        "pipeline_per_s": len(rel) / pipeline,
        "pipeline_wait_share": report.timings["wait_for_data"] / pipeline,
        "pipeline_write_share": report.timings["write"] / pipeline,
    }


def bench_texts(args, work: Path) -> dict:
    records = read_texts(args.n_texts)
    texts = [r["text"] for r in records]
    embedder, message = resolve_embedder("text", model=args.model, pretrained=args.pretrained,
                                         checkpoint=args.checkpoint, embedder=args.embedder, device=args.device)
    device = embedder.device
    options = EmbedOptions(model=args.model, pretrained=args.pretrained, checkpoint=args.checkpoint,
                           embedder=args.embedder, device=args.device, batch_size=args.batch_size)
    batch, _ = batch_and_workers(options, "text", device, len(texts))
    embedder.embed_texts(texts[:batch])
    sync(device)
    start = time.perf_counter()
    for i in range(0, len(texts), batch):
        embedder.embed_texts(texts[i:i + batch])
    sync(device)
    baseline = time.perf_counter() - start
    rows = [{"id": f"t{n:06d}", "modality": "text", "text": t,
             "content_hash": hashlib.sha256(t.encode("utf-8")).hexdigest()} for n, t in enumerate(texts)]
    project = make_project(work / "proj_texts", rows)
    report = embed(project, options)
    assert report.embedded == len(texts), report.to_json()
    pipeline = report.seconds - report.timings["load"]
    return {
        "what": "texts", "n": len(texts), "model": embedder.name, "device": device, "batch": batch,
        "workers": 0, "fallback": message, "baseline_per_s": len(texts) / baseline,
        "baseline_decode_share": None, "pipeline_per_s": len(texts) / pipeline,
        "pipeline_wait_share": None, "pipeline_write_share": report.timings["write"] / pipeline,
    }


def machine() -> str:
    if torch.cuda.is_available():
        gpu = torch.cuda.get_device_name(0)
    else:
        gpu = "no GPU"
    return f"{usable_cores()}-core CPU ({platform.processor() or platform.machine()}), {gpu}, torch {torch.__version__}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--n", type=int, default=2000, help="images (0: skip)")
    parser.add_argument("--n-texts", type=int, default=1000, help="texts (0: skip)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--num-workers", type=int, default=None)
    parser.add_argument("--model")
    parser.add_argument("--pretrained")
    parser.add_argument("--checkpoint")
    parser.add_argument("--embedder", choices=["offline"])
    parser.add_argument("--json", action="store_true", help="also print one JSON line per result")
    args = parser.parse_args(argv)

    results = []
    with tempfile.TemporaryDirectory(prefix="amend-bench-embed-") as tmp:
        work = Path(tmp)
        if args.n:
            results.append(bench_images(args, work))
        if args.n_texts:
            results.append(bench_texts(args, work))

    print(f"machine: {machine()}")
    for r in results:
        if r["fallback"]:
            print(f"note ({r['what']}): {r['fallback']}")
    print("| input | n | model | device | batch | workers | baseline /s | Amend /s | speed-up | "
          "baseline decode share | Amend data-wait share | Amend write share |")
    print("|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    pct = lambda v: "-" if v is None else f"{100 * v:.1f} %"  # noqa: E731
    for r in results:
        print(f"| {r['what']} | {r['n']} | {r['model']} | {r['device']} | {r['batch']} | {r['workers']} | "
              f"{r['baseline_per_s']:.1f} | {r['pipeline_per_s']:.1f} | "
              f"{r['pipeline_per_s'] / r['baseline_per_s']:.2f}x | {pct(r['baseline_decode_share'])} | "
              f"{pct(r['pipeline_wait_share'])} | {pct(r['pipeline_write_share'])} |")
    if args.json:
        for r in results:
            print(json.dumps(r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
