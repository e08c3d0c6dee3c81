"""Several annotators: consensus label, per-annotator quality and agreement (cleanlab.multiannotator),
inter-annotator reliability (Krippendorff's alpha, nominal)."""

from __future__ import annotations

import logging
import warnings
from contextlib import contextmanager
from typing import Any, Mapping, Optional

import numpy as np


from core.detect.cleanlab_import import import_cleanlab
from core.detect.rank import first_of_each_class
from core.detect.result import DetectInputs, DetectorResult, register, validate_labels
from core.detect.wording import number, own_label, percent

logger = logging.getLogger(__name__)

__all__ = ["NAME", "DESCRIPTION", "ANNOTATIONS_TO_DECIDE", "score", "majority_vote", "true_label_posterior",
           "annotator_habits", "krippendorff_alpha"]

NAME = "annotators"
DESCRIPTION = "The annotators' consensus disagrees with this label, or they disagree among themselves."
#: Annotations a sample needs before this detector alone decides it (evidence ``decided``).
ANNOTATIONS_TO_DECIDE = 2
#: An annotator's habit (:func:`annotator_habits`) is reported at this level, Bonferroni over every
#: pair of every annotator, when it holds at least MIN_HABIT_SAMPLES samples: the same level and
#: size as a region's structured confusion (core.detect.regions).
HABIT_ALPHA = 0.01
MIN_HABIT_SAMPLES = 5


def krippendorff_alpha(annotator_labels: np.ndarray) -> float:
    """Krippendorff's alpha (nominal) over an (N, M) label matrix with -1 = missing; NaN if undefined."""
    import krippendorff

    data = np.where(annotator_labels < 0, np.nan, annotator_labels.astype(np.float64)).T
    try:
        return float(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))
    except (ValueError, ZeroDivisionError):
        # fewer than two distinct values overall: agreement is trivially perfect, alpha undefined
        return float("nan")


def _checked(annotator_labels: np.ndarray, n_classes: int, every_row: bool = True) -> np.ndarray:
    m = validate_labels(np.asarray(annotator_labels), n_classes, allow_missing=True)
    if m.ndim != 2:
        raise ValueError(f"annotator_labels must be (N, M), got shape {m.shape}")
    labelled = (m >= 0).any(axis=1)
    if not labelled.any():
        raise ValueError("no sample has an annotator label (-1 marks a missing one)")
    if every_row and not labelled.all():
        raise ValueError("every sample needs at least one annotator label (-1 marks a missing one)")
    return m


@contextmanager
def _ties_broken_the_same_way():
    """cleanlab breaks a vote still tied after its other rules with numpy's global generator;
    seeding it for the call (and putting its state back) gives the same inputs the same vote."""
    state = np.random.get_state()
    np.random.seed(0)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="breaking ties of examples")
            yield
    finally:
        np.random.set_state(state)


def _frame(m: np.ndarray):
    import pandas as pd

    return pd.DataFrame(np.where(m >= 0, m, np.nan), columns=[f"annotator_{j}" for j in range(m.shape[1])])


def majority_vote(annotator_labels: np.ndarray, n_classes: int) -> np.ndarray:
    """The annotators' majority label per sample; a tie goes to the class the annotators give
    least often overall (as in cleanlab's vote: a label someone over-uses loses its ties; on
    CIFAR-10N's real annotators this vote trained a better probe than ties to the most given
    class), then to the lower class index.

    Parameters
    ----------
    annotator_labels : np.ndarray
        int (N, M), -1 = missing.
    n_classes : int
        C.

    Returns
    -------
    np.ndarray
        int64 (N,); -1 where no annotator labelled the sample.
    """
    m = _checked(annotator_labels, n_classes, every_row=False)
    # by hand: cleanlab's vote draws from numpy's global generator on the ties its rules leave,
    # and fails where every row is such a tie
    present = m >= 0
    counts = np.zeros((m.shape[0], n_classes), dtype=np.int64)
    rows = np.nonzero(present)
    np.add.at(counts, (rows[0], m[rows]), 1)
    overall = counts.sum(axis=0)
    # among a row's most given classes the least given overall (then the lowest index) wins
    tied = counts == counts.max(axis=1, keepdims=True)
    preference = np.argsort(np.lexsort((np.arange(n_classes), overall)))  # 0 = preferred
    vote = np.where(tied, preference[None, :], n_classes).argmin(axis=1).astype(np.int64)
    vote[~present.any(axis=1)] = -1
    return vote


