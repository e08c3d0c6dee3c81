"""The embed pipeline: every committed sample not yet in the representation -> one vector.

Resumable: the representation is registered before the first batch and every batch is appended
(``Project.add_vectors``) as soon as it is computed, so a killed run loses at most the batch in
flight and the next run skips every id already stored.

Images are read by path (``root/path``) in a torch DataLoader whose workers read the bytes,
check their sha256 against the ``content_hash`` taken at ingest, decode and preprocess; the main
process only runs the model and writes. A file that is missing, unreadable, undecodable or whose
bytes changed since ingest is not embedded: it is listed in ``EmbedReport.failed`` with the reason
(and retried by the next run, since it has no vector).

Representation names (``EmbedOptions.name``) default to what the vectors come from:
``"clip"`` for any OpenCLIP model, ``"efficientnet-lite0"`` for the offline image embedder,
``"minilm"`` for the offline text embedder. A representation holds one model only
(``Project.start_representation`` refuses a mix), so a fallback run never lands in ``"clip"``.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import stat
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from core.embed.base import Embedder
from core.embed.fallback import resolve_embedder
from core.errors import AmendError
from core.util import ProgressCallback, no_progress, usable_cores

logger = logging.getLogger(__name__)

DEFAULT_NAMES = {
    "offline:efficientnet-lite0-imagenet": "efficientnet-lite0",
    "offline:all-MiniLM-L6-v2": "minilm",
}


@dataclass
class EmbedOptions:
    """What ``amend embed`` takes.

    Attributes
    ----------
    name : str, optional
        Representation name; default ``"clip"`` (OpenCLIP), ``"efficientnet-lite0"`` or
        ``"minilm"`` (offline embedders), i.e. named after the model really used.
    model, pretrained, checkpoint, embedder, device
        See :func:`core.embed.fallback.resolve_embedder`.
    batch_size : int, optional
        Samples per forward pass; default 512 on CUDA, 32 (images) / 64 (texts) on CPU.
    num_workers : int, optional
        Image decoding processes; default ``min(cores, 12)`` on CUDA, 1 on CPU (0 when the
        work fits in two batches). With ``engine="ray"``: concurrent decoding tasks (default:
        the cluster's CPUs left over by the embedding actors).
    engine : {"inprocess", "ray"}
        ``"inprocess"`` (default): this process, images decoded by a torch DataLoader.
        ``"ray"``: Ray Data (:mod:`core.embed.ray_engine`), on a local Ray or the cluster at ``address``.
    address : str, optional
        With ``engine="ray"``: a running Ray cluster (``HEAD:6379``); default: start a local Ray.
    """

    name: Optional[str] = None
    model: Optional[str] = None
    pretrained: Optional[str] = None
    checkpoint: Optional[str] = None
    embedder: Optional[str] = None
    device: str = "auto"
    batch_size: Optional[int] = None
    num_workers: Optional[int] = None
    engine: str = "inprocess"
    address: Optional[str] = None


@dataclass
class EmbedReport:
    """The outcome of one embed run (``to_json`` is the CLI's ``--json`` object)."""

    representation: str
    embedded: int
    skipped: int
    dim: int
    model: str
    device: str
    seconds: float
    fallback_message: Optional[str] = None
    failed: list[dict] = field(default_factory=list)  # [{id, reason}]
    timings: dict = field(default_factory=dict)  # load / wait_for_data / forward / write seconds

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["seconds"] = round(self.seconds, 3)
        data["timings"] = {k: round(v, 3) for k, v in self.timings.items()}
        return data


def default_name(embedder: Embedder) -> str:
    return default_name_for(embedder.name)


def default_name_for(model: str) -> str:
    """The representation name a model's vectors get when ``--name`` is not given."""
    if model.startswith("open_clip:"):
        return "clip"
    return DEFAULT_NAMES.get(model, model.split(":")[-1].split("/")[0].lower())


# ------------------------------------------------------------------------------- image loading
class ImageItems:
    """Dataset of (position, tensor | None, reason | None): read, verify, decode, preprocess."""

    def __init__(self, paths: list[str], hashes: list[str], preprocess) -> None:
        from core.ingest import images, limits

        self.paths = paths
        self.hashes = hashes
        self.preprocess = preprocess
        self.max_pixels = limits.max_pixels()  # an image past it (ingested under a higher limit) is skipped
        images.allow_pixels(self.max_pixels)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        from PIL import Image, UnidentifiedImageError

        from core.ingest.limits import too_many_pixels

        path = self.paths[index]
        try:
            if not stat.S_ISREG(os.stat(path).st_mode):  # a pipe or device put there since ingest would hang the read
                return index, None, f"not a regular file (a pipe, device or socket): {path}"
            data = Path(path).read_bytes()
        except FileNotFoundError:
            return index, None, f"file missing: {path}"
        except OSError as exc:
            return index, None, f"file unreadable: {path} ({exc.strerror or exc})"
        digest = hashlib.sha256(data).hexdigest()
        if digest != self.hashes[index]:
            return index, None, f"file changed since ingest: {path} (sha256 {digest[:12]}..., ingest recorded {str(self.hashes[index])[:12]}...)"
        try:
            with Image.open(io.BytesIO(data)) as image:
                too_large = too_many_pixels(*image.size, self.max_pixels)  # the header only: nothing decoded yet
                if too_large:
                    return index, None, f"{too_large.rstrip('.')}: {path}"
                image.load()
                tensor = self.preprocess(image.convert("RGB"))
        except Image.DecompressionBombError as exc:
            return index, None, f"image too large: {path} ({exc}; set AMEND_MAX_PIXELS to allow more)"
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            return index, None, f"not a decodable image: {path} ({exc})"
        return index, tensor, None


def collate_items(items):
    """Split a batch into (positions, stacked tensor | None, [(position, reason)])."""
    import torch

    good = [(i, t) for i, t, _ in items if t is not None]
    bad = [(i, r) for i, t, r in items if t is None]
    pixels = torch.stack([t for _, t in good]) if good else None
    return [i for i, _ in good], pixels, bad


def image_loader(paths, hashes, preprocess, batch_size: int, num_workers: int, device: str):
    """The DataLoader the pipeline (and the benchmark) reads images through."""
    from torch.utils.data import DataLoader

    cuda = device.startswith("cuda")
    return DataLoader(
        ImageItems(paths, hashes, preprocess),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=collate_items,
        pin_memory=cuda,
        persistent_workers=num_workers > 0,
        prefetch_factor=4 if num_workers > 0 else None,
        # default start method (fork on Linux): workers never touch lancedb or CUDA, and
        # forkserver/spawn would re-import a caller's unguarded __main__ script
    )


# ------------------------------------------------------------------------------- the pipeline
def batch_and_workers(options: EmbedOptions, modality: str, device: str, todo: int) -> tuple[int, int]:
    """(batch size, data-loader workers) for ``todo`` samples: the options' own, else defaults for
    the device and modality (worker processes only for images, and only when there is more than
    two batches of decoding to overlap)."""
    cuda = device.startswith("cuda")
    batch = options.batch_size or (512 if cuda else (32 if modality == "image" else 64))
    if batch < 1:
        raise AmendError(f"--batch-size must be at least 1 (got {batch}).")
    if options.num_workers is not None:
        if options.num_workers < 0:
            raise AmendError(f"num_workers must be 0 or more (got {options.num_workers}).")
        workers = options.num_workers
    elif modality != "image" or todo <= 2 * batch:
        workers = 0
    else:
        workers = min(usable_cores(), 12) if cuda else 1
    return batch, workers


def project_modality(project) -> str:
    """The modality of the project's samples; refuses a project with none."""
    modality = project.modality()
    if modality is None:
        raise AmendError(f"{project.path} has no samples; add some with `amend ingest` first.")
    return modality


def register_representation(project, options: EmbedOptions, model: str, dim: int, settings: dict,
                            fallback_message: Optional[str]):
    """The representation a run writes into (registered before the first batch, so a killed run
    resumes into it): ``options.name`` or the model's default name."""
    name = options.name or default_name_for(model)
    settings = dict(settings)
    if fallback_message:
        # Kept with the representation so every view can say why these are not OpenCLIP vectors.
        settings["fallback_message"] = fallback_message
    return project.start_representation(name, model, dim, settings)


def samples_to_embed(project, rep, modality: str):
    """(the committed samples ``rep`` holds no vector for, how many it already holds): ``id`` plus
    ``root, path, content_hash`` (images) or ``text`` (texts), in project order."""
    columns = ["id", "root", "path", "content_hash"] if modality == "image" else ["id", "text"]
    samples = project.samples(columns=columns)
    done_ids = project.embedded_ids(rep)
    pending = ~samples["id"].isin(done_ids)
    return samples[pending].reset_index(drop=True), int((~pending).sum())


def image_paths(work) -> list[str]:
    """Where each image of :func:`samples_to_embed`'s frame is read from (``root/path``)."""
    return [str(Path(root) / rel) for root, rel in zip(work["root"], work["path"])]


def embed(project, options: Optional[EmbedOptions] = None, progress: ProgressCallback = no_progress) -> EmbedReport:
    """Embed every committed sample of ``project`` that the representation does not hold yet, in
    this process (the ``inprocess`` engine; :func:`core.embed.engines.embed` chooses the engine).

    Parameters
    ----------
    project : core.store.project.Project
    options : EmbedOptions, optional
        Defaults: OpenCLIP ViT-B-32/laion2b_s34b_b79k with the offline fallback, device auto.
    progress : callable
        Called as ``progress("embed", done, total)`` after every batch.

    Returns
    -------
    EmbedReport
    """
    options = options or EmbedOptions()
    if options.engine != "inprocess" or options.address:
        # the engines are chosen in core.embed.engines, which imports this module (never the reverse)
        raise AmendError(f"core.embed.pipeline.embed runs in this process; for engine {options.engine!r} "
                         "call core.embed.embed (it chooses the engine).")
    started = time.perf_counter()
    timings = {"load": 0.0, "wait_for_data": 0.0, "forward": 0.0, "write": 0.0}
    with project.writer("embed"):
        modality = project_modality(project)
        embedder, message = resolve_embedder(
            modality, model=options.model, pretrained=options.pretrained, checkpoint=options.checkpoint,
            embedder=options.embedder, device=options.device,
        )
        if modality not in embedder.modalities:
            raise AmendError(f"{embedder.name} cannot embed {modality} samples.")
        timings["load"] = time.perf_counter() - started
        rep = register_representation(project, options, embedder.name, embedder.dim, embedder.settings(), message)
        name = rep.name
        work, skipped = samples_to_embed(project, rep, modality)
        total = len(work)
        batch_size, workers = batch_and_workers(options, modality, embedder.device, total)
        logger.info("embedding %d samples into %s with %s (%s, batch %d, %d workers); %d already there",
                    total, name, embedder.name, embedder.device, batch_size, workers, skipped)
        progress("embed", 0, total)
        failed: list[dict] = []
        embedded = 0

        def store(ids: list[str], vectors: np.ndarray) -> None:
            t = time.perf_counter()
            project.add_vectors(rep, ids, vectors)
            timings["write"] += time.perf_counter() - t

        if total and modality == "image":
            ids = work["id"].tolist()
            paths = image_paths(work)
            loader = image_loader(paths, work["content_hash"].tolist(), embedder.preprocess,
                                  batch_size, workers, embedder.device)
            processed = 0
            t_wait = time.perf_counter()
            with warnings.catch_warnings():
                # The workers are forked here. They read and decode files and never touch
                # LanceDB, so lancedb's warning about forking with its runtime started (printed
                # to every user of `amend embed`) does not apply to them.
                warnings.filterwarnings("ignore", message="lancedb fork support", category=RuntimeWarning)
                batches = iter(loader)
            for positions, pixels, bad in batches:
                timings["wait_for_data"] += time.perf_counter() - t_wait
                failed.extend({"id": ids[i], "reason": reason} for i, reason in bad)
                if positions:
                    t = time.perf_counter()
                    vectors = embedder.embed_images(pixels)
                    timings["forward"] += time.perf_counter() - t
                    store([ids[i] for i in positions], vectors)
                    embedded += len(positions)
                processed += len(positions) + len(bad)
                progress("embed", processed, total)
                t_wait = time.perf_counter()
        elif total:
            ids = work["id"].tolist()
            texts = work["text"].fillna("").astype(str).tolist()
            for start in range(0, total, batch_size):
                t = time.perf_counter()
                vectors = embedder.embed_texts(texts[start:start + batch_size])
                timings["forward"] += time.perf_counter() - t
                store(ids[start:start + batch_size], vectors)
                embedded += len(vectors)
                progress("embed", min(start + batch_size, total), total)

    for item in failed:
        logger.warning("not embedded: %s: %s", item["id"], item["reason"])
    return EmbedReport(
        representation=name, embedded=embedded, skipped=skipped, dim=embedder.dim, model=embedder.name,
        device=embedder.device, seconds=time.perf_counter() - started, fallback_message=message,
        failed=failed, timings=timings,
    )
