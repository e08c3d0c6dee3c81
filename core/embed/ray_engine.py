"""Embedding on Ray Data: ``amend embed PROJECT --engine ray [--address HEAD:6379]``.

The same run as :func:`core.embed.pipeline.embed`, spread over a Ray cluster (a local one when no
address is given):

1. The driver (this process) takes the project's writer lock, asks one Ray worker of the kind that
   will embed (a GPU worker when the cluster has GPUs) to build the embedder the options name, with
   the usual offline fallback (:func:`core.embed.fallback.resolve_embedder`), and registers the
   representation with what that worker reports: model, dim, settings, device. The model is thus
   chosen once; every actor then builds exactly that one and refuses to start if it gets another
   (a worker without the OpenCLIP weights would otherwise fall back on its own and mix two models
   in one representation).
2. The samples the representation does not hold yet (:func:`~core.embed.pipeline.samples_to_embed`)
   become a Ray Dataset of one block per batch. Images are read, checked against their ingest
   sha256, decoded and preprocessed in CPU tasks (:func:`decode_images`, the same
   :class:`~core.embed.pipeline.ImageItems` the DataLoader uses); texts need no CPU stage (they are
   tokenised inside the embedder).
3. Actors (:class:`EmbedActor`, one model load each) embed the batches: one per GPU with
   ``num_gpus=1`` (OpenCLIP runs fp16 autocast there), else CPU actors sized to the cluster's cores.
4. The vectors stream back to the driver (``iter_batches``), which writes each batch through
   :meth:`Project.add_vectors`, exactly as the in-process path does.

Why the driver writes, not the workers (Ray Data's ``write_lance`` / the ``lance-ray`` package):
a distributed Lance write commits once, at the end, from fragments the workers wrote, straight to
a table URI. That would bypass what keeps a project right: the writer lock held for the whole run,
the registry row that makes the table visible and the recovery that drops tables no row points at
(:mod:`core.store.project`), the check and normalisation in ``add_vectors``, and resumability (a
killed run would lose everything since the last commit instead of one batch). Vectors are small
next to the images they come from (a 224 x 224 image is 600 KB of float pixels, its vector 2-5 KB),
so bringing them to the driver costs little; the decoding and the model, where the time goes, stay
on the cluster.

Every worker must read the samples' files at the paths the project recorded (``root/path``, e.g.
a shared file system mounted at the same place on every node), have Amend and its dependencies
installed, and find the model weights (a ``--checkpoint`` file at the same path, or the OpenCLIP
tag in its Hugging Face cache). ``AMEND_MAX_PIXELS`` is passed on to the workers.

Ray is an optional dependency (``pip install -e ".[scale]"``), imported only when this engine runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
import warnings
from dataclasses import dataclass
from typing import Any, Iterator, Optional

import numpy as np

from core.util import usable_cores
from core.embed.pipeline import (
    EmbedOptions, EmbedReport, ImageItems, batch_and_workers, image_paths, project_modality,
    register_representation, samples_to_embed,
)
from core.errors import AmendError
from core.util import ProgressCallback, no_progress

logger = logging.getLogger(__name__)

RAY_MISSING = 'Ray is not installed: --engine ray needs the scale extra (pip install -e ".[scale]").'
#: Environment variables that change what a worker does, passed on to the cluster's workers.
FORWARDED_ENVIRONMENT = ("AMEND_MAX_PIXELS",)
#: Loggers that speak on stderr while Ray starts and runs; kept at ERROR unless `amend -v`.
RAY_LOGGERS = ("ray", "ray.data")
#: CPU cores one CPU actor uses at most (torch threads); more actors beat more threads past this.
CORES_PER_CPU_ACTOR = 4
CONNECT_PROBE_SECONDS = 3.0


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401  (Ray Data is the `data` extra of ray)
    except ImportError as exc:
        raise AmendError(RAY_MISSING) from exc
    return ray


# ------------------------------------------------------------------------------- the cluster
@contextlib.contextmanager
def _quiet_ray_logs() -> Iterator[None]:
    """Ray's own INFO and WARNING lines (start-up, token notes, progress-bar notes) kept off stderr,
    where only Amend's progress goes; ``amend -v`` lets them through. Levels are restored after."""
    if logging.getLogger("core").isEnabledFor(logging.INFO):
        yield
        return
    saved = {name: logging.getLogger(name).level for name in RAY_LOGGERS}
    for name in RAY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def _check_reachable(address: str, timeout: float = CONNECT_PROBE_SECONDS) -> None:
    """Refuse an ``address`` (``HOST:PORT`` or ``ray://HOST:PORT``) where nothing listens.

    Ray itself retries an absent head for minutes, printing a warning every few seconds; one TCP
    connection tells a user at once that nothing listens there.
    """
    if address == "auto":
        return
    host, _, port = address.split("://", 1)[-1].rstrip("/").rpartition(":")
    if not host or not port.isdigit():
        raise AmendError(f"--address {address!r} is not HOST:PORT; give the head node's address, "
                         "e.g. 10.0.0.5:6379 (the port `ray start --head` prints, 6379 by default).")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
    raise AmendError(f"no Ray cluster answers at {address} ({reason}); start one with `ray start --head` on "
                     "the head node and pass its HOST:6379.")


