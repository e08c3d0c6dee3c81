"""Detectors on the training dynamics of the user's own model (:mod:`core.capture.dynamics`).

Three views of the same per-sample record of what happened while the model trained:

* ``aum``: the area under the margin (Pleiss et al. 2020). A correct label's logit overtakes
  the others as the model learns; a wrong one is held down by every similar sample carrying
  the true label, so its margin stays negative on average.
* ``datamap``: the "hard to learn" corner of a data map (Swayamdipta et al. 2020): low
  confidence, low variability, rarely correct. Evidence only until measured.
* ``forgetting``: never learned, or learned and forgotten again (Toneva et al. 2019). Evidence
  only until measured.

They need ``inputs.dynamics`` and are skipped without them. The dynamics describe the label the
model was trained on: where that is not the label in force now (the sample was relabelled since,
or the run never saw it), a detector has nothing to say. Such a sample gets the median score of
the samples it can judge, so it is neither pushed up nor down the ranking, and no flag and no
suggestion.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Mapping, Optional

import numpy as np
from scipy.special import expit

from core.detect.cleanlab_import import import_cleanlab
from core.detect.result import DetectInputs, DetectorResult, register, validate_labels
from core.detect.wording import number, own_label, percent

if TYPE_CHECKING:  # only for the annotations: the detectors read the fields, never import capture
    from core.capture.dynamics import Dynamics

logger = logging.getLogger(__name__)

__all__ = ["AUM", "DATAMAP", "FORGETTING", "score_aum", "score_datamap", "score_forgetting", "judged"]

AUM = "aum"
DATAMAP = "datamap"
FORGETTING = "forgetting"
AUM_DESCRIPTION = ("While the model trained, this label's logit stayed below the best other class on average "
                   "(area under the margin).")
DATAMAP_DESCRIPTION = ("While the model trained, it stayed unsure of this label and seldom got it right "
                       "(hard to learn on a data map).")
FORGETTING_DESCRIPTION = "While the model trained, it never learned this label, or learned it and forgot it again."
#: Pleiss et al. flag a negative AUM when no threshold samples calibrate the cut.
DEFAULT_AUM_THRESHOLD = 0.0
#: Swayamdipta et al.'s "hard to learn" corner of the data map.
DEFAULT_CONFIDENCE_BELOW = 0.5
DEFAULT_VARIABILITY_BELOW = 0.2
DEFAULT_CORRECTNESS_BELOW = 0.5
#: Forgetting events at which a sample that was learned at some point is flagged.
DEFAULT_MIN_EVENTS = 2


def judged(dynamics: "Dynamics", labels: np.ndarray) -> np.ndarray:
    """bool (N,): samples the dynamics saw with the label now in force, the only ones they judge."""
    if len(dynamics.epochs_seen) != labels.shape[0]:
        raise ValueError(f"dynamics cover {len(dynamics.epochs_seen)} samples but there are {labels.shape[0]} labels")
    return (np.asarray(dynamics.epochs_seen) > 0) & (np.asarray(dynamics.label) == labels)


def _neutral(scores: np.ndarray, judged_: np.ndarray) -> np.ndarray:
    """``scores`` with every sample not judged set to the median of the judged ones (0.5 when none
    is): unjudged samples then neither rise nor fall in the ranking because of this detector."""
    fill = float(np.median(scores[judged_])) if judged_.any() else 0.5
    return np.clip(np.where(judged_, scores, fill), 0.0, 1.0)


def _suggest(dynamics: "Dynamics", labels: np.ndarray, n_classes: int, flagged: np.ndarray) -> np.ndarray:
    """The model's runner-up class where flagged. A class index outside the project's (e.g. the fake
    class of threshold samples) is no label a reviewer can choose, so it suggests nothing."""
    s = np.asarray(dynamics.suggested, dtype=np.int64)
    ok = flagged & (s >= 0) & (s < n_classes) & (s != labels)
    return np.where(ok, s, -1).astype(np.int64)


def _masked(values: Any, judged_: np.ndarray, fill: Any) -> np.ndarray:
    """``values`` where judged, ``fill`` elsewhere: evidence about another label is not shown as this one's."""
    values = np.asarray(values)
    return np.where(judged_, values, fill).astype(np.result_type(values.dtype, np.asarray(fill).dtype))


