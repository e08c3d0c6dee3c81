import numpy as np

from core.detect.neighbours_vote import score, vote_shares
from core.neighbours import KnnGraph, build_knn_graph


def test_planted_errors_are_outvoted(planted):
    vectors, noisy, truth, wrong = planted
    g = build_knn_graph(vectors, k=10, device="cpu")
    r = score(g, noisy, 3)
    assert set(np.flatnonzero(r.flagged)) == set(wrong.tolist())
    assert r.suggested[wrong].tolist() == truth[wrong].tolist()
    assert (r.evidence["suggested_votes"][wrong] >= 9).all()
    # the support lists real neighbours that carry the suggestion
    sup = r.evidence["support"][5]
    sup = sup[sup >= 0]
    assert sup.size >= 9 and (noisy[sup] == truth[5]).all()


def test_clean_data_flags_nothing(clean_data):
    vectors, labels = clean_data
    r = score(build_knn_graph(vectors, k=10, device="cpu"), labels, 3)
    assert not r.flagged.any()
    assert r.scores.max() < 0.2


def test_votes_are_similarity_weighted():
    # one close neighbour labelled 1 outweighs two distant ones labelled 2
    g = KnnGraph(np.array([[1, 2, 3]]), np.array([[0.9, 0.1, 0.1]], np.float32))
    labels = np.array([0, 1, 2, 2])
    shares = vote_shares(KnnGraph(np.vstack([g.indices, [[0, 2, 3]], [[0, 1, 3]], [[0, 1, 2]]]),
                                  np.vstack([g.similarities] * 4)), labels, 3)
    assert shares[0].argmax() == 1
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)
