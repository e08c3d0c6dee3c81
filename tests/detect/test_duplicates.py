import numpy as np

from core.detect import DetectConfig, detect
from core.detect.duplicates import near_duplicate_groups, score
from core.neighbours import build_knn_graph


def test_planted_conflicting_duplicates_form_one_group(clean_data):
    vectors, labels = clean_data
    vectors = vectors.copy()
    labels = labels.copy()
    vectors[100] = vectors[3] * 1.001  # same direction: cosine 1
    labels[100] = 0
    labels[3] = 1  # the copy's label disagrees with the original... and with class 0's region
    vectors[101] = vectors[30]  # a harmless duplicate with the same label
    labels[101] = labels[30]
    r = score(build_knn_graph(vectors, k=10, device="cpu"), labels, 3)
    groups = r.evidence["groups"]
    assert len(groups) == 1
    assert groups[0]["members"].tolist() == [3, 100]
    assert sorted(groups[0]["labels"].tolist()) == [0, 1]
    assert groups[0]["min_similarity"] >= 0.98
    assert set(np.flatnonzero(r.flagged)) == {3, 100}
    # one to one: either label may be the wrong one, so each side scores about a half
    assert 0.98 * 0.5 <= r.scores[3] <= 0.5 and r.scores[100] == r.scores[3] and r.scores[30] == 0.0
    assert r.suggested[3] == 0 and r.suggested[100] == 1


def test_no_duplicates_in_clean_data(clean_data):
    vectors, labels = clean_data
    r = score(build_knn_graph(vectors, k=10, device="cpu"), labels, 3)
    assert not r.flagged.any() and r.evidence["groups"] == []


def test_groups_merge_through_chains():
    x = np.array([[1.0, 0.0], [1.0, 0.01], [1.0, 0.02], [0.0, 1.0], [0.01, 1.0]])
    groups = near_duplicate_groups(build_knn_graph(x, k=1, device="cpu"), threshold=0.999)
    assert [g.tolist() for g in groups] == [[0, 1, 2], [3, 4]]


def test_majority_label_members_score_lower():
    x = np.array([[1.0, 0.0]] * 3 + [[0.0, 1.0], [0.0, 1.0], [-1.0, 0.0]])
    labels = np.array([0, 0, 1, 1, 1, 2])
    r = score(build_knn_graph(x, k=2, device="cpu"), labels, 3)
    assert r.scores[2] > r.scores[0] > 0
    assert r.suggested[2] == 0 and r.suggested[0] == -1  # a 1-1 tie among the others: no suggestion


def test_minority_score_is_the_share_labelled_otherwise():
    x = np.array([[1.0, 0.0]] * 4 + [[0.0, 1.0]] * 2)
    labels = np.array([0, 0, 0, 1, 2, 2])
    r = score(build_knn_graph(x, k=3, device="cpu"), labels, 3)
    assert np.allclose(r.scores[[0, 1, 2]], 0.25) and np.isclose(r.scores[3], 0.75)
    assert np.allclose(r.scores[[4, 5]], 0.0)  # the agreeing pair


def test_a_pair_split_one_to_one_does_not_outrank_clear_errors(planted):
    """A post cross-posted to two groups (one text, two labels) is a coin toss for each copy;
    it must not come before labels a model is sure are wrong (on 20 Newsgroups pairs such
    copies held the first ranks and cost up to 0.15 AUPRC)."""
    vectors, noisy, truth, wrong = planted
    between = (vectors[truth == 0].mean(0) + vectors[truth == 1].mean(0)) / 2  # looks like both
    vectors = np.vstack([vectors, between, between])
    noisy = np.concatenate([noisy, [0, 1]])
    # the user's model: sure of every sample's true class, torn between 0 and 1 on the copies
    probabilities = np.full((noisy.size, 3), 0.02)
    probabilities[np.arange(truth.size), truth] = 0.96
    probabilities[-2:] = [0.49, 0.49, 0.02]
    found = detect(vectors, noisy, 3, probabilities=probabilities, config=DetectConfig(seed=0))
    pair = [noisy.size - 2, noisy.size - 1]
    assert found.results["duplicates"].flagged[pair].all()  # still found and flagged for review
    assert found.rank[wrong].max() < found.rank[pair].min()


def test_the_model_decides_which_copy_of_a_split_pair_is_flagged():
    x = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [-1.0, 0.0], [-1.0, 0.0]])
    labels = np.array([0, 1, 1, 1, 2, 2])
    # the content of the first pair looks like class 1 to the model
    probabilities = np.array([[0.2, 0.7, 0.1], [0.2, 0.7, 0.1]] + [[0.1, 0.8, 0.1]] * 2 + [[0.1, 0.1, 0.8]] * 2)
    r = score(build_knn_graph(x, k=2, device="cpu"), labels, 3, probabilities=probabilities)
    assert r.flagged.tolist() == [True, False, False, False, False, False]  # only the copy labelled 0
    assert r.suggested[0] == 1 and r.suggested[1] == -1
    assert np.isclose(r.scores[0], 0.7 / 0.9) and np.isclose(r.scores[1], 0.2 / 0.9)
    # without the model the pair is a coin toss: both copies are flagged for a person
    alone = score(build_knn_graph(x, k=2, device="cpu"), labels, 3)
    assert alone.flagged[[0, 1]].all() and np.allclose(alone.scores[[0, 1]], 0.5)
