"""A small project with planted wrong labels, and a small network to train on it with capture."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import builders

CLASSES = ("ant", "bee", "cat")


@dataclass
class Planted:
    project: object  # core.store.project.Project
    ids: list[str]
    inputs: np.ndarray  # (N, D) float32, clustered by the true class
    labels: np.ndarray  # (N,) given label indices in the project's label order (some wrong)
    wrong: np.ndarray  # (N,) bool, the planted wrong labels


def planted_project(path: Path, n: int = 150, dim: int = 16, n_wrong: int = 15, seed: int = 0) -> Planted:
    rng = np.random.default_rng(seed)
    truth = np.arange(n) % len(CLASSES)
    given = truth.copy()
    wrong = np.zeros(n, dtype=bool)
    wrong[rng.choice(n, n_wrong, replace=False)] = True
    given[wrong] = (truth[wrong] + 1 + rng.integers(0, len(CLASSES) - 1, wrong.sum())) % len(CLASSES)
    ids = [f"s{i:04d}" for i in range(n)]
    project = builders.text_project(path, {sid: (f"text {sid}", CLASSES[g]) for sid, g in zip(ids, given)})
    order = {name: i for i, name in enumerate(project.labels())}
    labels = np.array([order[CLASSES[g]] for g in given], dtype=np.int64)
    inputs = builders.clustered_vectors([CLASSES[t] for t in truth], dim=dim, spread=0.3, seed=seed)
    return Planted(project, project.sample_ids(), inputs, labels, wrong)


@pytest.fixture
def planted(tmp_path) -> Planted:
    return planted_project(tmp_path / "planted")


def small_net(dim: int = 16, hidden: int = 24, classes: int = 3):
    import torch
    from torch import nn

    torch.manual_seed(0)

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Linear(dim, hidden)
            self.act = nn.ReLU()

        def forward(self, x):
            return self.act(self.proj(x))

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = nn.Sequential(Block())
            self.head = nn.Linear(hidden, classes)

        def forward(self, x):
            return self.head(self.encoder(x))

    return Net()


def train(model, planted: Planted, run: str, epochs: int = 6, batch: int = 30, lr: float = 0.3, split: str = "train",
          ids_as_positions: bool = False) -> None:
    """Plain SGD on the planted labels, every epoch in a capture session."""
    import torch
    from torch import nn

    from core import capture

    x = torch.tensor(planted.inputs)
    y = torch.tensor(planted.labels)
    optimiser = torch.optim.SGD(model.parameters(), lr=lr)
    for epoch in range(epochs):
        with capture.session(planted.project.path, run=run, epoch=epoch, split=split):
            for start in range(0, len(planted.ids), batch):
                part = slice(start, start + batch)
                ids = torch.arange(len(planted.ids))[part] if ids_as_positions else planted.ids[part]
                logits = model(x[part], labels=y[part], sample_ids=ids)
                loss = nn.functional.cross_entropy(logits, y[part])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
