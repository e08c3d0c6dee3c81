"""Names in words for slices.

Every slice gets a name from its class mix ("mostly cat (82%)") and its over-represented
metadata ("78% hospital=3"). With a CLIP text tower, the vocabulary (class names, the shipped
visual attributes in ``core/vocabulary/visual_attributes.txt``, user terms) is scored against
the slice centroid; with texts, the slice's most distinctive TF-IDF terms are added.
"""

from __future__ import annotations

import logging
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from core.neighbours import normalise

logger = logging.getLogger(__name__)

__all__ = ["name_slices", "clip_terms", "distinctive_terms", "load_vocabulary", "PROMPT"]

#: Prompt template for vocabulary terms scored with a CLIP text tower.
PROMPT = "a photo of {}"
#: The class-mix part says "mostly X" above this share of the slice.
MOSTLY = 0.5


def load_vocabulary(name: str = "visual_attributes") -> list[str]:
    """A shipped word list from ``core/vocabulary/<name>.txt`` (one term a line, ``#`` comments)."""
    from importlib import resources

    text = resources.files("core.vocabulary").joinpath(f"{name}.txt").read_text(encoding="utf-8")
    return [t.strip() for t in text.splitlines() if t.strip() and not t.lstrip().startswith("#")]


def _class_part(mix: list[dict]) -> str:
    if not mix:
        return "unlabelled"
    top = mix[0]
    if top["share"] > MOSTLY:
        return f"mostly {top['class']} ({top['share']:.0%})"
    return " / ".join(f"{m['class']} {m['share']:.0%}" for m in mix[:3])


def _meta_part(entries: list[dict], max_items: int = 2) -> str:
    return ", ".join(f"{e['share_in_slice']:.0%} {e['column']}={e['value']}" for e in entries[:max_items])


def _centroids(vectors: np.ndarray, slice_ids: np.ndarray, slices: np.ndarray) -> np.ndarray:
    x = normalise(vectors)
    out = np.stack([x[slice_ids == s].mean(axis=0) for s in slices])
    return normalise(out)


def clip_terms(
    vectors: np.ndarray,
    slice_ids: np.ndarray,
    text_tower: Callable[[list[str]], np.ndarray],
    terms: Sequence[str],
    top: int = 3,
) -> dict[int, list[tuple[str, float]]]:
    """Vocabulary terms that describe each slice, scored with a CLIP text tower.

    A term's score for slice s is ``cos(centroid_s, t) - cos(centroid_all, t)``, where ``t`` is
    the text embedding of ``PROMPT.format(term)``: how much more the slice looks like the term
    than the data set as a whole does (plain similarity would name every slice after whatever
    the whole data set looks like). Only positive scores are kept.

    Parameters
    ----------
    text_tower : callable
        ``list[str] -> (T, D)`` vectors in the same space as ``vectors`` (normalised here).
    """
    slice_ids = np.asarray(slice_ids)
    terms = list(dict.fromkeys(t for t in terms if t))
    if not terms:
        return {}
    t = normalise(np.asarray(text_tower([PROMPT.format(term) for term in terms]), dtype=np.float32))
    slices = np.unique(slice_ids)
    cents = _centroids(vectors, slice_ids, slices)
    if t.shape[1] != cents.shape[1]:
        raise ValueError(f"text tower gives {t.shape[1]}-d vectors but the representation is {cents.shape[1]}-d")
    whole = normalise(normalise(vectors).mean(axis=0, keepdims=True))
    score = cents @ t.T - (whole @ t.T)
    out = {}
    for i, s in enumerate(slices):
        order = np.argsort(-score[i], kind="stable")[:top]
        out[int(s)] = [(terms[j], float(score[i, j])) for j in order if score[i, j] > 0]
    return out