def _said_counts(posterior: np.ndarray, said: np.ndarray, n_classes: int) -> np.ndarray:
    """(C, C) true class x said class, each sample counted by its posterior over the true class."""
    return posterior.T @ np.eye(n_classes)[said]


def true_label_posterior(
    annotator_labels: np.ndarray, prior: np.ndarray, n_classes: int, max_iter: int = 50, tol: float = 1e-5,
) -> np.ndarray:
    """P(true label | the model, every annotator's label): Dawid and Skene's model with the model's
    out-of-sample probabilities as each sample's prior.

    Each annotator j has a confusion matrix ``P(j says l | true k)``; expectation-maximisation
    alternates the posterior of every sample's true label (prior times the likelihood of its
    annotations, annotators independent given the truth) with each annotator's matrix counted
    from those posteriors, starting from the share of votes. An annotator's matrix row for a
    class they rarely saw would rest on a handful of samples, so each row is shrunk towards the
    annotator's one-number version (accuracy on the diagonal, the rest shared equally) with
    ``n_classes`` pseudo-samples: the row is the annotator's own where they labelled many of
    the class, their overall accuracy where they labelled few. A habit (one annotator calling
    most cats dogs) is a row of the matrix, so it is learned and discounted.

    Parameters
    ----------
    annotator_labels : np.ndarray
        int (N, M), -1 = missing; every row needs at least one label.
    prior : np.ndarray
        (N, C) out-of-sample probabilities of a model not trained on any one annotator alone.
    n_classes : int
        C.
    max_iter, tol
        Stop after ``max_iter`` rounds or once no posterior moves by more than ``tol``.

    Returns
    -------
    np.ndarray
        float64 (N, C), rows sum to 1.
    """
    m = _checked(annotator_labels, n_classes)
    prior = np.asarray(prior, dtype=np.float64)
    if prior.shape != (m.shape[0], n_classes):
        raise ValueError(f"prior must be ({m.shape[0]}, {n_classes}), got {prior.shape}")
    present = m >= 0
    log_prior = np.log(np.clip(prior, 1e-12, 1.0))
    # start from each sample's share of votes: a hard vote would settle a split before the
    # model's probabilities had their say
    posterior = np.zeros((m.shape[0], n_classes))
    said = np.nonzero(present)
    np.add.at(posterior, (said[0], m[said]), 1.0)
    posterior /= posterior.sum(axis=1, keepdims=True)
    for _ in range(max_iter):
        log_post = log_prior.copy()
        for j in range(m.shape[1]):
            rows = present[:, j]
            if not rows.any():
                continue
            counts = _said_counts(posterior[rows], m[rows, j], n_classes)
            accuracy = float(np.trace(counts) / counts.sum())
            one_number = np.full((n_classes, n_classes), (1.0 - accuracy) / max(n_classes - 1, 1))
            np.fill_diagonal(one_number, accuracy)
            confusion = counts + n_classes * one_number + 1e-6
            confusion /= confusion.sum(axis=1, keepdims=True)
            log_post[rows] += np.log(confusion[:, m[rows, j]].T)
        log_post -= log_post.max(axis=1, keepdims=True)
        updated = np.exp(log_post)
        updated /= updated.sum(axis=1, keepdims=True)
        moved = float(np.abs(updated - posterior).max())
        posterior = updated
        if moved < tol:
            break
    return posterior


