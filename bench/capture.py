"""Training dynamics of the user's own model (``core.capture``) against cleanlab on the same
model's out-of-sample probabilities.

Protocol, per case (one data set under one label set):

1. a fresh Amend project in a temporary folder: a ``.jsonl`` of ``{id, text, label}`` (the text
   only names the sample: the model sees the image vectors) through ``core.api.ingest``; the data set's vectors imported as
   representation ``own`` (``core.api.import_vectors``, an ``.npy`` and an ids file);
2. the user's model: an MLP (D -> 256 -> C, ReLU, dropout 0.1) on the standardised vectors,
   cross-entropy on the noisy labels, Adam lr 1e-3, batch 128, E epochs, seeded. Trained as K = 5
   fold runs under capture: run ``mlp-foldk`` trains on the other folds (split ``train``) and, each
   epoch, evaluates its own fold under ``torch.no_grad()`` (split ``eval``); the captured layer
   ``hidden`` is the ReLU after the first Linear (``body.1``). One more run, ``mlp-all``, trains on
   every sample (split ``train`` only, no eval);
3. rows of the table, every one from this run and these models:
   - ``cleanlab alone``: ``cleanlab.rank.get_label_quality_scores`` (ranking: 1 - quality) and
     ``cleanlab.filter.find_label_issues`` (flagged set) on the union of the eval folds'
     last-epoch softmax: the same model's out-of-sample probabilities (THE baseline);
   - ``Amend, no capture``: ``analyse(project, representation="own", with_slices=False)``;
   - ``Amend + capture (K runs)``: the same with ``captures=[mlp-fold0..]``: the dynamics
     detectors ``aum`` / ``datamap`` / ``forgetting`` and the pooled held-out predictions;
   - ``Amend + capture (mlp-all)``: dynamics only, one run trained on every sample;
   - ``aum`` / ``datamap`` / ``forgetting`` alone: each detector's score (ranking) and its own
     flags, from the K-run analysis;
4. AUPRC (``sklearn.metrics.average_precision_score``), precision at k = number of true errors,
   and precision / recall / F1 / size of the flagged set (``bench/quality.py`` ``metrics()``).

Data sets (``AMEND_SHARED_DATA``, default ``../shared/data``; a missing one is skipped with a line):
(a) CIFAR-10N, the first ``--n`` training images, EfficientNet-Lite0 vectors (the offline embedder,
``bench/quality.py`` ``embed_cifar``; about 30 min for 6,000 images on 2 CPU cores, so pass
``--cifar-vectors X.npy --cifar-ids ids.npy``, or they are computed once into ``--cache``); label
sets ``aggregate``, ``random1``, ``worst``; truth = noisy label != clean label.
(b) 20 Newsgroups test split, the shipped MiniLM vectors, the given labels; truth = the 82
Mechanical-Turk-confirmed errors (everything else counts as correct, so precision is a lower bound).

Overhead (one case, the first that ran): mean time of one training step (forward, backward,
Adam) over one epoch, same model weights, same data, same batches, with the watched model
outside any session, inside a session recording logits only, and inside a session recording
the layer too (and an unwatched copy for reference); ``--overhead-reps`` repetitions, order
rotated. The epoch's wall time including the session's start and commit is shown beside it.

Usage::

    python bench/capture.py --cifar-vectors VECTORS.npy \\
        --cifar-ids IDS.npy [--n 6000] [--epochs 20] [--folds 5] \\
        [--cases aggregate,random1,worst,news20] [--overhead-reps 10] [--threads N] [--cache DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from quality import SHARED, embed_cifar, metrics, news20  # noqa: E402

from core import api, capture  # noqa: E402
from core.analysis.run import analyse  # noqa: E402
from core.detect import DetectConfig  # noqa: E402

CIFAR_SETS = ("aggregate", "random1", "worst")
DYNAMICS = ("aum", "datamap", "forgetting")
COLUMNS = ("AUPRC", "P@k", "flag P", "flag R", "flag F1", "#flag")


@dataclass
class Case:
    name: str
    ids: list[str]  # the project's sample ids, in project order
    texts: list[str]
    class_names: list[str]
    labels: np.ndarray  # noisy label indices (what the model trains on)
    truth: np.ndarray  # bool, the label is wrong
    vectors: np.ndarray  # (N, D) float32
    clean: np.ndarray | None = None  # true label indices where known (CIFAR)


# ------------------------------------------------------------------------------------ data
def cifar_cases(args) -> list[Case]:
    import pandas as pd

    folder = SHARED / "cifar10n"
    if not args.cases & set(CIFAR_SETS):
        return []
    if not (folder / "labels.csv").exists():
        print(f"CIFAR-10N skipped: {folder / 'labels.csv'} not found")
        return []
    if args.cifar_vectors is not None:
        vectors = np.load(args.cifar_vectors).astype(np.float32)
        rows = np.load(args.cifar_ids) if args.cifar_ids is not None else np.arange(vectors.shape[0])
        if args.cifar_ids is None:
            print(f"CIFAR-10N: --cifar-ids not given, assuming the {rows.size} rows are images 0..{rows.size - 1}")
    else:
        cache = Path(args.cache).expanduser()
        file, ids_file = cache / f"cifar_effnet_{args.n}.npy", cache / f"cifar_ids_{args.n}.npy"
        if file.exists() and ids_file.exists():
            vectors, rows = np.load(file).astype(np.float32), np.load(ids_file)
        elif not (folder / "train_images.tar").exists():
            print(f"CIFAR-10N skipped: no --cifar-vectors and {folder / 'train_images.tar'} not found")
            return []
        else:
            from core.embed.offline import offline_embedder

            print(f"CIFAR-10N: embedding the first {args.n} images with EfficientNet-Lite0 (slow on CPU), "
                  f"saved to {cache}")
            vectors, rows = embed_cifar(offline_embedder("image"), args.n)
            cache.mkdir(parents=True, exist_ok=True)
            np.save(file, vectors.astype(np.float32))
            np.save(ids_file, rows)
    rows = np.asarray(rows, dtype=np.int64)
    keep = np.argsort(rows, kind="stable")[: args.n]  # the first N images
    vectors, rows = vectors[keep], rows[keep]
    names = (folder / "classes.txt").read_text().split()
    frame = pd.read_csv(folder / "labels.csv", dtype={"id": str}).iloc[rows]
    clean = frame["clean"].map(names.index).to_numpy()
    ids = frame["id"].tolist()
    texts = [f"cifar image {i}" for i in rows]
    cases = []
    for labelset in CIFAR_SETS:
        if labelset not in args.cases:
            continue
        noisy = frame[labelset].map(names.index).to_numpy()
        name = f"CIFAR-10N {labelset}, {rows.size} images"
        cases.append(Case(name, ids, texts, names, noisy, noisy != clean, vectors, clean))
    return cases


def news20_case(args) -> list[Case]:
    folder = SHARED / "news20"
    if "news20" not in args.cases:
        return []
    if not all((folder / f).exists() for f in ("minilm.npy", "test.jsonl", "confirmed_errors.csv")):
        print(f"20 Newsgroups skipped: {folder} (minilm.npy, test.jsonl, confirmed_errors.csv) not found")
        return []
    names, labels, truth, vectors, _ = news20()
    rows = [json.loads(line) for line in open(folder / "test.jsonl")]
    return [Case(f"20news, {len(rows)} texts", [r["id"] for r in rows], [r["text"] for r in rows], names,
                 labels, truth, vectors.astype(np.float32))]


def make_project(case: Case, folder: Path):
    """Ingest the case's rows and import its vectors as ``own``, the way a user would."""
    source = folder / "samples.jsonl"
    with open(source, "w") as out:
        for sid, text, label in zip(case.ids, case.texts, case.labels):
            out.write(json.dumps({"id": sid, "text": text, "label": case.class_names[label]}) + "\n")
    project = api.create_project(folder / "project")
    report = api.ingest(project, api.IngestOptions(texts=source))
    if report.rejected:
        raise RuntimeError(f"{case.name}: ingest rejected {report.rejected} rows: {report.rejects[:3]}")
    if project.sample_ids() != case.ids:
        raise RuntimeError(f"{case.name}: the project's sample order is not the rows' order")
    np.save(folder / "own.npy", case.vectors)
    (folder / "own.ids.txt").write_text("\n".join(case.ids) + "\n")
    api.import_vectors(project, folder / "own.npy", "own", ids_file=folder / "own.ids.txt")
    return project


