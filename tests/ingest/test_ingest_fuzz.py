"""Fuzzing ingest (issue 13): random bytes, and random CSV / TSV / JSONL / Parquet tables in random
encodings with random ids, texts, labels and metadata (empty, whitespace, NaN-like, very long,
control characters, nested values).

The property: ingest takes rows, rejects them one by one with a known reason, or refuses the whole
source with an AmendError; never another exception. Where the rows in the file are known (the
declared encoding is the one written, and it keeps '\\n' a single byte), every row is accounted
for: ``taken + unchanged + rejected == rows``, and the project holds exactly the rows taken.
Bounded: a few dozen small examples per test, one real project each, in tmp_path.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from contextlib import contextmanager
from pathlib import Path

from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from core.errors import AmendError
from core.ingest import REJECT_REASONS, IngestOptions, ingest
from core.store.project import Project

# derandomize: the same examples on every run, so CI is red only when ingest changes; a wider
# random search is `--hypothesis-seed=N` or a larger max_examples, run by hand.
FUZZ = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
MAX_CHARS = 300  # AMEND_MAX_TEXT_CHARS during the fuzz, so "very long" values cross it cheaply
ENCODINGS = ["utf-8", "utf-8-sig", "latin-1", "cp1252", "shift_jis", "utf-16"]
ROW_SAFE = {"utf-8", "utf-8-sig", "latin-1", "cp1252"}  # '\n' is one byte, and never inside a character

_plain = st.text(alphabet="abcxyz .-", min_size=1, max_size=12)  # an ordinary value, so rows are also taken
_scalar_text = st.one_of(
    _plain, _plain,
    st.text(max_size=20),
    st.sampled_from(["", " ", "\t\n ", "nan", "NaN", "<NA>", "None", "null", "0", "-1", "1e309", "=1+2", "\x00",
                     "\u200b", "\ufeff", "\r", "a\r\nb", '"', "'", ",", "\\"]),
    st.text(alphabet=st.characters(max_codepoint=0x1F), max_size=8),  # control characters
    st.integers(min_value=MAX_CHARS - 2, max_value=MAX_CHARS + 2).map(lambda n: "x" * n),  # around the cap
)
_json_leaf = st.one_of(_plain, _plain, st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                       st.floats(allow_nan=True, allow_infinity=True), _scalar_text)
_json_value = st.recursive(_json_leaf, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                               st.dictionaries(st.text(max_size=4), inner, max_size=3)),
                           max_leaves=8)
_deep = st.integers(60, 70).map(lambda n: json.loads("[" * n + "]" * n))  # around the nesting limit


@contextmanager
def _max_chars():
    old = os.environ.get("AMEND_MAX_TEXT_CHARS")
    os.environ["AMEND_MAX_TEXT_CHARS"] = str(MAX_CHARS)
    try:
        yield
    finally:
        if old is None:
            del os.environ["AMEND_MAX_TEXT_CHARS"]
        else:
            os.environ["AMEND_MAX_TEXT_CHARS"] = old


def _ingest(folder: Path, options: IngestOptions):
    """The report, or None when the whole source was refused with an AmendError. Any other
    exception fails the test. Checks every reject and that the project holds what was taken."""
    project = Project.create(folder / "project")
    with _max_chars():
        try:
            report = ingest(project, options)
        except AmendError as exc:
            assert str(exc).strip() and "\n" not in str(exc).strip(), f"an AmendError must be one line: {exc!r}"
            assert project.samples().empty, "a refused source must leave nothing behind"
            event("refused whole")
            return None
    for reject in report.rejects:
        assert reject["reason"] in REJECT_REASONS, reject
        assert reject["row"] is None or (isinstance(reject["row"], int) and reject["row"] >= 1), reject
    assert report.rejected == len(report.rejects)
    assert len(project.samples()) == report.taken
    event("some taken" if report.taken else "none taken")
    for reason in {r["reason"] for r in report.rejects}:
        event(f"rejected: {reason}")
    return report


_HEADS = {".csv": b"text,label,path,id\n", ".tsv": b"text\tlabel\tpath\n",
          ".jsonl": b'{"text": "a", "label": "b", "path": "c"}\n', ".parquet": b"PAR1"}


@FUZZ
@given(data=st.binary(max_size=400), suffix=st.sampled_from([".csv", ".tsv", ".jsonl", ".parquet"]),
       encoding=st.sampled_from(ENCODINGS), manifest=st.booleans(), headed=st.booleans())
# Found by this test in CI: a lone UTF-16 surrogate made the reject-offset pass raise UnicodeEncodeError.
@example(data=b"\x80\xd8", suffix=".csv", encoding="utf-16", manifest=False, headed=False)
def test_random_bytes_are_taken_rejected_or_refused(tmp_path_factory, data, suffix, encoding, manifest, headed):
    folder = tmp_path_factory.mktemp("bytes")
    path = folder / f"source{suffix}"
    path.write_bytes((_HEADS[suffix] if headed else b"") + data)  # with a header, the random rest is rows
    options = IngestOptions(manifest=path, encoding=encoding) if manifest else IngestOptions(texts=path, encoding=encoding)
    _ingest(folder, options)


_cell = st.one_of(_scalar_text, st.none())
_row = st.fixed_dictionaries({"text": _cell, "label": _cell}, optional={"id": _cell, "split": _cell, "note": _cell})


@FUZZ
@given(rows=st.lists(_row, min_size=1, max_size=8), delimiter=st.sampled_from([",", "\t"]),
       written=st.sampled_from(ENCODINGS), declared=st.sampled_from(ENCODINGS + ["same"] * 4),
       with_id=st.booleans())
def test_random_csv_rows_are_each_accounted_for(tmp_path_factory, rows, delimiter, written, declared, with_id):
    declared = written if declared == "same" else declared
    columns = ["text", "label", "split", "note"] + (["id"] if with_id else [])
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=delimiter)
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else row[c] for c in columns])
    folder = tmp_path_factory.mktemp("csv")
    path = folder / ("texts.csv" if delimiter == "," else "texts.tsv")
    path.write_bytes(buffer.getvalue().encode(written, errors="replace"))
    report = _ingest(folder, IngestOptions(texts=path, encoding=declared))
    if report is not None and declared == written and written in ROW_SAFE:
        assert report.taken + report.unchanged + report.rejected == len(rows), report.rejects


_record = st.fixed_dictionaries({"text": _json_value, "label": _json_value},
                                optional={"id": _json_value, "split": _json_value, "meta": st.one_of(_json_value, _deep)})


@FUZZ
@given(rows=st.lists(st.one_of(_record, _record, _record, _json_value), min_size=1, max_size=8),  # now and then
       # a line that is not an object
       written=st.sampled_from(ENCODINGS), declared=st.sampled_from(ENCODINGS + ["same"] * 4),
       blank_lines=st.booleans(), as_parquet=st.booleans())
def test_random_jsonl_records_are_each_accounted_for(tmp_path_factory, rows, written, declared, blank_lines, as_parquet):
    declared = written if declared == "same" else declared
    folder = tmp_path_factory.mktemp("jsonl")
    if as_parquet:
        import pandas as pd

        flat = [r for r in rows if isinstance(r, dict)]
        frame = pd.DataFrame({c: [_flat(r.get(c)) for r in flat] for c in ("text", "label", "id")}) if flat else None
        if frame is None:
            return
        path = folder / "texts.parquet"
        frame.to_parquet(path)
        report = _ingest(folder, IngestOptions(texts=path))
        if report is not None:
            assert report.taken + report.unchanged + report.rejected == len(flat), report.rejects
        return
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    text = ("\n\n" if blank_lines else "\n").join(lines) + "\n"
    path = folder / "texts.jsonl"
    path.write_bytes(text.encode(written, errors="replace"))
    report = _ingest(folder, IngestOptions(texts=path, encoding=declared))
    if report is not None and declared == written and written in ROW_SAFE:
        assert report.taken + report.unchanged + report.rejected == len(rows), report.rejects


def _flat(value):
    """A value Parquet can hold in a column of mixed rows: text, or None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value if isinstance(value, str) else json.dumps(value)
