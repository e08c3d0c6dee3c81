"""Progress of long steps on stderr, so that stdout stays the command's result."""

from __future__ import annotations

import sys
from typing import Any, Optional


class StderrProgress:
    """A tqdm bar per step on stderr, drawn only once a step has run for a second (a
    :class:`core.util.Progress` callback)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.bars: dict[str, Any] = {}

    def __call__(self, step: str, done: int, total: Optional[int]) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        bar = self.bars.get(step)
        if bar is None:
            # disable=None: no bar when stderr is not a terminal (logs, CI), so it never floods them.
            bar = tqdm(total=total, desc=step, file=sys.stderr, delay=1.0, leave=False, unit="it",
                       disable=None, position=len(self.bars))
            self.bars[step] = bar
        if total is not None and bar.total != total:
            bar.total = total
        bar.update(done - bar.n)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()
