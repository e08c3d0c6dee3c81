"""Captured training runs as analysis inputs: training dynamics, held-out probabilities and the
captured layers as representations (``amend analyse PROJECT --capture RUN``).

Which captured evidence goes where, and why:

- The train split's per-epoch statistics become :class:`core.capture.dynamics.Dynamics` (several
  runs aggregated), read by the training-dynamics detectors. They are about how the model
  *learned* each label, so they are evidence of their own, never probabilities for confident
  learning (a model that has seen a label predicts it in-sample).
- Logits of non-train splits, for samples the run never trained on, are out-of-sample
  probabilities. Several runs (k-fold) are averaged where they overlap; when they cover every
  sample they join the probability pool beside the probe, whose weights are fitted on the
  project's own labels (:mod:`core.detect.pooling`), so a weak model gets little weight.
- Each captured layer (last epoch) becomes a representation named ``capture.RUN.LAYER.eEPOCH``
  once it covers every sample. The analysis keeps the project's own representation (the
  embedder's or an imported one) when there is one: a layer of a model trained on the noisy
  labels has learned them, which is what makes its probe a poor judge of them. Ask for a
  captured layer with ``--representation`` to analyse on it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from core.capture import store as capture_store
from core.errors import AmendError
from core.store.project import Project

logger = logging.getLogger(__name__)

__all__ = ["CapturedEvidence", "captured_evidence", "layer_agreement", "linear_cka", "register_layers", "CAPTURE_SOURCE"]

#: ``Representation.source`` of a captured layer.
CAPTURE_SOURCE = "capture"


@dataclass
class CapturedEvidence:
    """What the named capture runs give one analysis."""

    runs: list[str]
    dynamics: object = None  # core.capture.dynamics.CapturedDynamics or None
    probabilities: Optional[np.ndarray] = None  # (N, C) held-out, project label order, or None
    record: dict = field(default_factory=dict)
    aum_threshold: Optional[float] = None  # calibrated on threshold samples, when the runs had them


def register_layers(project: Project, run: str) -> list[str]:
    """Register each captured layer of ``run`` (its last epoch) as a representation, when it
    covers every sample and is not registered yet; returns the names of all of the run's layer
    representations. Call under the project's writer lock."""
    captured = capture_store.capture_run(project, run)
    known = {rep.name for rep in project.representations()}
    n = len(project.sample_ids())
    names = []
    for layer in captured.record.get("layers", {}):
        try:
            ids, vectors, sources = capture_store.layer_vectors(project, run, layer)
        except AmendError:
            continue  # the layer was never recorded (layers=False in every session)
        epoch = max(source["epoch"] for source in sources.values())
        name = f"capture.{run}.{layer}.e{epoch}"
        if len(ids) < n:
            logger.info("captured layer %s covers %d of %d samples; not a representation", name, len(ids), n)
            continue
        if name not in known:
            project.import_vectors(
                name, ids, vectors, model=f"capture:{captured.record.get('model_class')}:{layer}",
                settings={"run": run, "layer": layer, "path": captured.record.get("layers", {}).get(layer),
                          "pooling": captured.record.get("pooling", {}).get(layer), "sources": sources},
                source=CAPTURE_SOURCE,
            )
        names.append(name)
    return names


def linear_cka(a: np.ndarray, b: np.ndarray) -> float:
    """Linear centred kernel alignment of two representations of the same samples (Kornblith et
    al. 2019): 1 = the same geometry up to rotation and scale, 0 = unrelated. Works across widths."""
    a = np.asarray(a, dtype=np.float64) - np.mean(a, axis=0)
    b = np.asarray(b, dtype=np.float64) - np.mean(b, axis=0)
    cross = np.linalg.norm(a.T @ b) ** 2
    norm = np.linalg.norm(a.T @ a) * np.linalg.norm(b.T @ b)
    return float(cross / norm) if norm > 0 else float("nan")


