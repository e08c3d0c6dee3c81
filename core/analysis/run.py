"""One analysis of a project: detectors + slices on one representation (and/or a user's
probabilities), stored as a run with its record. The single call for notebooks and the CLI.

Detection runs on the labels in force now (given labels + decisions), so a re-run after
corrections finds what is left; the run records the audit log it saw (size and chain head: an anchor
that `amend audit verify` checks the log against ever after). Runs never change
decisions. Identical data and settings give an identical ranking (everything is seeded).
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import platform
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np
import pandas as pd

from core import __version__
from core.detect import REGISTRY, DetectConfig, Detection, detect
from core.errors import AmendError
from core.util import ProgressCallback, no_progress
from core.analysis.runs import RunInfo, list_runs, new_run_id, save_run
from core.store.project import Project

if TYPE_CHECKING:
    from core.slices.clustering import LabelBlindCut

logger = logging.getLogger(__name__)

PACKAGES = ("numpy", "scikit-learn", "cleanlab", "torch", "lancedb", "umap-learn", "open-clip-torch", "pandas")


@dataclass
class AnalysisResult:
    """What :func:`analyse` returns: the stored run, the detection and the slices."""

    run: RunInfo
    detection: Detection
    slices: Any  # core.slices.SliceResult or None
    ids: list[str]
    evidence: pd.DataFrame
    timings: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        """The CLI contract's fields for `amend analyse --json`."""
        record = self.run.record
        return {
            "run_id": self.run.run_id,
            "representation": self.run.representation,
            "predictions": record["probability_sources"],
            "samples": record["counts"]["samples"],
            "flagged": record["counts"]["flagged"],
            "expected_wrong": record["counts"].get("expected_wrong"),
            "detectors": record["detectors"],
            "slices": record["counts"].get("slices"),
            # metadata values holding more wrong labels than chance (None: no metadata to compare)
            "metadata_groups_passing": None if record.get("metadata_groups") is None
            else sum(bool(g["significant"]) for g in record["metadata_groups"]),
            # one annotator's confusion far more common than the others' (None: no annotator columns)
            "annotator_habits": None if record.get("annotator_habits") is None
            else [{k: v for k, v in h.items() if k != "members"} | {"samples": len(h["members"])}
                  for h in record["annotator_habits"]],
            "seconds": record["timings"]["total"],
        }


