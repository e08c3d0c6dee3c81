"""Embedding: samples -> one vector table per representation.

Public face: :func:`embed` (in this process, or on Ray Data with ``EmbedOptions(engine="ray")``),
:class:`EmbedOptions`, :class:`EmbedReport`, :func:`resolve_embedder` (OpenCLIP with the offline
fallback) and the :class:`Embedder` protocol.
Heavy modules (torch, open_clip) load only when an embedder is built.
"""

from core.embed.base import Embedder
from core.embed.fallback import resolve_embedder
from core.embed.engines import embed
from core.embed.pipeline import EmbedOptions, EmbedReport

__all__ = ["Embedder", "EmbedOptions", "EmbedReport", "embed", "resolve_embedder"]
