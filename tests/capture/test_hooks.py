"""capture.watch: hooks on nested modules, pooling of rank-3/4 outputs, keywords stripped."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from core import capture
from core.capture import store
from core.capture.hooks import pool_output
from core.errors import AmendError

from .conftest import small_net


class Strict(nn.Module):
    """A forward that takes no keywords at all: it fails if labels/sample_ids reach it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.tokens = nn.Linear(4, 5)
        self.head = nn.Linear(5, 3)

    def forward(self, x):
        feature_map = self.conv(x)  # (B, 4, H, W): rank 4
        sequence = self.tokens(feature_map.flatten(2).transpose(1, 2))  # (B, H*W, 5): rank 3
        return self.head(sequence.mean(dim=1))


def test_keywords_are_stripped_outside_and_inside_a_session(planted):
    model = capture.watch(Strict(), layers={"map": "conv", "seq": "tokens"})
    x = torch.randn(4, 1, 6, 6)
    labels = torch.tensor([0, 1, 2, 0])
    out = model(x, labels=labels, sample_ids=planted.ids[:4])  # no session: stripped, nothing kept
    assert out.shape == (4, 3)
    assert store.capture_runs(planted.project) == []
    with capture.session(planted.project.path, run="strict", epoch=0):
        model(x, labels=labels, sample_ids=planted.ids[:4])
    ids, vectors, _ = store.layer_vectors(planted.project, "strict", "map")
    assert ids == planted.ids[:4] and vectors.shape == (4, 4)  # rank 4 -> mean over H, W
    ids, vectors, _ = store.layer_vectors(planted.project, "strict", "seq")
    assert vectors.shape == (4, 5)  # rank 3 -> mean over the tokens
    record = store.capture_run(planted.project, "strict").record
    assert record["pooling"] == {"map": "mean over dims [2, 3]", "seq": "mean over dims [1]"}


def test_pooled_vectors_equal_the_layer_outputs(planted):
    model = capture.watch(Strict(), layers={"map": "conv"})
    x = torch.randn(3, 1, 5, 5)
    with capture.session(planted.project.path, run="pool", epoch=0):
        model(x, labels=torch.tensor([0, 1, 2]), sample_ids=planted.ids[:3])
    expected = model.conv(x).mean(dim=(2, 3)).detach().numpy()
    _, vectors, _ = store.layer_vectors(planted.project, "pool", "map")
    np.testing.assert_allclose(vectors, expected, rtol=1e-5, atol=1e-6)


def test_nested_module_path_and_class_decorator(planted):
    net = small_net()
    decorated = capture.watch(layers={"block": "encoder.0.act"})(type(net))
    model = decorated()
    assert hasattr(model, "_amend_watcher")
    x = torch.tensor(planted.inputs[:5])
    with capture.session(planted.project.path, run="nested", epoch=0):
        model(x, labels=torch.tensor(planted.labels[:5]), sample_ids=planted.ids[:5])
    _, vectors, _ = store.layer_vectors(planted.project, "nested", "block")
    np.testing.assert_allclose(vectors, model.encoder(x).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_unknown_layer_path_names_what_exists():
    with pytest.raises(AmendError, match="no submodule 'encoder.9'.*encoder"):
        capture.watch(small_net(), layers={"x": "encoder.9"})


def test_watching_twice_replaces_the_hooks():
    model = small_net()
    capture.watch(model, layers={"a": "head"})
    capture.watch(model, layers={"b": "encoder"})
    hooks = len(model._forward_pre_hooks) + len(model._forward_hooks) + len(model.head._forward_hooks)
    assert hooks == 2  # one pre-hook and one forward hook on the model, none left on head


def test_eval_mode_and_no_grad_are_recorded_as_such(planted):
    model = capture.watch(small_net(), layers={"hidden": "encoder"})
    x = torch.tensor(planted.inputs)
    model.eval()
    with torch.no_grad(), capture.session(planted.project.path, run="modes", epoch=0, split="eval"):
        model(x, labels=torch.tensor(planted.labels), sample_ids=torch.arange(len(planted.ids)))
    captured = store.capture_run(planted.project, "modes")
    record = captured.epoch_record(planted.project.path, "eval", 0)
    assert record["train_mode_batches"] == 0 and record["samples_seen"] == len(planted.ids)
    assert record["logits_kept"] is True  # a non-train split keeps its logits (they become predictions)
    ids, probs, classes, _ = store.held_out_probabilities(planted.project, "modes")
    expected = torch.softmax(model(x), dim=1).detach().numpy()
    np.testing.assert_allclose(probs, expected, rtol=1e-4, atol=1e-6)
    assert classes == planted.project.labels()


def test_pool_output_choices():
    t = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4)
    assert pool_output(t, "first")[0].tolist() == t[:, 0].tolist()
    assert pool_output(t, "max")[0].tolist() == t.amax(dim=1).tolist()
    assert pool_output(t, (2,))[0].shape == (2, 3)
    assert pool_output(t, "flatten")[0].shape == (2, 12)
    with pytest.raises(AmendError):
        pool_output(t, (0,))
    with pytest.raises(AmendError):
        pool_output(torch.zeros(3), "auto")


def test_compiled_model_keeps_its_hooks(planted):
    model = capture.watch(small_net(), layers={"hidden": "encoder"})
    compiled = torch.compile(model, backend="eager")
    x = torch.tensor(planted.inputs[:6])
    with capture.session(planted.project.path, run="compiled", epoch=0):
        out = compiled(x, labels=torch.tensor(planted.labels[:6]), sample_ids=planted.ids[:6])
    assert out.shape == (6, 3)
    ids, vectors, _ = store.layer_vectors(planted.project, "compiled", "hidden")
    assert ids == planted.ids[:6] and vectors.shape == (6, 24)


def test_autocast_outputs_are_kept_as_float32(planted):
    model = capture.watch(small_net(), layers={"hidden": "encoder"})
    x = torch.tensor(planted.inputs[:8])
    with torch.autocast("cpu", dtype=torch.bfloat16), capture.session(planted.project.path, run="amp", epoch=0):
        out = model(x, labels=torch.tensor(planted.labels[:8]), sample_ids=planted.ids[:8])
    assert out.dtype == torch.bfloat16
    _, vectors, _ = store.layer_vectors(planted.project, "amp", "hidden")
    assert vectors.dtype == np.float32 and np.isfinite(vectors).all()
    (stats,) = store.epoch_stats(planted.project, "amp")
    assert stats.positions.size == 8 and np.isfinite(stats.margin).all()
