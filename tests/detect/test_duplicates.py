import numpy as np

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
    assert r.scores[3] >= 0.98 and r.scores[30] == 0.0
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