# ------------------------------------------------------------------------------------ the user's model
class MLP(nn.Module):
    def __init__(self, dim: int, classes: int, hidden: int = 256, dropout: float = 0.1) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, classes))

    def forward(self, x):
        return self.body(x)


def project_labels(project, case: Case, labels: np.ndarray | None = None) -> np.ndarray:
    """The noisy labels (or ``labels``) as indices in the project's label order (what the model's
    outputs mean)."""
    order = {name: i for i, name in enumerate(project.labels())}
    return np.array([order[case.class_names[c]] for c in (case.labels if labels is None else labels)], dtype=np.int64)


def standardise(x: np.ndarray) -> torch.Tensor:
    """Label-free, over all rows."""
    return torch.from_numpy(((x - x.mean(0)) / (x.std(0) + 1e-6)).astype(np.float32))


def train_run(project, run: str, x: torch.Tensor, y: torch.Tensor, train_rows: np.ndarray,
              held_rows: np.ndarray | None, epochs: int, seed: int, batch: int = 128) -> np.ndarray | None:
    """One training run under capture; returns the last epoch's softmax on ``held_rows``."""
    torch.manual_seed(seed)
    model = capture.watch(MLP(x.shape[1], int(y.max()) + 1), layers={"hidden": "body.1"})
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    shuffle = torch.Generator().manual_seed(seed)
    train_rows = torch.from_numpy(train_rows)
    held = None if held_rows is None else torch.from_numpy(held_rows)
    probs = None
    for epoch in range(epochs):
        model.train()
        order = train_rows[torch.randperm(len(train_rows), generator=shuffle)]
        with capture.session(project, run=run, epoch=epoch, split="train"):
            for start in range(0, len(order), batch):
                rows = order[start:start + batch]
                logits = model(x[rows], labels=y[rows], sample_ids=rows)
                loss = nn.functional.cross_entropy(logits, y[rows])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
        if held is not None:
            model.eval()
            with torch.no_grad(), capture.session(project, run=run, epoch=epoch, split="eval"):
                logits = model(x[held], labels=y[held], sample_ids=held)
            probs = torch.softmax(logits, dim=1).numpy().astype(np.float64)
    return probs