def _shared_evidence(dynamics: "Dynamics", judged_: np.ndarray) -> dict:
    return {
        "epochs_seen": _masked(dynamics.epochs_seen, judged_, 0).astype(np.int64),
        "runs": _masked(dynamics.runs, judged_, 0).astype(np.int64),
        "correctness": _masked(dynamics.correctness, judged_, np.nan).astype(np.float64),
        "n_epochs": int(dynamics.n_epochs),
    }


def score_aum(
    dynamics: "Dynamics",
    labels: np.ndarray,
    n_classes: int,
    threshold: float = DEFAULT_AUM_THRESHOLD,
    threshold_from: Optional[str] = None,
) -> DetectorResult:
    """Score each sample by its area under the margin.

    Parameters
    ----------
    dynamics : Dynamics
        Training dynamics over the N samples.
    labels : np.ndarray
        int (N,), labels in force.
    n_classes : int
        C.
    threshold : float, default 0.0
        Flag where the AUM is below this (e.g. :func:`core.capture.dynamics.aum_threshold`).
    threshold_from : str, optional
        Where the threshold came from, for the run record and the wording.

    Returns
    -------
    DetectorResult
        score = sigmoid(-AUM) (0.5 at a zero margin); flagged = AUM < threshold; suggested = the
        model's most frequent runner-up class where flagged. Samples not judged (see module
        docstring) get the median score. evidence ``aum``, ``runs_flagging``, ``runs``,
        ``epochs_seen``, ``correctness`` (NaN / 0 where not judged) and ``n_epochs``.
    """
    labels = validate_labels(labels, n_classes)
    ok = judged(dynamics, labels)
    aum = np.asarray(dynamics.aum, dtype=np.float64)
    # expit: sigmoid without overflow warnings at large margins; NaN only where not judged
    scores = _neutral(expit(-np.where(ok, aum, 0.0)), ok)
    flagged = ok & (np.where(ok, aum, np.inf) < float(threshold))
    return DetectorResult(
        name=AUM,
        description=AUM_DESCRIPTION,
        scores=scores,
        flagged=flagged,
        suggested=_suggest(dynamics, labels, n_classes, flagged),
        params={"threshold": float(threshold), "threshold_from": threshold_from},
        evidence={
            "aum": _masked(aum, ok, np.nan).astype(np.float64),
            "runs_flagging": _masked(dynamics.runs_flagging, ok, 0).astype(np.int64),
            **_shared_evidence(dynamics, ok),
        },
    )


def score_datamap(
    dynamics: "Dynamics",
    labels: np.ndarray,
    n_classes: int,
    confidence_below: float = DEFAULT_CONFIDENCE_BELOW,
    variability_below: float = DEFAULT_VARIABILITY_BELOW,
    correctness_below: float = DEFAULT_CORRECTNESS_BELOW,
) -> DetectorResult:
    """Score each sample by the data map: low mean confidence in its label.

    Parameters
    ----------
    dynamics, labels, n_classes
        As :func:`score_aum`.
    confidence_below, variability_below, correctness_below : float
        The "hard to learn" corner flagged (defaults 0.5, 0.2, 0.5).

    Returns
    -------
    DetectorResult
        score = 1 - confidence; flagged = in the corner; suggested = runner-up where flagged;
        unjudged samples get the median score. evidence ``confidence``, ``variability``,
        ``correctness``, ``epochs_seen``, ``runs``, ``n_epochs``.
    """
    labels = validate_labels(labels, n_classes)
    ok = judged(dynamics, labels)
    confidence = _masked(dynamics.confidence, ok, np.nan).astype(np.float64)
    variability = _masked(dynamics.variability, ok, np.nan).astype(np.float64)
    correctness = _masked(dynamics.correctness, ok, np.nan).astype(np.float64)
    scores = _neutral(1.0 - np.where(ok, confidence, 0.0), ok)
    with np.errstate(invalid="ignore"):  # NaN compares False: unjudged samples are not flagged
        flagged = ok & (confidence < confidence_below) & (variability < variability_below) & (
            correctness < correctness_below)
    return DetectorResult(
        name=DATAMAP,
        description=DATAMAP_DESCRIPTION,
        scores=scores,
        flagged=flagged,
        suggested=_suggest(dynamics, labels, n_classes, flagged),
        params={"confidence_below": float(confidence_below), "variability_below": float(variability_below),
                "correctness_below": float(correctness_below)},
        evidence={"confidence": confidence, "variability": variability, **_shared_evidence(dynamics, ok)},
    )


