"""Which engine embeds: this process (:mod:`core.embed.pipeline`) or Ray Data (:mod:`core.embed.ray_engine`).

``EmbedOptions.engine`` chooses; both take the same options, write through the same
``Project.add_vectors`` into the same representation and return the same :class:`EmbedReport`.
Ray is imported only when its engine runs.
"""

from __future__ import annotations

from typing import Optional

from core.embed.pipeline import EmbedOptions, EmbedReport
from core.embed.pipeline import embed as embed_in_process
from core.errors import AmendError
from core.util import ProgressCallback, no_progress

ENGINES = ("inprocess", "ray")


def embed(project, options: Optional[EmbedOptions] = None, progress: ProgressCallback = no_progress) -> EmbedReport:
    """Embed every committed sample of ``project`` not yet in the representation, on ``options.engine``.

    See :func:`core.embed.pipeline.embed` (``"inprocess"``, the default) and
    :func:`core.embed.ray_engine.embed_on_ray` (``"ray"``, with ``options.address``).
    """
    options = options or EmbedOptions()
    if options.engine not in ENGINES:
        raise AmendError(f"unknown embed engine {options.engine!r}; use one of {', '.join(ENGINES)}.")
    if options.engine == "ray":
        from core.embed.ray_engine import embed_on_ray

        return embed_on_ray(project, options, progress)
    if options.address:
        raise AmendError("--address names a Ray cluster; it needs --engine ray.")
    return embed_in_process(project, options, progress)
