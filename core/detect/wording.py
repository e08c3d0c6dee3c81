"""Small helpers the detectors' ``explain`` functions share: reading one evidence row safely and
writing numbers the way a reviewer reads them. No detector knowledge lives here."""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional

import pandas as pd

from core.util import listed  # noqa: F401 (re-exported: detectors and views import it from here)

__all__ = ["number", "listed", "percent", "own_label", "suggested_label", "neighbour_counts"]


def number(value: Any) -> Optional[float]:
    """``value`` as a float, or None when it is missing, NaN or not a number."""
    if value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(out) else out


def percent(p: float) -> str:
    """'12%'. A model's estimate that is not exactly 0 or 1 never reads as certain: '<1%', '>99%'
    (a reviewer reads "0%" as impossible, and no out-of-sample estimate is)."""
    shown = f"{100 * p:.0f}"
    if shown == "0" and p > 0:
        return "<1%"
    if shown == "100" and p < 1:
        return ">99%"
    return f"{shown}%"


def own_label(row: Mapping[str, Any]) -> Any:
    """The label the run analysed (falls back to the label in force)."""
    return row.get("label_analysed") or row.get("current_label")


def suggested_label(row: Mapping[str, Any]) -> Optional[str]:
    value = row.get("suggested_label")
    return value if isinstance(value, str) else None


def neighbour_counts(row: Mapping[str, Any]) -> tuple[int, Optional[str], int]:
    """(neighbours, most common other label, its count) from the row's neighbour labels."""
    labels = [str(x) for x in listed(row.get("neighbour_labels"))]
    own = own_label(row)
    others = pd.Series([x for x in labels if x != own], dtype=object).value_counts()
    if others.empty:
        return len(labels), None, 0
    return len(labels), str(others.index[0]), int(others.iloc[0])