def distinctive_terms(texts: Sequence[str], slice_ids: np.ndarray, top: int = 3, max_features: int = 50_000) -> dict[int, list[tuple[str, float]]]:
    """The words most distinctive of each slice's documents.

    TF-IDF (sublinear tf, English stop words removed, words of 3+ letters seen in 2+ documents
    and at most half of them) over all documents; a term's score for slice s is its mean weight
    in s minus its mean weight outside s. The ``top`` positive terms are returned.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    slice_ids = np.asarray(slice_ids)
    if len(texts) != slice_ids.shape[0]:
        raise ValueError(f"{len(texts)} texts but {slice_ids.shape[0]} samples")
    vec = TfidfVectorizer(
        stop_words="english",
        token_pattern=r"(?u)\b[^\W\d_]{3,}\b",
        min_df=2,
        max_df=0.5,
        sublinear_tf=True,
        max_features=max_features,
        dtype=np.float32,
    )
    try:
        m = vec.fit_transform([t if isinstance(t, str) else "" for t in texts])
    except ValueError:  # empty vocabulary
        return {int(s): [] for s in np.unique(slice_ids)}
    vocab = vec.get_feature_names_out()
    total = np.asarray(m.sum(axis=0)).ravel()
    n = slice_ids.shape[0]
    out = {}
    for s in np.unique(slice_ids):
        mask = slice_ids == s
        inside = np.asarray(m[mask].sum(axis=0)).ravel()
        k = int(mask.sum())
        rest = (total - inside) / max(n - k, 1)
        score = inside / k - rest
        order = np.argsort(-score, kind="stable")[:top]
        out[int(s)] = [(str(vocab[j]), float(score[j])) for j in order if score[j] > 0]
    return out


def name_slices(
    table: pd.DataFrame,
    slice_ids: np.ndarray,
    vectors: np.ndarray | None,
    class_names: Sequence[str] | None = None,
    texts: Sequence[str] | None = None,
    metadata: pd.DataFrame | None = None,
    text_tower: Callable[[list[str]], np.ndarray] | None = None,
    extra_terms: Sequence[str] = (),
) -> dict[int, str]:
    """A name in words for every slice.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`core.slices.metrics.slice_table` (its ``class_mix`` and
        ``metadata_overrepresentation`` columns are used; ``metadata`` here is only needed when
        the table was built without it).
    slice_ids : np.ndarray
        int, shape (N,).
    vectors : np.ndarray, optional
        The representation, needed with ``text_tower``.
    class_names : sequence of str, optional
        Scored as vocabulary terms with ``text_tower``.
    texts : sequence of str, optional
        One document per sample: adds the slice's most distinctive words.
    metadata : pandas.DataFrame, optional
        Used for over-represented values when the table has none.
    text_tower : callable, optional
        ``list[str] -> (T, D)``, CLIP text embeddings in the space of ``vectors``.
    extra_terms : sequence of str, default ()
        User terms added to the CLIP vocabulary.

    Returns
    -------
    dict[int, str]
        slice id -> name, e.g. ``"mostly dog (90%); looks like: on grass, close-up; 78% site=3"``.
        Parts: class mix (always), CLIP terms, text terms, metadata; joined by ``"; "``.
    """
    from core.slices.metrics import metadata_overrepresentation

    slice_ids = np.asarray(slice_ids)
    meta = dict(zip(table["slice_id"].astype(int), table["metadata_overrepresentation"]))
    if metadata is not None and not any(meta.values()):
        meta = metadata_overrepresentation(slice_ids, metadata)
    clip: dict[int, list[tuple[str, float]]] = {}
    if text_tower is not None:
        if vectors is None:
            raise ValueError("naming with a text tower needs the vectors")
        terms = [*(class_names or []), *load_vocabulary("visual_attributes"), *extra_terms]
        clip = clip_terms(vectors, slice_ids, text_tower, terms)
    words = distinctive_terms(texts, slice_ids) if texts is not None else {}
    names = {}
    for _, row in table.iterrows():
        s = int(row["slice_id"])
        parts = [_class_part(row["class_mix"])]
        if clip.get(s):
            top_class = (row["class_mix"] or [{}])[0].get("class")
            looks = [t for t, _ in clip[s] if t != top_class][:2]
            if looks:
                parts.append("looks like: " + ", ".join(looks))
        if words.get(s):
            parts.append("words: " + ", ".join(t for t, _ in words[s]))
        m = _meta_part(meta.get(s, []))
        if m:
            parts.append(m)
        names[s] = "; ".join(parts)
    return names
