import numpy as np
import pytest

from core.detect import available, defaults
from core.detect.result import REGISTRY, DetectorResult, register, validate_labels


def make(scores, flagged=None, suggested=None):
    scores = np.asarray(scores, dtype=float)
    flagged = np.zeros(scores.shape, bool) if flagged is None else flagged
    return DetectorResult("t", "test", scores, flagged, suggested)


def test_valid_result_is_kept():
    r = make([0.0, 0.5, 1.0], suggested=np.array([-1, 2, 0]))
    assert len(r) == 3 and r.suggested.dtype == np.int64


@pytest.mark.parametrize("bad", [[0.1, 1.01], [-0.01, 0.5], [np.nan, 0.2]])
def test_scores_outside_unit_interval_or_nan_are_refused(bad):
    with pytest.raises(ValueError):
        make(bad)


def test_flagged_and_suggested_shapes_are_checked():
    with pytest.raises(ValueError):
        make([0.1, 0.2], flagged=np.array([True]))
    with pytest.raises(ValueError):
        make([0.1, 0.2], suggested=np.array([0.5, 1.0]))
    with pytest.raises(ValueError):
        make([0.1, 0.2], suggested=np.array([-2, 1]))


def test_registry_lists_every_detector_and_defaults():
    builtin = {"confident", "neighbours_vote", "outliers", "duplicates", "annotators", "regions"}
    # The training-dynamics detectors are defaults too, but run only where dynamics were captured
    # (their `needs`); datamap and forgetting weigh 0 (evidence only) until measured.
    dynamics = {"aum", "datamap", "forgetting"}
    assert set(available()) == builtin | dynamics
    assert set(defaults()) == builtin | dynamics


def test_a_detector_registered_off_by_default_is_available_but_not_a_default():
    register("test-only", "a detector that runs only when named", needs=(), default=False)(lambda inputs: None)
    try:
        assert "test-only" in available() and "test-only" not in defaults()
    finally:
        del REGISTRY["test-only"]
    assert "test-only" not in available()


def test_register_refuses_a_second_detector_of_the_same_name():
    with pytest.raises(ValueError):
        register("confident", "again", needs=())(lambda inputs: None)


def test_validate_labels():
    assert validate_labels(np.array([0, 2]), 3).dtype == np.int64
    with pytest.raises(ValueError):
        validate_labels(np.array([0, 3]), 3)
    with pytest.raises(ValueError):
        validate_labels(np.array([0.0, 1.0]), 3)
    assert validate_labels(np.array([-1, 1]), 3, allow_missing=True).tolist() == [-1, 1]
