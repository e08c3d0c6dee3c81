"""Times and analysis runs in the words a reviewer reads (run ids and ISO stamps stay one click
away, for auditors). Used by every page's view-model."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from core.analysis import runs
from core.detect.wording import percent


def plain_time(iso: Any) -> str:
    """An ISO time as a person reads it: "4 Dec 2026, 22:36 UTC" ("" for none)."""
    if iso is None or (isinstance(iso, float) and np.isnan(iso)) or iso == "":
        return ""
    stamp = pd.Timestamp(iso)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC")
    return f"{stamp.day} {stamp:%b %Y, %H:%M} UTC"


def probability(p: float) -> str:
    """An estimated probability as a reviewer reads it: "12%", and never a certainty it is not
    ("<1%", ">99%")."""
    return percent(float(p))


def expected_wrong(counts: dict | None) -> str:
    """A run's noise estimate as a person reads it: " (about 92 labels expected wrong)", or ""
    for a run without error probabilities (or one recorded before they were counted)."""
    expected = (counts or {}).get("expected_wrong")
    return "" if expected is None else f" (about {float(expected):,.0f} labels expected wrong)"


def run_title(run: runs.RunInfo) -> str:
    """An analysis run as a person names it: "Analysis of 4 Dec 2026, 22:36 UTC · 125 flagged"."""
    flagged = (run.record.get("counts") or {}).get("flagged")
    tail = f" · {int(flagged):,} flagged" if flagged is not None else ""
    return f"Analysis of {plain_time(run.created_at)}{tail}"
