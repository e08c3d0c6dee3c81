"""Structured errors: one region of the data where many labels share one confusion.

Per-sample confident learning misses an error that many samples share (one region, one source,
one annotator): every model trained on the data learns it, so inside the region the wrong label
looks half expected and only some of it is flagged. Three things still give it away:

1. One confusion (given L, predicted S) is far more common among the region's L than among the
   L elsewhere (:func:`structured_confusion`). The candidate regions are the analysis's error
   slices (cut by :func:`core.slices.clustering.error_aware_slices`, which also carves regions
   whose errors concentrate beyond chance; an error slice has more errors than the models
   explain, :func:`core.slices.metrics.slice_table`), tested with a Bonferroni correction over
   them and the pairs each one shows, so a structured finding and its error slice are the same
   rows. Only the carved ones were tested before; where the carve's test (a maximum over every
   clustering) passed nothing, a planted region that was the top error slice went unfixed.
2. A region the vectors find hard concentrates a confusion just as strongly (on clean CIFAR-10
   images, 37 of 148 deer in one slice look like horses), so the confusion alone does not tell a
   labelling error from a hard region. What does: where the samples were mislabelled at random
   (one annotator, one period, one site), the mislabelled ones are a random draw of the region's
   S and look exactly as S as the others; where the region is hard, the samples labelled L that
   the models call S sit nearer L than the region's own S do (:func:`nearer_the_boundary`, an
   AUC of 0.5 against one near 1). Two tests, both at the detector's level:

   - against the region's own S among the suspects' nearest neighbours: a region whose suspects
     sit nearer the boundary there is declined. Against all of the region's own S the test would
     decline real errors too: a slice is seldom cut exactly along the mislabelled part, and the
     models, having learned the noise there, are less sure of every S in it than of the S in
     the rest of the slice;
   - against the hard regions of the same data (the regions whose suspects sit nearer the
     boundary than all of their region's own S, their median AUC, :func:`as_near_as`): a region
     is kept only where its suspects sit further from the boundary than those beyond chance. A
     handful of suspects proves nothing either way; on clean CIFAR-10 images a slice with 8 birds
     that look like airplanes passed the first test and fails this one.
3. The noise lives in one group: the region's members labelled L (the suspects). A probe trained
   on every other sample (the suspects held out) sees S inside the region and L elsewhere but
   never the suspect labels, so it has not learned the noise.

How many suspects to relabel: the pooled probabilities already give ``count`` of them to S (the
pair's count), the estimate of the errors. The suspects are ranked by both views together (the
held-out probe's log-odds of S against L plus the pooled ones) and the first ``count`` that the
two views, summed, give to S are flagged with the suggestion S. The held-out probe alone is not
enough when the region holds most of class L: with few L samples left to learn from, it calls
nearly every suspect S (20 Newsgroups, a sports region holding most of rec.sport.baseball: 301
picks for 88 planted flips; bench/README.md "Structured errors fixed as a group"). The pooled
count does not depend on that. Both tests run at one level, not at a constant fitted to a data
set; noise that follows the look of the samples (an annotator who mislabels only the hard ones)
is not told from a hard region, which is why the finding goes to people as one group to accept
or reject.

Where the picks sit in one part of the tested slice, the finding is shown as that part
(:func:`core.slices.clustering.cut_to_where`, the cut's own split test on the picks): a slice is
seldom cut along the mislabelled region, and a region diluted in a larger slice is not its top
error slice. The tests, the picks and the bulk decisions stay those of the whole slice.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Mapping, NamedTuple, Optional

import numpy as np

from core.detect.result import DetectInputs, DetectorResult, register, validate_labels
from core.detect.wording import number, own_label, suggested_label

if TYPE_CHECKING:
    from core.neighbours import KnnGraph
    from core.slices.clustering import LabelBlindCut

logger = logging.getLogger(__name__)

__all__ = ["NAME", "DESCRIPTION", "score", "structured_confusion", "confusion_excess", "most_excess_confusions",
           "nearer_the_boundary", "as_near_as", "BoundaryTest", "cut_and_findings"]

NAME = "regions"
DESCRIPTION = ("Many samples of this region of the data carry the same label that a model trained on the rest "
               "of the data would call something else (a structured error).")
#: A confusion needs at least this many members to be called structured.
MIN_MEMBERS = 5
#: Level of the test that a region's confusion is more common there than outside (Bonferroni
#: over the error slices and the pairs each one's errors show), and of the two tests that tell its
#: suspects from those of a hard region.
ALPHA = 0.01
#: Width of the PCA reduction the held-out probes are fitted on (wider vectors are reduced): on
#: 10,000 x 1,280 vectors full-width fits dominated the analysis (bench/versus_datalab.py), and a
#: region-level confusion survives the reduction.
PROBE_DIM = 128
#: Neighbours per suspect for the local boundary test where the analysis gives no kNN graph (the
#: graph's own default k, core.neighbours).
NEIGHBOURS = 10


def most_excess_confusions(value_codes: np.ndarray, pairs: np.ndarray, label_in: np.ndarray,
                           per_label: np.ndarray, per_pair: np.ndarray,
                           n_classes: int) -> dict[int, tuple[int, int, int, int]]:
    """group -> (given, looks_like, count, pairs_shown) of the confusion most in excess among its
    rows, for many disjoint groups at once (every value of a metadata column; one region for
    :func:`confusion_excess`). For each pair (given L, predicted S) among a group's errors: how
    many of its members labelled L are predicted S, against the Laplace-smoothed rate of the same
    confusion among the rows labelled L outside the group (so a pair never seen outside is not
    infinitely surprising); the pair with the largest excess is kept, the first in pair order on a
    tie. ``value_codes`` and ``pairs`` are the group code and pair code (L * C + S) of the wrong
    rows inside some group; ``label_in`` (groups, C) counts each group's labels; ``per_label``
    and ``per_pair`` count labels and wrong pairs over all rows. Groups whose rows show no error,
    or no pair above its rate outside, are left out."""
    if value_codes.size == 0:
        return {}
    keys, count = np.unique(value_codes.astype(np.int64) * (n_classes * n_classes) + pairs, return_counts=True)
    value, code = np.divmod(keys, n_classes * n_classes)
    given = code // n_classes
    rate_out = (per_pair[code] - count + 1.0) / (per_label[given] - label_in[value, given] + 2.0)
    excess = count - label_in[value, given] * rate_out
    out = {}
    # keys are sorted by group, then by pair: each group's first largest excess
    starts = np.flatnonzero(np.r_[True, value[1:] != value[:-1]])
    for start, stop in zip(starts, np.r_[starts[1:], keys.size]):
        best = start + int(np.argmax(excess[start:stop]))
        if excess[best] > 0:
            out[int(value[start])] = (int(given[best]), int(code[best] % n_classes), int(count[best]),
                                      int(stop - start))
    return out


def confusion_excess(labels: np.ndarray, predicted: np.ndarray, inside: np.ndarray,
                     n_classes: int) -> tuple[int, int, int, float, int] | None:
    """(given, looks_like, count, p_value, pairs_shown) of the confusion most in excess inside a
    group of rows (:func:`most_excess_confusions` for that one group), its one-sided binomial
    p-value against the rate outside, and how many pairs the group's errors show (for a Bonferroni
    correction over them); None when the group's members show no error in excess.
    """
    from scipy.stats import binom

    inside = np.asarray(inside, dtype=bool)
    wrong = predicted != labels
    pair = labels * n_classes + predicted
    per_label = np.bincount(labels, minlength=n_classes)
    per_pair = np.bincount(pair[wrong], minlength=n_classes * n_classes)
    label_in = np.bincount(labels[inside], minlength=n_classes)[None, :]
    chosen = most_excess_confusions(np.zeros(int((inside & wrong).sum()), dtype=np.int64), pair[inside & wrong],
                                    label_in, per_label, per_pair, n_classes).get(0)
    if chosen is None:
        return None
    given, looks, count, shown = chosen
    rate_out = (per_pair[given * n_classes + looks] - count + 1.0) / (per_label[given] - label_in[0, given] + 2.0)
    return given, looks, count, float(binom.sf(count - 1, label_in[0, given], rate_out)), shown


def structured_confusion(labels: np.ndarray, predicted: np.ndarray, inside: np.ndarray, n_classes: int,
                         min_members: int = MIN_MEMBERS, alpha: float = ALPHA) -> tuple[int, int, int] | None:
    """(given, looks_like, count) of the confusion that concentrates in the region, or None.

    The pair most in excess inside the region (:func:`confusion_excess`) is kept when its
    one-sided binomial p-value is below ``alpha`` divided by the number of pairs the region's
    errors show (Bonferroni) and ``count >= min_members``. A hard region confuses pairs that are
    confused elsewhere too; a labelling error makes one pair far more common in the region than
    outside. (The region's errors may be mostly of other pairs: a region that is hard anyway can
    carry a labelling error as well.)
    """
    found = confusion_excess(labels, predicted, inside, n_classes)
    if found is None:
        return None
    given, looks, count, p_value, shown = found
    if count < min_members or p_value >= alpha / shown:
        return None
    return given, looks, count


class BoundaryTest(NamedTuple):
    """How near the boundary a region's suspects sit against its own samples of the other class."""

    auc: float  #: chance that one of the region's own sits further from the boundary than a suspect
    p_value: float  #: one-sided, against 0.5 (the suspects a random draw of the region's own)
    suspects: int
    own: int