def annotator_habits(
    annotator_labels: np.ndarray, prior: np.ndarray, n_classes: int, alpha: float = HABIT_ALPHA,
    min_samples: int = MIN_HABIT_SAMPLES,
) -> list[dict]:
    """Each annotator's habit: the confusion they make far more often than the other annotators.

    For annotator j and every pair (true k, said l), the samples j labelled are counted by their
    probability of being k given the model (``prior``) and every other annotator
    (:func:`true_label_posterior` without j's column), so "j said l of about n true k" needs no
    truth, and j's own labels do not vouch for themselves (with two annotators, a posterior that
    weighed each one's labels made each look more reliable than the other where the model was
    unsure: CIFAR-10N, bench/README.md "Annotators' habits"). The pair whose count most exceeds
    what the other annotators' rate for it (Laplace-smoothed, so a pair they never made is not
    infinitely surprising) gives for n is j's habit when the one-sided p-value of Fisher's exact
    test of j's share against the others' (whose rate is an estimate too) is below ``alpha``
    divided by every pair of every annotator compared (Bonferroni) and it holds at least
    ``min_samples`` samples. Rare confusions that every annotator makes are the data's; one
    annotator's is theirs, a structured error shared by all their labels, reviewed as one group.

    Returns
    -------
    list of dict
        Most surprising first: ``annotator`` (column index), ``true``, ``said`` (class indices),
        ``about`` (the posterior count of such labels), ``of`` (of true ``true`` that j labelled),
        ``share`` (about / of), ``others_share`` (the other annotators' share for the pair),
        ``p_value`` and ``members`` (row indices where j said ``said`` and ``true`` is the most
        likely label without j).
    """
    from scipy.stats import fisher_exact

    m = _checked(annotator_labels, n_classes, every_row=False)
    prior = np.asarray(prior, dtype=np.float64)
    annotators = m.shape[1]
    if annotators < 2:
        return []
    counts = np.zeros((annotators, n_classes, n_classes))
    likeliest = np.zeros((annotators, m.shape[0]), dtype=np.int64)
    for j in range(annotators):
        rest = np.delete(m, j, axis=1)
        heard = (rest >= 0).any(axis=1)
        without_j = prior / np.clip(prior.sum(axis=1, keepdims=True), 1e-12, None)
        if heard.any():
            without_j[heard] = true_label_posterior(rest[heard], prior[heard], n_classes)
        rows = m[:, j] >= 0
        counts[j] = _said_counts(without_j[rows], m[rows, j], n_classes)
        likeliest[j] = without_j.argmax(axis=1)
    tests = annotators * n_classes * (n_classes - 1)

    def most_excess(j: int, others: np.ndarray) -> dict | None:
        seen = counts[j].sum(axis=1, keepdims=True)
        rate = (others + 1.0) / (others.sum(axis=1, keepdims=True) + 2.0)
        excess = counts[j] - seen * rate
        np.fill_diagonal(excess, -np.inf)
        true, said = np.unravel_index(int(np.argmax(excess)), excess.shape)
        about, of = float(counts[j, true, said]), float(seen[true, 0])
        if excess[true, said] <= 0 or round(about) < min_samples:
            return None
        # the others' rate is an estimate too (with two annotators, from as many labels as j's):
        # Fisher's exact test of j's share against theirs, not a binomial against a known rate
        total = float(others[true].sum())
        theirs, their_of = round(float(others[true, said])), round(total)
        p_value = float(fisher_exact([[round(about), max(round(of) - round(about), 0)],
                                      [theirs, max(their_of - theirs, 0)]], alternative="greater")[1])
        if p_value >= alpha / tests:
            return None
        return {
            "annotator": j, "true": int(true), "said": int(said), "about": round(about, 1), "of": round(of, 1),
            "share": round(about / of, 4) if of else 0.0,
            "others_share": round(float(others[true, said] / total), 4) if total else 0.0,
            "p_value": p_value,
            "members": np.flatnonzero((m[:, j] == said) & (likeliest[j] == true)).tolist(),
        }

    first = [most_excess(j, counts.sum(axis=0) - counts[j]) for j in range(annotators)]
    # A second pass that leaves out, as a yardstick for a class, the annotators the first pass
    # found a habit on that class for: a habit shrinks its annotator's other shares for the class,
    # which made another annotator's ordinary rate look like a habit (CIFAR-10N, one annotator
    # planted to call 60 % of the cats dogs: another's 2 % of cats called airplanes against the
    # others' 0.5 %; bench/README.md, "Annotators' habits").
    usual = counts.copy()
    for h in first:
        if h is not None:
            usual[h["annotator"], h["true"], :] = 0.0
    habits = [h for h in (most_excess(j, usual.sum(axis=0) - usual[j]) for j in range(annotators)) if h is not None]
    habits.sort(key=lambda h: (h["p_value"], -h["about"]))
    return habits


