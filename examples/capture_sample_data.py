"""Train your own small CNN on the sample CIFAR-10N images, capture it, and let Amend use it.

    python examples/capture_sample_data.py .amend/cifar10n-sample [--epochs 15]

PROJECT is the sample project that ``./scripts/start.sh`` (``amend demo``) builds under ``.amend/``;
when it does not exist yet, this script builds the sample projects into its parent folder first.

What it does, in the order a user would:

1. reads the project's 400 images (32x32) back from the files ingest recorded, checked against
   their sha256;
2. trains a small CNN on them as 2 fold runs, each inside ``capture.session`` blocks: the run
   ``cnn-fold0`` learns from half the images (split ``train``) and, after every epoch, predicts the
   other half (split ``eval``); ``cnn-fold1`` the other way round. Capture records the logits and
   the pooled conv features of every sample, every epoch;
3. analyses the project twice, without and with the captured runs, and prints the top flags with
   the area-under-the-margin evidence, and how many of ``sample_data/cifar10n/known_errors.csv``
   each analysis puts at the top.

One to four minutes on 2 CPU cores with the default 15 epochs (under a minute of training; the
two analyses take the rest, more on a busy machine). A CNN trained from scratch on 200 images is a
weak model (about 30 % held-out accuracy here); that is fine: the analysis weighs its held-out
predictions by how well they agree with the labels, and its training dynamics are evidence of
their own. Your own, stronger model is the point of capture.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from core import api, capture
from core.capture.store import capture_runs
from core.demo import SAMPLE_DATA, prepare_sample_projects
from core.detect import REGISTRY
from core.ingest.media import open_image

KNOWN_ERRORS = SAMPLE_DATA / "cifar10n" / "known_errors.csv"


class SmallCNN(nn.Module):
    """Three conv blocks and a linear head: small enough to train on a laptop CPU in seconds."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3, padding=1), nn.BatchNorm2d(128), nn.ReLU(),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(128, classes)

    def forward(self, x):
        return self.head(self.pool(self.conv(x)).flatten(1))


def load_images(project) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """Every sample's image and its label as it stands now (given labels + reviewers' decisions),
    in the project's sample order. Training on the labels in force means the captured dynamics
    judge the same labels the analysis looks at."""
    samples = project.samples(columns=["id", "root", "path", "content_hash"])
    current = api.current_labels(project).set_index("id")["current_label"]
    label_index = {name: i for i, name in enumerate(project.labels())}
    pixels = np.stack([
        np.asarray(open_image(root, path, digest).convert("RGB").resize((32, 32)), dtype=np.float32) / 255.0
        for root, path, digest in zip(samples["root"], samples["path"], samples["content_hash"])
    ])
    x = torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()
    # Per-channel standardisation over the whole set: uses no label, so it leaks nothing across folds.
    x = (x - x.mean(dim=(0, 2, 3), keepdim=True)) / x.std(dim=(0, 2, 3), keepdim=True)
    y = torch.tensor([label_index[current[sid]] for sid in samples["id"]])
    return samples["id"].tolist(), x, y


def free_prefix(project, prefix: str) -> str:
    """A finished epoch is never overwritten, so a second run of this script needs new run names."""
    taken = {run.name for run in capture_runs(project)}
    candidate, attempt = prefix, 1
    while any(name.startswith(f"{candidate}-fold") for name in taken):
        attempt += 1
        candidate = f"{prefix}{attempt}"
    return candidate


def train_fold_runs(project, x: torch.Tensor, y: torch.Tensor, epochs: int, folds: int, seed: int,
                    prefix: str, batch: int = 16) -> list[str]:
    """k-fold training under capture; returns the run names."""
    # Which fold each sample is held out in. The held-out predictions are what makes capture
    # useful beyond training dynamics: a model never sees those labels, so its predictions on
    # them are honest out-of-sample probabilities, and together the folds cover every sample.
    fold = np.random.default_rng(seed).permutation(len(y)) % folds
    runs = []
    for k in range(folds):
        run = f"{prefix}-fold{k}"
        torch.manual_seed(seed + k)
        # watch() hooks the model: inside a session, every forward call that carries
        # sample_ids= hands its logits and the "pooled" layer to Amend; outside, nothing.
        model = capture.watch(SmallCNN(len(project.labels())), layers={"pooled": "pool"})
        optimiser = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=5e-4)
        train_rows = torch.from_numpy(np.flatnonzero(fold != k))
        held_rows = torch.from_numpy(np.flatnonzero(fold == k))
        shuffle = torch.Generator().manual_seed(seed + k)
        for epoch in range(epochs):
            model.train()
            order = train_rows[torch.randperm(len(train_rows), generator=shuffle)]
            # One session per epoch and split: an epoch becomes visible in the project only when
            # its block ends without an error, so a crash never leaves half an epoch behind.
            with capture.session(project, run=run, epoch=epoch, split="train"):
                for start in range(0, len(order), batch):
                    rows = order[start:start + batch]
                    images = x[rows]
                    # A horizontal flip: cheap augmentation that keeps a 400-image model from
                    # memorising its wrong labels as quickly (memorised labels stop looking wrong).
                    flip = torch.rand(len(rows)) < 0.5
                    images = torch.where(flip[:, None, None, None], images.flip(3), images)
                    # sample_ids= may be the project's id strings or int positions in project order.
                    logits = model(images, labels=y[rows], sample_ids=rows)
                    loss = nn.functional.cross_entropy(logits, y[rows])
                    optimiser.zero_grad()
                    loss.backward()
                    optimiser.step()
            # The held-out fold, every epoch, under a split of its own: its logits are kept and
            # become out-of-sample predictions, since this run never trains on these samples.
            model.eval()
            with torch.no_grad(), capture.session(project, run=run, epoch=epoch, split="eval"):
                held_logits = model(x[held_rows], labels=y[held_rows], sample_ids=held_rows)
        held_accuracy = (held_logits.argmax(1) == y[held_rows]).float().mean().item()
        print(f"  {run}: {epochs} epochs on {len(train_rows)} images; accuracy on its {len(held_rows)} held-out "
              f"images vs their given labels {held_accuracy:.0%}")
        runs.append(run)
    return runs