def nearer_the_boundary(labels: np.ndarray, probabilities: np.ndarray, inside: np.ndarray, given: int,
                        looks: int, own_among: np.ndarray | None = None,
                        predicted: np.ndarray | None = None) -> BoundaryTest:
    """Do the region's samples labelled ``given`` and called ``looks`` sit nearer ``given`` than
    the region's samples labelled and called ``looks``?

    Both groups are the region's samples the models call ``looks``, compared on the models'
    log-odds of ``looks`` against ``given`` (Mann-Whitney U, one-sided). If the ``given`` labels
    were put on a random part of the region's ``looks`` samples, the two groups are draws of one
    population: AUC 0.5, p uniform. If the region is one the vectors find hard, the ``given`` ones
    lie towards ``given``: AUC near 1, p small. AUC 0.5 and p 1.0 when either group is empty.
    ``own_among`` (bool, N) keeps only those of the region's own samples; ``predicted`` is the
    probabilities' argmax where the caller has it already.
    """
    from scipy.stats import mannwhitneyu

    if predicted is None:
        predicted = np.asarray(probabilities).argmax(axis=1)
    called = np.asarray(inside, dtype=bool) & (predicted == looks)
    suspects = called & (labels == given)
    own = called & (labels == looks)
    if own_among is not None:
        own &= np.asarray(own_among, dtype=bool)
    n_suspects, n_own = int(suspects.sum()), int(own.sum())
    if n_suspects == 0 or n_own == 0:
        return BoundaryTest(0.5, 1.0, n_suspects, n_own)
    # the log-odds of the compared rows only, not of every sample
    p = np.asarray(probabilities, dtype=np.float64)
    test = mannwhitneyu(_log_odds(p[own], looks, given), _log_odds(p[suspects], looks, given), alternative="greater")
    return BoundaryTest(float(test.statistic) / (n_suspects * n_own), float(test.pvalue), n_suspects, n_own)


