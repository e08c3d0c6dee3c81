"""How much of the per-slice loss caused by structured label noise does Amend's loop recover?

Protocol (everything through the public API, end to end):

1. 20 Newsgroups test split (7,532 texts) with its MiniLM vectors from the data pack
   (``news20/test.jsonl`` + ``news20/minilm.npy``).
2. Structured noise: k-means (12 clusters, seed 0) on the vectors; in each cluster, class A = the
   cluster's most common class and B = its second most common; 20 % of A's samples in that cluster
   (seeded) get label B. The clean labels are kept aside as the reference.
3. ``amend init`` (core.ingest) on the noisy labels, ``amend vectors import`` (core.imports) of the
   MiniLM vectors, ``amend analyse`` (core.analysis.run.analyse), the bulk acceptance of
   ``amend decide --accept-suggested`` (core.analysis.runs.accept_suggested: flagged samples whose
   suggestion is their most probable true label), ``amend compare`` (core.evaluate.compare.compare) with the clean reference.
4. Print overall and per-slice accuracy before (probe on the noisy labels), after (on the labels
   after accepting) and clean (on the true labels), all evaluated on the clean labels with the same
   5 cross-validation folds, and the share of the loss recovered: (after - before) / (clean - before).

Run: ``python bench/recovery.py [--out results.json] [--device cpu]``. The data pack is found via
``AMEND_SHARED_DATA`` (default ``../shared/data`` next to the repository); when it is missing the
script says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SHARED = Path(os.environ.get("AMEND_SHARED_DATA", REPO / ".." / "shared" / "data"))
CLUSTERS = 12
FLIP_SHARE = 0.20


def plant_noise(vectors: np.ndarray, labels: list[str], seed: int = 0) -> tuple[list[str], list[dict]]:
    """Structured noise (see the module docstring): the noisy labels and one record per cluster."""
    from sklearn.cluster import KMeans

    clusters = KMeans(n_clusters=CLUSTERS, n_init=3, random_state=seed).fit_predict(vectors)
    rng = np.random.default_rng(seed)
    noisy = list(labels)
    plan = []
    names = np.array(labels, dtype=object)
    for c in range(CLUSTERS):
        members = np.flatnonzero(clusters == c)
        kinds, counts = np.unique(names[members], return_counts=True)
        order = np.lexsort((kinds, -counts))
        if order.size < 2:
            continue
        a, b = kinds[order[0]], kinds[order[1]]
        of_a = members[names[members] == a]
        chosen = rng.choice(of_a, size=int(round(FLIP_SHARE * of_a.size)), replace=False)
        for i in chosen:
            noisy[i] = b
        plan.append({"cluster": c, "size": int(members.size), "class_a": a, "class_b": b, "flipped": int(chosen.size)})
    return noisy, plan


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="also write the figures as JSON here")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    args = parser.parse_args()
    data = SHARED / "news20"
    if not (data / "test.jsonl").is_file() or not (data / "minilm.npy").is_file():
        print(f"skipped: the data pack is not at {SHARED} (set AMEND_SHARED_DATA to its folder)")
        return 0

    from core.analysis.run import analyse
    from core.evaluate.compare import compare
    from core.detect import DetectConfig
    from core.imports import import_vectors
    from core.ingest import IngestOptions, ingest
    from core.analysis.runs import accept_suggested
    from core.store.project import Project

    rows = [json.loads(line) for line in (data / "test.jsonl").read_text().splitlines() if line.strip()]
    vectors = np.load(data / "minilm.npy")
    clean = [str(r["label"]) for r in rows]
    ids = [str(r["id"]) for r in rows]
    noisy, plan = plant_noise(vectors, clean)
    flipped = sum(p["flipped"] for p in plan)
    print(f"20 Newsgroups test: {len(rows)} texts, MiniLM {vectors.shape[1]}-d; planted {flipped} flips "
          f"({flipped / len(rows):.1%}) in {len(plan)} clusters")

    timings = {}
    with tempfile.TemporaryDirectory(prefix="amend-recovery-") as tmp:
        folder = Path(tmp)
        source = folder / "noisy.jsonl"
        source.write_text("".join(json.dumps({"id": sid, "text": r["text"], "label": label}) + "\n"
                                  for sid, r, label in zip(ids, rows, noisy)))
        (folder / "ids.txt").write_text("\n".join(ids) + "\n")
        t = time.perf_counter()
        project = Project.create(folder / "project")
        report = ingest(project, IngestOptions(texts=source))
        import_vectors(project, data / "minilm.npy", name="minilm", ids_file=folder / "ids.txt")
        timings["ingest+import"] = time.perf_counter() - t
        assert report.taken == len(rows), report.to_json()

        t = time.perf_counter()
        run = analyse(project, representation="minilm", config=DetectConfig(device=args.device)).run
        timings["analyse"] = time.perf_counter() - t
        t = time.perf_counter()
        decided = accept_suggested(project, reviewer="bench", run_id=run.run_id)
        timings["accept"] = time.perf_counter() - t
        truth = dict(zip(ids, clean))
        events = decided.decided
        right = sum(1 for e in events if e.payload["new_label"] == truth[e.sample_id])
        fixed_flips = sum(1 for e in events if e.payload["new_label"] == truth[e.sample_id]
                          and e.payload["old_label"] != truth[e.sample_id])
        print(f"analysis {run.run_id}: {run.record['counts']['flagged']} flagged; accepted {len(events)} suggestions, "
              f"{right} of them to the true label ({right / max(1, len(events)):.1%}); "
              f"{fixed_flips} of {flipped} planted flips corrected ({fixed_flips / max(1, flipped):.1%})")

        t = time.perf_counter()
        result = compare(project, labels_a="given", labels_b="current", representation="minilm",
                         run_id=run.run_id, reference=truth, reference_name="20NG true labels", device=args.device)
        timings["compare"] = time.perf_counter() - t
    out = result.to_json()
    print(f"evaluation: {out['what']['evaluation']['method']}; labels: {out['what']['evaluation']['labels']}")
    print(f"overall accuracy: before {out['before']['accuracy']:.4f}  after {out['after']['accuracy']:.4f}  "
          f"clean {out['clean']['accuracy']:.4f}  recovered {out['recovered_share'] if out['recovered_share'] is None else round(out['recovered_share'], 3)}")
    print(f"overall macro-F1: before {out['before']['macro_f1']:.4f}  after {out['after']['macro_f1']:.4f}  "
          f"clean {out['clean']['macro_f1']:.4f}")
    print(f"\n{'slice':>5} {'n':>5} {'before':>7} {'after':>7} {'clean':>7} {'recovered':>9}  name")
    loss_total = gain_total = 0.0
    for s in sorted(out["per_slice"], key=lambda r: (r["before"] or 0) - (r["clean"] or 0)):
        share = "-" if s["recovered_share"] is None else f"{s['recovered_share']:.0%}"
        print(f"{s['slice_id']:>5} {s['n_eval']:>5} {s['before']:>7.3f} {s['after']:>7.3f} {s['clean']:>7.3f} {share:>9}  "
              f"{s['name'][:60]}")
        loss_total += s["n_eval"] * max(0.0, s["clean"] - s["before"])
        gain_total += s["n_eval"] * (s["after"] - s["before"]) if s["clean"] > s["before"] else 0.0
    print(f"\nslices with a loss: recovered {gain_total / max(loss_total, 1e-9):.1%} of their summed loss (weighted by size)")
    print("timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    if args.out:
        Path(args.out).write_text(json.dumps({"plan": plan, "compare": out, "timings": timings}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
