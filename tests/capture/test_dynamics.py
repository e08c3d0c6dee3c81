"""Training dynamics from captured epochs: every expected value below is worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from core.capture.dynamics import Dynamics, EpochStats, aum_threshold, combine_runs, run_dynamics


def epoch(number, positions, label, margin, p_label, correct, top_other):
    return EpochStats(number, np.array(positions), np.array(label), np.array(margin, dtype=float),
                      np.array(p_label, dtype=float), np.array(correct, dtype=float), np.array(top_other))


def three_epochs():
    """Samples 0-3 over 3 epochs (sample 3 missing from the last), sample 4 never seen.

    Epoch 1 lists its positions shuffled and the epochs come out of order: both must not matter.
    """
    e0 = epoch(0, [0, 1, 2, 3], [0, 1, 2, 0], [1.0, 0.5, -1.0, 0.4], [0.6, 0.5, 0.2, 0.5],
               [1.0, 1.0, 0.0, 0.75], [1, 0, 1, 2])
    e1 = epoch(1, [3, 1, 0, 2], [0, 1, 0, 2], [-0.2, -0.5, 2.0, -2.0], [0.4, 0.3, 0.7, 0.1],
               [0.25, 0.0, 1.0, 0.0], [1, 2, 1, 1])
    e2 = epoch(2, [0, 1, 2], [0, 1, 2], [3.0, 1.5, -3.0], [0.8, 0.7, 0.0], [1.0, 1.0, 0.0], [2, 2, 0])
    return [e2, e0, e1]


def test_one_run_by_hand():
    d = run_dynamics(three_epochs(), n=5)
    assert d.n_epochs == 3 and len(d) == 5
    assert d.epochs_seen.tolist() == [3, 3, 3, 2, 0]
    assert d.label.tolist() == [0, 1, 2, 0, -1]
    # margins: [1, 2, 3] -> 2; [0.5, -0.5, 1.5] -> 0.5; [-1, -2, -3] -> -2; [0.4, -0.2] -> 0.1
    np.testing.assert_allclose(d.aum[:4], [2.0, 0.5, -2.0, 0.1])
    # p_label: [.6 .7 .8], [.5 .3 .7], [.2 .1 0], [.5 .4]
    np.testing.assert_allclose(d.confidence[:4], [0.7, 0.5, 0.1, 0.45])
    np.testing.assert_allclose(d.variability[:4], [np.sqrt(0.02 / 3), np.sqrt(0.08 / 3), np.sqrt(0.02 / 3), 0.05])
    # correct >= 0.5 per epoch: [1 1 1], [1 0 1], [0 0 0], [1 (0.75), 0 (0.25)]
    np.testing.assert_allclose(d.correctness[:4], [1.0, 2 / 3, 0.0, 0.5])
    assert d.forgetting.tolist() == [0, 1, 0, 1, 0]
    assert d.never_learned.tolist() == [False, False, True, False, False]
    assert d.last_correct.tolist() == [True, True, False, False, False]
    # top_other: [1 1 2] -> 1; [0 2 2] -> 2; [1 1 0] -> 1; [2 1] tie -> 1, the one seen last
    assert d.suggested.tolist() == [1, 2, 1, 1, -1]
    assert d.runs.tolist() == [1, 1, 1, 1, 0]
    assert d.runs_flagging.tolist() == [0, 0, 1, 0, 0]
    assert d.runs_learned.tolist() == [1, 1, 0, 0, 0]
    for field in ("aum", "confidence", "variability", "correctness"):
        assert np.isnan(getattr(d, field)[4])


def test_epoch_order_in_the_list_does_not_matter():
    a = run_dynamics(three_epochs(), n=5)
    b = run_dynamics(sorted(three_epochs(), key=lambda e: e.epoch), n=5)
    for field in ("aum", "variability", "forgetting", "suggested", "last_correct"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


def test_a_label_changed_mid_run_keeps_the_last_label_and_only_its_epochs():
    # sample 0: label 1 in epochs 0-1, corrected to 2 in epoch 2;
    # sample 1: labels 0, 1, 0 -> 0, counted in epochs 0 and 2 only
    e0 = epoch(0, [0, 1], [1, 0], [-1.0, 2.0], [0.1, 0.9], [0.0, 1.0], [2, 1])
    e1 = epoch(1, [0, 1], [1, 1], [-2.0, -4.0], [0.2, 0.0], [0.0, 0.0], [2, 0])
    e2 = epoch(2, [0, 1], [2, 0], [1.5, -1.0], [0.6, 0.3], [1.0, 0.0], [1, 2])
    d = run_dynamics([e0, e1, e2], n=2)
    assert d.label.tolist() == [2, 0]
    assert d.epochs_seen.tolist() == [1, 2]
    np.testing.assert_allclose(d.aum, [1.5, 0.5])
    np.testing.assert_allclose(d.confidence, [0.6, 0.6])
    np.testing.assert_allclose(d.variability, [0.0, 0.3])
    np.testing.assert_allclose(d.correctness, [1.0, 0.5])
    # sample 1: correct in epoch 0, wrong in epoch 2 (epoch 1 was about label 1): one event
    assert d.forgetting.tolist() == [0, 1]
    assert d.suggested.tolist() == [1, 2]  # tie 1 (epoch 0) / 2 (epoch 2) -> 2
    assert d.last_correct.tolist() == [True, False] and d.never_learned.tolist() == [False, False]


def test_no_epochs_and_one_epoch():
    empty = run_dynamics([], n=3)
    assert empty.n_epochs == 0 and empty.epochs_seen.tolist() == [0, 0, 0] and empty.label.tolist() == [-1] * 3
    assert np.isnan(empty.aum).all() and empty.suggested.tolist() == [-1] * 3
    single = run_dynamics([epoch(7, [1], [0], [-0.5], [0.3], [0.0], [2])], n=2)
    assert single.n_epochs == 1 and single.epochs_seen.tolist() == [0, 1]
    assert single.variability[1] == 0.0 and single.never_learned.tolist() == [False, True]
    assert single.runs_flagging.tolist() == [0, 1] and single.suggested.tolist() == [-1, 2]


def run_a():
    e0 = epoch(0, [0, 1, 2, 3], [0, 1, 0, 1], [1, -1, 2, -2], [0.6, 0.2, 0.8, 0.1], [1, 0, 1, 0], [1, 0, 1, 0])
    e1 = epoch(1, [0, 1, 2, 3], [0, 1, 0, 1], [3, -3, 2, -2], [0.8, 0.2, 0.8, 0.3], [1, 0, 1, 0], [2, 2, 1, 0])
    return run_dynamics([e0, e1], n=4)


def run_b():
    # sample 2 trained on label 1 here (0 in run A); sample 3 unseen
    e0 = epoch(0, [0, 1, 2], [0, 1, 1], [-1, 1, 0.5], [0.4, 0.6, 0.5], [0, 1, 1], [2, 0, 0])
    e1 = epoch(1, [0, 1, 2], [0, 1, 1], [-3, -1, 0.5], [0.2, 0.4, 0.5], [0, 0, 1], [2, 0, 0])
    return run_dynamics([e0, e1], n=4)


def test_the_two_runs_on_their_own():
    a, b = run_a(), run_b()
    np.testing.assert_allclose(a.aum, [2, -2, 2, -2])
    assert a.suggested.tolist() == [2, 2, 1, 0]  # ties (1, 2) and (0, 2) go to epoch 1's class
    np.testing.assert_allclose(b.aum[:3], [-2, 0, 0.5])
    assert b.forgetting.tolist() == [0, 1, 0, 0] and b.runs_flagging.tolist() == [1, 0, 0, 0]


def test_combine_two_runs_by_hand():
    d = combine_runs([run_a(), run_b()])
    # sample 2: A says 0, B says 1, one run each -> the later run's label; only B counts for it
    assert d.label.tolist() == [0, 1, 1, 1]
    assert d.runs.tolist() == [2, 2, 1, 1]
    assert d.epochs_seen.tolist() == [4, 4, 2, 2]
    np.testing.assert_allclose(d.aum, [0.0, -1.0, 0.5, -2.0])  # (2 - 2) / 2, (-2 + 0) / 2, B, A
    np.testing.assert_allclose(d.confidence, [0.5, 0.35, 0.5, 0.2])
    np.testing.assert_allclose(d.variability, [0.1, 0.05, 0.0, 0.1])
    np.testing.assert_allclose(d.correctness, [0.5, 0.25, 1.0, 0.0])
    assert d.forgetting.tolist() == [0, 1, 0, 0]
    # sample 0: learned in A; sample 1: learned in B's first epoch; sample 3: A never did
    assert d.never_learned.tolist() == [False, False, False, True]
    assert d.runs_learned.tolist() == [1, 0, 1, 0]
    assert d.last_correct.tolist() == [False, False, True, False]  # 1 of 2 is no majority
    assert d.runs_flagging.tolist() == [1, 1, 0, 1]
    assert d.suggested.tolist() == [2, 0, 0, 0]  # sample 1: A 2, B 0 -> tie to the later run
    assert d.n_epochs == 2


def test_combining_one_run_changes_nothing_and_combinations_nest():
    a, b = run_a(), run_b()
    alone = combine_runs([a])
    for field in Dynamics.__dataclass_fields__:
        np.testing.assert_array_equal(getattr(alone, field), getattr(a, field))
    # (A, A, B) and ((A, A), B): combinations weigh as many runs as they hold
    flat = combine_runs([a, a, b])
    nested = combine_runs([combine_runs([a, a]), b])
    for field in Dynamics.__dataclass_fields__:
        np.testing.assert_array_equal(getattr(flat, field), getattr(nested, field))
    assert flat.label[2] == 0 and flat.runs[2] == 2  # now two runs against one say label 0
    np.testing.assert_allclose(flat.aum[:2], [(2 + 2 - 2) / 3, (-2 - 2 + 0) / 3])


def test_aum_threshold_is_the_percentile_of_the_threshold_samples():
    assert aum_threshold(np.array([-3.0, -2.0, -1.0, 0.0, 1.0]), 50) == -1.0
    # 99th: position 0.99 * 4 = 3.96 between 0 and 1
    assert aum_threshold(np.array([1.0, -1.0, 0.0, -3.0, -2.0])) == pytest.approx(0.96)
    assert aum_threshold(np.array([np.nan, 1.0, 3.0]), 50) == 2.0
    for bad in (np.array([]), np.array([np.nan])):
        with pytest.raises(ValueError):
            aum_threshold(bad)
    with pytest.raises(ValueError):
        aum_threshold(np.array([1.0]), 101)


@pytest.mark.parametrize("positions,match", [([0, 5], "positions must lie"), ([-1, 0], "positions must lie"),
                                             ([1, 1], "more than once")])
def test_bad_positions_are_refused(positions, match):
    with pytest.raises(ValueError, match=match):
        run_dynamics([epoch(0, positions, [0, 0], [0, 0], [0.5, 0.5], [1, 1], [1, 1])], n=5)


def test_bad_epochs_are_refused():
    with pytest.raises(ValueError, match="expected \\(2,\\)"):
        epoch(0, [0, 1], [0], [0, 0], [0.5, 0.5], [1, 1], [1, 1])
    with pytest.raises(ValueError, match="NaN"):
        epoch(0, [0, 1], [0, 0], [0, np.nan], [0.5, 0.5], [1, 1], [1, 1])
    with pytest.raises(ValueError, match="integers"):
        epoch(0, [0.0, 1.0], [0, 0], [0, 0], [0.5, 0.5], [1, 1], [1, 1])
    with pytest.raises(ValueError, match="repeat"):
        run_dynamics([epoch(0, [0], [0], [0], [0.5], [1], [1])] * 2, n=1)
    with pytest.raises(ValueError):
        combine_runs([])
    with pytest.raises(ValueError, match="different numbers"):
        combine_runs([run_a(), run_dynamics([], n=3)])


def test_a_large_run_is_fast_and_matches_a_plain_loop():
    rng = np.random.default_rng(0)
    n, epochs = 20_000, 12
    stats = []
    for e in range(epochs):
        pos = rng.permutation(n)[: n - 1000]
        label = pos % 5
        stats.append(epoch(e, pos, label, rng.normal(size=pos.size), rng.random(pos.size),
                           (rng.random(pos.size) > 0.4).astype(float), rng.integers(0, 5, pos.size)))
    d = run_dynamics(stats, n)
    for i in rng.choice(n, 25, replace=False):
        rows = [(s, np.flatnonzero(s.positions == i)) for s in stats]
        rows = [(s, r[0]) for s, r in rows if r.size]
        margins = [s.margin[r] for s, r in rows]
        ps = [s.p_label[r] for s, r in rows]
        correct = [s.correct[r] >= 0.5 for s, r in rows]
        assert d.epochs_seen[i] == len(rows)
        assert d.aum[i] == pytest.approx(np.mean(margins))
        assert d.variability[i] == pytest.approx(np.std(ps))
        assert d.forgetting[i] == sum(a and not b for a, b in zip(correct, correct[1:]))
        tops = [int(s.top_other[r]) for s, r in rows]
        best = max(tops.count(t) for t in set(tops))
        assert d.suggested[i] == [t for t in tops if tops.count(t) == best][-1]


def test_before_memorisation_keeps_the_epochs_until_accuracy_passes_the_cap():
    from core.capture.dynamics import CapturedDynamics, EpochStats, train_accuracy

    def epoch(e, correct, margin):
        return EpochStats(epoch=e, positions=np.arange(4), label=np.zeros(4, np.int64),
                          margin=np.asarray(margin, float), p_label=np.full(4, 0.5),
                          correct=np.asarray(correct, float), top_other=np.ones(4, np.int64))

    epochs = [epoch(0, [1, 0, 0, 0], [1, -1, -1, -3]),   # 25 % right
              epoch(1, [1, 1, 0, 0], [3, 1, -1, -3]),    # 50 %
              epoch(2, [1, 1, 1, 1], [5, 3, 1, 1])]      # 100 %: the last one memorised
    assert train_accuracy(epochs) == [(0, 0.25), (1, 0.5), (2, 1.0)]
    captured = CapturedDynamics([epochs], 4)
    np.testing.assert_allclose(captured.aum, [3, 1, -1 / 3, -5 / 3])  # every epoch (stands in for Dynamics)
    early, used, reached = captured.before_memorisation(0.75)
    assert used == [[0, 1]] and reached == [True]
    np.testing.assert_allclose(early.aum, [2, 0, -1, -3])
    first, used, reached = captured.before_memorisation(0.1)  # even the first epoch passes: it is kept alone
    assert used == [[0]] and reached == [True] and first.aum.tolist() == [1, -1, -1, -3]
    _, used, reached = captured.before_memorisation(1.0, fitted_accuracy=1.01)  # never fitted: every epoch
    assert used == [[0, 1, 2]] and reached == [False]
    _, used, reached = captured.before_memorisation(0.9, fitted_accuracy=0.5)  # fitted at epoch 1, cut at 2
    assert used == [[0, 1]] and reached == [True]