# ------------------------------------------------------------------------------------ one case
def row(case: str, method: str, m: dict) -> str:
    cells = [f"{m[c]:.4f}" if isinstance(m[c], float) else str(m[c]) for c in COLUMNS]
    return f"| {case} | {method} | " + " | ".join(cells) + " |"


def run_case(case: Case, args, workdir: Path, lines: list[str], notes: list[str], overhead: list) -> dict:
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    timings = {}
    t = time.perf_counter()
    project = make_project(case, workdir)
    timings["project"] = time.perf_counter() - t
    labels = project_labels(project, case)
    truth = case.truth
    x, y = standardise(case.vectors), torch.from_numpy(labels)
    n, folds = len(case.ids), args.folds
    fold = np.random.default_rng(args.seed).permutation(n) % folds

    t = time.perf_counter()
    oos = np.zeros((n, len(project.labels())))
    runs = []
    for k in range(folds):
        run = f"mlp-fold{k}"
        oos[fold == k] = train_run(project, run, x, y, np.flatnonzero(fold != k), np.flatnonzero(fold == k),
                                   args.epochs, args.seed + k)
        runs.append(run)
    timings["train folds"] = time.perf_counter() - t
    t = time.perf_counter()
    train_run(project, "mlp-all", x, y, np.arange(n), None, args.epochs, args.seed + folds)
    timings["train all"] = time.perf_counter() - t

    # the baseline: cleanlab on the same model's out-of-sample probabilities
    t = time.perf_counter()
    quality = get_label_quality_scores(labels, oos)
    issues = find_label_issues(labels, oos, n_jobs=1)  # no fork: LanceDB is loaded in this process
    timings["cleanlab"] = time.perf_counter() - t
    lines.append(row(case.name, "cleanlab alone (the MLP's held-out probs)", metrics(truth, 1.0 - quality, issues)))

    config = DetectConfig(seed=args.seed)
    results = {}
    for key, captures in (("plain", ()), ("folds", runs), ("all", ["mlp-all"])):
        t = time.perf_counter()
        results[key] = analyse(project, representation="own", config=config, with_slices=False, captures=captures)
        timings[f"analyse {key}"] = time.perf_counter() - t
    names = {"plain": "Amend, no capture (vectors: probe + neighbours)",
             "folds": f"**Amend + capture, {folds} fold runs**", "all": "Amend + capture, mlp-all (dynamics only)"}
    for key, method in names.items():
        d = results[key].detection
        lines.append(row(case.name, method, metrics(truth, d.score, d.flagged)))
    d = results["folds"].detection
    for name in DYNAMICS:
        alone = metrics(truth, d.detector_scores[name], d.results[name].flagged)
        lines.append(row(case.name, f"{name} alone ({folds} runs)", alone))

    accuracy = (oos.argmax(1) == labels).mean()

    def weights(key: str) -> str:
        return ", ".join(f"{k} {v:.2f}" for k, v in results[key].run.record["probability_pool"]["weights"].items())

    notes.append(f"{case.name}: MLP held-out accuracy vs the noisy labels {accuracy:.3f}"
                 + ("" if case.clean is None else
                    f", vs the clean labels {(oos.argmax(1) == project_labels(project, case, case.clean)).mean():.3f}")
                 + f"; pool weights with capture: {weights('folds')}; without: {weights('plain')}"
                 + f"; held-out coverage {results['folds'].run.record['captures']['held_out_coverage']} of {n}")
    notes.append(f"{case.name}: seconds " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))

    if args.overhead_reps and not overhead:
        overhead.append(measure_overhead(project, case.name, x, y, args))
    return timings


