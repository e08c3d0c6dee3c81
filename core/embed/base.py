"""The Embedder protocol and the helpers every embedder shares.

An embedder turns images or texts into float32 vectors, one row per input. Vectors leave an
embedder L2-normalised (``Project.add_vectors`` normalises again, so a table never holds
anything else). ``name`` is the model that really produced the vectors and is what a
representation records; two runs with different ``name`` never share a representation.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Protocol, Sequence, runtime_checkable

import numpy as np

from core.errors import AmendError
from core.util import usable_cores


@runtime_checkable
class Embedder(Protocol):
    """What the pipeline needs from a model.

    Attributes
    ----------
    name : str
        The model that produces the vectors, e.g. ``"open_clip:ViT-B-32/laion2b_s34b_b79k"``,
        ``"offline:efficientnet-lite0-imagenet"``, ``"offline:all-MiniLM-L6-v2"``.
    dim : int
        Length of every vector.
    modalities : frozenset[str]
        ``{"image"}``, ``{"text"}`` or both.
    device : str
        ``"cpu"`` or ``"cuda"`` (resolved, never ``"auto"``).
    preprocess : Callable[[PIL.Image.Image], torch.Tensor] | None
        Picklable image transform (decoded RGB image -> C x H x W float tensor), run in
        DataLoader workers. None for text-only embedders.
    """

    name: str
    dim: int
    modalities: frozenset
    device: str
    preprocess: Optional[Callable[[Any], Any]]

    def settings(self) -> dict:
        """What a run records next to the vectors (model, weights, preprocessing, precision)."""

    def embed_images(self, batch: Any) -> np.ndarray:
        """A list of PIL images or an N x C x H x W tensor from :attr:`preprocess` -> N x dim."""

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """A list of strings -> N x dim."""


def configure_cpu_threads() -> int:
    """Give torch's intra-op pool every core we may use (once per process); returns the count."""
    import torch

    threads = usable_cores()
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


def to_batch_tensor(batch: Any, preprocess: Callable[[Any], Any]):
    """A preprocessed N x C x H x W tensor from a tensor (passed through) or a list of PIL images."""
    import torch

    if isinstance(batch, torch.Tensor):
        return batch if batch.dim() == 4 else batch.unsqueeze(0)
    return torch.stack([preprocess(image.convert("RGB")) for image in batch])