def layer_agreement(project: Project, runs: list[str], max_samples: int = 5000, seed: int = 0) -> list[dict]:
    """Linear CKA between every two runs' captured layers (last epoch) on the samples both hold
    (at most ``max_samples``, drawn at random): do the runs see the data alike?"""
    layers: dict[str, dict[str, tuple[list[str], np.ndarray]]] = {}
    for run in runs:
        for layer in capture_store.capture_run(project, run).record.get("layers", {}):
            try:
                ids, vectors, _ = capture_store.layer_vectors(project, run, layer)
            except AmendError:
                continue
            layers.setdefault(run, {})[layer] = (ids, vectors)
    out = []
    rng = np.random.default_rng(seed)
    for i, first in enumerate(runs):
        for second in runs[i + 1:]:
            for layer_a, (ids_a, x_a) in layers.get(first, {}).items():
                for layer_b, (ids_b, x_b) in layers.get(second, {}).items():
                    where_b = {sid: j for j, sid in enumerate(ids_b)}
                    shared = [(j, where_b[sid]) for j, sid in enumerate(ids_a) if sid in where_b]
                    if len(shared) < 10:
                        continue
                    if len(shared) > max_samples:
                        shared = [shared[k] for k in np.sort(rng.choice(len(shared), max_samples, replace=False))]
                    rows_a, rows_b = (np.array(col) for col in zip(*shared))
                    out.append({"runs": [first, second], "layers": [layer_a, layer_b], "samples": len(shared),
                                "linear_cka": round(linear_cka(x_a[rows_a], x_b[rows_b]), 4)})
    return out


def captured_evidence(project: Project, runs: Sequence[str], ids: list[str], class_names: list[str]) -> CapturedEvidence:
    """Dynamics and held-out probabilities of ``runs`` over the samples ``ids`` (project order)."""
    from core.capture.dynamics import CapturedDynamics, aum_threshold

    n = len(ids)
    if list(project.sample_ids()) != list(ids):
        raise AmendError("captured evidence needs the project's samples in project order")
    per_run = []
    threshold_aums = []
    record: dict = {"runs": {}}
    sums = np.zeros((n, len(class_names)))
    covered = np.zeros(n, dtype=np.int64)
    position = {sid: i for i, sid in enumerate(ids)}
    label_index = {name: i for i, name in enumerate(class_names)}
    for run in runs:
        captured = capture_store.capture_run(project, run)
        stats = capture_store.epoch_stats(project, run, capture_store.TRAIN_SPLIT)
        entry: dict = {"model_class": captured.record.get("model_class"), "splits": dict(captured.epochs)}
        if stats:
            per_run.append(stats)
            entry["train_epochs"] = len(stats)
            margins = capture_store.threshold_margins(project, run)
            if margins.size:
                threshold_aums.append(margins)
                entry["threshold_samples"] = int(margins.size)
        held_ids, probs, classes, sources = capture_store.held_out_probabilities(project, run)
        entry["held_out"] = sources
        if held_ids:
            if set(classes) - set(label_index):
                raise AmendError(f"capture run {run!r} predicts classes {sorted(set(classes) - set(label_index))} "
                                 "that the project no longer has")
            rows = np.array([position[sid] for sid in held_ids])
            columns = np.array([label_index[c] for c in classes])
            block = np.zeros((len(held_ids), len(class_names)))
            block[:, columns] = probs
            sums[rows] += block
            covered[rows] += 1
        record["runs"][run] = entry
    evidence = CapturedEvidence(list(runs), record=record)
    if per_run:
        evidence.dynamics = CapturedDynamics(per_run, n)
        record["dynamics"] = {"runs": len(per_run), "aggregation": "mean over the runs that saw each sample",
                              "samples_seen": int((evidence.dynamics.epochs_seen > 0).sum())}
    if threshold_aums:
        # Pleiss et al.: a real sample whose AUM is below the 99th percentile of the threshold
        # samples' (mislabelled by construction) looks as mislabelled as they do.
        evidence.aum_threshold = aum_threshold(np.concatenate(threshold_aums), 99.0)
        record["aum_threshold"] = {"value": round(evidence.aum_threshold, 6), "percentile": 99.0,
                                   "threshold_samples": int(sum(m.size for m in threshold_aums))}
    if len(runs) > 1:
        record["representation_agreement"] = layer_agreement(project, list(runs))
    record["held_out_coverage"] = int((covered > 0).sum())
    if covered.all():
        evidence.probabilities = sums / covered[:, None]
        record["held_out_use"] = "pooled with the other out-of-sample estimates"
    elif covered.any():
        record["held_out_use"] = (f"not used for ranking: held-out predictions cover {int((covered > 0).sum())} "
                                  f"of {n} samples (capture an eval split for every sample, e.g. k-fold runs)")
    if not per_run and evidence.probabilities is None:
        raise AmendError(
            f"capture runs {', '.join(runs)} hold no train-split epochs and no held-out predictions for every sample; "
            "record a train split (capture.session(..., split='train')) to analyse its training dynamics"
        )
    return evidence
