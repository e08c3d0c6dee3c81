"""OpenCLIP embedder: a pretrained tag (downloaded or from the Hugging Face cache) or a local
checkpoint. Images go through the image tower (``encode_image``), texts through the text tower
(``encode_text``), both in ``torch.inference_mode``; on CUDA under fp16 autocast.

Weights are never random: :func:`load_openclip` refuses a model name with neither a pretrained
tag nor a checkpoint, and raises :class:`WeightsUnavailable` (which :mod:`core.embed.fallback`
turns into the offline embedder plus one message) when the weights cannot be had.

The tiny config ``model_configs/amend-tiny-test.json`` is registered on import so tests can run
this real code path on CPU with a saved random-weight checkpoint.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from pathlib import Path
from typing import Callable, Optional, Sequence
from urllib.parse import urlparse

import numpy as np

from core.embed.base import configure_cpu_threads, to_batch_tensor
from core.util import resolve_device, unit_rows
from core.errors import AmendError

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "ViT-B-32"
DEFAULT_PRETRAINED = "laion2b_s34b_b79k"
MODEL_CONFIGS = Path(__file__).resolve().parent / "model_configs"
NETWORK_PROBE_TIMEOUT = 2.0

# Fail fast where the Hub is slow or absent; a user's own settings win.
os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "5")
os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "10")

import open_clip  # noqa: E402  (after the timeouts: huggingface_hub reads them on import)

if MODEL_CONFIGS not in getattr(open_clip.factory, "_MODEL_CONFIG_PATHS", []):
    open_clip.add_model_config(MODEL_CONFIGS)


class WeightsUnavailable(Exception):
    """OpenCLIP weights could not be had; ``str(exc)`` is one line saying why."""


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return (text[:300] + "...") if len(text) > 300 else text or type(exc).__name__


def _hub_host() -> str:
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    return urlparse(endpoint).hostname or "huggingface.co"


def _reachable(host: str, port: int = 443, timeout: float = NETWORK_PROBE_TIMEOUT) -> Optional[str]:
    """None when a TCP connection to host:port opens within ``timeout``, else the reason."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return f"no network connection to {host} ({_one_line(exc)})"


def _cached_weights(cfg: dict) -> Optional[str]:
    """The local file of a pretrained config if it is already in a cache, else None. No network."""
    if cfg.get("file"):
        return cfg["file"] if os.path.isfile(cfg["file"]) else None
    hub = cfg.get("hf_hub", "")
    if hub:
        from huggingface_hub import hf_hub_download

        repo_id, filename = os.path.split(hub)
        filename = filename or "open_clip_pytorch_model.bin"
        names = [filename]
        if filename.endswith((".bin", ".pth", ".pt")):
            names.insert(0, filename.rsplit(".", 1)[0] + ".safetensors")
        if filename == "open_clip_pytorch_model.bin":
            names.insert(0, "open_clip_model.safetensors")
        for name in names:
            try:
                return hf_hub_download(repo_id=repo_id, filename=name, local_files_only=True)
            except Exception:  # not cached under this name
                continue
    url = cfg.get("url", "")
    if url:
        local = Path(os.path.expanduser("~/.cache/clip")) / os.path.basename(url)
        if local.is_file():
            return str(local)
    return None


def _download_weights(cfg: dict) -> str:
    """Fetch a pretrained config's weights; raise WeightsUnavailable fast when offline."""
    hosts = []
    if cfg.get("hf_hub"):
        hosts.append(_hub_host())
    elif cfg.get("url"):
        hosts.append(urlparse(cfg["url"]).hostname or "")
    for host in hosts:
        reason = _reachable(host)
        if reason:
            raise WeightsUnavailable(reason)
    try:
        target = open_clip.download_pretrained(cfg)
    except Exception as exc:  # hub errors, HTTP errors, timeouts
        raise WeightsUnavailable(f"download failed: {_one_line(exc)}") from exc
    if not target:
        raise WeightsUnavailable("the pretrained config names no file to download")
    return target