def as_near_as(test: BoundaryTest, reference_auc: float) -> float:
    """One-sided p-value that a region's suspects sit as near the boundary as those of the hard
    regions of the same data (their AUC ``reference_auc``): small when the region's AUC lies
    below it beyond chance. Normal approximation, with the AUC's standard error at the
    reference (Hanley and McNeil, 1982)."""
    from scipy.stats import norm

    a = float(np.clip(reference_auc, 1e-6, 1 - 1e-6))
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    variance = (a * (1 - a) + (test.suspects - 1) * (q1 - a * a) + (test.own - 1) * (q2 - a * a)) / (
        test.suspects * test.own)
    return float(norm.cdf((test.auc - a) / np.sqrt(max(variance, 1e-12))))


def _neighbours_of(rows: np.ndarray, vectors: np.ndarray, graph: "KnnGraph | None") -> np.ndarray:
    """bool (N,): the nearest neighbours of ``rows`` (the analysis's kNN graph where given)."""
    from core.neighbours import exact_neighbours

    near = np.zeros(vectors.shape[0], dtype=bool)
    if rows.size:
        lists = graph.indices[rows] if graph is not None else exact_neighbours(
            vectors, rows, min(NEIGHBOURS, vectors.shape[0] - 1))
        near[lists[lists >= 0]] = True
    return near


def _log_odds(p: np.ndarray, a: int, b: int) -> np.ndarray:
    return np.log(np.clip(p[:, a], 1e-12, None)) - np.log(np.clip(p[:, b], 1e-12, None))


