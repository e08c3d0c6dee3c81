"""The patterns across failures: each free-text dimension (cause, fix) clustered on its own.

1. Compress: a model server's sentence names the classes it saw confused ("the cat is labelled
   dog because the image is blurry"). Embedded as is, answers group by which classes were
   confused, not by why; so class names, quoted words and the boilerplate every answer shares
   ("the model", "this image", "likely", ...) are stripped first, and the answer cut to its first
   sentence.
2. Embed with the bundled offline text embedder (all-MiniLM-L6-v2; no network).
3. k-means with k chosen by silhouette (cosine) among 2..:data:`MAX_K`; one cluster when there
   are too few answers or no k separates them (best silhouette under :data:`MIN_SILHOUETTE`).
4. Name each cluster in words: its most distinctive terms (TF-IDF inside the cluster minus
   outside) and its most typical answer (the one nearest the centroid).
5. Count members per class pair (given -> predicted) and per slice of the analysis.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Callable, Optional, Sequence

import numpy as np
import pandas as pd

from core.hypotheses import store
from core.hypotheses.failures import class_pair
from core.util import ProgressCallback, no_progress, unit_rows

MAX_K = 8
#: Below this best silhouette the answers form one group (k-means always finds k groups; a
#: silhouette near 0 says they are not there).
MIN_SILHOUETTE = 0.05
MAX_WORDS = 30
#: Two distinct answers at least this similar (cosine) are one cluster (no silhouette with two).
SAME_ANSWER = 0.8
#: Phrases every answer shares that say nothing about the cause (lower case, longest first).
BOILERPLATE = (
    "was misclassified as", "is misclassified as", "misclassified as", "was mistaken for", "mistaken for",
    "was confused with", "confused with", "is labelled as", "is labeled as", "labelled as", "labeled as",
    "was predicted as", "predicted as", "instead of", "rather than", "the classifier", "the model", "this model",
    "the network", "this image", "the image", "this picture", "the picture", "this photo", "the photo",
    "this sample", "the sample", "this text", "the text", "this document", "the document", "this post",
    "the post", "the given label", "the label", "it is likely that", "it seems that", "it appears that",
    "most likely", "likely", "probably", "possibly", "appears to", "seems to", "may have", "might have",
)
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s")
_QUOTED = re.compile(r"(\"[^\"]*\"|“[^”]*”|'[^']*'|`[^`]*`)")


def compress(text: str, class_names: Sequence[str]) -> str:
    """The answer reduced to what it says about the cause (see the module docstring)."""
    out = str(text or "").strip()
    out = _SENTENCE_END.split(out, maxsplit=1)[0] if out else ""
    out = _QUOTED.sub(" ", out).lower()
    names = sorted({n.lower() for n in class_names} | {n.lower().replace("_", " ") for n in class_names}, key=len,
                   reverse=True)
    for name in names:
        if name.strip():
            out = re.sub(rf"(?<!\w){re.escape(name)}(?:s|es)?(?!\w)", " ", out)
    for phrase in BOILERPLATE:
        out = re.sub(rf"(?<!\w){re.escape(phrase)}(?!\w)", " ", out)
    out = re.sub(r"[^\w\s'-]", " ", out)
    words = out.split()[:MAX_WORDS]
    return " ".join(words)


def choose_k(vectors: np.ndarray, max_k: int = MAX_K, seed: int = 0) -> tuple[int, Optional[float], np.ndarray]:
    """(k, its silhouette or None, labels): k-means for k in 2..max_k, the k of the best cosine
    silhouette; 1 when the best is under MIN_SILHOUETTE. Two or three distinct answers that are all
    less alike than SAME_ANSWER are a cluster each.

    Identical answers (a model at temperature 0 says the same thing about similar samples) are
    clustered once, weighted by how often they occur: counted one by one, k identical groups make
    a perfect silhouette at k = their number, whatever they say.
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    n = vectors.shape[0]
    distinct, inverse, counts = np.unique(np.round(vectors, 5), axis=0, return_inverse=True, return_counts=True)
    inverse = np.asarray(inverse).reshape(-1)
    m = distinct.shape[0]
    if m < 2:
        return 1, None, np.zeros(n, dtype=np.int64)
    if m <= 3:
        # Two or three distinct answers, all saying different things: each is its own pattern
        # (silhouette cannot pick k = their number, and with two there is no silhouette at all).
        similar = unit_rows(distinct) @ unit_rows(distinct).T
        np.fill_diagonal(similar, -1.0)
        if similar.max() < SAME_ANSWER:
            return m, None, inverse.astype(np.int64)
        if m == 2:
            return 1, None, np.zeros(n, dtype=np.int64)
    best: tuple[int, float, np.ndarray] | None = None
    for k in range(2, min(max_k, m - 1) + 1):
        labels = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(distinct, sample_weight=counts)
        if len(set(labels)) < 2:
            continue
        score = float(silhouette_score(distinct, labels, metric="cosine"))
        if best is None or score > best[1] + 1e-9:
            best = (k, score, labels)
    if best is None or best[1] < MIN_SILHOUETTE:
        return 1, None if best is None else best[1], np.zeros(n, dtype=np.int64)
    return best[0], best[1], best[2].astype(np.int64)[inverse]


