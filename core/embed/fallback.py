"""Choose the embedder: OpenCLIP when its weights can be had, else the documented offline one.

Default (nothing given): OpenCLIP ViT-B-32 / laion2b_s34b_b79k. When those weights cannot be
loaded (no network, unknown tag, missing checkpoint file, hub error, corrupt file) the offline
embedder of the modality is used and ONE message says so; without a network the whole failure
takes about a DNS lookup (a 2 s TCP probe at most) instead of huggingface_hub's ~45 s of retries.
A model name with neither a tag nor a checkpoint is refused (AmendError): Amend never embeds with
random weights, and never falls back to them.
"""

from __future__ import annotations

import logging
import threading
from typing import Optional

from core.embed.base import Embedder
from core.util import resolve_device
from core.errors import AmendError

logger = logging.getLogger(__name__)

_OFFLINE_CACHE: dict[tuple[str, str], Embedder] = {}
_LOCK = threading.Lock()


def offline(modality: str, device: str = "auto") -> Embedder:
    """The offline embedder of a modality, loaded once per process and device."""
    from core.embed.offline import offline_embedder

    key = (modality, resolve_device(device))
    with _LOCK:
        if key not in _OFFLINE_CACHE:
            _OFFLINE_CACHE[key] = offline_embedder(modality, device=key[1])
        return _OFFLINE_CACHE[key]


def resolve_embedder(
    modality: str,
    model: Optional[str] = None,
    pretrained: Optional[str] = None,
    checkpoint: Optional[str] = None,
    embedder: Optional[str] = None,
    device: str = "auto",
) -> tuple[Embedder, Optional[str]]:
    """Build the embedder for ``modality`` ("image" | "text").

    Parameters
    ----------
    model, pretrained, checkpoint : str, optional
        OpenCLIP model name, pretrained tag, local weights file. With none of them: ViT-B-32 /
        laion2b_s34b_b79k. ``pretrained`` alone implies ViT-B-32; ``checkpoint`` needs ``model``.
    embedder : {"offline", None}
        ``"offline"``: the offline embedder, no OpenCLIP attempt (no message).
    device : str
        ``auto`` (default), ``cpu`` or ``cuda``.

    Returns
    -------
    (embedder, message)
        ``message`` is None when the asked-for model is used, else one line saying what failed
        and which offline embedder is used instead.
    """
    if modality not in ("image", "text"):
        raise AmendError(f"cannot embed samples of modality {modality!r}; Amend embeds images and texts.")
    resolve_device(device)  # refuse a bad --device before anything slow
    if embedder not in (None, "offline", "openclip", "open_clip"):
        raise AmendError(f"unknown --embedder {embedder!r}; use 'offline' (or leave it out for OpenCLIP).")
    if embedder == "offline":
        if model or pretrained or checkpoint:
            raise AmendError("--embedder offline cannot be combined with --model/--pretrained/--checkpoint.")
        return offline(modality, device), None
    if checkpoint and not model:
        raise AmendError("--checkpoint needs --model NAME (the OpenCLIP architecture the weights belong to).")
    if checkpoint and pretrained:
        raise AmendError("give either --pretrained TAG or --checkpoint PATH, not both.")

    from core.embed import openclip

    if not model and not pretrained and not checkpoint:
        model, pretrained = openclip.DEFAULT_MODEL, openclip.DEFAULT_PRETRAINED
    model = model or openclip.DEFAULT_MODEL
    try:
        return openclip.OpenClipEmbedder(model, pretrained=pretrained, checkpoint=checkpoint, device=device), None
    except openclip.WeightsUnavailable as exc:
        chosen = offline(modality, device)
        what = f"{model}/{pretrained}" if pretrained else f"{model} from checkpoint {checkpoint}"
        message = (
            f"OpenCLIP weights {what} could not be loaded ({exc}); using the offline embedder "
            f"{chosen.name} instead. Put the weights in the Hugging Face cache or pass --checkpoint PATH "
            "to use OpenCLIP."
        )
        logger.info(message)
        return chosen, message