# ------------------------------------------------------------------------------------ overhead
def measure_overhead(project, case: str, x: torch.Tensor, y: torch.Tensor, args, batch: int = 128) -> dict:
    """Per-step time of one epoch, same weights, data and batches, four ways (see the docstring)."""
    torch.manual_seed(args.seed)
    plain = MLP(x.shape[1], int(y.max()) + 1)
    watched = capture.watch(copy.deepcopy(plain), layers={"hidden": "body.1"})
    start_plain, start_watched = copy.deepcopy(plain.state_dict()), copy.deepcopy(watched.state_dict())
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(args.seed))
    batches = [order[s:s + batch] for s in range(0, len(order), batch)]
    modes = ("unwatched model", "watched, no session", "session, logits only", "session, logits + layer")
    steps = {m: [] for m in modes}
    epochs = {m: [] for m in modes}
    for rep in range(args.overhead_reps):
        for mode in modes[rep % len(modes):] + modes[: rep % len(modes)]:
            model = plain if mode == "unwatched model" else watched
            model.load_state_dict(start_plain if model is plain else start_watched)
            model.train()
            torch.manual_seed(rep)  # same dropout masks in every mode
            optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
            if mode.startswith("session"):
                session = capture.session(project, run="overhead" + ("-layer" if "layer" in mode else ""), epoch=rep,
                                          split="train", layers="layer" in mode)
            else:
                session = None
            times = []
            t_epoch = time.perf_counter()
            with session if session is not None else _nothing():
                for rows in batches:
                    t = time.perf_counter()
                    logits = model(x[rows], labels=y[rows], sample_ids=rows) if model is watched else model(x[rows])
                    loss = nn.functional.cross_entropy(logits, y[rows])
                    optimiser.zero_grad()
                    loss.backward()
                    optimiser.step()
                    times.append(time.perf_counter() - t)
            epochs[mode].append(time.perf_counter() - t_epoch)
            steps[mode].append(float(np.mean(times)))
    base = np.mean(steps["watched, no session"])
    return {
        "case": case, "batches": len(batches), "batch": batch, "reps": args.overhead_reps,
        "modes": {m: {"step_ms": 1e3 * float(np.mean(steps[m])), "step_ms_sd": 1e3 * float(np.std(steps[m])),
                      "epoch_s": float(np.mean(epochs[m])), "overhead_pct": 100 * (float(np.mean(steps[m])) / base - 1)}
                  for m in modes},
    }


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


