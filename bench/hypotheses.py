"""Client-side cost of ``amend hypotheses``: throughput, latency and memory against a stand-in server.

What: ``core.hypotheses.generate.generate`` (the function behind ``amend hypotheses PROJECT --server
URL --model NAME [--api ollama|openai] [--concurrency N]``) explaining the same ``--n`` samples of a
small analysed image project, per cell of (server delay, dialect, concurrency); and the clustering
step that generate() runs after the last answer (``core.hypotheses.clusters``: compress, embed with
the bundled offline text embedder, k-means by silhouette), timed apart from the generation.

How: no vision-language model runs on this machine. The server is the tests' stand-in
(``tests/hypotheses/standin.py``: real HTTP on 127.0.0.1, Ollama ``/api/chat`` and OpenAI-compatible
``/v1/chat/completions``), started in a *separate process* so that its parsing of the base64 images
does not share the client's interpreter lock or count in the client's RSS. It waits ``--delays`` ms
before each answer (a stand-in for model time; 0 ms measures the client alone) and answers a valid
hypothesis, one of five causes / fixes picked by a hash of the prompt. The project is the tests'
``builders.failing_image_project`` (CIFAR-10N sample images ingested for real, imported vectors, an
analysis) in a temp folder, plus a stored selection of ``--n`` samples (its ``--failures errors``
first, then the best-ranked others: 120 images give fewer than 48 errors), explained with
``--selection``. Every run works on a fresh copy of that project and asks for a model name of its
own (``bench-d250-openai-c4-r0``, ...): hypotheses resume per (model, prompt hash), so nothing is
skipped and each run clusters exactly its own answers. One warm-up run (imports, embedder load) is
left out. Concurrency 1 (sequential) is the baseline each (delay, dialect) row is compared with.

Per cell (median wall of ``--repeats`` runs): hypotheses/s (answers stored / wall), wall seconds from
the call to the last answer stored (read from generate()'s progress callback), p50 / p95 latency per
request over all repeats (the ``seconds`` each stored answer carries, to the millisecond: the
client's time from sending the request to the parsed answer, so it includes waiting for the server),
clustering seconds (the rest of generate()), the process's peak RSS (``resource.getrusage``;
monotonic, so the peak so far, torch and the text embedder included), failed answers summed.

Run: ``OMP_NUM_THREADS=2 python bench/hypotheses.py [--n 48] [--delays 0,250] [--concurrency 1,4,8]
[--dialects ollama,openai] [--repeats 2]``. Prints a machine line and a markdown table;
bench/README.md "Hypotheses" records a run.
"""

from __future__ import annotations

import argparse
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
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "tests" / "hypotheses"))

from core.hypotheses import generate, store  # noqa: E402
from core.hypotheses.failures import select  # noqa: E402
from core.store.project import Project  # noqa: E402

# The stand-in server, run in its own process: the delay is read from the model name
# ("bench-d<ms>-<dialect>-c<concurrency>"), the answer picked by a hash of the prompt.
SERVER = r"""
import hashlib, json, sys, time
sys.path.insert(0, sys.argv[1])
from standin import StandIn, answer, user_text
CAUSES = ["The object is small and far away against a cluttered background.",
          "The image is too dark and low in contrast to see the shape.",
          "Only part of the object is visible; it is cropped at the edge.",
          "The colours and texture resemble the predicted class more than the given one.",
          "The given label looks wrong: the picture shows the predicted class."]
FIXES = ["Collect more close-up examples.", "Augment with brightness and contrast changes.",
         "Add examples where the object is partly visible.", "Add examples of this class in unusual colours.",
         "Relabel the sample."]
QUALITY = ["model_error", "low_quality", "model_error", "ambiguous_sample", "annotation_issue"]
def rule(body):
    pick = int(hashlib.sha256(user_text(body).encode()).hexdigest(), 16) % len(CAUSES)
    reply = answer(QUALITY[pick], CAUSES[pick], FIXES[pick])
    reply.delay = int(body["model"].split("-")[1][1:]) / 1000.0
    return reply
server = StandIn(rule=rule, models=tuple(sys.argv[2].split(","))).start()
print(server.url, flush=True)
sys.stdin.read()  # until the benchmark closes our stdin
server.stop()
"""


def model_name(delay_ms: int, dialect: str, concurrency: int, repeat: int) -> str:
    return f"bench-d{delay_ms}-{dialect}-c{concurrency}-r{repeat}"


