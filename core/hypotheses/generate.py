"""One hypothesis per failure from the user's model server: the run.

Bounded concurrency (a thread pool of ``concurrency`` requests in flight: local servers queue
the rest anyway, and a small pool keeps a laptop's GPU busy without a pile-up of timeouts),
a timeout per request, each answer committed as it arrives (resumable: a second run skips the
samples this model already explained with this prompt), a malformed or late answer recorded as
failed with its reason. Only a server that cannot be reached, a model it does not have, or the
wrong dialect stop the run (every further request would fail the same way).
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Callable, Optional

import numpy as np

from core.errors import AmendError
from core.hypotheses import clusters as clusters_mod, failures as failures_mod, prompts, store
from core.hypotheses.client import AnswerProblem, ModelClient
from core.util import ProgressCallback, no_progress

logger = logging.getLogger(__name__)


def generate(project: Any, server: str, model: str, api: str = "ollama", failures: Optional[str] = "errors",
             selection: Optional[str] = None, slice_id: Optional[int] = None, analysis_run: Optional[str] = None,
             limit: Optional[int] = None, concurrency: int = 4, timeout: float = 120.0, temperature: float = 0.0,
             schema_style: str = "json_schema", prompt_version: Optional[str] = None, cluster: bool = True,
             embed: Optional[Callable[[list[str]], np.ndarray]] = None,
             progress: ProgressCallback = no_progress) -> dict:
    """Explain the failures of the latest analysis (or ``analysis_run``) with ``model`` on ``server``.

    Parameters
    ----------
    api : "ollama" (default) or "openai" (vLLM, llama.cpp's server, any OpenAI-compatible one).
    failures : "errors" (default: the analysis' top class is not the given label), "flagged", or
        None with ``selection`` / ``slice_id`` (every sample in them); with them, narrowed to those.
    limit : explain at most the first ``limit`` failures (best-ranked first); None: all.
    concurrency : requests in flight at once (default 4). timeout : seconds per answer (default 120).
    temperature : sampling temperature (default 0: the same failure gets the same answer).
    schema_style : where an OpenAI-compatible server gets the schema (core.hypotheses.client).
    prompt_version : a published prompt version (default the latest, else the built-in one).
    cluster : cluster the free-text dimensions afterwards (default True). embed : texts -> unit
        vectors for clustering (default the bundled offline text embedder).

    Returns
    -------
    {run_id, analysis_run, model, server, api, prompt_version, prompt_sha256, temperature,
    candidates, generated, failed, skipped, failures: [{id, reason}], dimensions: {cause: {clusters,
    silhouette}, fix: {...}}, seconds}

    Raises
    ------
    AmendError before anything is written for bad settings; ServerUnreachable, ModelNotFound or
    WrongApi (AmendError) when the server cannot serve the run (what was answered is kept).
    """
    started = time.perf_counter()
    if concurrency < 1:
        raise AmendError("--concurrency takes at least 1.")
    if limit is not None and limit < 1:
        raise AmendError("--limit takes at least 1.")
    if failures is None and selection is None and slice_id is None:
        failures = "errors"
    prompt = prompts.get(project, prompt_version)
    client = ModelClient(server, model, api=api, timeout=timeout, temperature=temperature, schema_style=schema_style)
    try:
        run_of_analysis, rows = failures_mod.select(project, failures, selection=selection, slice_id=slice_id,
                                                    run_id=analysis_run)
        if limit is not None:
            rows = rows.head(limit)
        done = store.explained_ids(project, client.model, prompt.sha256)
        todo = rows[~rows["id"].astype(str).isin(done)]
        skipped = len(rows) - len(todo)
        client.check()
        run_id = store.new_run_id()
        source = failures or "all"
        if selection is not None:
            source += f", selection {selection}"
        if slice_id is not None:
            source += f", slice {slice_id}"
        store.start_run(project, run_id, client.server, api, client.model, prompt.version, prompt.sha256,
                        temperature, source, run_of_analysis,
                        {**client.describe(), "concurrency": concurrency, "limit": limit})
        classes = project.labels()
        counts = {"generated": 0, "failed": 0}
        failed: list[dict] = []
        stop: Optional[BaseException] = None
        total = len(todo)
        progress("hypotheses", 0, total)

        def record(failure: failures_mod.Failure, answer=None, reason: Optional[str] = None) -> None:
            row = store.Row(sample_id=failure.sample_id, status="ok" if answer is not None else "failed",
                            given_label=failure.given_label, predictions=[list(p) for p in failure.predictions],
                            slice_id=failure.slice_id, reason=reason)
            if answer is not None:
                row = store.Row(**{**row.__dict__, "data_quality": answer.data_quality, "cause": answer.cause,
                                   "fix": answer.fix, "raw": answer.raw, "seconds": round(answer.seconds, 3)})
                counts["generated"] += 1
            else:
                counts["failed"] += 1
                failed.append({"id": failure.sample_id, "reason": reason})
            store.add(project, run_id, client.model, prompt.sha256, row)
            progress("hypotheses", counts["generated"] + counts["failed"], total)

        def ask(failure: failures_mod.Failure):
            message = prompts.render(prompt, failure.given_label, failure.predictions, classes, failure.text)
            return client.explain(failure, message, prompt.vocabulary)

        pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="amend-hypotheses")
        pending: dict[Future, failures_mod.Failure] = {}
        queue = _in_chunks(project, todo)
        try:
            failure = next(queue, None)
            while (failure is not None or pending) and stop is None:
                while failure is not None and len(pending) < concurrency:
                    current, failure = failure, next(queue, None)
                    if current.problem is not None:
                        record(current, reason=current.problem)
                        continue
                    pending[pool.submit(ask, current)] = current
                if not pending:
                    continue
                finished, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for future in finished:
                    done_failure = pending.pop(future)
                    try:
                        record(done_failure, answer=future.result())
                    except AnswerProblem as problem:
                        record(done_failure, reason=str(problem))
                    except AmendError as fatal:  # unreachable, unknown model, wrong dialect
                        stop = stop or fatal
        except BaseException as interrupted:  # Ctrl-C: keep what was answered, close the run
            stop = interrupted
        finally:
            for future in pending:
                future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
            store.finish_run(project, run_id, {**counts, "skipped": skipped, "candidates": len(rows),
                                               "stopped": None if stop is None else str(stop)})
        if stop is not None:
            raise stop
    finally:
        client.close()

    dimensions = _dimensions(project, cluster and counts["generated"] > 0, embed, progress)
    return {
        "run_id": run_id, "analysis_run": run_of_analysis, "model": client.model, "server": client.server,
        "api": api, "prompt_version": prompt.version, "prompt_sha256": prompt.sha256, "temperature": temperature,
        "candidates": len(rows), "generated": counts["generated"], "failed": counts["failed"], "skipped": skipped,
        "failures": failed, "dimensions": dimensions, "seconds": round(time.perf_counter() - started, 3),
    }


def _in_chunks(project: Any, rows, size: int = 32):
    """The failures' payloads, read a chunk at a time: a long run never holds every image at once."""
    for start in range(0, len(rows), size):
        yield from failures_mod.payloads(project, rows.iloc[start:start + size])


def _dimensions(project: Any, recluster: bool, embed, progress: ProgressCallback) -> dict:
    """Clusters per free-text dimension: made again when new hypotheses came in, or when the
    newest clustering does not cover every explained hypothesis; else the stored ones."""
    explained = store.hypotheses(project)
    out = {}
    for dimension in prompts.FREE_TEXT:
        latest = store.latest_clustering(project, dimension)
        covered = latest is not None and set(latest["members"]["hypothesis_id"]) == set(explained["hypothesis_id"])
        if (recluster or not covered) and len(explained):
            latest = clusters_mod.cluster_dimension(project, dimension, embed=embed, progress=progress)
        out[dimension] = {"clusters": int(latest["k"]) if latest else 0,
                          "silhouette": latest["silhouette"] if latest else None}
    return out
