import numpy as np
import pytest

from core.detect.annotators import krippendorff_alpha, score


def annotations(n=60, n_classes=3):
    truth = np.arange(n) % n_classes
    m = np.tile(truth[:, None], (1, 3))
    return truth, m


def test_planted_disagreement_is_found():
    truth, m = annotations()
    m[7] = [2, 2, 1]  # truth 1: two annotators say 2
    labels = truth.copy()
    r = score(m, 3, labels)
    assert np.flatnonzero(r.flagged).tolist() == [7]
    assert r.suggested[7] == 2 and (np.delete(r.suggested, 7) == -1).all()
    assert r.scores[7] == r.scores.max()
    assert r.evidence["agreement"][7] == pytest.approx(2 / 3)


def test_perfect_agreement_flags_nothing_and_alpha_is_one():
    truth, m = annotations()
    r = score(m, 3, truth)
    assert not r.flagged.any()
    assert r.evidence["krippendorff_alpha"] == pytest.approx(1.0)


def test_with_probabilities_uses_crowdlab_and_rates_annotators():
    truth, m = annotations(n=90)
    m = m.copy()
    rng = np.random.default_rng(1)
    m[:, 2] = rng.integers(0, 3, m.shape[0])  # annotator 2 guesses
    m[::4, 1] = -1  # annotator 1 skips some
    p = np.full((90, 3), 0.05)
    p[np.arange(90), truth] = 0.9
    r = score(m, 3, truth, probabilities=p)
    stats = {s["annotator"]: s for s in r.evidence["annotator_stats"]}
    assert stats["annotator_2"]["annotator_quality"] < stats["annotator_0"]["annotator_quality"]
    assert (r.evidence["consensus"] == truth).all()
    assert r.evidence["krippendorff_alpha"] < 0.9


def test_annotations_without_any_label_are_refused():
    with pytest.raises(ValueError, match="no sample has an annotator label"):
        score(np.full((4, 2), -1), 2)
    assert np.isnan(krippendorff_alpha(np.zeros((4, 2), int)))


def overlapping_classes(seed: int, distance: float = 2.0, n_per_class: int = 300, n_classes: int = 4, dim: int = 16):
    """Gaussian classes (unit noise, centres ``distance`` times a normal draw): (vectors, truth)."""
    rng = np.random.default_rng(seed)
    truth = np.repeat(np.arange(n_classes), n_per_class)
    centres = rng.normal(size=(n_classes, dim)) * distance
    return (centres[truth] + rng.normal(size=(truth.size, dim))).astype(np.float32), truth


def careful_annotators(truth: np.ndarray, rng: np.random.Generator, n_classes: int, slips: float = 0.1):
    """Three annotators who each give a random label to ``slips`` of the samples."""
    m = np.tile(truth[:, None], (1, 3))
    for j in range(3):
        slip = rng.random(truth.size) < slips
        m[slip, j] = rng.integers(0, n_classes, slip.sum())
    return m


@pytest.mark.parametrize("seed", [0, 1])
def test_one_annotators_habit_in_the_labels_is_outvoted(seed):
    # The labels in use are annotator 2's, who calls 80 % of class 0 "1"; the other two say 0.
    # A probe trained on those labels learns the habit; CROWDLAB fed that probe sided with
    # annotator 2 on most of these samples (46 of 203 flagged with seed 0).
    from core.detect import DetectConfig, detect

    x, truth = overlapping_classes(seed)
    rng = np.random.default_rng(seed)
    m = careful_annotators(truth, rng, 4)
    habit = (truth == 0) & (rng.random(truth.size) < 0.8)
    m[habit, 2] = 1
    outvoted = habit & (m[:, 0] == 0) & (m[:, 1] == 0)
    d = detect(x, m[:, 2].copy(), 4, annotator_labels=m, config=DetectConfig(device="cpu"))
    assert d.flagged[outvoted].mean() >= 0.9
    assert (d.suggested[outvoted] == 0).mean() >= 0.9
    assert d.params["consensus_probe"]["samples_where_vote_differs_from_labels"] >= outvoted.sum()


