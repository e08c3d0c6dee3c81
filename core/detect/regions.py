"""Structured errors: one region of the data where many labels share one confusion.

Per-sample confident learning misses an error that many samples share (one region, one source,
one annotator): every model trained on the data learns it, so inside the region the wrong label
looks expected. Two things still give it away:

a probe trained *without* the region has never seen the region's noise. So: cut the data into
regions the way error slices are cut (:func:`core.slices.find_slices` and the error-aware second
pass), predict every region with probes trained on the other regions only (group k-fold,
:func:`region_held_out_probabilities`), and test each region's errors against that prediction
for more than its uncertainty explains (the unexpected-error z of
:func:`core.slices.metrics.slice_table`, one-sided, Bonferroni-corrected level). In a
significant region whose errors mostly share one direction (given L, predicted S), flag the
members labelled L that the held-out probe or the pooled probabilities give to S rather than to
L. Their suggestion is S. A region that truly differs from the rest of the data looks the same
to this test; that is why the finding goes to people as one group to accept or reject. The level is a significance level, not a constant
fitted to a data set.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Optional

import numpy as np

from core.detect.result import DetectInputs, DetectorResult, register, validate_labels
from core.detect.wording import number, own_label, suggested_label

logger = logging.getLogger(__name__)

__all__ = ["NAME", "DESCRIPTION", "score"]

NAME = "regions"
DESCRIPTION = ("Many samples of this region of the data carry the same label that a model trained on the rest "
               "of the data would call something else (a structured error).")
#: Family-wise significance level of the per-region test (Bonferroni over the regions).
ALPHA = 0.01
#: A confusion needs at least this many members to be called structured.
MIN_MEMBERS = 5
#: Width of the PCA reduction the region probes are fitted on (wider vectors are reduced).
PROBE_DIM = 128


def region_held_out_probabilities(x: np.ndarray, labels: np.ndarray, n_classes: int, region: np.ndarray,
                                  folds: int = 5, seed: int = 0) -> np.ndarray:
    """Out-of-region probabilities: regions are dealt to ``folds`` folds (largest first, each to
    the lightest fold) and every row is predicted by a probe trained on the other folds' regions,
    so no row's prediction has seen any sample of its own region (group k-fold)."""
    from core.detect.probe import DEFAULT_C, fit_predict

    sizes = np.bincount(region)
    load = np.zeros(folds)
    fold_of = np.zeros(sizes.size, dtype=np.int64)
    for r in np.argsort(-sizes, kind="stable"):
        fold_of[r] = int(np.argmin(load))
        load[fold_of[r]] += sizes[r]
    fold = fold_of[region]
    out = np.full((labels.size, n_classes), 1.0 / n_classes)
    for f in range(folds):
        test = fold == f
        if not test.any() or np.unique(labels[~test]).size < 2:
            continue
        out[test] = fit_predict(x[~test], labels[~test], x[test], n_classes, DEFAULT_C, 100)
    out = (1.0 - 1e-3) * out + 1e-3 / n_classes
    return out / out.sum(axis=1, keepdims=True)


def _structured_confusion(labels: np.ndarray, probabilities: np.ndarray, min_members: int,
                          z_needed: float) -> tuple[int, int, float] | None:
    """(given, looks_like, z) when the rows' errors under ``probabilities`` exceed what their
    uncertainty explains (z >= z_needed) and mostly share one direction; else None."""
    predicted = probabilities.argmax(axis=1)
    wrong = predicted != labels
    margin = 1.0 - probabilities.max(axis=1)  # each row's own chance of being an error
    spread = float(np.sqrt((margin * (1.0 - margin)).sum()))
    z = (wrong.sum() - margin.sum()) / spread if spread > 0 else float("inf") * (wrong.sum() > margin.sum())
    if z < z_needed or wrong.sum() < min_members:
        return None
    n_classes = probabilities.shape[1]
    pairs = np.bincount(labels[wrong] * n_classes + predicted[wrong], minlength=n_classes * n_classes)
    if pairs.max() < min_members or pairs.max() < 0.5 * wrong.sum():
        return None  # errors spread over many confusions: a hard region, not one structured error
    given, looks = divmod(int(pairs.argmax()), n_classes)
    return given, looks, float(z)


