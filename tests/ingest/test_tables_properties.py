"""Properties of CSV type inference (core.ingest.tables): a column of ints, floats, booleans or
text written by Python's csv module reads back as the same values, empty cells as null."""

from __future__ import annotations

import csv
import math

from hypothesis import given
from hypothesis import strategies as st

from core.ingest.tables import open_table

TEXT_MARK = "plain words"  # one cell no number or boolean looks like: the column is text


def _roundtrip(tmp_path_factory, columns: dict[str, list]) -> dict[str, list]:
    """Write ``columns`` (cells as strings, None = empty) to a CSV; read each column's metadata values back."""
    path = tmp_path_factory.mktemp("csv") / "table.csv"
    names = list(columns)
    rows = list(zip(*columns.values()))
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(names)
        writer.writerows([["" if cell is None else cell for cell in row] for row in rows])
    table = open_table(path, "utf-8")
    records = list(table.records)
    assert [r.reason for r in records] == [None] * len(rows) and table.columns == names
    return {name: [table.meta_value(name, r.values[name]) for r in records] for name in names}


def _maybe_empty(values):
    return st.lists(st.one_of(st.none(), values), min_size=1, max_size=12)


@given(_maybe_empty(st.integers(-(10**15), 10**15)))
def test_integers_come_back_as_ints(tmp_path_factory, cells):
    back = _roundtrip(tmp_path_factory, {"n": [None if c is None else str(c) for c in cells]})["n"]
    assert back == cells
    assert all(type(v) is int for v in back if v is not None)


@given(_maybe_empty(st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-1000, 1000))))
def test_floats_come_back_as_floats_and_ints_among_them_too(tmp_path_factory, cells):
    written = [None if c is None else repr(c) for c in cells]
    back = _roundtrip(tmp_path_factory, {"x": written})["x"]
    if all(c is None or isinstance(c, int) for c in cells):
        assert back == cells  # no float in the column: an int column
    else:
        assert back == [None if c is None else float(c) for c in cells]
        assert all(type(v) is float and not math.isnan(v) for v in back if v is not None)


@given(_maybe_empty(st.sampled_from(["true", "false", "True", "FALSE", " true "])))
def test_booleans_come_back_as_bools(tmp_path_factory, cells):
    back = _roundtrip(tmp_path_factory, {"b": cells})["b"]
    assert back == [None if c is None else c.strip().lower() == "true" for c in cells]


@given(st.lists(st.one_of(st.none(), st.text(max_size=12), st.integers().map(str), st.just("007")), max_size=12),
       st.integers(0, 12))
def test_a_column_with_any_text_keeps_every_cell_as_written(tmp_path_factory, cells, where):
    cells.insert(min(where, len(cells)), TEXT_MARK)
    back = _roundtrip(tmp_path_factory, {"t": cells})["t"]
    assert back == [None if c in (None, "") else c for c in cells]


@given(_maybe_empty(st.integers(1, 999).map(lambda i: f"0{i}")))
def test_leading_zeros_keep_a_column_as_text(tmp_path_factory, cells):
    back = _roundtrip(tmp_path_factory, {"code": cells})["code"]
    assert back == cells  # "007" is a code, not the number 7