def score(
    vectors: np.ndarray,
    labels: np.ndarray,
    probabilities: np.ndarray,
    n_classes: int,
    seed: int = 0,
    min_members: int = MIN_MEMBERS,
    alpha: float = ALPHA,
    blind_cut: "LabelBlindCut | None" = None,
    graph: "KnnGraph | None" = None,
) -> DetectorResult:
    """Find regions with a structured confusion and flag the members that carry it.

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
    min_members : int, default 5
    alpha : float, default 0.01
        Level of the per-region confusion test (:func:`structured_confusion`).
    blind_cut : LabelBlindCut, optional
        The label-blind part of the cut made earlier from the same vectors and seed
        (:func:`core.slices.clustering.label_blind_cut`); made here when not given or not for
        these rows.
    graph : KnnGraph, optional
        The analysis's kNN graph over the same rows, for the suspects' neighbours (exact
        neighbours are found when not given).

    Returns
    -------
    DetectorResult
        score = the two views' mean probability of the suggested class against the given one for
        flagged members, else 0; suggested = the confusion's other class; evidence ``regions``
        (list of dicts: region, members, label, looks_like, count, of, z, and the boundary tests:
        auc and local_auc, local_p, as_hard_p; ``cut_from``, the size of the slice it was tested
        on, where the region shown is the part of that slice that holds its picks),
        ``region`` (N,) slice id per sample, ``covered`` (N,) bool, members of a tested slice with a finding, ``slicing``
        (the cut's choices; with ``region``, the analysis's slices need not be cut again),
        ``blind_cut`` (the label-blind part of the cut, for the next analysis of these vectors);
        params ``declined_as_hard``: the regions whose confusion passed but whose suspects were
        not told from a hard region's, with the same figures.
    """
    from core.detect.probe import DEFAULT_C, fit_predict
    from core.slices.clustering import cut_to_where, error_aware_slices, label_blind_cut
    from core.slices.metrics import slice_table
    from core.slices.projection import reduce

    labels = validate_labels(labels, n_classes)
    p = np.asarray(probabilities, dtype=np.float64)
    x = np.asarray(vectors, dtype=np.float32)
    n = labels.size
    info: dict = {}
    if blind_cut is None or not blind_cut.fits(n, seed):
        blind_cut = label_blind_cut(x, seed)
    region = error_aware_slices(x, labels, p, seed=seed, info=info, blind=blind_cut)
    scores = np.zeros(n)
    flagged = np.zeros(n, dtype=bool)
    covered = np.zeros(n, dtype=bool)
    suggested = np.full(n, -1, dtype=np.int64)
    found = []
    declined = []
    candidates = np.array([], dtype=np.int64)
    if np.unique(region).size > 1:
        table = slice_table(region, labels, p, n_classes=n_classes).set_index("slice_id")
        # the error slices (more errors than the models explain), worst first, as they are ranked
        candidates = table.index[table["is_error_slice"]].to_numpy()
        predicted = p.argmax(axis=1)
        probe_x = reduce(x, PROBE_DIM, seed) if x.shape[1] > PROBE_DIM else x
        tested = []
        for slice_id in sorted(candidates.tolist(), key=lambda s: -float(table.loc[s, "error_score"])):
            inside = region == slice_id
            confusion = structured_confusion(labels, predicted, inside, n_classes, min_members,
                                             alpha / candidates.size)
            if confusion is None:
                continue
            given, looks = confusion[:2]
            near = _neighbours_of(np.flatnonzero(inside & (labels == given) & (predicted == looks)), x, graph)
            tested.append((slice_id, inside, *confusion,
                           nearer_the_boundary(labels, p, inside, given, looks, predicted=predicted),
                           nearer_the_boundary(labels, p, inside, given, looks, own_among=near, predicted=predicted)))
        hard = {slice_id: whole.auc for slice_id, *_, whole, _local in tested if whole.p_value < alpha}
        for slice_id, inside, given, looks, count, whole, local in tested:
            # the yardstick is the other hard regions: a region is not measured against itself
            others = [auc for other, auc in hard.items() if other != slice_id]
            reference = float(np.median(others)) if others else None
            as_hard = 1.0 if reference is None else as_near_as(whole, reference)
            if local.p_value < alpha or (reference is not None and as_hard >= alpha):
                declined.append({"region": int(slice_id), "label": int(given), "looks_like": int(looks),
                                 "count": int(count), "auc": round(whole.auc, 3), "local_auc": round(local.auc, 3),
                                 "local_p": float(f"{local.p_value:.3g}"), "as_hard_p": float(f"{as_hard:.3g}")})
                continue
            suspects = np.flatnonzero(inside & (labels == given))
            rest = np.ones(n, dtype=bool)
            rest[suspects] = False
            if np.unique(labels[rest]).size < 2:
                continue
            held_out = fit_predict(probe_x[rest], labels[rest], probe_x[suspects], n_classes, DEFAULT_C, 100)
            both = _log_odds(held_out, looks, given) + _log_odds(p[suspects], looks, given)
            order = np.argsort(-both, kind="stable")
            take = order[: min(count, int((both > 0).sum()))]
            if take.size < min_members:
                continue
            carry = suspects[take]
            flagged[carry] = True
            covered |= inside
            suggested[carry] = looks
            pair_q = held_out[take, looks] / np.clip(held_out[take, looks] + held_out[take, given], 1e-12, None)
            pair_p = p[carry, looks] / np.clip(p[carry, looks] + p[carry, given], 1e-12, None)
            scores[carry] = np.clip(0.5 * (pair_q + pair_p), 0.0, 1.0)
            found.append({"region": int(slice_id), "members": int(inside.sum()), "label": int(given),
                          "looks_like": int(looks), "count": int(carry.size), "of": int(suspects.size),
                          "z": round(float(table.loc[slice_id, "unexpected_z"]), 2),
                          "auc": round(whole.auc, 3), "local_auc": round(local.auc, 3),
                          "local_p": float(f"{local.p_value:.3g}"), "as_hard_p": float(f"{as_hard:.3g}")})
    if found:
        # shown as the part of its slice where its picks sit (module docstring; on CIFAR-10
        # images 0..5,999 a planted region was a quarter of the slice it was found in)
        region, renamed = cut_to_where(region, blind_cut.reduced, flagged, [f["region"] for f in found], seed=seed)
        for entry in found + declined:
            entry["region"] = renamed[entry["region"]]
        if "carved_slices" in info:
            info["carved_slices"] = sorted({renamed[i] for i in info["carved_slices"]})
        for entry in found:
            shown = int((region == entry["region"]).sum())
            if shown < entry["members"]:
                entry["cut_from"], entry["members"] = entry["members"], shown
    logger.info("structured regions: %s; declined as hard regions: %s", found, declined)
    return DetectorResult(
        name=NAME, description=DESCRIPTION, scores=scores, flagged=flagged, suggested=suggested,
        params={"min_members": min_members, "alpha": alpha, "carve_z_needed": info.get("carve_z_needed"),
                "regions_tested": int(candidates.size), "declined_as_hard": declined},
        evidence={"regions": found, "region": region.astype(np.int64), "covered": covered, "slicing": info,
                  "blind_cut": blind_cut},
    )