@contextlib.contextmanager
def ray_session(address: Optional[str] = None, num_cpus: Optional[int] = None) -> Iterator[Any]:
    """Ray for one run: connected to the cluster at ``address``, or a local Ray started with
    ``num_cpus`` (default: the cores this process may use) and shut down afterwards. A Ray the caller
    already started (``ray.init`` in a notebook or a test) is used as it is and left running.

    Workers' own output stays in Ray's log files (``log_to_driver=False``): stdout is the command's
    result, and a worker's exception still reaches the driver as an exception.
    """
    ray = _ray()
    if address:
        _check_reachable(address)
    with _quiet_ray_logs():
        if ray.is_initialized():
            yield ray
            return
        env = {k: os.environ[k] for k in FORWARDED_ENVIRONMENT if k in os.environ}
        verbose = logging.getLogger("core").isEnabledFor(logging.INFO)
        kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False,
                                      logging_level=logging.INFO if verbose else logging.ERROR)
        if env:
            kwargs["runtime_env"] = {"env_vars": env}
        with warnings.catch_warnings():
            # Ray starts its processes with fork + exec: the child runs a new program at once and never
            # touches LanceDB, so lancedb's warning about forking with its runtime started does not apply.
            warnings.filterwarnings("ignore", message="lancedb fork support", category=RuntimeWarning)
            if address:
                try:
                    ray.init(address=address, **kwargs)
                except Exception as exc:  # ConnectionError, ValueError, RuntimeError: all mean "no cluster there"
                    raise AmendError(
                        f"could not connect to a Ray cluster at {address} ({' '.join(str(exc).split())[:200]}); "
                        "start one with `ray start --head` and pass its address (HEAD:6379)."
                    ) from exc
            else:
                ray.init(address="local", num_cpus=num_cpus or usable_cores(), **kwargs)
        try:
            yield ray
        finally:
            ray.shutdown()


@dataclass(frozen=True)
class WorkerPlan:
    """How a run uses the cluster: the embedding actors and the decoding tasks beside them."""

    device: str  # "cuda" | "cpu": where the actors run the model
    actors: int
    cpus_per_actor: int  # Ray CPUs reserved per actor (= its torch threads on CPU)
    gpus_per_actor: int
    decode_tasks: int  # concurrent image-decoding tasks

    def to_json(self) -> dict:
        return dict(self.__dict__)


