"""Several annotators: consensus label, per-annotator quality and agreement (cleanlab.multiannotator),
inter-annotator reliability (Krippendorff's alpha, nominal)."""

from __future__ import annotations

import logging
from typing import Any, Mapping, Optional

import numpy as np


from core.detect.cleanlab_import import import_cleanlab
from core.detect.result import DetectInputs, DetectorResult, register, validate_labels

logger = logging.getLogger(__name__)

__all__ = ["NAME", "DESCRIPTION", "score", "krippendorff_alpha"]

NAME = "annotators"
DESCRIPTION = "The annotators' consensus disagrees with this label, or they disagree among themselves."


def krippendorff_alpha(annotator_labels: np.ndarray) -> float:
    """Krippendorff's alpha (nominal) over an (N, M) label matrix with -1 = missing; NaN if undefined."""
    import krippendorff

    data = np.where(annotator_labels < 0, np.nan, annotator_labels.astype(np.float64)).T
    try:
        return float(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))
    except (ValueError, ZeroDivisionError):
        # fewer than two distinct values overall: agreement is trivially perfect, alpha undefined
        return float("nan")


def score(
    annotator_labels: np.ndarray,
    n_classes: int,
    labels: np.ndarray | None = None,
    probabilities: np.ndarray | None = None,
    quality_threshold: float = 0.5,
) -> DetectorResult:
    """Score each sample by 1 - the quality of its annotators' consensus.

    Parameters
    ----------
    annotator_labels : np.ndarray
        int, shape (N, M), one column per annotator, -1 = not labelled by that annotator; every
        row needs at least one label.
    n_classes : int
        C.
    labels : np.ndarray, optional
        The labels in use (shape (N,)); a sample is flagged when the consensus differs from it.
        Default: the consensus itself (then only low-quality consensus is flagged).
    probabilities : np.ndarray, optional
        Out-of-sample (N, C) probabilities. With them, cleanlab's CROWDLAB weighs annotators by
        their estimated quality; without them, the consensus is cleanlab's majority vote and its
        quality the share of annotators who agree with it.
    quality_threshold : float, default 0.5
        Also flag samples whose consensus quality is below this.

    Returns
    -------
    DetectorResult
        score = 0.5 + 0.5 * quality where the consensus differs from ``labels``, else
        0.5 * (1 - quality). suggested = consensus label where it differs from ``labels``, else -1; evidence
        ``consensus``, ``agreement`` (per sample), ``num_annotations``, ``annotator_stats``
        (list of dicts per annotator column) and ``krippendorff_alpha``.
    """
    import pandas as pd
    import_cleanlab()  # without Datalab's imports
    from cleanlab.multiannotator import get_label_quality_multiannotator, get_majority_vote_label

    m = validate_labels(np.asarray(annotator_labels), n_classes, allow_missing=True)
    if m.ndim != 2:
        raise ValueError(f"annotator_labels must be (N, M), got shape {m.shape}")
    present = m >= 0
    if not present.any(axis=1).all():
        raise ValueError("every sample needs at least one annotator label (-1 marks a missing one)")
    frame = pd.DataFrame(np.where(present, m, np.nan), columns=[f"annotator_{j}" for j in range(m.shape[1])])
    num = present.sum(axis=1)
    if probabilities is not None:
        result = get_label_quality_multiannotator(frame, np.asarray(probabilities, dtype=np.float64), verbose=False)
        lq = result["label_quality"]
        consensus = lq["consensus_label"].to_numpy().astype(np.int64)
        quality = lq["consensus_quality_score"].to_numpy().astype(np.float64)
        agreement = lq["annotator_agreement"].to_numpy().astype(np.float64)
        stats = result["annotator_stats"].reset_index().rename(columns={"index": "annotator"})
        annotator_stats = stats.to_dict("records")
    else:
        consensus = np.asarray(get_majority_vote_label(frame, verbose=False), dtype=np.int64)
        agreement = (m == consensus[:, None]).sum(axis=1) / num
        quality = agreement
        annotator_stats = [
            {
                "annotator": f"annotator_{j}",
                "agreement_with_consensus": float((m[present[:, j], j] == consensus[present[:, j]]).mean())
                if present[:, j].any() else float("nan"),
                "num_examples_labeled": int(present[:, j].sum()),
            }
            for j in range(m.shape[1])
        ]
    given = consensus if labels is None else validate_labels(labels, n_classes)
    disagrees = consensus != given
    return DetectorResult(
        name=NAME,
        description=DESCRIPTION,
        # A confident consensus against the label is the strongest evidence; a shaky consensus
        # that agrees with it is weaker evidence; the halves keep the two cases ordered.
        scores=np.clip(np.where(disagrees, 0.5 + 0.5 * quality, 0.5 * (1.0 - quality)), 0.0, 1.0),
        flagged=disagrees | (quality < quality_threshold),
        suggested=np.where(disagrees, consensus, -1),
        params={"quality_threshold": quality_threshold, "crowdlab": probabilities is not None},
        evidence={
            "consensus": consensus,
            "agreement": agreement,
            "num_annotations": num.astype(np.int64),
            "annotator_stats": annotator_stats,
            "krippendorff_alpha": krippendorff_alpha(m),
        },
    )


def explain(row: Mapping[str, Any], context: Mapping[str, Any]) -> Optional[str]:
    """'of 3 annotators, 2 said dog, 1 said cat'."""
    votes = context.get("annotator_votes") or {}
    if not votes:
        return None
    total = sum(votes.values())
    parts = ", ".join(f"{n} said {lab}" for lab, n in sorted(votes.items(), key=lambda kv: -kv[1]))
    return f"of {total} annotators, {parts}"


# The annotators' own consensus is the most direct evidence there is: it suggests first, and a
# consensus against the label joins the flagged set directly.
@register(
    NAME, DESCRIPTION, needs=("annotator_labels",), weight=1.0, suggestion_priority=10, speaks_when_flagged=True,
    explain=explain,
)
def run(inputs: DetectInputs, **params) -> DetectorResult:
    """Registry entry: :func:`score` on ``inputs.annotator_labels``."""
    return score(inputs.annotator_labels, inputs.n_classes, inputs.labels, inputs.probabilities, **params)
