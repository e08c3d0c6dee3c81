"""Small helpers more than one room needs, one copy each. Standard library only."""

from __future__ import annotations

import datetime as _dt


def utc_now() -> str:
    """Server time, ISO 8601 with microseconds, UTC (the time format of every stored record)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds")