def test_where_several_annotators_labelled_the_annotators_detector_decides_the_flag():
    # Half the samples have three careful annotators, half only the one who gave the label.
    # On the first half a probe alone would flag the samples its overlapping classes confuse;
    # the annotators who agree with the label overrule it there, and the per-class count of
    # the rest is made on the rest.
    from core.detect import DetectConfig, detect

    x, truth = overlapping_classes(3, distance=0.7)
    rng = np.random.default_rng(3)
    labels = truth.copy()
    wrong = rng.random(truth.size) < 0.08
    labels[wrong] = (truth[wrong] + rng.integers(1, 4, wrong.sum())) % 4
    m = careful_annotators(truth, rng, 4, slips=0.05)
    m[:, 0] = labels  # the label in use is annotator 0's
    single = np.arange(truth.size) % 2 == 1
    m[single, 1:] = -1
    d = detect(x, labels, 4, annotator_labels=m, config=DetectConfig(device="cpu"))
    without = detect(x, labels, 4, config=DetectConfig(device="cpu"))
    several = ~single
    ann = d.results["annotators"]
    speaks = ann.flagged & (ann.suggested >= 0)
    unanimous = several & (m == labels[:, None]).all(axis=1)
    # the model alone flags some unanimous samples; with the annotators none of them is flagged
    assert without.flagged[unanimous].any()
    assert not d.flagged[unanimous].any()
    np.testing.assert_array_equal(d.flagged[several], speaks[several])
    np.testing.assert_allclose(d.error_probability[several], ann.evidence["error_probability"][several])
    # on the samples one annotator labelled, confident learning still counts the wrong labels
    found = d.flagged & single & wrong
    assert found.sum() >= 0.7 * (single & wrong).sum()
    assert "the annotators detector alone" in d.params["ranking"]["flag_rule"]


def test_posterior_learns_an_annotators_habit_not_just_their_accuracy():
    # Annotator 2 calls 80 % of class 0 "1" and is right elsewhere. Where they alone labelled a
    # sample "1", the truth is 0 almost as often as 1 (0.8 / (0.8 + 0.9)), which a matrix per
    # annotator knows and one accuracy number does not (it would give class 0 a few per cent).
    rng = np.random.default_rng(0)
    truth = np.repeat(np.arange(4), 400)
    m = careful_annotators(truth, rng, 4, slips=0.1)
    m[(truth == 0) & (rng.random(truth.size) < 0.8), 2] = 1
    alone = np.flatnonzero(m[:, 2] == 1)[:40]
    m[alone, :2] = -1
    flat = np.full((truth.size, 4), 0.25)
    from core.detect.annotators import true_label_posterior

    post = true_label_posterior(m, flat, 4)
    np.testing.assert_allclose(post.sum(axis=1), 1.0)
    assert post[alone, 0].mean() > 0.3
    # where all three annotators speak, the posterior follows them
    full = (m >= 0).all(axis=1)
    assert (post[full].argmax(axis=1) == truth[full]).mean() > 0.95


def test_posterior_leaves_a_split_vote_to_the_model():
    truth, m = annotations(n=90)
    m = m[:, :2].copy()
    m[5] = [1, 2]  # truth 2: the annotators split
    prior = np.full((90, 3), 0.1)
    prior[np.arange(90), truth] = 0.8
    from core.detect.annotators import true_label_posterior

    post = true_label_posterior(m, prior, 3)
    assert post[5].argmax() == 2 and post[5, 0] < 0.05
    with pytest.raises(ValueError):
        true_label_posterior(m, prior[:10], 3)


def test_with_probabilities_flags_as_many_per_label_as_the_consensus_disagrees():
    rng = np.random.default_rng(2)
    truth = np.repeat(np.arange(3), 100)
    m = careful_annotators(truth, rng, 3, slips=0.15)
    labels = m[:, 0].copy()
    prior = np.full((truth.size, 3), 0.15)
    prior[np.arange(truth.size), truth] = 0.7
    r = score(m, 3, labels, probabilities=prior)
    disagrees = r.evidence["consensus"] != labels
    np.testing.assert_array_equal(np.bincount(labels[r.flagged], minlength=3),
                                  np.bincount(labels[disagrees], minlength=3))
    # the flags are the most probably wrong of their label, and suggest another label
    for c in range(3):
        mine = labels == c
        assert r.scores[mine & r.flagged].min() >= r.scores[mine & ~r.flagged].max()
    assert (r.suggested[r.flagged] != labels[r.flagged]).all() and (r.suggested[~r.flagged] == -1).all()
    np.testing.assert_allclose(r.scores, r.evidence["error_probability"])


@pytest.mark.parametrize("with_probabilities", [False, True])
def test_samples_no_annotator_labelled_are_left_out_not_refused(with_probabilities):
    # A second batch ingested without the annotator columns: its rows have no annotation.
    truth, m = annotations(n=90)
    m = m.copy()
    m[7] = [2, 2, 1]  # truth 1: two annotators say 2
    m[60:] = -1
    prior = np.full((90, 3), 0.1)
    prior[np.arange(90), truth] = 0.8
    r = score(m, 3, truth, probabilities=prior if with_probabilities else None)
    assert len(r) == 90
    assert not r.flagged[60:].any() and (r.suggested[60:] == -1).all()
    assert (r.evidence["num_annotations"][60:] == 0).all() and (r.evidence["consensus"][60:] == -1).all()
    assert np.ptp(r.scores[60:]) == 0 and r.scores[60] < r.scores[7]
    if not with_probabilities:
        assert np.flatnonzero(r.flagged).tolist() == [7]


