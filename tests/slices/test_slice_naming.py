"""Names in words: metadata, class mix, CLIP vocabulary, distinctive text terms."""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.slices import clip_terms, distinctive_terms, load_vocabulary, name_slices, slice_table


def test_slice_all_one_metadata_value_is_named_by_it(planted):
    clusters = planted["clusters"]
    ids = clusters.copy()  # slices = the constructed clusters
    rng = np.random.default_rng(0)
    hospital = np.where(clusters == 3, "H3", rng.choice(["H1", "H2", "H4"], clusters.size))
    meta = pd.DataFrame({"hospital": hospital, "patient_id": [f"p{i:05d}" for i in range(clusters.size)]})
    table = slice_table(ids, planted["noisy"], planted["probs"], n_classes=3, class_names=["a", "b", "c"], metadata=meta)
    over = table.set_index("slice_id").loc[3, "metadata_overrepresentation"]
    assert over[0]["column"] == "hospital" and over[0]["value"] == "H3" and over[0]["share_in_slice"] == 1.0
    assert over[0]["lift"] > 5
    names = name_slices(table, ids, planted["x"], ["a", "b", "c"])
    assert "100% hospital=H3" in names[3]
    assert "hospital=H3" not in names[0]
    assert all("patient_id" not in n for n in names.values())  # id-like columns are not "over-represented"


def test_class_mix_in_the_name():
    ids = np.array([0] * 10 + [1] * 10)
    labels = np.array([0] * 9 + [1] + [0] * 5 + [1] * 5)
    probs = np.full((20, 2), 0.5)
    table = slice_table(ids, labels, probs, class_names=["cat", "dog"])
    names = name_slices(table, ids, None, ["cat", "dog"])
    assert names[0].startswith("mostly cat (90%)")
    assert names[1].startswith("cat 50% / dog 50%")


def test_text_slice_named_by_its_planted_word():
    rng = np.random.default_rng(0)
    filler = ["report", "market", "weather", "meeting", "season", "people", "house", "school", "money", "game"]
    docs, ids = [], []
    for i in range(200):
        words = list(rng.choice(filler, 12))
        if i < 50:
            words += ["zebra", "zebra", "stripes"]
        docs.append(" ".join(words))
        ids.append(0 if i < 50 else 1)
    terms = distinctive_terms(docs, np.array(ids))
    assert terms[0][0][0] == "zebra" and "stripes" in [t for t, _ in terms[0]]
    assert "zebra" not in [t for t, _ in terms[1]]
    table = slice_table(np.array(ids), np.zeros(200, int), np.ones((200, 1)))
    assert "words: zebra" in name_slices(table, np.array(ids), None, ["x"], texts=docs)[0]


def test_clip_vocabulary_scores_terms_against_the_slice_centroid():
    # A text tower whose embedding of "grass" points at slice 0's region and "sky" at slice 1's:
    # the scoring must pick each slice's own term, and not a term every slice is close to.
    rng = np.random.default_rng(0)
    d = 16
    grass, sky, common = np.eye(d)[0], np.eye(d)[1], np.eye(d)[2]
    x = np.concatenate([grass + common + rng.normal(0, 0.1, (50, d)), sky + common + rng.normal(0, 0.1, (50, d))])
    ids = np.r_[np.zeros(50, int), np.ones(50, int)]
    table_vecs = {"a photo of on grass": grass, "a photo of in the sky": sky, "a photo of a photo": common}

    def tower(prompts):
        return np.stack([table_vecs.get(p, np.eye(d)[3 + len(p) % 12]) for p in prompts])  # others: unrelated axes

    out = clip_terms(x, ids, tower, ["on grass", "in the sky", "a photo"])
    assert out[0][0][0] == "on grass" and out[1][0][0] == "in the sky"
    assert "a photo" not in [t for t, _ in out[0] + out[1]]
    table = slice_table(ids, np.zeros(100, int), np.ones((100, 1)), class_names=["thing"])
    names = name_slices(table, ids, x, ["thing"], text_tower=tower, extra_terms=["a photo"])
    assert "looks like: on grass" in names[0] and "looks like: in the sky" in names[1]


def test_shipped_vocabulary():
    terms = load_vocabulary()
    assert 100 <= len(terms) <= 200 and len(set(terms)) == len(terms)
    for t in ("blurry", "close-up", "on grass", "in the sky", "on water", "at night"):
        assert t in terms
