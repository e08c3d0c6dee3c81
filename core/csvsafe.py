"""CSV cells a spreadsheet would run as formulas, made inert (CSV / formula injection).

A label, id or review reason that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return is read by Excel, LibreOffice and Google Sheets as a formula when the CSV is opened, so a
crafted label (``=HYPERLINK(...)``, ``=cmd|...``) would run on the auditor's machine. The OWASP
remedy is used: such a string cell gets a leading single quote, which spreadsheets show as text.
Only strings are touched (numbers and booleans are never formulas); Parquet and JSONL stay
verbatim, since nothing evaluates them. Every CSV Amend writes (``amend export --format csv``,
``amend flags --format csv``, the app's downloads) goes through :func:`neutralise_frame` or
:func:`neutralise_cell`, and says how many cells it changed.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

#: First characters that make a spreadsheet treat a cell as a formula (OWASP's list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

#: One sentence for manifests and notes: what was done to the CSV and why.
EXPLANATION = (
    "CSV cells (strings) starting with =, +, -, @, a tab or a carriage return were prefixed with a single quote (') "
    "so that spreadsheets show them as text instead of running them as formulas; the Parquet and JSONL formats "
    "keep every value verbatim."
)


def is_formula(value: Any) -> bool:
    """Whether ``value`` is a string a spreadsheet would take for a formula."""
    return isinstance(value, str) and value.startswith(FORMULA_STARTS)


def neutralise_cell(value: Any) -> Any:
    """``value`` with a leading ``'`` when it is a string starting like a formula; anything else unchanged."""
    return "'" + value if is_formula(value) else value


def neutralise_frame(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """A copy of ``frame`` with every formula-like string cell (and column name) neutralised, and
    how many cells were changed. ``frame`` itself is left as it was."""
    out = frame.copy()
    changed = 0
    for column in out.columns:
        values = out[column]
        if values.dtype != object and not pd.api.types.is_string_dtype(values.dtype):
            continue  # numbers, booleans, dates: never formulas
        hits = int(values.map(is_formula).astype(bool).sum())
        if hits:
            out[column] = values.map(neutralise_cell)
            changed += hits
    renamed = {c: neutralise_cell(c) for c in out.columns if is_formula(c)}
    if renamed:
        out = out.rename(columns=renamed)
        changed += len(renamed)
    return out, changed
