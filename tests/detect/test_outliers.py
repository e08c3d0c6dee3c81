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


def test_distances_are_to_the_leave_one_out_centroid_across_blocks(monkeypatch):
    from core.detect import outliers as outliers_module
    from core.neighbours import normalise

    monkeypatch.setattr(outliers_module, "OUTLIER_BLOCK", 7)  # many blocks, the last one short
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 5)) + 2.0 * rng.normal(size=(3, 5))[rng.integers(0, 3, 40)]
    labels = rng.integers(0, 3, 40)
    result = outliers_module.score(x, labels, 4)  # class 3 has no sample
    unit = normalise(x).astype(np.float64)
    for i in range(40):
        own = unit[labels == labels[i]].sum(0) - unit[i]
        expected = 1.0 - unit[i] @ own / np.linalg.norm(own)
        assert abs(result.evidence["distance"][i] - expected) < 1e-9
        others = [c for c in range(3) if c != labels[i]]
        centroids = [unit[labels == c].sum(0) for c in others]
        nearest = max(range(2), key=lambda j: unit[i] @ centroids[j] / np.linalg.norm(centroids[j]))
        closer = 1.0 - unit[i] @ centroids[nearest] / np.linalg.norm(centroids[nearest]) < expected
        assert result.suggested[i] == (others[nearest] if closer else -1)
