"""Small helpers more than one room needs, one copy each. Standard library only.

- :func:`utc_now`: the time format of every stored record;
- :class:`Progress` / :data:`ProgressCallback` / :func:`no_progress`: progress reporting for long
  work: core calls a callback; the CLI draws a bar, the app st.progress.
"""

from __future__ import annotations

import datetime as _dt
from typing import Callable, Optional, Protocol


def utc_now() -> str:
    """Server time, ISO 8601 with microseconds, UTC (the time format of every stored record)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds")


class Progress(Protocol):
    def __call__(self, step: str, done: int, total: Optional[int]) -> None:
        """Report that `done` of `total` units of `step` are finished (total None: unknown)."""


def no_progress(step: str, done: int, total: Optional[int]) -> None:
    """The default callback: report nothing."""


ProgressCallback = Callable[[str, int, Optional[int]], None]