def test_a_tied_vote_comes_out_the_same_every_time():
    from core.detect.annotators import majority_vote

    m = np.array([[0, 1], [1, 0], [2, 0], [0, 2], [1, 2]] * 4)  # every row a tie
    votes = {tuple(majority_vote(m, 3)) for _ in range(5)}
    np.random.seed(123)
    before = np.random.random()
    np.random.seed(123)
    majority_vote(m, 3)
    assert len(votes) == 1 and np.random.random() == before  # the caller's generator is untouched
    # a tie goes to the label given less often overall: 0 is over-used here
    over_used = np.array([[0, 0], [0, 0], [0, 1], [1, 0], [2, 1]])
    assert majority_vote(over_used, 3).tolist() == [0, 0, 1, 1, 2]


def test_detect_runs_on_partly_annotated_samples():
    from core.detect import DetectConfig, detect

    x, truth = overlapping_classes(4)
    rng = np.random.default_rng(4)
    m = careful_annotators(truth, rng, 4)
    m[::3] = -1
    d = detect(x, truth, 4, annotator_labels=m, config=DetectConfig(device="cpu"))
    assert d.results["annotators"].evidence["num_annotations"][::3].max() == 0
    assert np.isfinite(d.error_probability).all()


def test_an_annotators_habit_is_one_finding_with_its_samples():
    # Annotator 1 calls 60 % of class 2 "3"; all three slip at random on 10 % of the rest. The
    # habit is theirs alone, so it is reported once, for them, with the samples it holds.
    from core.detect.annotators import annotator_habits

    rng = np.random.default_rng(5)
    truth = np.repeat(np.arange(4), 300)
    m = careful_annotators(truth, rng, 4, slips=0.1)
    habit = (truth == 2) & (rng.random(truth.size) < 0.6)
    m[habit, 1] = 3
    found = annotator_habits(m, np.full((truth.size, 4), 0.25), 4)
    assert [(h["annotator"], h["true"], h["said"]) for h in found] == [(1, 2, 3)]
    h = found[0]
    assert 0.5 < h["share"] < 0.7 and h["others_share"] < 0.1
    members = np.array(h["members"])
    # without a model, a sample's class comes from the two other annotators alone (each slips on
    # 10 %), so a few members are not of class 2
    assert (m[members, 1] == 3).all() and (truth[members] == 2).mean() > 0.9
    assert members.size >= 0.9 * (habit & (m[:, 0] == 2) & (m[:, 2] == 2)).sum()


def test_random_slips_are_no_ones_habit():
    from core.detect.annotators import annotator_habits

    rng = np.random.default_rng(6)
    truth = np.repeat(np.arange(4), 300)
    m = careful_annotators(truth, rng, 4, slips=0.2)
    assert annotator_habits(m, np.full((truth.size, 4), 0.25), 4) == []


def test_habit_members_are_rows_of_the_whole_data_when_some_rows_have_no_annotator():
    x, truth = overlapping_classes(2, distance=3.0, n_per_class=200)
    rng = np.random.default_rng(2)
    m = careful_annotators(truth, rng, 4, slips=0.05)
    m[(truth == 0) & (rng.random(truth.size) < 0.7), 2] = 1
    m[::5] = -1  # every fifth sample unlabelled: scored on the rest, reported on all rows
    from core.detect.probe import cross_validated_probabilities

    p = cross_validated_probabilities(x, truth, 4, seed=0)
    result = score(m, 4, labels=truth, probabilities=p)
    habits = result.evidence["annotator_habits"]
    assert [(h["annotator"], h["true"], h["said"]) for h in habits] == [(2, 0, 1)]
    members = np.array(habits[0]["members"])
    assert (members % 5 != 0).all() and (m[members, 2] == 1).all() and (truth[members] == 0).all()


def test_two_annotators_habits_are_each_reported_once_and_nothing_else():
    # Annotator 0 labels 60 % of class 2 "3", annotator 2 labels 50 % of class 1 "0": each is
    # reported for its own annotator, and the random slips of all three for no one.
    from core.detect.annotators import annotator_habits

    rng = np.random.default_rng(8)
    truth = np.repeat(np.arange(4), 400)
    m = careful_annotators(truth, rng, 4, slips=0.1)
    m[(truth == 2) & (rng.random(truth.size) < 0.6), 0] = 3
    m[(truth == 1) & (rng.random(truth.size) < 0.5), 2] = 0
    found = annotator_habits(m, np.full((truth.size, 4), 0.25), 4)
    assert sorted((h["annotator"], h["true"], h["said"]) for h in found) == [(0, 2, 3), (2, 1, 0)]