def package_versions() -> dict[str, str]:
    versions = {"amend": __version__, "python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def annotator_columns(project: Project) -> list[str]:
    """The annotator columns declared at ingest, in the order of the annotator matrix's columns."""
    columns: list[str] = []
    for options in project.ingests()["options"]:
        for column in json.loads(options).get("annotator_columns") or []:
            if column not in columns:
                columns.append(column)
    return columns


def _annotator_matrix(columns: list[str], samples: pd.DataFrame, label_index: dict[str, int]) -> Optional[np.ndarray]:
    """N x M annotator labels (-1 = missing/unknown) from the annotator ``columns`` declared at ingest."""
    if not columns:
        return None
    metadata = [json.loads(m) for m in samples["metadata"]]
    matrix = np.full((len(samples), len(columns)), -1, dtype=np.int64)
    for i, meta in enumerate(metadata):
        for j, column in enumerate(columns):
            value = meta.get(column)
            if value is not None and str(value) in label_index:
                matrix[i, j] = label_index[str(value)]
    return matrix


def _aligned_predictions(project: Project, name: str, ids: list[str], labels: list[str]) -> np.ndarray:
    rows, classes = project.predictions_for(name, ids)
    if set(classes) != set(labels):
        raise AmendError(
            f"predictions {name!r} cover classes {classes}, but the project's labels are now {labels}; "
            "import predictions over the current label set."
        )
    column = [classes.index(label) for label in labels]
    return rows[:, column].astype(np.float64)


def _text_tower(rep_model: str):
    """For OpenCLIP representations, the text tower in the same space (slice names from words)."""
    if not rep_model.startswith("open_clip:"):
        return None
    from core.embed.openclip import text_tower_for

    return text_tower_for(rep_model)


def analyse(
    project: Project,
    representation: Optional[str] = None,
    predictions: Optional[str] = None,
    config: Optional[DetectConfig] = None,
    with_slices: bool = True,
    progress: ProgressCallback = no_progress,
    captures: Sequence[str] = (),
) -> AnalysisResult:
    """Analyse a project and record the run.

    Parameters
    ----------
    project : Project
    representation : str, optional
        Vector table to use; default the most recent. Ignored when the project has none and
        ``predictions`` is given (probability-only analysis, no neighbours or slices).
    predictions : str, optional
        Name of imported model probabilities to use alongside (or instead of) the probe.
    config : DetectConfig, optional
        Detector settings (recorded with the run).
    with_slices : bool, default True
        Also map and slice the representation.
    progress : callable
        ``progress(step, done, total)``.
    captures : sequence of str, default ()
        Captured training runs (:mod:`core.capture`) whose training dynamics and held-out
        predictions join the evidence (:mod:`core.analysis.captured`); several runs are
        aggregated. Their layers become representations; the project's own representation is
        still the default.
    """
    from core.review import audit
    from core.review.labels import current_labels

    # OpenMP threads that wait passively rather than spin. scikit-learn's k-means spins its idle
    # threads by default; where something else also uses the cores (a training job beside the
    # analysis) each iteration then waits for a descheduled spinner: detection at 10,000 x 1,280
    # took 40-42 s beside a busy job against 12.7 s passive, and passive waiting costs nothing on
    # an idle machine (bench/README.md, "OpenMP threads that wait passively"). OpenMP reads it once,
    # when scikit-learn first loads its runtime in this process (a process that already has keeps
    # what it had); a value the user set stays.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    started = time.perf_counter()
    timings: dict[str, float] = {}
    config = config or DetectConfig()
    with project.writer("analyse"):
        t = time.perf_counter()
        samples = project.samples()
        if samples.empty:
            raise AmendError(f"{project.path} has no samples; ingest some first.")
        class_names = project.labels()
        label_index = {name: i for i, name in enumerate(class_names)}
        in_force = current_labels(project).set_index("id")
        ids = samples["id"].tolist()
        current = in_force.loc[ids, "current_label"].tolist()
        labels = np.array([label_index[label] for label in current], dtype=np.int64)

        captured = None
        if captures:
            from core.analysis.captured import captured_evidence, register_layers

            for run in captures:
                register_layers(project, run)
            captured = captured_evidence(project, list(captures), ids, class_names)
            if captured.aum_threshold is not None:
                calibrated = {"aum": {"threshold": captured.aum_threshold,
                                      "threshold_from": "99th percentile of the threshold samples' AUM"}}
                config = replace(config, detector_params={**calibrated, **(config.detector_params or {})})
        if representation is None:
            # captured layers are never the default (see core.analysis.captured)
            representation = _default_representation(project)
        vectors = None
        rep = None
        if representation is not None or project.representations():
            rep = project.representation(representation)
            vector_ids, vectors = project.vectors(rep.name)
            if len(vector_ids) != len(ids):
                raise AmendError(
                    f"representation {rep.name!r} covers {len(vector_ids)} of {len(ids)} samples; "
                    f"run `amend embed {project.path} --name {rep.name}` to finish it first."
                )
        elif predictions is None and captured is None:
            raise AmendError(f"{project.path} has no vectors and no predictions; run `amend embed` first.")
        probabilities = _aligned_predictions(project, predictions, ids, class_names) if predictions else None
        columns = annotator_columns(project)
        annotators = _annotator_matrix(columns, samples, label_index)
        chain_size, chain_head = audit.chain_tip(project)

        content_key = graph_key = graph_from = graph = cut_key = kept_cut = None
        # The earlier runs' records, read once: the graph, the map and the domain gaps of the
        # same vectors are looked up in them.
        earlier = list_runs(project) if vectors is not None else []
        if vectors is not None:
            content_key = _content_key(rep.name, ids, vectors)
            graph_key = _graph_key(content_key, config)
            graph_from, graph = _earlier_graph(project, earlier, graph_key, ids)
            from core.analysis.cut_store import blind_cut_key, load_blind_cut

            cut_key = blind_cut_key(content_key, config.seed)
            kept_cut = load_blind_cut(project, cut_key, ids)
        timings["load"] = round(time.perf_counter() - t, 3)

        detection = detect(
            vectors, labels, len(class_names), probabilities=probabilities, annotator_labels=annotators, config=config,
            progress=progress, class_names=class_names, graph=graph,
            dynamics=None if captured is None else captured.dynamics,
            extra_probabilities=None if captured is None or captured.probabilities is None
            else {"capture": captured.probabilities},
            blind_cut=kept_cut,
        )
        timings.update({f"detect.{k}": v for k, v in detection.timings.items()})
        cut_record = _keep_blind_cut(project, cut_key, ids, detection, kept_cut, None if rep is None else rep.name)

        # parsed only where some sample has metadata (a million "{}" took 4.7 s to parse)
        metadata = pd.json_normalize([json.loads(m) for m in samples["metadata"]]) \
            if (samples["metadata"] != "{}").any() else pd.DataFrame(index=range(len(samples)))
        if "split" in samples and samples["split"].notna().any():
            metadata["split"] = samples["split"].to_numpy()
        slice_result = None
        if with_slices and vectors is not None and detection.probabilities is not None:
            from core.slices import discover_slices

            t = time.perf_counter()
            texts = samples["text"].fillna("").tolist() if samples["modality"].iloc[0] == "text" else None
            # The structured-error detector cut the same slices already (same vectors, labels,
            # pooled probabilities and seed): reuse its cut rather than cutting twice; its
            # findings lead the error-slice ranking.
            from core.detect.regions import cut_and_findings

            cut, structured = cut_and_findings(detection.results.get("regions"))
            map_key = _map_key(content_key, config.seed)
            reused_from, coords = _earlier_map(project, earlier, map_key, ids)
            gap_keys = _domain_gap_keys(content_key, metadata, config.seed)
            known_gaps = _earlier_domain_gaps(earlier, gap_keys)
            slice_result = discover_slices(
                vectors, labels, detection.probabilities, detection.flagged, class_names=class_names,
                metadata=metadata if len(metadata.columns) else None, texts=texts,
                text_tower=_text_tower(rep.model), seed=config.seed, device=config.device, progress=progress,
                cut=cut, structured=structured, coords=coords, domain_gaps=known_gaps,
            )
            timings.update({f"slices.{k}": v for k, v in slice_result.timings.items()})
            timings["slices"] = round(time.perf_counter() - t, 3)

        t = time.perf_counter()
        metadata_groups = _metadata_groups(metadata, labels, detection, class_names, ids)
        timings["metadata_groups"] = round(time.perf_counter() - t, 3)
        run_id = new_run_id()
        evidence = _evidence_frame(ids, class_names, labels, detection, slice_result)
        slices_frame = None
        if slice_result is not None:
            from core.slices import structured_findings

            findings = structured_findings(slice_result.slice_ids, labels, detection.suggested, detection.flagged,
                                           class_names)
            slices_frame = _slices_frame(slice_result, ids, findings)
        timings["total"] = round(time.perf_counter() - started, 3)
        record = {
            "run_id": run_id,
            "representation": None if rep is None else {"name": rep.name, "model": rep.model, "dim": rep.dim},
            "probability_sources": [
                f"predictions:{predictions}" if source == "given" else source
                for source in detection.params["pool"]["sources"]
            ],
            "probability_pool": detection.params["pool"],
            "probe": detection.params.get("probe"),
            "labels_analysed": {"source": "labels in force (given + decisions)", "audit_chain_head": chain_head,
                                "audit_chain_size": chain_size},
            "detectors": sorted(detection.results),
            "detector_params": {name: result.params for name, result in detection.results.items()},
            "config": config.as_dict(),
            "aggregation": detection.params.get("ranking", detection.params),
            "captures": None if captured is None else captured.record,
            "annotator_columns": None if annotators is None else int(annotators.shape[1]),
            "annotator_stats": _annotator_stats(detection),
            "annotator_habits": _annotator_habits(detection, columns, class_names, ids),
            "class_table": detection.class_table,
            "neighbours": None if detection.graph is None else {
                "graph_key": graph_key, "method": detection.graph.method, "k": detection.graph.k,
                "reused_from": graph_from,
                # recall@k of an approximate graph on sampled rows (None: exact, or reused: see that run)
                "recall_sampled": detection.params.get("knn_recall_sampled"),
            },
            "label_blind_cut": cut_record,
            "duplicate_groups": [
                {**group, "members": [ids[i] for i in group.get("members", [])]} for group in detection.duplicate_groups
            ],
            "slices": None if slice_result is None else {
                "params": slice_result.params,
                "map_key": map_key,
                "map_reused_from": reused_from,
                "domain_gaps": {column: frame.to_dict(orient="records") for column, frame in slice_result.domain_gaps.items()},
                "domain_gap_keys": {column: gap_keys[column] for column in slice_result.domain_gaps if column in gap_keys},
                "domain_gaps_reused": sorted(known_gaps),
            },
            "metadata_groups": metadata_groups,
            "counts": {
                "samples": len(ids), "classes": len(class_names), "flagged": int(detection.flagged.sum()),
                # the noise estimate the flagged set's size follows: the sum of the error probabilities
                "expected_wrong": None if detection.error_probability is None
                else round(float(np.sum(detection.error_probability)), 1),
                "suggested": int((detection.suggested >= 0).sum()),
                "slices": None if slice_result is None else int(len(slice_result.table)),
            },
            "versions": package_versions(),
            "timings": timings,
        }
        run = save_run(project, run_id, evidence, slices_frame, record, None if rep is None else rep.name)
    return AnalysisResult(run=run, detection=detection, slices=slice_result, ids=ids, evidence=evidence, timings=timings)


def _metadata_groups(metadata: pd.DataFrame, labels: np.ndarray, detection: Detection, class_names: list[str],
                     ids: list[str]) -> Optional[list[dict]]:
    """The run record's ``metadata_groups``: wrong labels by metadata value
    (:func:`core.slices.groups.metadata_error_groups`), the finding's members as sample ids.
    None without error probabilities (no probabilities at all) or without metadata."""
    from core.slices.groups import metadata_error_groups

    if detection.error_probability is None or detection.probabilities is None or not len(metadata.columns):
        return None
    groups = metadata_error_groups(metadata, labels, detection.probabilities, detection.error_probability,
                                   detection.flagged, detection.suggested, class_names)
    for group in groups:
        group["finding_members"] = [ids[i] for i in group.pop("finding_rows")]
    return groups


def _keep_blind_cut(project: Project, cut_key: Optional[str], ids: list[str], detection: Detection,
                    kept: Optional["LabelBlindCut"], representation: Optional[str]) -> Optional[dict]:
    """The run record's ``label_blind_cut`` section; the cut the structured-regions detector made
    is kept for the next analysis of the same vectors (:mod:`core.analysis.cut_store`)."""
    from core.analysis.cut_store import save_blind_cut

    regions = detection.results.get("regions")
    used = None if regions is None else regions.evidence.get("blind_cut")
    if cut_key is None or used is None:
        return None
    reused = kept is not None and used is kept
    table = save_blind_cut(project, cut_key, ids, used, representation or "") if not reused else None
    return {"cut_key": cut_key, "reused": reused, "kept": reused or table is not None}


def _default_representation(project: Project) -> Optional[str]:
    """The most recent representation that is not a captured layer (see core.analysis.captured),
    else the most recent captured one; None when there is none."""
    from core.analysis.captured import CAPTURE_SOURCE

    reps = project.representations()
    own = [rep for rep in reps if rep.source != CAPTURE_SOURCE]
    return (own or reps)[-1].name if reps else None


def _annotator_stats(detection: Detection) -> Optional[dict]:
    result = detection.results.get("annotators")
    if result is None:
        return None
    stats = result.evidence.get("annotator_stats")
    if isinstance(stats, pd.DataFrame):
        stats = stats.reset_index().to_dict(orient="records")
    return {"krippendorff_alpha": result.evidence.get("krippendorff_alpha"), "per_annotator": stats}


def _annotator_habits(detection: Detection, columns: list[str], class_names: list[str],
                      ids: list[str]) -> Optional[list[dict]]:
    """Each annotator's habit (:func:`core.detect.annotators.annotator_habits`) by name, with a
    sentence and the ids of the samples it holds, for the overview and `amend analyse`."""
    result = detection.results.get("annotators")
    if result is None or "annotator_habits" not in result.evidence:
        return None
    habits = []
    for h in result.evidence["annotator_habits"]:
        name = columns[h["annotator"]] if h["annotator"] < len(columns) else f"annotator_{h['annotator']}"
        true, said = class_names[h["true"]], class_names[h["said"]]
        habits.append({
            "annotator": name, "true": true, "said": said, "about": h["about"], "of": h["of"], "share": h["share"],
            "others_share": h["others_share"], "p_value": h["p_value"],
            "sentence": habit_sentence(name, true, said, h["share"], h["of"], h["others_share"]),
            "members": [ids[i] for i in h["members"]],
        })
    return habits


def habit_sentence(annotator: str, true: str, said: str, share: float, of: float, others_share: float) -> str:
    """'annotator_1 labels 61% of about 480 cat as dog (the other annotators 8%)'."""
    return (f"{annotator} labels {share:.0%} of about {of:,.0f} {true} as {said} "
            f"(the other annotators {others_share:.0%})")


def _evidence_frame(ids: list[str], class_names: list[str], labels: np.ndarray, detection: Detection, slice_result) -> pd.DataFrame:
    n = len(ids)
    names = np.array(class_names, dtype=object)
    suggested = detection.suggested
    frame = pd.DataFrame(
        {
            "id": ids,
            "rank": detection.rank.astype(np.int64) + 1,
            "score": detection.score.astype(np.float64),
            "flagged": detection.flagged.astype(bool),
            "label_analysed": names[labels],
            "suggested_label": np.where(suggested >= 0, names[np.clip(suggested, 0, None)], None),
            "suggested_by": detection.suggested_by.astype(str),
        }
    )
    if detection.probabilities is not None:
        probs = detection.probabilities
        rows = np.arange(n)
        frame["p_label"] = probs[rows, labels].astype(np.float64)
        frame["p_suggested"] = np.where(suggested >= 0, probs[rows, np.clip(suggested, 0, None)], np.nan)
        frame["p_top_label"] = names[probs.argmax(axis=1)]
        # The three most probable classes with their probabilities: what a hypothesis prompt shows a
        # model server (core.hypotheses.failures); the whole matrix is not kept per run.
        top = np.argsort(-probs, axis=1, kind="stable")[:, :3]
        frame["top_labels"] = [list(names[row]) for row in top]
        frame["top_probabilities"] = [[float(probs[i, j]) for j in row] for i, row in enumerate(top)]
    for name, scores in sorted(detection.detector_scores.items()):
        frame[f"det_{name}"] = np.asarray(scores, dtype=np.float64)
    id_array = np.array(ids, dtype=object)
    if detection.graph is not None:
        neighbours = detection.graph.indices
        frame["neighbour_ids"] = [list(id_array[row[row >= 0]]) for row in neighbours]
        frame["neighbour_similarities"] = [list(map(float, s)) for s in detection.graph.similarities]
        frame["neighbour_labels"] = [list(names[labels[row[row >= 0]]]) for row in neighbours]
    frame["support_ids"] = [list(id_array[row[row >= 0]]) for row in detection.support] if detection.support.size else [[] for _ in ids]
    if detection.error_probability is not None:
        frame["error_probability"] = detection.error_probability.astype(np.float64)
    if detection.accept_in_bulk is not None:
        frame["accept_in_bulk"] = detection.accept_in_bulk.astype(bool)
    for name, result in sorted(detection.results.items()):
        spec = REGISTRY.get(name)
        for column, pick in (spec.evidence_columns.items() if spec is not None else ()):
            frame[column] = pick(result)
    if slice_result is not None:
        frame["slice_id"] = slice_result.slice_ids.astype(np.int64)
        frame["x"] = slice_result.coords_2d[:, 0].astype(np.float32)
        frame["y"] = slice_result.coords_2d[:, 1].astype(np.float32)
        drawn = np.zeros(n, dtype=bool)
        drawn[slice_result.draw_index] = True
        frame["drawn"] = drawn
    return frame


def _content_key(representation: str, ids: list[str], vectors: np.ndarray) -> str:
    """One hash of what the map and the kNN graph are made from: the representation's vectors in
    sample order (hashed once per analysis; the keys below add their own settings)."""
    import hashlib

    digest = hashlib.sha256()
    for part in (representation, "\n".join(ids)):
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    digest.update(np.ascontiguousarray(vectors, dtype=np.float32).tobytes())
    return digest.hexdigest()


def _key(*parts: object) -> str:
    import hashlib

    return hashlib.sha256("\0".join(map(str, parts)).encode("utf-8")).hexdigest()


def _map_key(content_key: str, seed: int) -> str:
    """What the 2-D map depends on (the vectors, the seed, the projection's version): equal keys
    mean the earlier map can be drawn again."""
    from core.slices.projection import MAP_VERSION

    return _key("map", MAP_VERSION, int(seed), content_key)


def _graph_key(content_key: str, config: DetectConfig) -> str:
    """What the kNN graph depends on (the vectors, k, the search method and its seed): never the
    labels, so decisions do not change it."""
    return _key("knn", int(config.k), config.knn_method, int(config.seed), content_key)


def _earlier_columns(project: Project, earlier: list[RunInfo], section: str, field: str, key: str, ids: list[str],
                     columns: list[str]) -> tuple[Optional[RunInfo], Optional[pd.DataFrame]]:
    """(run, its evidence ``columns`` in the order of ``ids``) of the newest of the ``earlier``
    runs whose record holds ``key`` at ``record[section][field]``, or (None, None). What depends
    on the vectors alone (the kNN graph, the map) is read back from there instead of being made
    again."""
    for run in reversed(earlier):
        if (run.record.get(section) or {}).get(field) != key or run.evidence_table is None:
            continue
        try:
            frame = (project.db.open_table(run.evidence_table).search()
                     .select(["id", *columns]).limit(None).to_pandas().set_index("id"))
        except Exception as exc:  # a damaged or unreadable table: make it again rather than fail the analysis
            logger.info("%s of run %s not reusable: %s", section, run.run_id, exc)
            continue
        if frame.index.is_unique and set(ids) <= set(frame.index):
            return run, frame.loc[ids]
    return None, None


def _earlier_graph(project: Project, earlier: list[RunInfo], graph_key: str, ids: list[str]) -> tuple[Optional[str], Optional["KnnGraph"]]:
    """(run id, graph) of the newest earlier run whose kNN graph was made from the same vectors
    and settings, rebuilt from its evidence (``neighbour_ids``, ``neighbour_similarities``), or
    (None, None). Re-analysis after a batch of decisions then skips the search (at 10,000 x 1,280
    it was the largest step of detection, bench/README.md "Versus Datalab")."""
    from core.neighbours import KnnGraph

    run, frame = _earlier_columns(project, earlier, "neighbours", "graph_key", graph_key, ids,
                                     ["neighbour_ids", "neighbour_similarities"])
    if frame is None:
        return None, None
    try:
        position = {sample: i for i, sample in enumerate(ids)}
        similarities = np.array([np.asarray(s, dtype=np.float32) for s in frame["neighbour_similarities"]])
        indices = np.full(similarities.shape, -1, dtype=np.int64)
        for row, neighbours in enumerate(frame["neighbour_ids"]):
            found = [position[n] for n in neighbours]
            indices[row, : len(found)] = found
        return run.run_id, KnnGraph(indices, similarities, run.record["neighbours"].get("method") or "exact")
    except Exception as exc:  # ragged rows or unknown neighbours: search again rather than fail
        logger.info("kNN graph of run %s not reusable: %s", run.run_id, exc)
        return None, None


def _domain_gap_keys(content_key: str, metadata: pd.DataFrame, seed: int) -> dict[str, str]:
    """Source column -> what its domain-gap table depends on (the vectors, the column's values in
    sample order, the seed and the method's version): never the labels."""
    from core.slices.compare import DOMAIN_GAP_VERSION, source_like_columns

    keys = {}
    for column in source_like_columns(metadata if len(metadata.columns) else None):
        values = "\n".join(metadata[column].map(lambda v: "\0" if pd.isna(v) else str(v)))
        keys[column] = _key("domain gap", DOMAIN_GAP_VERSION, int(seed), content_key, column, _key(values))
    return keys


def _earlier_domain_gaps(earlier: list[RunInfo], keys: dict[str, str]) -> dict[str, pd.DataFrame]:
    """Source column -> the domain-gap table of the newest of the ``earlier`` runs made from the
    same vectors, column values and seed (the table lives in the run record; a re-analysis after
    decisions made it again, 3.2 s of a 10,000-row re-analysis with one source column)."""
    from core.slices.compare import DOMAIN_GAP_COLUMNS

    found: dict[str, pd.DataFrame] = {}
    if not keys:
        return found
    for run in reversed(earlier):
        section = run.record.get("slices") or {}
        for column, key in (section.get("domain_gap_keys") or {}).items():
            if column in found or keys.get(column) != key or column not in (section.get("domain_gaps") or {}):
                continue
            found[column] = pd.DataFrame(section["domain_gaps"][column], columns=list(DOMAIN_GAP_COLUMNS))
        if len(found) == len(keys):
            break
    return found


def _earlier_map(project: Project, earlier: list[RunInfo], map_key: str, ids: list[str]) -> tuple[Optional[str], Optional[np.ndarray]]:
    """(run id, coords) of the newest earlier run whose map was made from the same vectors and
    seed, or (None, None). Users re-analyse after every batch of decisions; the map (UMAP, the
    slowest step) depends only on the vectors, so it is drawn again rather than recomputed."""
    run, frame = _earlier_columns(project, earlier, "slices", "map_key", map_key, ids, ["x", "y"])
    return (None, None) if frame is None else (run.run_id, frame[["x", "y"]].to_numpy(dtype=np.float32))


def _slices_frame(slice_result, ids: list[str], findings: Optional[dict] = None) -> pd.DataFrame:
    table = slice_result.table.copy()
    # JSON text always (also "null"), so the column keeps one type when no slice has a finding.
    table["finding"] = table["slice_id"].map(lambda sid: json.dumps((findings or {}).get(int(sid))))
    id_array = np.array(ids, dtype=object)
    table["members"] = [list(id_array[slice_result.slice_ids == sid]) for sid in table["slice_id"]]
    for column in table.columns:
        if table[column].map(lambda v: isinstance(v, (list, dict))).any() and column != "members":
            table[column] = table[column].map(lambda v: json.dumps(v, default=str))
    return table