def cut_and_findings(result: Optional[DetectorResult]) -> tuple[Optional[tuple[np.ndarray, dict]], frozenset[int]]:
    """This detector's cut of the data, as :func:`core.slices.discover_slices` takes it (``cut``),
    and the ids of its slices with a structured finding (``structured``, which lead the error-slice
    ranking); (None, empty) for a result without a cut."""
    if result is None or "slicing" not in result.evidence:
        return None, frozenset()
    return ((result.evidence["region"], result.evidence["slicing"]),
            frozenset(int(r["region"]) for r in result.evidence["regions"]))


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
# It does not reorder the queue (weight 0): where it fired on real noise with no planted region
# (CIFAR-10N worst, 6,000 images with resnet18 probabilities) its scores moved the ranking's
# AUPRC below cleanlab's alone (0.9629 vs 0.9647) while adding no flag.
@register(
    NAME, DESCRIPTION, needs=("vectors", "probabilities"), weight=0.0, suggestion_priority=25,
    speaks_when_flagged=True, params={"min_members": MIN_MEMBERS, "alpha": ALPHA}, explain=explain,
    decides_bulk_in="covered",
)
def run(inputs: DetectInputs, **params) -> DetectorResult:
    """Registry entry: :func:`score` on the vectors and the pooled probabilities (and the
    label-blind cut of an earlier analysis of the same vectors, when given)."""
    return score(inputs.vectors, inputs.labels, inputs.probabilities, inputs.n_classes, seed=inputs.seed,
                 blind_cut=inputs.blind_cut, graph=inputs.graph, **params)
