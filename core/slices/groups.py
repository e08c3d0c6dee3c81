"""Wrong labels by metadata value: which annotator, source, batch or period carries more than the rest.

A labelling error that many samples share need not sit in one region of the vectors. One
annotator who reads a guideline differently, one site, one week before a guideline changed
spread their wrong labels over the whole data, so no slice of the map holds them; the metadata
does. For every value of every categorical metadata column (numeric columns with many values in
quartiles, as for the slices' over-representation) this compares the labels' estimated
probabilities of being wrong (:func:`core.detect.confident.error_probability`) inside the group
with those of a random group of the same size:

    expected_wrong_g = sum of the group's error probabilities      (wrong labels it is expected to hold)
    excess_wrong_g   = expected_wrong_g - n_g * (mean over all rows)
    z_g              = excess_wrong_g / sqrt(n_g * var * (N - n_g) / (N - 1))

the z of the sum of n_g values drawn without replacement from all N (the permutation
distribution's mean and variance), one-sided. That catches a careless annotator. One who reads a
single guideline differently makes one confusion only, a few dozen labels among thousands, which
barely moves the group's total; so each group also gets the test the structured-regions detector
applies to a region (:func:`core.detect.regions.confusion_excess`): its most excess (given L,
predicted S) pair against the same pair among the L labels elsewhere, here as an exact
hypergeometric test (a metadata value can be half the data, so the rest's rate is not known
precisely), Bonferroni over the pairs its errors show. A group's p is the smaller of the two, doubled (two
tests), then Bonferroni-adjusted over every value tested. A group that passes and whose flags
share one confusion carries it as a finding ("31 of its 104 'cat' (30 %) look like 'dog'",
:func:`core.slices.metrics.structured_findings`), to be reviewed as one group.

Why the error probabilities and not the flags: the flagged set's size follows the noise estimate
per class, so a group's share of flags moves with its class mix; the error probability is per
sample, and its group sum is the expected count whatever the mix.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from core.slices.metrics import categorical_columns, structured_findings

__all__ = ["metadata_error_groups", "ALPHA", "MIN_SIZE"]

#: Family-wise level of the test over every (column, value) tested.
ALPHA = 0.01
#: Groups smaller than this are not tested (too few labels to call a rate).
MIN_SIZE = 10


def metadata_error_groups(
    metadata: pd.DataFrame | None,
    labels: np.ndarray,
    probabilities: np.ndarray,
    error_probability: np.ndarray,
    flagged: np.ndarray,
    suggested: np.ndarray,
    class_names: Sequence[str],
    alpha: float = ALPHA,
    min_size: int = MIN_SIZE,
) -> list[dict]:
    """Every tested metadata value with its expected wrong labels against a random group's.

    Parameters
    ----------
    metadata : pandas.DataFrame or None
        N rows, one column per metadata field.
    labels : np.ndarray
        int (N,), labels in force.
    probabilities : np.ndarray
        (N, C) the out-of-sample probabilities the detection used (their argmax is the prediction
        the confusion test counts).
    error_probability : np.ndarray
        float (N,), each label's estimated probability of being wrong.
    flagged, suggested : np.ndarray
        bool (N,) and int (N,) (-1 = none), the detection's flags and suggestions.
    class_names : sequence of str
    alpha : float, default 0.01
        Family-wise level (Bonferroni over the values tested).
    min_size : int, default 10

    Returns
    -------
    list of dict
        Smallest p first: ``column, value, size, flagged, expected_wrong, wrong_rate,
        wrong_rate_rest, excess_wrong, z, confusion`` (the pair most in excess: ``label,
        looks_like, count, p_value``, or None), ``p_value`` (the smaller of the two tests', doubled),
        ``p_adjusted, significant, finding`` (the confusion its flags share, or None) and
        ``finding_rows`` (row indices of the flagged members carrying it; empty without a
        finding). Empty without metadata or with fewer than two usable values.
    """
    from scipy.stats import norm

    from core.detect.regions import MIN_MEMBERS, confusion_excess

    if metadata is None or len(metadata.columns) == 0:
        return []
    p = np.asarray(error_probability, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    flagged = np.asarray(flagged, dtype=bool)
    suggested = np.asarray(suggested, dtype=np.int64)
    n = p.size
    if len(metadata) != n:
        raise ValueError(f"metadata has {len(metadata)} rows but there are {n} labels")
    if n < 2:
        return []
    predicted = np.asarray(probabilities).argmax(axis=1)
    names = list(class_names)
    mean, variance = float(p.mean()), float(p.var())
    groups = []
    columns = {}  # column -> (present, values): a group's rows are made again where needed, not kept
    for column, values in categorical_columns(metadata.reset_index(drop=True)).items():
        present = values.notna().to_numpy()
        counts = values[present].value_counts()
        if len(counts) < 2:
            continue  # one value: nothing to compare it with
        codes = values.to_numpy()
        columns[str(column)] = (present, codes)
        for value, size in counts.items():
            if size < min_size or size >= n:
                continue
            inside = present & (codes == value)
            expected = float(p[inside].sum())
            spread = math.sqrt(size * variance * (n - size) / (n - 1)) if variance > 0 else 0.0
            excess = expected - size * mean
            z = excess / spread if spread > 0 else 0.0
            p_pair, confusion = 1.0, None
            excess_pair = confusion_excess(labels, predicted, inside, len(names))
            if excess_pair is not None and excess_pair[2] >= MIN_MEMBERS:
                given, looks, count, _, shown = excess_pair
                p_pair = min(1.0, _pair_p_value(labels, predicted, inside, given, looks) * shown)
                confusion = {"label": names[given], "looks_like": names[looks], "count": count,
                             "p_value": p_pair}
            groups.append({"column": str(column), "value": value.item() if hasattr(value, "item") else value,
                           "code": value, "size": int(size), "flagged": int(flagged[inside].sum()),
                           "expected_wrong": round(expected, 2), "wrong_rate": round(expected / size, 4),
                           "wrong_rate_rest": round(float(p[~inside].mean()), 4), "excess_wrong": round(excess, 2),
                           "z": round(z, 2), "confusion": confusion,
                           "p_value": min(1.0, 2.0 * min(float(norm.sf(z)), p_pair))})
    tested = len(groups)
    for g in groups:
        g["p_adjusted"] = min(1.0, g["p_value"] * tested)
        g["significant"] = bool(g["p_adjusted"] < alpha)
        code = g.pop("code")
        g["finding"], g["finding_rows"] = None, []
        if g["significant"]:
            present, codes = columns[g["column"]]
            inside = present & (codes == code)
            finding = structured_findings(inside.astype(np.int64), labels, suggested, flagged, class_names).get(1)
            if finding is not None:
                given, looks = names.index(finding["label"]), names.index(finding["looks_like"])
                rows = np.flatnonzero(inside & flagged & (labels == given) & (suggested == looks))
                g["finding"], g["finding_rows"] = finding, rows.tolist()
    groups.sort(key=lambda g: (g["p_value"], -g["z"], g["column"], str(g["value"])))
    return groups


def _pair_p_value(labels: np.ndarray, predicted: np.ndarray, inside: np.ndarray, given: int, looks: int) -> float:
    """P(at least the group's count of (given -> looks) errors) when the group's labels ``given``
    were drawn at random from all of them: hypergeometric, so exact for a group of any size.
    (The regions detector's binomial takes the rest's rate as known, which holds for a region
    that is a small part of the data; a metadata value can be half of it, and with the rate of
    the other half taken as known a random half passed in 5 of 40 runs on clean CIFAR-10 labels.)"""
    from scipy.stats import hypergeom

    carries = labels == given
    confused = carries & (predicted == looks)
    population, successes = int(carries.sum()), int(confused.sum())
    drawn, hits = int((carries & inside).sum()), int((confused & inside).sum())
    return float(hypergeom.sf(hits - 1, population, successes, drawn))
