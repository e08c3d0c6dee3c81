"""Detection quality on the shared data pack: Amend's combined ranking next to cleanlab alone.

Cases
-----
(a) CIFAR-10N ``aggregate`` and ``worst`` labels with the shipped out-of-sample probabilities
    (ground truth: label != clean).
(b) CIFAR-10N with image vectors (EfficientNet-Lite0, 1280-d): from ``--vectors path.npy``
    (rows = ``--ids``, default ids 0..n-1), or computed with ``core.embed`` when it is importable
    and ``--embed`` is given (slow on CPU); skipped with a printed line otherwise.
(c) 20 Newsgroups test split with MiniLM vectors and cleanlab's probabilities; positives are the
    82 Mechanical-Turk-confirmed errors, every other item counts as negative (the 7,439
    unreviewed items are unknown, so precision here is a lower bound; and the 93 reviewed items
    were chosen by cleanlab from these same probabilities, which favours cleanlab alone).
(d) (with b) a class-imbalanced subsample of (b): class c keeps 0.5 ** (c / 3) of its images.
(e) two-class subsets of (b): a pair of classes the annotators confuse (cat / dog, automobile /
    truck, deer / horse), the images whose clean and noisy labels are both in the pair.
(f) two-class text: pairs of 20 Newsgroups groups (MiniLM vectors, vectors only) with 5 % and
    15 % of the labels flipped at random (seeded). A label is wrong when it is not the text's
    true group: the group it was posted to, except where the human review of (c) confirmed that
    one wrong (then the group the review suggested; where it named none, a label other than the
    given one is left out of the figures, its truth unknown). So the flips are the errors, and
    the few confirmed errors of the pair count as well (one is a post cross-posted to hockey and
    baseball: the review called its hockey copy wrong).
(g) (with b) a label given mostly by mistake, planted in the aggregate labels of (b): a retired
    label (an eleventh class with no true member, left on 20 cat images), and a rare label
    over-used (horse kept on 10 of its images, the others left out, and given to 40 deer images).
    Confident learning's threshold for such a label falls to a trace of probability.
``--news20-vectors lsa`` runs (c) and (f) on a second representation of the same texts, made here
(TF-IDF + truncated SVD), instead of the MiniLM vectors.

Run: ``python bench/quality.py [--sweep] [--vectors cifar.npy [--ids ids.npy]]``. The data pack is
found via ``AMEND_SHARED_DATA`` (default ``../shared/data`` next to the repository).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sklearn.metrics import average_precision_score, roc_auc_score  # noqa: E402

from core.detect import DetectConfig, detect  # noqa: E402
from core.detect import confident as confident_mod  # noqa: E402
from core.detect.probe import DEFAULT_C, cross_validated_probabilities  # noqa: E402
from core.detect.rank import rank  # noqa: E402

SHARED = Path(os.environ.get("AMEND_SHARED_DATA", REPO / ".." / "shared" / "data"))
COLUMNS = ("AUROC", "AUPRC", "P@k", "R@k", "flag P", "flag R", "flag F1", "#flag", "flag share", "mean P(wrong)")


def metrics(truth: np.ndarray, score: np.ndarray, flagged: np.ndarray, error_probability=None) -> dict:
    """AUROC, AUPRC, precision/recall at k = number of true errors, and of the flagged set (with
    the mean estimated error probability of the flags, to set beside their real precision).
    ``truth`` is bool, or int with -1 where it is unknown: those rows are left out of every figure."""
    truth = np.asarray(truth)
    if truth.dtype != bool:
        known = truth >= 0
        truth, score, flagged = truth[known].astype(bool), np.asarray(score)[known], np.asarray(flagged)[known]
        error_probability = None if error_probability is None else np.asarray(error_probability)[known]
    k = int(truth.sum())
    top = np.lexsort((np.arange(score.size), -score))[:k]
    hits = truth[top].sum()
    tp = (flagged & truth).sum()
    p = tp / max(1, flagged.sum())
    r = tp / max(1, k)
    return {
        "AUROC": roc_auc_score(truth, score),
        "AUPRC": average_precision_score(truth, score),
        "P@k": hits / max(1, k),
        "R@k": hits / max(1, k),
        "flag P": p,
        "flag R": r,
        "flag F1": 0.0 if p + r == 0 else 2 * p * r / (p + r),
        "#flag": int(flagged.sum()),
        "flag share": float(flagged.mean()),
        "mean P(wrong)": float(np.mean(error_probability[flagged])) if error_probability is not None and flagged.any() else "",
    }


def row(case: str, method: str, m: dict) -> str:
    cells = [f"{m[c]:.4f}" if isinstance(m[c], float) else str(m[c]) for c in COLUMNS]
    return f"| {case} | {method} | " + " | ".join(cells) + " |"


def header() -> str:
    return "| case | method | " + " | ".join(COLUMNS) + " |\n|" + "---|" * (len(COLUMNS) + 2)


#: (e) class pairs for the two-class subsets.
BINARY_PAIRS = (("cat", "dog"), ("automobile", "truck"), ("deer", "horse"))
#: (f) pairs of 20 Newsgroups groups: near topics, far topics, one pair with cross-posts.
NEWS_PAIRS = (("rec.sport.hockey", "rec.sport.baseball"), ("comp.sys.ibm.pc.hardware", "comp.sys.mac.hardware"),
              ("talk.politics.guns", "talk.politics.misc"), ("sci.med", "sci.space"),
              ("alt.atheism", "soc.religion.christian"), ("rec.autos", "rec.motorcycles"))
NEWS_FLIP_RATES = (0.05, 0.15)


def cifar_labels():
    import pandas as pd

    d = SHARED / "cifar10n"
    names = (d / "classes.txt").read_text().split()
    frame = pd.read_csv(d / "labels.csv")
    return names, {c: frame[c].map(names.index).to_numpy()
                   for c in ("clean", "aggregate", "random1", "random2", "random3", "worst")}


def mistaken_labels(vectors, ids, names, lab):
    """(g): (case, rows kept, labels, truth, number of classes) for each label given mostly by
    mistake, planted in the aggregate labels of the --vectors images (seeded)."""
    rng = np.random.default_rng(0)
    clean, given = lab["clean"][ids], lab["aggregate"][ids].copy()
    out = []
    # a retired label: an eleventh class that no image belongs to, left on 20 cat images
    retired = given.copy()
    retired[rng.choice(np.flatnonzero(clean == names.index("cat")), 20, replace=False)] = len(names)
    keep = np.ones(ids.size, dtype=bool)
    out.append((f"(g) CIFAR-10N aggregate, a retired 11th label on 20 cat images, {ids.size} images, vectors only",
                keep, retired, retired != clean, len(names) + 1))
    # a rare label over-used: horse kept on 10 of its images, and given to 40 deer images
    horse, deer = names.index("horse"), names.index("deer")
    horses = np.flatnonzero(clean == horse)
    keep = ~np.isin(np.arange(ids.size), horses[10:])
    overused = given.copy()
    overused[rng.choice(np.flatnonzero((clean == deer) & keep), 40, replace=False)] = horse
    out.append((f"(g) CIFAR-10N aggregate, horse kept on 10 images and given to 40 deer, {int(keep.sum())} images, "
                "vectors only", keep, overused[keep], overused[keep] != clean[keep], len(names)))
    return out


def news20():
    import pandas as pd

    d = SHARED / "news20"
    rows = [json.loads(line) for line in open(d / "test.jsonl")]
    names = sorted({r["label"] for r in rows})
    labels = np.array([names.index(r["label"]) for r in rows])
    ce = pd.read_csv(d / "confirmed_errors.csv")
    truth = np.zeros(labels.size, bool)
    truth[[int(i[1:]) for i in ce.id[ce.confirmed_error.astype(str).str.lower() == "true"]]] = True
    return names, labels, truth, np.load(d / "minilm.npy"), np.load(d / "pred_probs_cleanlab.npy")


def news20_reviewed_labels(names: list[str]) -> np.ndarray:
    """Per text: the label index the human review suggested for a confirmed error (-1 where it
    confirmed the error but named no label), -2 where the review confirmed no error."""
    import pandas as pd

    ce = pd.read_csv(SHARED / "news20" / "confirmed_errors.csv", dtype=str).fillna("")
    n = sum(1 for _ in open(SHARED / "news20" / "test.jsonl"))
    reviewed = np.full(n, -2, dtype=np.int64)
    for sample_id, suggested, confirmed in zip(ce.id, ce.suggested_label, ce.confirmed_error):
        if confirmed.lower() == "true":
            reviewed[int(sample_id[1:])] = names.index(suggested) if suggested in names else -1
    return reviewed


def pair_truth(noisy: np.ndarray, given: np.ndarray, reviewed: np.ndarray, pair: tuple[int, int]) -> np.ndarray:
    """(f) whether each label of a two-class subset is wrong: 1 wrong, 0 right, -1 unknown.

    A label is right when it is the text's true group: its given group, unless the human review
    confirmed that one wrong; then the group the review suggested (a label of the pair is wrong
    when that lies outside the pair), and unknown where the review named none and the label is
    not the given one. ``noisy`` holds the pair's labels (0 / 1), ``given`` and ``reviewed`` the
    20-group indices (:func:`news20_reviewed_labels`)."""
    current = np.asarray(pair)[noisy]
    truth = (current != given).astype(np.int64)
    confirmed = reviewed > -2
    truth[confirmed & (current == given)] = 1
    named = confirmed & (reviewed >= 0)
    truth[named] = (current[named] != reviewed[named]).astype(np.int64)
    truth[confirmed & (reviewed == -1) & (current != given)] = -1
    return truth


def news20_lsa(dim: int = 256) -> np.ndarray:
    """A second text representation of the same posts, made here: TF-IDF (sublinear term frequency,
    words in at least two posts and at most half of them) reduced to ``dim`` axes by a truncated SVD
    (latent semantic analysis), rows scaled to unit length."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = [json.loads(line)["text"] for line in open(SHARED / "news20" / "test.jsonl")]
    counts = TfidfVectorizer(sublinear_tf=True, min_df=2, max_df=0.5).fit_transform(texts)
    reduced = TruncatedSVD(dim, random_state=0).fit_transform(counts)
    return (reduced / np.linalg.norm(reduced, axis=1, keepdims=True)).astype(np.float32)