def resolve_weights(model: str, pretrained: Optional[str], checkpoint: Optional[str]) -> tuple[str, dict]:
    """(local weights file, preprocessing overrides) for a model; raises WeightsUnavailable.

    Refuses (AmendError) a model with neither weights source: Amend never embeds with random weights.
    """
    if model not in open_clip.list_models():
        raise WeightsUnavailable(f"unknown OpenCLIP model {model!r}")
    if checkpoint:
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise WeightsUnavailable(f"checkpoint file {path} does not exist")
        return str(path.resolve()), {}
    if not pretrained:
        raise AmendError(
            f"--model {model} needs weights: add --pretrained TAG (one of "
            f"{', '.join(open_clip.list_pretrained_tags_by_model(model)[:5]) or 'none known'}) "
            "or --checkpoint PATH; Amend does not embed with random weights."
        )
    if os.path.isfile(pretrained):
        return str(Path(pretrained).resolve()), {}
    cfg = open_clip.get_pretrained_cfg(model, pretrained)
    if not cfg:
        known = open_clip.list_pretrained_tags_by_model(model)
        raise WeightsUnavailable(
            f"unknown pretrained tag {pretrained!r} for {model}"
            + (f" (known: {', '.join(known[:6])}{', ...' if len(known) > 6 else ''})" if known else "")
        )
    overrides = {}
    for key, arg in (("mean", "image_mean"), ("std", "image_std"), ("interpolation", "image_interpolation"),
                     ("resize_mode", "image_resize_mode")):
        if cfg.get(key) is not None:
            overrides[arg] = cfg[key]
    cached = _cached_weights(cfg)
    return (cached or _download_weights(cfg)), overrides


class OpenClipEmbedder:
    """OpenCLIP model with real weights, images and texts.

    Parameters
    ----------
    model : str
        OpenCLIP model name (``open_clip.list_models()``), default ``ViT-B-32``.
    pretrained : str, optional
        A pretrained tag of that model (default ``laion2b_s34b_b79k`` when no checkpoint).
    checkpoint : str, optional
        A local weights file (state dict or OpenCLIP checkpoint) for ``model``.
    device : str
        ``auto`` (default), ``cpu`` or ``cuda``.
    """

    modalities = frozenset({"image", "text"})

    def __init__(self, model: str = DEFAULT_MODEL, pretrained: Optional[str] = None,
                 checkpoint: Optional[str] = None, device: str = "auto") -> None:
        import torch

        self.device = resolve_device(device)
        if self.device == "cpu":
            configure_cpu_threads()
        weights, overrides = resolve_weights(model, pretrained, checkpoint)
        started = time.perf_counter()
        try:
            net, _, preprocess = open_clip.create_model_and_transforms(
                model, pretrained=weights, device=self.device, **overrides
            )
        except Exception as exc:  # a corrupt or mismatched file
            raise WeightsUnavailable(f"loading {weights} failed: {_one_line(exc)}") from exc
        logger.info("loaded OpenCLIP %s in %.1fs", model, time.perf_counter() - started)
        net.eval()
        self.model = net
        self.preprocess = preprocess
        self.tokenizer = open_clip.get_tokenizer(model)
        self.model_name = model
        self.weights = f"checkpoint:{Path(checkpoint).name}" if checkpoint else pretrained
        self.name = f"open_clip:{model}/{self.weights}"
        with torch.inference_mode():
            probe = net.encode_text(self.tokenizer(["a"]).to(self.device))
        self.dim = int(probe.shape[-1])
        self._autocast = self.device.startswith("cuda")

    def settings(self) -> dict:
        return {
            "family": "open_clip",
            "model": self.model_name,
            "weights": self.weights,
            "device": self.device,
            "precision": "fp16-autocast" if self._autocast else "fp32",
            "open_clip": getattr(open_clip, "__version__", "?"),
        }

    def _context(self):
        import contextlib

        import torch

        if self._autocast:
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    def embed_images(self, batch) -> np.ndarray:
        import torch

        pixels = to_batch_tensor(batch, self.preprocess)
        with torch.inference_mode(), self._context():
            out = self.model.encode_image(pixels.to(self.device, non_blocking=True))
        return unit_rows(out.float().cpu().numpy())

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        tokens = self.tokenizer(list(texts))
        with torch.inference_mode(), self._context():
            out = self.model.encode_text(tokens.to(self.device, non_blocking=True))
        return unit_rows(out.float().cpu().numpy())


def text_tower_for(representation_model: str, device: str = "auto") -> Optional[Callable[[list[str]], np.ndarray]]:
    """The text tower of the OpenCLIP model that made a representation (its ``model`` field,
    ``open_clip:MODEL/WEIGHTS``), so slices can be named from words in the same space; None when
    it cannot be loaded again here.

    WEIGHTS is a pretrained tag or a weights file path. A representation made from
    ``--checkpoint`` records only the file's name (``checkpoint:NAME``), not where it was, so it
    has no text tower here: its slices are named from labels and metadata instead.
    """
    prefix = "open_clip:"
    if not representation_model.startswith(prefix) or "/" not in representation_model:
        return None
    model, weights = representation_model[len(prefix):].split("/", 1)
    if not weights or weights.startswith("checkpoint:"):
        return None
    try:
        embedder = OpenClipEmbedder(model, pretrained=weights, device=device)
    except (WeightsUnavailable, AmendError) as exc:
        logger.info("no text tower for %s (slices named without it): %s", representation_model, _one_line(exc))
        return None
    return embedder.embed_texts