def score(
    annotator_labels: np.ndarray,
    n_classes: int,
    labels: np.ndarray | None = None,
    probabilities: np.ndarray | None = None,
    quality_threshold: float = 0.5,
) -> DetectorResult:
    """Score each sample by how likely its label is wrong, given its annotators' labels.

    Parameters
    ----------
    annotator_labels : np.ndarray
        int, shape (N, M), one column per annotator, -1 = not labelled by that annotator. A
        sample no annotator labelled is left out: never flagged, its score the mean of the
        others' (no evidence either way), its consensus -1 and its number of annotations 0.
    n_classes : int
        C.
    labels : np.ndarray, optional
        The labels in use (shape (N,)); a sample is flagged when the consensus differs from it.
        Default: the consensus itself (then only low-quality consensus is flagged).
    probabilities : np.ndarray, optional
        Out-of-sample (N, C) probabilities from a model trained on the annotators' majority vote
        (:func:`majority_vote`), not on ``labels``: a model trained on one annotator's labels
        learns that annotator's habits and would back them against the others. With them,
        cleanlab's CROWDLAB gives the consensus and the annotators' quality, and
        :func:`true_label_posterior` the probability that each label is wrong; per label, as many
        samples are flagged as CROWDLAB's consensus disagrees with, the most probably wrong
        first. Without them, the consensus is the majority vote (:func:`majority_vote`), its quality the share
        of annotators who agree with it, and a sample is flagged where the consensus differs
        from its label or its quality is low.
    quality_threshold : float, default 0.5
        Without probabilities, also flag samples whose consensus quality is below this.

    Returns
    -------
    DetectorResult
        With probabilities: score = the probability that the label is wrong (evidence
        ``error_probability``, also ``most_likely_label``), suggested = the most probable other
        label where flagged. Without: score = 0.5 + 0.5 * quality where the consensus differs
        from ``labels``, else 0.5 * (1 - quality), suggested = the consensus where it differs.
        Suggested is -1 elsewhere. Evidence also ``consensus``, ``agreement`` (per sample),
        ``num_annotations``, ``annotator_stats`` (list of dicts per annotator column) and
        ``krippendorff_alpha``.
    """
    import_cleanlab()  # without Datalab's imports
    from cleanlab.multiannotator import get_label_quality_multiannotator

    m = _checked(annotator_labels, n_classes, every_row=False)
    labelled = (m >= 0).any(axis=1)
    if not labelled.all():
        part = score(m[labelled], n_classes, None if labels is None else np.asarray(labels)[labelled],
                     None if probabilities is None else np.asarray(probabilities)[labelled], quality_threshold)
        return _spread(part, labelled)
    present = m >= 0
    frame = _frame(m)
    num = present.sum(axis=1)
    if probabilities is not None:
        with _ties_broken_the_same_way():
            result = get_label_quality_multiannotator(frame, np.asarray(probabilities, dtype=np.float64), verbose=False)
        lq = result["label_quality"]
        consensus = lq["consensus_label"].to_numpy().astype(np.int64)
        quality = lq["consensus_quality_score"].to_numpy().astype(np.float64)
        agreement = lq["annotator_agreement"].to_numpy().astype(np.float64)
        stats = result["annotator_stats"].reset_index().rename(columns={"index": "annotator"})
        annotator_stats = stats.to_dict("records")
    else:
        consensus = majority_vote(m, n_classes)
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
    evidence = {
        "consensus": consensus,
        "agreement": agreement,
        "num_annotations": num.astype(np.int64),
        "annotator_stats": annotator_stats,
        "krippendorff_alpha": krippendorff_alpha(m),
    }
    decided_where = None
    if probabilities is None:
        # A confident consensus against the label is the strongest evidence; a shaky consensus
        # that agrees with it is weaker evidence; the halves keep the two cases ordered.
        scores = np.clip(np.where(disagrees, 0.5 + 0.5 * quality, 0.5 * (1.0 - quality)), 0.0, 1.0)
        flagged = disagrees | (quality < quality_threshold)
        suggested = np.where(disagrees, consensus, -1)
    else:
        posterior = true_label_posterior(m, probabilities, n_classes)
        rows = np.arange(given.shape[0])
        scores = np.clip(1.0 - posterior[rows, given], 0.0, 1.0)
        # How many: CROWDLAB's disagreements per label. Which: the posterior's most probably
        # wrong. The posterior, assuming annotators err independently, is too sure where they
        # agree and would flag too few (CIFAR-10N, three real annotators: bench/README.md,
        # "Several annotators"); it orders the samples better than CROWDLAB's quality does.
        position = np.empty(given.shape[0], dtype=np.int64)
        position[np.lexsort((rows, -scores))] = rows
        flagged = first_of_each_class(np.bincount(given[disagrees], minlength=n_classes), given, position)
        others = posterior.copy()
        others[rows, given] = -1.0
        suggested = np.where(flagged, others.argmax(axis=1), -1)
        evidence["error_probability"] = scores
        evidence["most_likely_label"] = posterior.argmax(axis=1)
        # The posterior already weighs the model's probabilities against every annotator's
        # record; the detectors that read the same model (confident learning, the neighbours)
        # would count that evidence twice, and trained on the labels in use they side with
        # whoever gave them: on CIFAR-10N's three real annotators, adding their flags to these
        # made the flagged set larger and its F1 lower (bench/README.md, "Several annotators").
        evidence["decided"] = num >= ANNOTATIONS_TO_DECIDE
        evidence["annotator_habits"] = annotator_habits(m, np.asarray(probabilities, dtype=np.float64), n_classes)
        decided_where = f"the {int(evidence['decided'].sum())} samples {ANNOTATIONS_TO_DECIDE} or more annotators labelled"
    return DetectorResult(
        name=NAME,
        description=DESCRIPTION,
        scores=scores,
        flagged=flagged,
        suggested=suggested,
        params={"quality_threshold": quality_threshold, "crowdlab": probabilities is not None,
                "posterior": None if probabilities is None else "Dawid-Skene, the model's probabilities as prior",
                "decided_where": decided_where},
        evidence=evidence,
    )