#: Words every cause or fix may use that name no pattern (on top of English stop words).
GENERIC_WORDS = {"add", "adding", "class", "classes", "example", "examples", "image", "images", "photo", "photos",
                 "picture", "model", "models", "training", "train", "sample", "samples", "data", "make", "use", "learn",
                 "learns", "better", "help", "helps", "ensure", "improve", "include", "object", "objects"}


def _stop_words() -> list[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return sorted(ENGLISH_STOP_WORDS | GENERIC_WORDS)


def _terms(texts: Sequence[str], labels: np.ndarray, top: int = 3) -> dict[int, list[str]]:
    """The words most distinctive of each cluster (mean TF-IDF inside minus outside)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    try:
        matrix = TfidfVectorizer(stop_words=_stop_words(), token_pattern=r"(?u)\b[^\W\d_]{3,}\b",
                                 sublinear_tf=True).fit(texts)
    except ValueError:  # nothing but stop words
        return {int(c): [] for c in np.unique(labels)}
    weights = matrix.transform(texts)
    vocab = matrix.get_feature_names_out()
    out = {}
    for c in np.unique(labels):
        inside = np.asarray(weights[labels == c].mean(axis=0)).ravel()
        outside = np.asarray(weights[labels != c].mean(axis=0)).ravel() if (labels != c).any() else 0.0
        score = inside - outside
        order = np.argsort(-score, kind="stable")[:top]
        out[int(c)] = [str(vocab[j]) for j in order if score[j] > 0]
    return out


def name(terms: Sequence[str], typical: str) -> str:
    """A cluster's name in words: its distinctive terms, else the start of its typical answer."""
    if terms:
        return ", ".join(terms).capitalize()
    words = typical.split()
    return (" ".join(words[:6]) + ("…" if len(words) > 6 else "")).capitalize() or "(no words)"


def cluster_dimension(project: Any, dimension: str, embed: Optional[Callable[[list[str]], np.ndarray]] = None,
                      max_k: int = MAX_K, progress: ProgressCallback = no_progress) -> dict:
    """Cluster every explained hypothesis on one free-text dimension and store the clustering;
    returns it as :func:`core.hypotheses.store.latest_clustering` does."""
    frame = store.hypotheses(project)
    if frame.empty:
        return {"k": 0, "silhouette": None, "clusters": [], "members": frame}
    classes = project.labels()
    originals = frame[dimension].fillna("").astype(str).tolist()
    compressed = [compress(t, classes) or t.lower() for t in originals]
    progress(f"clusters: {dimension}", 0, 1)
    if embed is None:
        from core.embed.fallback import offline

        embedder = offline("text")
        embed, embedder_name = embedder.embed_texts, embedder.name
    else:
        embedder_name = getattr(embed, "__name__", "given")
    vectors = unit_rows(np.asarray(embed(compressed), dtype=np.float32))
    k, silhouette, labels = choose_k(vectors, max_k=max_k)
    terms = _terms(compressed, labels)
    pairs = [class_pair(g, p[0][0] if len(p) else None) for g, p in zip(frame["given_label"], frame["predictions"])]
    slices = frame["slice_id"].tolist()
    clusters = []
    for c in range(k):
        members = np.flatnonzero(labels == c)
        centroid = vectors[members].mean(axis=0)
        typical = int(members[np.argmax(vectors[members] @ centroid)])
        pair_counts = Counter(pairs[i] for i in members)
        slice_counts = Counter(int(slices[i]) for i in members if not pd.isna(slices[i]))
        clusters.append({
            "cluster": c, "name": name(terms.get(c, []), compressed[typical]), "terms": terms.get(c, []),
            "size": int(members.size), "typical": originals[typical],
            "typical_hypothesis": int(frame["hypothesis_id"].iloc[typical]),
            "class_pairs": dict(pair_counts.most_common()),
            "slices": {str(s): n for s, n in slice_counts.most_common()},
        })
    # Biggest first, renumbered, so cluster 0 is always the commonest pattern.
    order = sorted(range(k), key=lambda c: (-clusters[c]["size"], c))
    renumber = {old: new for new, old in enumerate(order)}
    clusters = [{**clusters[old], "cluster": new} for new, old in enumerate(order)]
    members = [(int(h), renumber[int(lab)], t) for h, lab, t in zip(frame["hypothesis_id"], labels, compressed)]
    settings = {"embedder": embedder_name, "max_k": max_k, "min_silhouette": MIN_SILHOUETTE, "method": "kmeans",
                "metric": "cosine", "hypotheses": len(frame)}
    store.save_clustering(project, dimension, k, silhouette, settings, clusters, members)
    progress(f"clusters: {dimension}", 1, 1)
    return store.latest_clustering(project, dimension)


def cluster_all(project: Any, embed: Optional[Callable[[list[str]], np.ndarray]] = None,
                progress: ProgressCallback = no_progress) -> dict:
    """Cluster both free-text dimensions; {dimension: {clusters, silhouette}}."""
    from core.hypotheses.prompts import FREE_TEXT

    out = {}
    for dimension in FREE_TEXT:
        made = cluster_dimension(project, dimension, embed=embed, progress=progress)
        out[dimension] = {"clusters": int(made["k"]), "silhouette": made["silhouette"]}
    return out