def plan_workers(cluster_cpus: float, cluster_gpus: float, node_cpus: list[float], device: str,
                 modality: str = "image", decode_tasks: Optional[int] = None) -> WorkerPlan:
    """Actors and decoding tasks for a cluster of ``cluster_cpus`` / ``cluster_gpus`` whose nodes have
    ``node_cpus`` each.

    GPUs (``device`` auto or cuda): one actor per GPU, each with one CPU to feed it; the other CPUs
    decode. CPU only: for images a quarter of the cores (at least one) decode, the rest run the model
    (texts have no decoding stage: every core runs the model) in actors of up to
    :data:`CORES_PER_CPU_ACTOR` cores (never more than the smallest node has, or an actor could fit
    nowhere). ``decode_tasks`` overrides the decoding concurrency (``--workers``).
    """
    cpus = max(1, int(cluster_cpus))
    gpus = int(cluster_gpus)
    if device.startswith("cuda") and gpus < 1:
        raise AmendError("--device cuda: the Ray cluster has no GPU; leave --device at auto or use cpu.")
    if device not in ("auto", "cpu") and not device.startswith("cuda"):
        raise AmendError(f"unknown --device {device!r}; use auto, cpu or cuda.")
    if decode_tasks is not None and decode_tasks < 1:
        raise AmendError(f"--workers must be at least 1 with --engine ray (got {decode_tasks}).")
    if gpus >= 1 and device != "cpu":
        return WorkerPlan("cuda", gpus, 1, 1, decode_tasks or max(1, cpus - gpus))
    decode_share = max(1, cpus // 4)
    model_cores = max(1, cpus - decode_share) if modality == "image" else cpus
    smallest_node = int(min((c for c in node_cpus if c >= 1), default=cpus))
    per_actor = max(1, min(CORES_PER_CPU_ACTOR, model_cores, smallest_node))
    actors = max(1, model_cores // per_actor)
    return WorkerPlan("cpu", actors, per_actor, 0, decode_tasks or decode_share)


def _cluster_plan(ray, options: EmbedOptions, modality: str) -> WorkerPlan:
    resources = ray.cluster_resources()
    node_cpus = [node.get("Resources", {}).get("CPU", 0.0) for node in ray.nodes() if node.get("Alive")]
    return plan_workers(resources.get("CPU", 1.0), resources.get("GPU", 0.0), node_cpus,
                        (options.device or "auto").lower(), modality, options.num_workers)


# ------------------------------------------------------------------------------- the embedder
@dataclass(frozen=True)
class EmbedderChoice:
    """The model every actor builds, fixed once for the run (``expected_model``: its name)."""

    modality: str
    model: Optional[str]
    pretrained: Optional[str]
    checkpoint: Optional[str]
    embedder: Optional[str]
    device: str
    expected_model: str = ""

    def build(self):
        """The embedder (no fallback of its own: a different model than expected is refused)."""
        from core.embed.fallback import resolve_embedder

        embedder, _ = resolve_embedder(self.modality, model=self.model, pretrained=self.pretrained,
                                       checkpoint=self.checkpoint, embedder=self.embedder, device=self.device)
        if self.expected_model and embedder.name != self.expected_model:
            raise AmendError(
                f"a Ray worker on {socket.gethostname()} loaded {embedder.name} instead of {self.expected_model} "
                "(its weights are missing there); every worker needs the same weights (a --checkpoint file at the "
                "same path, or the model in each node's Hugging Face cache)."
            )
        return embedder


def describe_embedder(choice: EmbedderChoice) -> dict:
    """Run on one worker of the actors' kind: build the embedder (offline fallback allowed) and say
    what it is: model, dim, settings, device, the fallback message, and for images the picklable
    preprocess with the shape of one preprocessed image."""
    from PIL import Image

    from core.embed.fallback import resolve_embedder

    embedder, message = resolve_embedder(choice.modality, model=choice.model, pretrained=choice.pretrained,
                                         checkpoint=choice.checkpoint, embedder=choice.embedder, device=choice.device)
    if choice.modality not in embedder.modalities:
        raise AmendError(f"{embedder.name} cannot embed {choice.modality} samples.")
    description = {"model": embedder.name, "dim": int(embedder.dim), "settings": embedder.settings(),
                   "device": embedder.device, "fallback_message": message, "preprocess": None, "pixel_shape": None}
    if choice.modality == "image":
        description["preprocess"] = embedder.preprocess
        description["pixel_shape"] = tuple(np.asarray(embedder.preprocess(Image.new("RGB", (32, 32)))).shape)
    return description


def decode_images(batch: dict[str, np.ndarray], preprocess, pixel_shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """A Ray Data CPU task: read, verify, decode and preprocess one batch of images.

    Returns ``id``, ``pixels`` (N x C x H x W, the preprocess's dtype) and ``reason`` (empty, or why a
    file was not embedded: missing, changed since ingest, not an image...; its pixels are zeros).
    """
    import torch

    torch.set_num_threads(1)  # as in a DataLoader worker: one core per decoding task
    ids = batch["id"]
    items = ImageItems([str(p) for p in batch["path"]], [str(h) for h in batch["content_hash"]], preprocess)
    pixels: Optional[np.ndarray] = None
    reasons = np.full(len(ids), "", dtype=object)
    for position in range(len(ids)):
        _, tensor, reason = items[position]
        if tensor is None:
            reasons[position] = reason
            continue
        values = tensor.numpy() if isinstance(tensor, torch.Tensor) else np.asarray(tensor)
        if pixels is None:
            pixels = np.zeros((len(ids), *pixel_shape), dtype=values.dtype)
        pixels[position] = values
    if pixels is None:
        pixels = np.zeros((len(ids), *pixel_shape), dtype=np.float32)
    return {"id": ids, "pixels": pixels, "reason": reasons}


class EmbedActor:
    """A Ray Data actor: loads the model once, then embeds batch after batch.

    Returns ``id``, ``vector`` (N x dim; zeros where the batch's ``reason`` says the image was not
    decoded) and ``reason``.
    """

    def __init__(self, choice: EmbedderChoice, torch_threads: int) -> None:
        self.choice = choice
        self.embedder = choice.build()
        if self.embedder.device == "cpu":
            import torch

            torch.set_num_threads(torch_threads)  # the cores Ray reserved for this actor, not the whole node

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        ids = batch["id"]
        if self.choice.modality == "text":
            vectors = self.embedder.embed_texts([str(t) for t in batch["text"]])
            return {"id": ids, "vector": np.asarray(vectors, np.float32), "reason": np.full(len(ids), "", object)}
        reasons = batch["reason"]
        good = np.array([not r for r in reasons], dtype=bool)
        vectors = np.zeros((len(ids), self.embedder.dim), np.float32)
        if good.any():
            vectors[good] = self.embedder.embed_images(torch.from_numpy(np.ascontiguousarray(batch["pixels"][good])))
        return {"id": ids, "vector": vectors, "reason": reasons}


def _amend_error_in(exc: BaseException) -> Optional[AmendError]:
    """The AmendError a worker raised, found inside Ray's wrappers (RayTaskError, UserCodeException)."""
    seen: set[int] = set()
    stack: list[Optional[BaseException]] = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, AmendError):
            return current
        stack.extend([current.__cause__, current.__context__, getattr(current, "cause", None)])
    return None


def _frames(work, rows: int) -> list:
    """The work split in frames of ``rows``: one Ray block, so one decoding task, per batch."""
    return [work.iloc[start:start + rows] for start in range(0, len(work), rows)]


# ------------------------------------------------------------------------------- the run
def embed_on_ray(project, options: Optional[EmbedOptions] = None, progress: ProgressCallback = no_progress,
                 ) -> EmbedReport:
    """Embed every committed sample of ``project`` that the representation does not hold yet, on Ray.

    Same options, report and resumability as :func:`core.embed.pipeline.embed`;
    ``options.address`` names the cluster (default: a local Ray with every core of this machine).
    """
    options = options or EmbedOptions(engine="ray")
    started = time.perf_counter()
    timings = {"start_ray": 0.0, "load": 0.0, "wait_for_data": 0.0, "write": 0.0}
    _ray()  # refuse before taking the lock when Ray is not installed, or nothing listens at the address
    if options.address:
        _check_reachable(options.address)
    with project.writer("embed"):
        modality = project_modality(project)
        with ray_session(options.address) as ray:
            timings["start_ray"] = time.perf_counter() - started
            plan = _cluster_plan(ray, options, modality)
            choice = EmbedderChoice(modality, options.model, options.pretrained,
                                    # workers run elsewhere: they get the absolute path
                                    os.path.abspath(os.path.expanduser(options.checkpoint))
                                    if options.checkpoint else None,
                                    options.embedder, plan.device)
            t = time.perf_counter()
            # One model load on a worker of the actors' kind, so the registry records what the actors
            # run (device, precision) and the driver needs neither the weights nor a GPU.
            describe = ray.remote(num_cpus=1, num_gpus=plan.gpus_per_actor)(describe_embedder)
            try:
                described = ray.get(describe.remote(choice))
            except Exception as exc:
                raise (_amend_error_in(exc) or exc) from None
            timings["load"] = time.perf_counter() - t
            if described["fallback_message"]:
                choice = EmbedderChoice(modality, None, None, None, "offline", plan.device)
            choice = EmbedderChoice(**{**choice.__dict__, "expected_model": described["model"]})
            settings = {**described["settings"], "engine": "ray"}
            rep = register_representation(project, options, described["model"], described["dim"], settings,
                                          described["fallback_message"])
            work, skipped = samples_to_embed(project, rep, modality)
            total = len(work)
            batch_size, _ = batch_and_workers(options, modality, described["device"], total)
            logger.info("embedding %d samples into %s with %s on Ray (%s); %d already there",
                        total, rep.name, described["model"], plan.to_json(), skipped)
            progress("embed", 0, total)
            failed: list[dict] = []
            embedded = 0
            if total:
                dataset = _dataset(ray, work, modality, batch_size, plan, choice, described)
                processed = 0
                t_wait = time.perf_counter()
                try:
                    for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
                        timings["wait_for_data"] += time.perf_counter() - t_wait
                        ids, reasons = batch["id"], batch["reason"]
                        good = np.array([not r for r in reasons], dtype=bool)
                        failed.extend({"id": str(i), "reason": str(r)} for i, r in zip(ids[~good], reasons[~good]))
                        if good.any():
                            t = time.perf_counter()
                            project.add_vectors(rep, [str(i) for i in ids[good]], batch["vector"][good])
                            timings["write"] += time.perf_counter() - t
                            embedded += int(good.sum())
                        processed += len(ids)
                        progress("embed", processed, total)
                        t_wait = time.perf_counter()
                except Exception as exc:
                    amend_error = _amend_error_in(exc)
                    if amend_error is not None:  # a worker's one-line error, without Ray's wrapping
                        raise amend_error from None
                    raise

    for item in failed:
        logger.warning("not embedded: %s: %s", item["id"], item["reason"])
    return EmbedReport(
        representation=rep.name, embedded=embedded, skipped=skipped, dim=described["dim"],
        model=described["model"], device=described["device"], seconds=time.perf_counter() - started,
        fallback_message=described["fallback_message"], failed=failed, timings=timings,
    )


def _dataset(ray, work, modality: str, batch_size: int, plan: WorkerPlan, choice: EmbedderChoice,
             described: dict):
    """The lazy Ray Dataset: samples -> (decoded pixels, for images) -> vectors."""
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # Amend draws its own progress on stderr
    if modality == "image":
        frame = work.assign(path=image_paths(work))[["id", "path", "content_hash"]]
    else:
        frame = work[["id", "text"]].assign(text=work["text"].fillna("").astype(str))
    dataset = ray.data.from_pandas(_frames(frame, batch_size))
    if modality == "image":
        pixel_bytes = int(np.prod(described["pixel_shape"])) * 4
        dataset = dataset.map_batches(
            decode_images, batch_size=batch_size, batch_format="numpy",
            fn_kwargs={"preprocess": described["preprocess"], "pixel_shape": described["pixel_shape"]},
            compute=ray.data.TaskPoolStrategy(size=plan.decode_tasks), num_cpus=1,
            # The memory a batch of decoded images needs (read, decoded, preprocessed): lets Ray keep
            # decoding tasks from crowding a node, and, being a resource the actors do not ask for,
            # keeps Ray Data from fusing decoding into the actors (it would stop overlapping the two).
            memory=3 * batch_size * pixel_bytes,
        )
    return dataset.map_batches(
        EmbedActor, batch_size=batch_size, batch_format="numpy",
        fn_constructor_kwargs={"choice": choice, "torch_threads": plan.cpus_per_actor},
        compute=ray.data.ActorPoolStrategy(size=plan.actors),
        num_cpus=plan.cpus_per_actor, num_gpus=plan.gpus_per_actor,
    )