def own_representation(project):
    """The project's own vectors (the embedder's), not a captured layer: see core.analysis.captured
    for why a layer of a model trained on the noisy labels is a poor judge of them."""
    own = [rep for rep in project.representations() if rep.source != "capture"]
    return own[-1].name if own else None


def hits_at_k(ids: list[str], score: np.ndarray, known: set[str]) -> int:
    """Known errors among the top len(known) of a ranking."""
    top = np.argsort(-score, kind="stable")[: len(known)]
    return sum(ids[i] in known for i in top)


def print_top(result, top: int) -> None:
    """The top flags with the AUM detector's own sentence, as the triage page words it."""
    evidence = result.evidence.sort_values("rank").head(top)
    context = {"params": result.run.record["detector_params"]}
    explain = REGISTRY["aum"].explain
    print(f"\nTop {top} of the ranking with capture (rank, id, label -> suggestion, AUM evidence):")
    for row in evidence.to_dict(orient="records"):
        suggestion = row["suggested_label"] if isinstance(row["suggested_label"], str) else "-"
        flag = "flagged" if row["flagged"] else "not flagged"
        print(f"  {row['rank']:>3}  {row['id']}  {row['label_analysed']} -> {suggestion} ({flag}, "
              f"score {row['score']:.2f}): {explain(row, context)}")


def _complete(path: Path) -> bool:
    """A project with samples whose every representation covers every sample."""
    if not (path / "amend.json").exists():
        return False
    project = api.open_project(path)
    total = project.sample_count()
    reps = project.representations()
    return total > 0 and bool(reps) and all(len(project.embedded_ids(rep)) == total for rep in reps)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("project", type=Path, help="the cifar10n sample project, e.g. .amend/cifar10n-sample")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--no-slices", action="store_true", help="skip the map and slices (faster)")
    args = parser.parse_args(argv)

    if args.project.name == "cifar10n-sample" and not _complete(args.project):
        # Builds the sample projects when missing, and finishes one an interrupted first build
        # left half-embedded (idempotent: nothing is redone).
        print(f"Making sure the sample projects in {args.project.parent} are complete "
              "(the first time: a few minutes, the offline embedders run once)")
        prepare_sample_projects(args.project.parent)
    elif not (args.project / "amend.json").exists():
        print(f"{args.project} is not a project; pass the sample project (.amend/cifar10n-sample), "
              "or a missing folder named cifar10n-sample to build it", file=sys.stderr)
        return 1
    project = api.open_project(args.project)
    torch.manual_seed(args.seed)

    print(f"Reading {project.sample_count()} images of {project.path}")
    ids, x, y = load_images(project)
    prefix = free_prefix(project, "cnn")
    print(f"Training {args.folds} fold runs of a small CNN under capture ({args.epochs} epochs each)")
    runs = train_fold_runs(project, x, y, args.epochs, args.folds, args.seed, prefix)

    # Same data, same seed, same representation: the only difference between the two analyses is
    # the captured runs. The one with capture runs last, so it is the run `amend flags` and the
    # app show.
    representation = own_representation(project)
    config = api.DetectConfig(seed=args.seed)
    without = None
    if representation is not None:
        without = api.analyse(project, representation=representation, config=config, with_slices=False)
    result = api.analyse(project, representation=representation, config=config, with_slices=not args.no_slices,
                         captures=runs)

    record = result.run.record
    pool = ", ".join(f"{name} {weight:.2f}" for name, weight in record["probability_pool"]["weights"].items())
    print(f"\nAnalysis {result.run.run_id}: {record['counts']['flagged']} of {len(ids)} flagged; "
          f"detectors {', '.join(record['detectors'])}; probability pool: {pool}")
    print_top(result, args.top)

    if KNOWN_ERRORS.exists():
        known = set(pd.read_csv(KNOWN_ERRORS, dtype={"id": str})["id"]) & set(ids)
        if known:
            with_capture = hits_at_k(ids, result.detection.score, known)
            line = (f"\nKnown errors (sample_data/cifar10n/known_errors.csv) in the top {len(known)}: "
                    f"{with_capture} with capture")
            if without is not None:
                line += f", {hits_at_k(ids, without.detection.score, known)} without (same vectors, same seed)"
            print(line)
    print("\nNext:")
    print(f"  amend flags {args.project} --top 20     # the ranked list, with each detector's evidence")
    print(f"  amend app {args.project}               # review them in the triage page")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