def start_server(models: list[str]) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(REPO / "tests" / "hypotheses"), ",".join(models)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    url = proc.stdout.readline().strip()
    if not url.startswith("http://"):
        proc.kill()
        raise SystemExit("the stand-in server did not start")
    return proc, url


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def build(folder: Path, images: int, n: int) -> tuple[Path, int]:
    """The analysed image project, with a selection "bench" of ``n`` samples: every failure
    (``--failures errors``) first, then the best-ranked others when there are fewer than ``n``."""
    import builders
    from core.store.selections import save_selection

    path = builders.failing_image_project(folder, n=images)
    project = Project.open(path)
    _, errors = select(project, "errors")
    from core.analysis.runs import evidence

    ranked = evidence(project)[1].sort_values("rank", kind="stable")["id"].astype(str).tolist()
    ids = list(dict.fromkeys(errors["id"].astype(str).tolist() + ranked))[:n]
    save_selection(project, ids, "bench", source="bench")
    return path, len(errors)


def one_cell(source: Path, target: Path, url: str, model: str, api: str, level: int) -> dict:
    """generate() on a fresh copy of the project; the generation's own wall (up to the last
    answer stored, read from the progress callback) apart from the clustering that follows."""
    shutil.copytree(source, target)
    project = Project.open(target)
    marks: dict[str, float] = {}

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "hypotheses" and done == total:
            marks["answered"] = time.perf_counter()

    started = time.perf_counter()
    result = generate.generate(project, url, model, api=api, failures=None, selection="bench", concurrency=level,
                               timeout=30.0, cluster=True, progress=progress)
    ended = time.perf_counter()
    latency = np.asarray(store.hypotheses(project, run_id=result["run_id"])["seconds"], dtype=float) * 1000
    return {**result, "wall": marks["answered"] - started, "clustering": ended - marks["answered"],
            "latency": latency, "rss": rss_mib()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=48, help="samples explained per cell")
    ap.add_argument("--delays", default="0,250", help="server answer delays in ms, comma-separated")
    ap.add_argument("--concurrency", default="1,4,8", help="comma-separated; the first is the baseline")
    ap.add_argument("--dialects", default="ollama,openai")
    ap.add_argument("--repeats", type=int, default=2, help="runs per cell; the table shows the median wall")
    ap.add_argument("--images", type=int, default=120, help="sample images in the built project")
    args = ap.parse_args(argv)
    delays = [int(d) for d in args.delays.split(",")]
    levels = [int(c) for c in args.concurrency.split(",")]
    dialects = args.dialects.split(",")
    import torch

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}, torch threads {torch.get_num_threads()}, "
          f"cuda {torch.cuda.is_available()}; server: stand-in on 127.0.0.1 (own process), no VLM")
    with tempfile.TemporaryDirectory(prefix="amend-bench-hyp-") as temp:
        temp = Path(temp)
        t0 = time.perf_counter()
        source, n_errors = build(temp / "built", args.images, args.n)
        print(f"project: {args.images} CIFAR-10N sample images, {n_errors} failures (--failures errors); each cell "
              f"explains a selection of {args.n} samples (those failures first) in a fresh copy of the project; "
              f"built in {time.perf_counter() - t0:.1f} s (peak RSS {rss_mib():.0f} MiB); "
              f"median of {args.repeats} runs per cell")
        cells = [(d, a, c) for d in delays for a in dialects for c in levels]
        models = [model_name(*cell, r) for cell in cells for r in range(args.repeats)] + ["bench-d0-warmup-c1-r0"]
        proc, url = start_server(models)
        copies = iter(range(10**6))
        try:
            one_cell(source, temp / f"copy{next(copies)}", url, models[-1], "ollama", 1)  # warm-up: imports, embedder
            print("| server delay | API | concurrency | hypotheses/s | vs c=1 | wall s | latency p50 / p95 ms "
                  "| clustering s | peak RSS MiB | failed |")
            print("|---|---|---|---|---|---|---|---|---|---|")
            baseline: dict[tuple[int, str], float] = {}
            for delay, api, level in cells:
                runs = [one_cell(source, temp / f"copy{next(copies)}", url, model_name(delay, api, level, r), api,
                                 level) for r in range(args.repeats)]
                runs.sort(key=lambda run: run["wall"])
                mid = runs[(len(runs) - 1) // 2]  # the median (the faster of two)
                rate = mid["generated"] / mid["wall"]
                baseline.setdefault((delay, api), rate)
                lat = np.concatenate([run["latency"] for run in runs])
                p = f"{np.percentile(lat, 50):.1f} / {np.percentile(lat, 95):.1f}" if lat.size else "n/a"
                print(f"| {delay} ms | {api} | {level}{' (baseline)' if level == levels[0] else ''} | {rate:.1f} | "
                      f"{rate / baseline[(delay, api)]:.2f}x | {mid['wall']:.2f} | {p} | {mid['clustering']:.2f} | "
                      f"{max(run['rss'] for run in runs):.0f} | {sum(run['failed'] for run in runs)} |", flush=True)
                if any(run["skipped"] for run in runs):
                    print("  warning: some samples were skipped as already explained", flush=True)
        finally:
            proc.stdin.close()
            proc.wait(timeout=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