# ------------------------------------------------------------------------------------ main
def core_version() -> str:
    """Which core/ the figures come from: the commit and a digest of the working tree's core/*.py
    (core changes between commits, so the commit alone does not say)."""
    import hashlib
    import subprocess

    digest = hashlib.sha256()
    files = sorted((REPO / "core").rglob("*.py"))
    for file in files:
        digest.update(str(file.relative_to(REPO)).encode() + b"\0" + file.read_bytes())
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "core"], capture_output=True,
                               text=True, check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        head, dirty = "unknown", []
    return f"git {head}, {len(dirty)} uncommitted paths in core/, core/*.py sha256 {digest.hexdigest()[:12]}"


def machine() -> str:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    from threadpoolctl import threadpool_info

    blas = sorted({f"{i['internal_api']} {i['num_threads']}" for i in threadpool_info()})
    return (f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores (nproc), {gpu}, python "
            f"{platform.python_version()}, torch {torch.__version__}; threads: torch {torch.get_num_threads()}, "
            f"{', '.join(blas)}; load average {os.getloadavg()[0]:.1f} at start")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cifar-vectors", type=Path, help="CIFAR-10N image vectors, .npy (rows = --cifar-ids)")
    ap.add_argument("--cifar-ids", type=Path, help=".npy of the integer image ids of the --cifar-vectors rows")
    ap.add_argument("--cache", default="~/.cache/amend-bench", help="where computed CIFAR vectors are saved")
    ap.add_argument("--n", type=int, default=6000, help="CIFAR-10N: the first N training images")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cases", default="aggregate,random1,worst,news20")
    ap.add_argument("--overhead-reps", type=int, default=10, help="0 skips the overhead measurement")
    ap.add_argument("--threads", type=int, default=0,
                    help="cap torch and BLAS/OpenMP threads (0: the libraries' default); on a shared machine "
                         "a cap avoids oversubscription")
    ap.add_argument("--json", type=Path, help="also write the rows and notes here")
    args = ap.parse_args(argv)
    if args.threads:
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(args.threads)
        threadpool_limits(args.threads)
    args.cases = set(args.cases.split(","))
    started = time.perf_counter()
    print(f"machine: {machine()}", flush=True)
    core_at_start = core_version()
    print(f"core: {core_at_start}; started {time.strftime('%Y-%m-%d %H:%M:%S %Z')}", flush=True)
    print(f"model: MLP D -> 256 -> C (ReLU, dropout 0.1), Adam lr 1e-3, batch 128, {args.epochs} epochs, "
          f"{args.folds} fold runs + mlp-all, seed {args.seed}", flush=True)
    cases = cifar_cases(args) + news20_case(args)
    lines, notes, overhead = [], [], []
    for case in cases:
        with tempfile.TemporaryDirectory(prefix="amend-capture-bench-") as tmp:
            t = time.perf_counter()
            run_case(case, args, Path(tmp), lines, notes, overhead)
            print(f"{case.name}: done in {time.perf_counter() - t:.0f} s", flush=True)
    print()
    print("| case | method | " + " | ".join(COLUMNS) + " |\n|" + "---|" * (len(COLUMNS) + 2))
    print("\n".join(lines))
    print()
    print("\n".join(notes))
    for o in overhead:
        print(f"\nOverhead ({o['case']}, {o['batches']} steps of batch {o['batch']}, {o['reps']} repetitions, CPU):")
        print("| mode | mean step ms (sd over reps) | vs watched, no session "
              "| epoch wall s (incl. session start/commit) |")
        print("|---|---:|---:|---:|")
        for mode, m in o["modes"].items():
            print(f"| {mode} | {m['step_ms']:.2f} ({m['step_ms_sd']:.2f}) | {m['overhead_pct']:+.1f} % "
                  f"| {m['epoch_s']:.2f} |")
    print(f"\nwall time {time.perf_counter() - started:.0f} s")
    if core_version() != core_at_start:
        print(f"WARNING: core/ changed during the run (now {core_version()}); the figures mix two versions")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "core": core_at_start, "rows": lines, "notes": notes,
                                         "overhead": overhead}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