def score(
    vectors: np.ndarray,
    labels: np.ndarray,
    probabilities: np.ndarray,
    n_classes: int,
    seed: int = 0,
    alpha: float = ALPHA,
    min_members: int = MIN_MEMBERS,
) -> DetectorResult:
    """Find regions with a structured confusion and flag their members that carry it.

    Parameters
    ----------
    vectors : np.ndarray
        (N, D), L2-normalised.
    labels : np.ndarray
        int (N,).
    probabilities : np.ndarray
        (N, C) out-of-sample probabilities (the pooled ones).
    n_classes : int
    seed : int
    alpha : float, default 0.01
        Family-wise level of the test that a region has more errors than expected.
    min_members : int, default 5

    Returns
    -------
    DetectorResult
        score = 1 - P(given label) for flagged members, else 0; suggested = the confusion's
        other class; evidence ``regions`` (list of dicts: region, members, label, looks_like,
        count, z), ``region`` (N,) region id per sample.
    """
    from scipy.stats import norm

    from core.detect.probe import DEFAULT_C, fit_predict
    from core.slices.clustering import REDUCED_DIM, find_slices, split_error_slices
    from core.slices.metrics import slice_table
    from core.slices.projection import reduce

    labels = validate_labels(labels, n_classes)
    p = np.asarray(probabilities, dtype=np.float64)
    x = np.asarray(vectors, dtype=np.float32)
    n = labels.size
    reduced = reduce(x, REDUCED_DIM, seed)
    region = find_slices(x, seed=seed, reduced=reduced)
    predicted = p.argmax(axis=1)
    region = split_error_slices(region, reduced, predicted != labels, seed=seed)
    # The region probes (one per fold, one per candidate region) run on a PCA reduction: on
    # 10,000 x 1,280 vectors the full-width fits took 71 of the analysis's 74 s
    # (bench/versus_datalab.py); a region-level confusion survives the reduction.
    x = reduce(x, PROBE_DIM, seed) if x.shape[1] > PROBE_DIM else x
    held_out = region_held_out_probabilities(x, labels, n_classes, region, seed=seed)
    held_pred = held_out.argmax(axis=1)
    table = slice_table(region, labels, held_out, n_classes=n_classes)
    z_needed = float(norm.isf(alpha / max(len(table), 1)))
    scores = np.zeros(n)
    flagged = np.zeros(n, dtype=bool)
    suggested = np.full(n, -1, dtype=np.int64)
    found = []
    rows = np.arange(n)
    for entry in table.itertuples(index=False):
        z = float(entry.unexpected_z) if entry.unexpected_z == entry.unexpected_z else 0.0
        if z < z_needed:
            continue
        inside = region == entry.slice_id
        outside = ~inside
        if np.unique(labels[outside]).size < 2:
            continue
        # Group k-fold holds other regions out together with this one; confirm with a probe that
        # misses only this region (it sees every other region of the same classes).
        alone = fit_predict(x[outside], labels[outside], x[inside], n_classes, DEFAULT_C, 100)
        alone = (1.0 - 1e-3) * alone + 1e-3 / n_classes
        confirmed = _structured_confusion(labels[inside], alone, min_members, z_needed)
        if confirmed is None:
            continue
        given, looks, z = confirmed
        if min((outside & (labels == c)).sum() - (inside & (labels == c)).sum() for c in (given, looks)) < 0:
            continue  # the region holds most of one of the two classes: the rest cannot speak for it
        members = rows[inside]
        held_out[members] = alone / alone.sum(axis=1, keepdims=True)
        candidates = members[labels[members] == given]
        carry = candidates[(held_out[candidates, looks] > held_out[candidates, given])
                           | (p[candidates, looks] > p[candidates, given])]
        if carry.size < min_members:
            continue
        flagged[carry] = True
        suggested[carry] = looks
        scores[carry] = np.clip(held_out[carry, looks], 0.0, 1.0)
        found.append({"region": int(entry.slice_id), "members": int(inside.sum()), "label": int(given),
                      "looks_like": int(looks), "count": int(carry.size), "of": int(candidates.size), "z": round(z, 2)})
    logger.info("structured regions: %s", found)
    return DetectorResult(
        name=NAME, description=DESCRIPTION, scores=scores, flagged=flagged, suggested=suggested,
        params={"alpha": alpha, "min_members": min_members, "z_needed": round(z_needed, 3)},
        evidence={"regions": found, "region": region.astype(np.int64)},
    )


def explain(row: Mapping[str, Any], context: Mapping[str, Any]) -> Optional[str]:
    """'its region holds many samples labelled cat that a model trained elsewhere calls dog'."""
    looks = suggested_label(row)
    if not (number(row.get(f"det_{NAME}")) or 0.0) > 0.0:
        # It did not flag this sample: say so rather than echo another detector's suggestion.
        return "no structured error found in its region"
    if looks is None:
        return None
    return (f"it sits in a region where many samples labelled {own_label(row)} look like {looks} to a model "
            "trained on the rest of the data")


# A structured error is reviewed as a group: its flags join the flagged set, and inside its region
# its suggestion comes before the per-sample one (the per-sample model learned the region's noise).
@register(
    NAME, DESCRIPTION, needs=("vectors", "probabilities"), weight=1.0, suggestion_priority=25,
    speaks_when_flagged=True, params={"alpha": ALPHA, "min_members": MIN_MEMBERS}, explain=explain,
)
def run(inputs: DetectInputs, **params) -> DetectorResult:
    """Registry entry: :func:`score` on the vectors and the pooled probabilities."""
    return score(inputs.vectors, inputs.labels, inputs.probabilities, inputs.n_classes, seed=inputs.seed, **params)
