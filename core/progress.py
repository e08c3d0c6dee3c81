"""Progress reporting for long work: core calls a callback; the CLI draws a bar, the app st.progress."""

from __future__ import annotations

from typing import Callable, Optional, Protocol


class Progress(Protocol):
    def __call__(self, step: str, done: int, total: Optional[int]) -> None:
        """Report that `done` of `total` units of `step` are finished (total None: unknown)."""


def no_progress(step: str, done: int, total: Optional[int]) -> None:
    """The default callback: report nothing."""


ProgressCallback = Callable[[str, int, Optional[int]], None]