def score_forgetting(
    dynamics: "Dynamics", labels: np.ndarray, n_classes: int, min_events: int = DEFAULT_MIN_EVENTS
) -> DetectorResult:
    """Score each sample by how often the model forgot it, 1 when it never learned it.

    Parameters
    ----------
    dynamics, labels, n_classes
        As :func:`score_aum`.
    min_events : int, default 2
        Forgetting events (summed over runs) at which a learned sample is flagged.

    Returns
    -------
    DetectorResult
        score = 1 for never learned, else ``min(1, events per run / max(1, n_epochs / 2))``:
        a sample can be forgotten at most every other epoch, so that many events saturate.
        Events are divided by the runs that saw the sample so that combining runs does not
        inflate the score (for one run it is the events themselves). flagged = never learned or
        at least ``min_events`` events. No suggestion: forgetting says a sample is hard, not
        which label it should carry. evidence ``forgetting``, ``never_learned``, ``epochs_seen``,
        ``runs``, ``correctness``, ``n_epochs``.
    """
    labels = validate_labels(labels, n_classes)
    ok = judged(dynamics, labels)
    events = _masked(dynamics.forgetting, ok, 0).astype(np.int64)
    never = ok & np.asarray(dynamics.never_learned, dtype=bool)
    runs = np.maximum(np.asarray(dynamics.runs, dtype=np.int64), 1)
    per_run = events / runs
    scores = np.where(never, 1.0, np.minimum(1.0, per_run / max(1.0, dynamics.n_epochs / 2.0)))
    scores = _neutral(scores, ok)
    flagged = ok & (never | (events >= int(min_events)))
    return DetectorResult(
        name=FORGETTING,
        description=FORGETTING_DESCRIPTION,
        scores=scores,
        flagged=flagged,
        suggested=None,
        params={"min_events": int(min_events)},
        evidence={"forgetting": events, "never_learned": never, **_shared_evidence(dynamics, ok)},
    )


# --------------------------------------------------------------------------- words
def _label(row: Mapping[str, Any]) -> str:
    own = own_label(row)
    return f"its label {own}" if own is not None else "its label"


def _epochs(count: float) -> str:
    count = int(count)
    return f"{count} epoch" if count == 1 else f"{count} epochs"


def _margin(value: float) -> str:
    # one decimal reads well for margins of logits; small ones keep two so they do not show as 0.0
    return f"{value:.2f}" if abs(value) < 1 else f"{value:.1f}"


def _times(count: int) -> str:
    return {1: "once", 2: "twice"}.get(count, f"{count} times")


def _runs_suffix(row: Mapping[str, Any]) -> str:
    runs = int(number(row.get("dyn_runs")) or 1)
    return f" over {runs} training runs" if runs > 1 else ""


def _param(params: Mapping[str, Any], key: str, default: float) -> float:
    value = number(params.get(key))
    return default if value is None else value


def _not_seen(row: Mapping[str, Any]) -> Optional[str]:
    epochs = number(row.get("dyn_epochs"))
    if not epochs:
        return f"no captured training epoch saw it with {_label(row)}"
    return None


def explain_aum(row: Mapping[str, Any], context: Mapping[str, Any]) -> Optional[str]:
    """'its label cat was never the model's top choice in 14 epochs; margin -2.1 (area under the margin)'."""
    missing = _not_seen(row)
    aum = number(row.get("aum_margin"))
    if missing or aum is None:
        return missing
    epochs = int(number(row.get("dyn_epochs")) or 0)
    runs = int(number(row.get("dyn_runs")) or 1)
    if runs > 1:
        flagging = int(number(row.get("aum_runs_flagging")) or 0)
        sentence = (f"in {flagging} of {runs} training runs the margin of {_label(row)} averaged below 0 "
                    f"(mean {_margin(aum)} over {_epochs(epochs)}, area under the margin)")
    else:
        correctness = number(row.get("dyn_correctness"))
        if correctness is None:
            seen = f"over {_epochs(epochs)}"
        elif correctness <= 0:
            seen = f"was never the model's top choice in {_epochs(epochs)}"
        elif correctness >= 1:
            seen = f"was the model's top choice in all {_epochs(epochs)}"
        else:
            seen = f"was the model's top choice in {int(round(correctness * epochs))} of {_epochs(epochs)}"
        sentence = f"{_label(row)} {seen}; margin {_margin(aum)} (area under the margin)"
    params = context.get("params", {}).get(AUM, {}) if isinstance(context, Mapping) else {}
    threshold = number(params.get("threshold")) if isinstance(params, Mapping) else None
    if threshold is not None and threshold != DEFAULT_AUM_THRESHOLD:
        source = params.get("threshold_from")
        sentence += f"; the cut is {_margin(threshold)}" + (f" ({source})" if isinstance(source, str) and source else "")
    return sentence