def sweep(case: str, det, labels, truth, probe_probs=None, given=None) -> list[str]:
    """Re-rank the same detector results with other combinations (and probability blends)."""
    out = []
    base = det.results
    trials = [
        ("cleanlab alone", "weighted", {"confident": 1.0}),
        ("mean of ranks (all)", "mean_rank", None),
        ("max (all)", "max", None),
        ("noisy-or (all)", "noisy_or", None),
        ("weighted c1 n0.1", "weighted", {"confident": 1, "neighbours_vote": 0.1, "outliers": 0, "duplicates": 0.5}),
        ("weighted c1 n0.2", "weighted", {"confident": 1, "neighbours_vote": 0.2, "outliers": 0, "duplicates": 0.5}),
        ("weighted c1 n0.3", "weighted", {"confident": 1, "neighbours_vote": 0.3, "outliers": 0, "duplicates": 0.5}),
        ("weighted c1 n0.5", "weighted", {"confident": 1, "neighbours_vote": 0.5, "outliers": 0, "duplicates": 0.5}),
        ("weighted c1 n0.1 o0.1", "weighted", {"confident": 1, "neighbours_vote": 0.1, "outliers": 0.1, "duplicates": 0.5}),
        ("weighted c1 o0.1", "weighted", {"confident": 1, "neighbours_vote": 0, "outliers": 0.1, "duplicates": 0.5}),
    ]
    for label, method, weights in trials:
        results = base
        if weights is not None:
            results = {k: v for k, v in base.items() if weights.get(k, 0) > 0 or k == "confident"}
        r = rank(results, labels, method=method, weights=weights)
        out.append(row(case, label, metrics(truth, r.score, r.flagged)))
    for strength in (0.25, 0.5):
        r = rank(base, labels, weights=det.params["ranking"]["weights"], class_strength=strength)
        out.append(row(case, f"default + class_normalise {strength}", metrics(truth, r.score, r.flagged)))
    if probe_probs is not None and given is not None:
        for w in (0.25, 0.5, 1.0):
            blend = (given + w * probe_probs) / (1 + w)
            c = confident_mod.score(labels, blend)
            out.append(row(case, f"cleanlab on given+{w}*probe probs", metrics(truth, c.scores, c.flagged)))
            res = dict(base)
            res["confident"] = c
            r = rank(res, labels, weights=det.params["ranking"]["weights"])
            out.append(row(case, f"default on given+{w}*probe probs", metrics(truth, r.score, r.flagged)))
    return out


