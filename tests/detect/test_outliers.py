import numpy as np

from core.detect.outliers import score, within_class_percentile


def test_planted_outlier_scores_top_and_is_flagged(clean_data):
    vectors, labels = clean_data
    vectors = vectors.copy()
    # sample 10 (class 0) is moved to sit right on class 1's centre
    vectors[10] = vectors[labels == 1].mean(axis=0)
    r = score(vectors, labels, 3)
    assert r.scores[10] == 1.0
    assert r.flagged[10]
    assert r.suggested[10] == 1


def test_clean_compact_classes_flag_little(clean_data):
    vectors, labels = clean_data
    r = score(vectors, labels, 3)
    assert r.flagged.sum() <= 3
    assert (r.suggested == -1).all()


def test_within_class_percentile_ties_and_singletons():
    v = np.array([0.1, 0.1, 0.3, 5.0])
    p = within_class_percentile(v, np.array([0, 0, 0, 1]))
    assert p[0] == p[1] and p[2] == 1.0 and p[3] == 0.5