def explain_datamap(row: Mapping[str, Any], context: Mapping[str, Any]) -> Optional[str]:
    """'the model's confidence in its label cat averaged 12% over 14 epochs (variability 0.05,
    correct in 0% of them): hard to learn'."""
    missing = _not_seen(row)
    confidence = number(row.get("datamap_confidence"))
    if missing or confidence is None:
        return missing
    variability = number(row.get("datamap_variability"))
    correctness = number(row.get("dyn_correctness"))
    epochs = int(number(row.get("dyn_epochs")) or 0)
    parts = []
    if variability is not None:
        parts.append(f"variability {variability:.2f}")
    if correctness is not None:
        parts.append(f"correct in {percent(correctness)} of them")
    sentence = f"the model's confidence in {_label(row)} averaged {percent(confidence)} over {_epochs(epochs)}"
    if parts:
        sentence += f" ({', '.join(parts)})"
    params = context.get("params", {}).get(DATAMAP, {}) if isinstance(context, Mapping) else {}
    params = params if isinstance(params, Mapping) else {}
    conf_cut = _param(params, "confidence_below", DEFAULT_CONFIDENCE_BELOW)
    var_cut = _param(params, "variability_below", DEFAULT_VARIABILITY_BELOW)
    corr_cut = _param(params, "correctness_below", DEFAULT_CORRECTNESS_BELOW)
    if variability is not None and correctness is not None:
        if confidence < conf_cut and variability < var_cut and correctness < corr_cut:
            sentence += ": hard to learn"
        elif variability >= var_cut:
            sentence += ": ambiguous"
        elif confidence >= conf_cut:
            sentence += ": easy to learn"
    return sentence + _runs_suffix(row)


def explain_forgetting(row: Mapping[str, Any], context: Mapping[str, Any]) -> Optional[str]:
    """'learned and forgotten 3 times in 10 epochs' / 'never learned in 10 epochs'."""
    missing = _not_seen(row)
    if missing:
        return missing
    epochs = _epochs(number(row.get("dyn_epochs")) or 0)
    never = number(row.get("forgetting_never_learned"))  # a bool read back from the run is a number here
    events = int(number(row.get("forgetting_events")) or 0)
    if never:
        sentence = f"{_label(row)} was never learned in {epochs}"
    elif events:
        sentence = f"{_label(row)} was learned and forgotten {_times(events)} in {epochs}"
    else:
        sentence = f"{_label(row)} was learned and never forgotten in {epochs}"
    return sentence + _runs_suffix(row)


def _column(key: str, dtype: Any):
    return lambda r: np.asarray(r.evidence[key], dtype=dtype)


_SHARED_COLUMNS = {
    "dyn_epochs": _column("epochs_seen", np.int64),
    "dyn_runs": _column("runs", np.int64),
    "dyn_correctness": _column("correctness", np.float64),
}


def _dynamics(inputs: DetectInputs) -> "Dynamics":
    """Every epoch's dynamics (a CapturedDynamics holds them as ``full``)."""
    return getattr(inputs.dynamics, "full", inputs.dynamics)


