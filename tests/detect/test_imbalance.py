import numpy as np
import pytest

from core.detect.imbalance import class_normalise, class_table


def test_class_table_counts_and_rates():
    labels = np.array([0] * 8 + [1] * 2)
    flagged = np.zeros(10, bool)
    flagged[[0, 8]] = True
    rows = class_table(labels, flagged, 3, ["a", "b", "c"])
    assert [r["count"] for r in rows] == [8, 2, 0]
    assert rows[1]["flag_rate"] == pytest.approx(0.5) and rows[0]["flag_rate"] == pytest.approx(0.125)
    assert rows[1]["flag_rate_ratio"] == pytest.approx(2.5)
    assert rows[2]["flag_rate"] == 0.0 and rows[1]["class_name"] == "b"


def test_class_normalise_lifts_the_worst_of_a_rare_class():
    # the rare class's scores are all low, so a plain ranking drowns it
    labels = np.array([0] * 20 + [1] * 4)
    scores = np.concatenate([np.linspace(0.2, 0.9, 20), [0.05, 0.06, 0.07, 0.3]])
    assert np.argmax(class_normalise(scores, labels, 0.0)) == 19
    full = class_normalise(scores, labels, 1.0)
    assert full[23] == full[19] == 1.0
    np.testing.assert_array_equal(class_normalise(scores, labels, 0.0), scores)
    with pytest.raises(ValueError):
        class_normalise(scores, labels, 1.5)