def _spread(part: DetectorResult, labelled: np.ndarray) -> DetectorResult:
    """``part`` (scored on the ``labelled`` rows) over every row; see :func:`score` for the rest."""
    def full(values: np.ndarray, fill) -> np.ndarray:
        values = np.asarray(values)
        out = np.full(labelled.shape[0], fill, dtype=np.result_type(values.dtype, np.asarray(fill).dtype))
        out[labelled] = values
        return out

    evidence = dict(part.evidence)
    if "annotator_habits" in evidence:
        rows = np.flatnonzero(labelled)
        evidence["annotator_habits"] = [{**h, "members": rows[h["members"]].tolist()} for h in evidence["annotator_habits"]]
    for key, fill in (("consensus", -1), ("agreement", np.nan), ("num_annotations", 0),
                      ("error_probability", np.nan), ("most_likely_label", -1), ("decided", False)):
        if key in evidence:
            evidence[key] = full(evidence[key], fill)
    return DetectorResult(
        name=part.name, description=part.description, scores=full(part.scores, float(np.mean(part.scores))),
        flagged=full(part.flagged, False), suggested=full(part.suggested, -1), params=part.params, evidence=evidence,
    )


def explain(row: Mapping[str, Any], context: Mapping[str, Any]) -> Optional[str]:
    """'of 3 annotators, 2 said dog, 1 said cat', and with a model to weigh them '; weighing each
    annotator's record and the model, its label cat is wrong with probability 83%'."""
    votes = context.get("annotator_votes") or {}
    if not votes:
        return None
    total = sum(votes.values())
    parts = ", ".join(f"{n} said {lab}" for lab, n in sorted(votes.items(), key=lambda kv: -kv[1]))
    sentence = f"of {total} annotators, {parts}"
    posterior = ((context.get("params") or {}).get(NAME) or {}).get("posterior")
    p_wrong = number(row.get(f"det_{NAME}"))
    if posterior and p_wrong is not None:
        sentence += (f"; weighing each annotator's record and the model, its label {own_label(row)} is wrong "
                     f"with probability {percent(p_wrong)}")
    return sentence


# The annotators' own consensus is the most direct evidence there is: it suggests first, and a
# consensus against the label joins the flagged set directly.
@register(
    NAME, DESCRIPTION, needs=("annotator_labels",), weight=1.0, suggestion_priority=10, speaks_when_flagged=True,
    explain=explain, decides_alone_in="decided",
)
def run(inputs: DetectInputs, **params) -> DetectorResult:
    """Registry entry: :func:`score` on ``inputs.annotator_labels``, with the probabilities of a
    model of the annotators' majority vote where there is one (else the labels' own)."""
    probabilities = inputs.consensus_probabilities
    return score(inputs.annotator_labels, inputs.n_classes, inputs.labels,
                 inputs.probabilities if probabilities is None else probabilities, **params)