# The AUM joins the ranking by rank (fuse_rank): its margins are logits, on no common scale
# with the other scores. Chosen on CIFAR-10N aggregate / random1 / worst (an MLP captured on the
# EfficientNet vectors, bench/README.md "Capture"): a weighted mean of scores lost up to 0.02
# AUPRC where the noise was low; the rank average of the AUM before memorisation never lost.
# Its share is weighed by its agreement with the out-of-sample flags (core.detect.rank), after a
# 1-epoch run fused at full weight pulled 20news from 0.208 to 0.125 AUPRC.
# The other two stay evidence until measured.
@register(
    AUM, AUM_DESCRIPTION, needs=("dynamics",), default=True, weight=0.0, fuse_rank=True, suggestion_priority=35,
    params={"threshold": DEFAULT_AUM_THRESHOLD}, explain=explain_aum,
    evidence_columns={
        "aum_margin": _column("aum", np.float64),
        "aum_runs_flagging": _column("runs_flagging", np.int64),
        **_SHARED_COLUMNS,
    },
)
def run_aum(inputs: DetectInputs, **params) -> DetectorResult:
    """Registry entry: :func:`score_aum` on ``inputs.dynamics``, over the epochs before the model
    memorised its labels when out-of-sample probabilities give the noise rate to judge that by
    (:meth:`core.capture.dynamics.CapturedDynamics.before_memorisation`)."""
    dynamics = inputs.dynamics
    window: dict = {"epochs": "all"}
    if hasattr(dynamics, "before_memorisation") and inputs.probabilities is not None:
        import_cleanlab()  # without Datalab's imports
        from cleanlab.count import num_label_issues

        # Two estimates of the noise rate, each biased its own way: confident learning on a weak
        # representation over-counts, and the share of negative AUMs over every epoch
        # under-counts once the model has memorised. The smaller keeps more epochs, so a weak
        # probe cannot shrink the window to the first epoch, when the model knew nothing yet.
        judged_ = judged(dynamics.full, inputs.labels)
        from_probabilities = num_label_issues(inputs.labels, inputs.probabilities) / max(1, inputs.labels.size)
        from_margins = float(np.mean(dynamics.full.aum[judged_] < 0)) if judged_.any() else 1.0
        noise = min(from_probabilities, from_margins)
        # fitted: it gets wrong no more than twice as many labels as are estimated wrong
        dynamics, used, reached = dynamics.before_memorisation(1.0 - noise, fitted_accuracy=1.0 - 2.0 * noise)
        window = {"epochs": "before the training accuracy exceeded 1 - the estimated noise rate",
                  "noise_estimate": round(float(noise), 6),
                  "noise_estimates": {"confident learning": round(float(from_probabilities), 6),
                                      "negative AUM, every epoch": round(from_margins, 6)},
                  "epochs_used": used, "runs_that_fitted_the_clean_share": int(sum(reached))}
    result = score_aum(getattr(dynamics, "full", dynamics), inputs.labels, inputs.n_classes, **params)
    result.params["window"] = window
    # A run stopped long before the model got as many labels right as can be right (it still gets
    # more than twice the estimated noise wrong) has not yet told the clean labels from the wrong
    # ones: its margins are those of a
    # model still underfitting (1- and 2-epoch runs pulled 20news from 0.208 to 0.144 / 0.163
    # AUPRC). Its AUM stays evidence and does not join the ranking (core.detect.rank).
    result.params["joins_ranking"] = window.get("runs_that_fitted_the_clean_share", 1) > 0
    return result


@register(
    DATAMAP, DATAMAP_DESCRIPTION, needs=("dynamics",), default=True, weight=0.0, suggestion_priority=36,
    params={"confidence_below": DEFAULT_CONFIDENCE_BELOW, "variability_below": DEFAULT_VARIABILITY_BELOW,
            "correctness_below": DEFAULT_CORRECTNESS_BELOW},
    explain=explain_datamap,
    evidence_columns={
        "datamap_confidence": _column("confidence", np.float64),
        "datamap_variability": _column("variability", np.float64),
        **_SHARED_COLUMNS,
    },
)
def run_datamap(inputs: DetectInputs, **params) -> DetectorResult:
    """Registry entry: :func:`score_datamap` on ``inputs.dynamics``."""
    return score_datamap(_dynamics(inputs), inputs.labels, inputs.n_classes, **params)


@register(
    FORGETTING, FORGETTING_DESCRIPTION, needs=("dynamics",), default=True, weight=0.0,
    params={"min_events": DEFAULT_MIN_EVENTS}, explain=explain_forgetting,
    evidence_columns={
        "forgetting_events": _column("forgetting", np.int64),
        "forgetting_never_learned": _column("never_learned", bool),
        **_SHARED_COLUMNS,
    },
)
def run_forgetting(inputs: DetectInputs, **params) -> DetectorResult:
    """Registry entry: :func:`score_forgetting` on ``inputs.dynamics``."""
    return score_forgetting(_dynamics(inputs), inputs.labels, inputs.n_classes, **params)