def compare(case, vectors, labels, n_classes, truth, probs, do_sweep, lines, sweeps, timings):
    t0 = time.perf_counter()
    det = detect(vectors, labels, n_classes, probabilities=probs, config=DetectConfig())
    timings[case] = time.perf_counter() - t0
    # cleanlab alone on the same inputs: the given probabilities, or the same probe's (at the
    # strength Amend chose) when none are given; and on the probe at the fixed C of earlier runs
    if probs is None and vectors is not None:
        chosen = det.params["probe"]["C"]
        base = cross_validated_probabilities(vectors, labels, n_classes, C=chosen)
        alone = confident_mod.score(labels, base)
        lines.append(row(case, f"cleanlab alone (probe C={chosen:.3g})",
                         metrics(truth, alone.scores, alone.flagged, alone.evidence["error_probability"])))
        if chosen != DEFAULT_C:
            fixed = confident_mod.score(labels, cross_validated_probabilities(vectors, labels, n_classes, C=DEFAULT_C))
            lines.append(row(case, f"cleanlab alone (probe C={DEFAULT_C:g}, fixed)",
                             metrics(truth, fixed.scores, fixed.flagged, fixed.evidence["error_probability"])))
    else:
        alone = confident_mod.score(labels, probs)
        lines.append(row(case, "cleanlab alone", metrics(truth, alone.scores, alone.flagged, alone.evidence["error_probability"])))
    weights = det.params["pool"]["weights"]
    lines.append(row(case, f"Amend (pool {', '.join(f'{k} {v:.2f}' for k, v in weights.items())})",
                     metrics(truth, det.score, det.flagged, det.error_probability)))
    if probs is not None and vectors is not None:
        both = detect(vectors, labels, n_classes, probabilities=probs, config=DetectConfig(pool="all"))
        weights = both.params["pool"]["weights"]
        lines.append(row(case, f"Amend pool=all ({', '.join(f'{k} {v:.2f}' for k, v in weights.items())})",
                         metrics(truth, both.score, both.flagged, both.error_probability)))
    if do_sweep:
        probe_probs = None
        if vectors is not None and probs is not None:
            probe_probs = cross_validated_probabilities(vectors, labels, n_classes)
        sweeps.extend(sweep(case, det, labels, truth, probe_probs, probs))
    return det


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet18,swin_base_patch4_window7_224", help="CIFAR-10N probability files")
    ap.add_argument("--vectors", type=Path, help="(b) CIFAR-10N image vectors, .npy (N, D)")
    ap.add_argument("--ids", type=Path, help="(b) .npy or text file of the image ids of the --vectors rows")
    ap.add_argument("--embed", action="store_true", help="(b) compute vectors with core.embed (slow on CPU)")
    ap.add_argument("--limit", type=int, default=50000, help="(b) with --embed: first N images")
    ap.add_argument("--sweep", action="store_true", help="also print the combinations tried")
    ap.add_argument("--news20-vectors", choices=("minilm", "lsa"), default="minilm",
                    help="(c, f) the 20 Newsgroups representation: the shipped MiniLM vectors, or TF-IDF + "
                         "truncated SVD (256-d) made from the texts here")
    ap.add_argument("--cases", default="a,b,c", help="which of the cases a, b (with d), c, e, f, g to run (b, d, e and g "
                                                     "need --vectors or --embed)")
    args = ap.parse_args(argv)
    cases = set(args.cases.split(","))
    if not (SHARED / "cifar10n" / "labels.csv").exists():
        print(f"shared data not found at {SHARED}; set AMEND_SHARED_DATA")
        return 1
    lines, sweeps, timings = [], [], {}
    names, lab = cifar_labels()
    # (a) shipped probabilities, no vectors
    for labelset in ("aggregate", "worst") if "a" in cases else ():
        truth = lab[labelset] != lab["clean"]
        for model in args.models.split(","):
            probs = np.load(SHARED / "cifar10n" / f"pred_probs_{model}_{labelset}.npy")
            case = f"(a) CIFAR-10N {labelset}, {model.split('_')[0]} probs"
            compare(case, None, lab[labelset], 10, truth, probs, args.sweep, lines, sweeps, timings)
    # (b) image vectors
    vectors, ids = None, None
    if not cases & {"b", "e", "g"}:
        pass
    elif args.vectors is not None:
        vectors = np.load(args.vectors).astype(np.float32)
        if args.ids is not None:
            ids = np.load(args.ids) if args.ids.suffix == ".npy" else np.loadtxt(args.ids, dtype=np.int64)
        else:
            ids = np.arange(vectors.shape[0])
            print(f"(b) --ids not given: assuming the {ids.size} vector rows are images 0..{ids.size - 1}")
    elif args.embed:
        try:
            from core.embed.offline import offline_embedder
        except ImportError as exc:
            print(f"(b) skipped: core.embed is not importable ({exc})")
        else:
            vectors, ids = embed_cifar(offline_embedder("image"), args.limit)
    else:
        print("(b) skipped: no --vectors given (pass --vectors cifar.npy [--ids ids.npy], or --embed to compute "
              "them with core.embed)")
    if vectors is not None:
        ids = np.asarray(ids, dtype=np.int64)
    if vectors is not None and "b" in cases:
        for labelset in ("aggregate", "random1", "random2", "random3", "worst"):
            labels = lab[labelset][ids]
            truth = labels != lab["clean"][ids]
            case = f"(b) CIFAR-10N {labelset}, {ids.size} images, vectors only"
            compare(case, vectors, labels, 10, truth, None, args.sweep, lines, sweeps, timings)
            if labelset in ("aggregate", "worst"):
                probs = np.load(SHARED / "cifar10n" / f"pred_probs_resnet18_{labelset}.npy")[ids]
                case = f"(b) CIFAR-10N {labelset}, {ids.size} images, vectors + resnet18 probs"
                compare(case, vectors, labels, 10, truth, probs, args.sweep, lines, sweeps, timings)
        # (d) class-imbalanced: class c keeps 0.5 ** (c / 3) of its images (100 % down to 12.5 %);
        # real minority classes are where confident learning over-flags.
        rng = np.random.default_rng(0)
        clean = lab["clean"][ids]
        keep = rng.random(ids.size) < 0.5 ** (clean / 3.0)
        for labelset in ("aggregate", "random1"):
            labels = lab[labelset][ids][keep]
            truth = labels != clean[keep]
            case = f"(d) CIFAR-10N {labelset}, imbalanced {int(keep.sum())} images, vectors only"
            compare(case, vectors[keep], labels, 10, truth, None, args.sweep, lines, sweeps, timings)
    # (e) two classes (as in sentiment or a positive / negative finding): a pair CIFAR-10N's
    # annotators confuse, images whose clean and noisy labels are both in the pair.
    if vectors is not None and "e" in cases:
        for a, b in BINARY_PAIRS:
            ia, ib = names.index(a), names.index(b)
            clean = lab["clean"][ids]
            for labelset in ("aggregate", "random1"):
                noisy = lab[labelset][ids]
                keep = np.isin(clean, (ia, ib)) & np.isin(noisy, (ia, ib))
                labels = (noisy[keep] == ib).astype(np.int64)
                truth = noisy[keep] != clean[keep]
                case = f"(e) CIFAR-10N {labelset}, {a} vs {b}, {int(keep.sum())} images, vectors only"
                compare(case, vectors[keep], labels, 2, truth, None, args.sweep, lines, sweeps, timings)
    if vectors is not None and "g" in cases:
        for case, keep, labels, truth, n_classes in mistaken_labels(vectors, ids, names, lab):
            compare(case, vectors[keep], labels, n_classes, truth, None, args.sweep, lines, sweeps, timings)
    # (c) 20 Newsgroups
    have_news20 = (SHARED / "news20" / "minilm.npy").exists()
    if have_news20 and cases & {"c", "f"}:
        names20, labels20, truth20, text_vectors, probs20 = news20()
        rep = "MiniLM"
        if args.news20_vectors == "lsa":
            text_vectors, rep = news20_lsa(), "TF-IDF + SVD 256"
    if "c" in cases and have_news20:
        compare(f"(c) 20news, {rep} + cleanlab probs", text_vectors, labels20, 20, truth20, probs20, args.sweep,
                lines, sweeps, timings)
        compare(f"(c) 20news, {rep} only", text_vectors, labels20, 20, truth20, None, args.sweep, lines, sweeps,
                timings)
    elif "c" in cases:
        print(f"(c) skipped: {SHARED / 'news20'} not found")
    if "f" in cases and have_news20:
        reviewed = news20_reviewed_labels(names20)
        for seed, (a, b) in enumerate(NEWS_PAIRS):
            pair = (names20.index(a), names20.index(b))
            keep = np.isin(labels20, pair)
            clean = (labels20[keep] == pair[1]).astype(np.int64)
            for rate in NEWS_FLIP_RATES:
                flipped = np.random.default_rng(seed).random(clean.size) < rate
                noisy = np.where(flipped, 1 - clean, clean)
                truth = pair_truth(noisy, labels20[keep], reviewed[keep], pair)
                case = f"(f) 20news {a} vs {b}, {rate:.0%} flipped, {clean.size} texts, {rep} only"
                compare(case, text_vectors[keep], noisy, 2, truth, None, args.sweep, lines, sweeps, timings)
    print(header())
    print("\n".join(lines))
    if sweeps:
        print("\nCombinations tried (same detector outputs, re-ranked):")
        print(header())
        print("\n".join(sweeps))
    print("\ndetect() wall time per case: " + ", ".join(f"{k}: {v:.1f} s" for k, v in timings.items()))
    return 0


def embed_cifar(embedder, limit: int):
    """Vectors of the first ``limit`` CIFAR-10N training images, straight from the tar."""
    import io
    import tarfile

    from PIL import Image

    wanted = {}
    with tarfile.open(SHARED / "cifar10n" / "train_images.tar") as tar:
        for member in tar:
            if member.isfile():
                i = int(Path(member.name).stem)
                if i < limit:
                    wanted[i] = tar.extractfile(member).read()
    ids = np.array(sorted(wanted))
    out = []
    for s in range(0, ids.size, 256):
        batch = [Image.open(io.BytesIO(wanted[i])).convert("RGB") for i in ids[s : s + 256]]
        out.append(embedder.embed_images(batch))
    return np.concatenate(out), ids


if __name__ == "__main__":
    raise SystemExit(main())
