"""capture.session: what one epoch records, its commit point, and bad input."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from core import capture
from core.capture import store
from core.errors import AmendError

from .conftest import planted_project, small_net, train

REPO = Path(__file__).resolve().parents[2]


class FixedLogits(nn.Module):
    """Returns the logits it is given: the statistics can be computed by hand."""

    def forward(self, logits):
        return logits * 1.0


def test_epoch_statistics_by_hand(planted):
    model = capture.watch(FixedLogits())
    ids = planted.ids[:2]
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0]])
    with capture.session(planted.project.path, run="hand", epoch=0):
        model(logits, labels=torch.tensor([1, 1]), sample_ids=ids)
        # the first sample again in the same epoch, now right: its statistics are the mean of both
        model(torch.tensor([[0.0, 2.0, 0.0]]), labels=torch.tensor([1]), sample_ids=ids[:1])
    (stats,) = store.epoch_stats(planted.project, "hand")
    assert stats.positions.tolist() == [0, 1]
    p_first = math.exp(1) / (math.exp(2) + math.exp(1) + 1)
    p_again = math.exp(2) / (math.exp(2) + 2)
    p_second = math.exp(3) / (1 + math.exp(3) + math.exp(1))
    np.testing.assert_allclose(stats.margin, [(-1.0 + 2.0) / 2, 2.0])
    np.testing.assert_allclose(stats.p_label, [(p_first + p_again) / 2, p_second])
    np.testing.assert_allclose(stats.correct, [0.5, 1.0])
    labels = planted.project.labels()
    assert [labels[i] for i in stats.label] == [labels[1], labels[1]]
    assert [labels[i] for i in stats.top_other] == [labels[0], labels[2]]  # the last occurrence's
    record = store.capture_run(planted.project, "hand").epoch_record(planted.project.path, "train", 0)
    assert record["rows"] == 3 and record["samples_seen"] == 2 and record["batches"] == 2


def test_classes_map_model_outputs_to_project_labels(planted):
    labels = planted.project.labels()
    reverse = list(reversed(labels))
    model = capture.watch(FixedLogits())
    with capture.session(planted.project.path, run="order", epoch=0, classes=reverse):
        model(torch.tensor([[5.0, 0.0, 0.0]]), labels=torch.tensor([0]), sample_ids=planted.ids[:1])
    (stats,) = store.epoch_stats(planted.project, "order")
    assert labels[stats.label[0]] == reverse[0]
    assert labels[stats.top_other[0]] in reverse[1:]


def test_a_finished_epoch_is_never_overwritten(planted):
    model = capture.watch(small_net())
    train(model, planted, "twice", epochs=1)
    with pytest.raises(AmendError, match="already has epoch 0"):
        with capture.session(planted.project.path, run="twice", epoch=0):
            pass


def test_an_exception_inside_the_session_leaves_nothing(planted):
    model = capture.watch(small_net())
    with pytest.raises(RuntimeError, match="boom"):
        with capture.session(planted.project.path, run="failed", epoch=0):
            model(torch.tensor(planted.inputs[:3]), labels=torch.tensor(planted.labels[:3]),
                  sample_ids=planted.ids[:3])
            raise RuntimeError("boom")
    assert store.capture_runs(planted.project) == []
    assert not any(p.name.startswith(".epoch") for p in (planted.project.path / "capture").rglob("*"))


@pytest.mark.parametrize("bad, message", [
    ({"sample_ids": ["nope", "s0001"]}, "sample id 'nope' is not in the project"),
    ({"sample_ids": torch.tensor([0, 10_000])}, "outside the project's 150 samples"),
    ({"labels": torch.tensor([0, 7])}, "labels must be class indices 0..2"),
])
def test_bad_batches_fail_with_one_line_and_commit_nothing(planted, bad, message):
    model = capture.watch(small_net())
    call = {"labels": torch.tensor(planted.labels[:2]), "sample_ids": planted.ids[:2], **bad}
    with pytest.raises(AmendError, match=message) as caught:
        with capture.session(planted.project.path, run="bad", epoch=0):
            model(torch.tensor(planted.inputs[:2]), **call)
    assert "\n" not in str(caught.value)
    assert store.capture_runs(planted.project) == []


def test_small_queue_and_blocks_keep_every_row(planted):
    model = capture.watch(small_net(), layers={"hidden": "encoder"})
    x = torch.tensor(planted.inputs)
    with capture.session(planted.project.path, run="tight", epoch=0, queue_batches=1, block_rows=7):
        for start in range(0, len(planted.ids), 10):
            model(x[start:start + 10], labels=torch.tensor(planted.labels[start:start + 10]),
                  sample_ids=torch.arange(start, min(start + 10, len(planted.ids))))
    ids, vectors, _ = store.layer_vectors(planted.project, "tight", "hidden")
    assert ids == planted.ids
    np.testing.assert_allclose(vectors, model.encoder(x).detach().numpy(), rtol=1e-5, atol=1e-6)


KILLED_RUN = textwrap.dedent("""
    import os, signal, sys
    sys.path[:0] = [{capture_tests!r}, {tests!r}]
    import torch
    from core import capture
    from conftest import planted_project, small_net
    from core.store.project import Project
    project = Project.open({project!r})
    ids = project.sample_ids()
    model = capture.watch(small_net(), layers={{"hidden": "encoder"}})
    x = torch.randn(len(ids), 16)
    y = torch.zeros(len(ids), dtype=torch.long)
    for epoch in range(3):
        with capture.session(project, run="killed", epoch=epoch, block_rows=16):
            for start in range(0, len(ids), 20):
                model(x[start:start + 20], labels=y[start:start + 20], sample_ids=ids[start:start + 20])
                if epoch == 2 and start >= 60:
                    os.kill(os.getpid(), signal.SIGKILL)
""")


@pytest.mark.slow
def test_a_run_killed_mid_epoch_keeps_its_complete_epochs(tmp_path):
    planted = planted_project(tmp_path / "killed")
    script = KILLED_RUN.format(tests=str(REPO / "tests"), capture_tests=str(REPO / "tests" / "capture"),
                               project=str(planted.project.path))
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == -9, done.stderr[-2000:]
    partials = list((planted.project.path / "capture" / "killed" / "train").glob(".epoch-000002.partial-*"))
    assert len(partials) == 1  # what the killed epoch wrote, invisible to readers
    (captured,) = store.capture_runs(planted.project)
    assert captured.epochs == {"train": [0, 1]}
    assert [s.epoch for s in store.epoch_stats(planted.project, "killed")] == [0, 1]
    ids, _, sources = store.layer_vectors(planted.project, "killed", "hidden")
    assert len(ids) == len(planted.ids) and sources["train"]["epoch"] == 1
    # the next session of the run clears the dead process's partial epoch and records epoch 2
    model = capture.watch(small_net())
    with capture.session(planted.project.path, run="killed", epoch=2):
        model(torch.tensor(planted.inputs[:4]), labels=torch.tensor(planted.labels[:4]), sample_ids=planted.ids[:4])
    assert not partials[0].exists()
    assert store.capture_run(planted.project, "killed").epochs == {"train": [0, 1, 2]}
