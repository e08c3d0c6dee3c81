"""Tabular sources (CSV / TSV, JSONL, Parquet) read into numbered records.

Internal to :mod:`core.ingest`; see its docstring for the row-numbering rules. A reader never
mangles text: CSV bytes are decoded with ``errors="surrogateescape"`` so a byte that is not valid
in the declared encoding survives as a lone surrogate, and the record holding it becomes a
``bad encoding`` problem naming the byte offset in the file; JSONL is decoded line by line.
"""

from __future__ import annotations

import bisect
import codecs
import csv
import datetime as _dt
import decimal
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import numpy as np

from core.errors import AmendError
from core.ingest.limits import check_source_file, read_source

CSV_SUFFIXES = {".csv": ",", ".tsv": "\t"}
JSONL_SUFFIXES = {".jsonl", ".ndjson"}
PARQUET_SUFFIXES = {".parquet", ".pq"}

_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")  # what surrogateescape makes of an undecodable byte
_SURROGATE = re.compile("[\ud800-\udfff]")  # never valid in text we store (UTF-8 cannot hold it)
_INT = re.compile(r"^[+-]?(0|[1-9][0-9]*)$")  # no leading zeros: "007" stays a string
_FLOAT = re.compile(
    r"^[+-]?(((0|[1-9][0-9]*)(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?|inf|infinity|nan)$", re.IGNORECASE
)  # again no leading zeros: "00.5" and "0012" stay strings
_BOOLS = {"true": True, "false": False}
MAX_DEPTH = 64  # JSONL nesting refused per row: deeper records exhaust Python's stack when stored


@dataclass
class Record:
    """One record of a source: ``values`` (column -> value), or a problem (``reason``/``detail``)."""

    row: int
    values: Optional[dict[str, Any]] = None
    reason: Optional[str] = None
    detail: Optional[str] = None


@dataclass
class Table:
    """A source opened for reading: its columns, its size, and a one-shot record iterator.

    ``meta_value(column, raw)`` turns a raw value into its metadata value (CSV cells are typed per
    column: int, float, bool or str, empty -> null; JSONL and Parquet values keep their own types).
    """

    path: Path
    format: str
    columns: list[str]
    total: Optional[int]
    records: Iterator[Record]
    converters: dict[str, Callable[[Any], Any]] = field(default_factory=dict)

    def meta_value(self, column: str, raw: Any) -> Any:
        convert = self.converters.get(column)
        return jsonable(convert(raw) if convert else raw)


def open_table(path: Path, encoding: str) -> Table:
    """Open a CSV/TSV, JSONL or Parquet file by its suffix; AmendError when it cannot be read."""
    path = Path(path)
    if not path.exists():
        raise AmendError(f"{path} does not exist; give the path of a CSV, JSONL or Parquet file.")
    if path.is_dir():
        raise AmendError(f"{path} is a folder; give the path of a CSV, JSONL or Parquet file.")
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        _check_encoding(encoding)
        return _read_csv(path, encoding, CSV_SUFFIXES[suffix])
    if suffix in JSONL_SUFFIXES:
        _check_encoding(encoding)
        return _read_jsonl(path, encoding)
    if suffix in PARQUET_SUFFIXES:
        return _read_parquet(path, encoding)
    raise AmendError(
        f"{path} has an unknown suffix {path.suffix!r}; use .csv, .tsv, .jsonl (.ndjson) or .parquet."
    )


def _check_encoding(encoding: str) -> None:
    try:
        codecs.lookup(encoding)
    except LookupError as exc:
        raise AmendError(f"unknown text encoding {encoding!r}; use a Python codec name such as utf-8 or latin-1.") from exc


def _strip_bom(data: bytes, encoding: str) -> int:
    """Length of a UTF-8 byte-order mark to skip (0 when absent or not UTF-8)."""
    if codecs.lookup(encoding).name == "utf-8" and data.startswith(codecs.BOM_UTF8):
        return len(codecs.BOM_UTF8)
    return 0


# --------------------------------------------------------------------------------------- CSV
def _read_csv(path: Path, encoding: str, delimiter: str) -> Table:
    data = read_source(path)
    start = _strip_bom(data, encoding)
    try:
        text = data[start:].decode(encoding, errors="surrogateescape")
    except UnicodeDecodeError as exc:  # codecs whose errors surrogateescape cannot carry (utf-16, ...)
        raise AmendError(
            f"{path} cannot be read as {encoding} (byte offset {start + exc.start}: {exc.reason}); "
            "give the file's encoding with --encoding."
        ) from exc
    # Byte offset in the file of every undecodable byte, computed in one pass.
    bad_chars = [m.start() for m in _ESCAPED_BYTE.finditer(text)]
    bad_offsets: list[int] = []
    char_pos, byte_pos = 0, start
    try:
        for index in bad_chars:
            byte_pos += len(text[char_pos:index].encode(encoding, "surrogateescape"))
            bad_offsets.append(byte_pos)
            char_pos = index
    except UnicodeEncodeError as exc:  # utf-16/32 decode a lone surrogate, but cannot say where it was
        raise AmendError(
            f"{path} cannot be read as {encoding} (it holds bytes that are not {encoding} text); "
            "give the file's encoding with --encoding."
        ) from exc

    lines = _LineFeed(text)
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))
    reader = csv.reader(lines, delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise AmendError(f"{path} is empty; it needs a header row naming its columns.") from None
    except csv.Error as exc:
        raise AmendError(f"{path}: the header row cannot be parsed ({exc}).") from exc
    if any(_ESCAPED_BYTE.search(name) for name in header):
        offset = bad_offsets[0] if bad_offsets else start
        raise AmendError(
            f"{path}: the header row is not valid {encoding} (byte offset {offset}); "
            "give the file's encoding with --encoding."
        )
    header = [name.strip() for name in header]
    _check_header(path, header)

    rows: list[tuple[int, Optional[list[str]], Optional[str], Optional[str]]] = []  # row, fields, reason, detail
    number = 0
    row_start = lines.position
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            number += 1
            rows.append((number, None, "bad row", f"Row {number} cannot be parsed as CSV ({exc})."))
            row_start = lines.position
            continue
        row_end = lines.position
        if not fields:  # a blank line is not a record
            row_start = row_end
            continue
        number += 1
        first_bad = bisect.bisect_left(bad_chars, row_start)
        if first_bad < len(bad_chars) and bad_chars[first_bad] < row_end:
            column = next((h for h, v in zip(header, fields) if _ESCAPED_BYTE.search(v)), None)
            byte = ord(text[bad_chars[first_bad]]) - 0xDC00
            where = f" in column {column!r}" if column else ""
            rows.append((number, None, "bad encoding", (
                f"Byte 0x{byte:02X} at byte offset {bad_offsets[first_bad]}{where} is not valid {encoding}; "
                "fix the file or give its encoding with --encoding."
            )))
        elif len(fields) != len(header):
            rows.append((number, None, "bad row", f"Row {number} has {len(fields)} fields; the header has {len(header)}."))
        else:
            rows.append((number, fields, None, None))
        row_start = row_end

    good = [fields for _, fields, reason, _ in rows if reason is None]
    converters = {name: _infer_converter([f[i] for f in good]) for i, name in enumerate(header)}

    def records() -> Iterator[Record]:
        for number, fields, reason, detail in rows:
            if reason is not None:
                yield Record(number, reason=reason, detail=detail)
            else:
                yield Record(number, values=dict(zip(header, fields)))

    return Table(path, "csv" if delimiter == "," else "tsv", header, len(rows), records(), converters)


class _LineFeed:
    """Feeds csv.reader physical lines and tracks the character offset reached."""

    def __init__(self, text: str) -> None:
        self._lines = iter(io.StringIO(text, newline=""))
        self.position = 0

    def __iter__(self) -> "_LineFeed":
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self.position += len(line)
        return line


def _check_header(path: Path, header: list[str]) -> None:
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise AmendError(f"{path}: column {name!r} appears twice in the header; rename one of them.")
        seen.add(name)


def _infer_converter(cells: list[str]) -> Callable[[Any], Any]:
    """Pick one type for a CSV column from its non-empty cells: int, float, bool, else str."""
    filled = [c.strip() for c in cells if c is not None and c.strip() != ""]
    if filled and all(_INT.match(c) for c in filled):
        return lambda v: int(v) if v is not None and v.strip() else None
    if filled and all(_FLOAT.match(c) for c in filled):
        return lambda v: float(v) if v is not None and v.strip() else None
    if filled and all(c.lower() in _BOOLS for c in filled):
        return lambda v: _BOOLS[v.strip().lower()] if v is not None and v.strip() else None
    return lambda v: v if v is not None and v != "" else None


# --------------------------------------------------------------------------------------- JSONL
def _read_jsonl(path: Path, encoding: str) -> Table:
    data = read_source(path)
    start = _strip_bom(data, encoding)
    parsed: list[Record] = []
    columns: dict[str, None] = {}
    offset = start
    for number, raw in enumerate(data[start:].split(b"\n"), 1):
        line_offset = offset
        offset += len(raw) + 1
        raw = raw.rstrip(b"\r")
        if not raw.strip():
            continue
        try:
            line = raw.decode(encoding)
        except UnicodeDecodeError as exc:
            parsed.append(Record(number, reason="bad encoding", detail=(
                f"Byte 0x{raw[exc.start]:02X} at byte offset {line_offset + exc.start} (line {number}) is not "
                f"valid {encoding}; fix the file or give its encoding with --encoding."
            )))
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            parsed.append(Record(number, reason="bad row", detail=f"Line {number} is not valid JSON ({exc})."))
            continue
        except RecursionError:  # arrays or objects nested deeper than the parser's stack
            parsed.append(Record(number, reason="bad row", detail=(
                f"Line {number} nests JSON arrays or objects more than {MAX_DEPTH} levels deep; flatten the record."
            )))
            continue
        if not isinstance(obj, dict):
            parsed.append(Record(number, reason="bad row", detail=(
                f"Line {number} is a JSON {type(obj).__name__}, not an object with named fields."
            )))
            continue
        if _nested_deeper(obj, MAX_DEPTH):
            parsed.append(Record(number, reason="bad row", detail=(
                f"Line {number} nests JSON arrays or objects more than {MAX_DEPTH} levels deep; flatten the record."
            )))
            continue
        for key in obj:
            columns.setdefault(key, None)
        parsed.append(Record(number, values=obj))
    if not parsed:
        raise AmendError(f"{path} holds no JSON lines; it needs one JSON object per line.")
    return Table(path, "jsonl", list(columns), len(parsed), iter(parsed))


def _nested_deeper(value: Any, limit: int) -> bool:
    """Whether ``value`` nests lists / dicts more than ``limit`` levels (walked without recursion,
    since the point is to stop what would exhaust the stack later: metadata is stored as JSON)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth >= limit:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


# --------------------------------------------------------------------------------------- Parquet
def _read_parquet(path: Path, encoding: str) -> Table:
    import pyarrow.parquet as pq

    check_source_file(path)
    try:
        handle = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError for files that are not Parquet
        raise AmendError(f"{path} cannot be read as Parquet ({exc}); check the file.") from exc
    columns = list(handle.schema_arrow.names)
    _check_header(path, columns)

    def records() -> Iterator[Record]:
        number = 0
        batches = handle.iter_batches(batch_size=4096)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except Exception as exc:  # a damaged page: pyarrow raises OSError / ArrowInvalid mid-file
                raise AmendError(
                    f"{path} cannot be read past row {number} ({exc}): the Parquet file is damaged; "
                    "nothing was ingested. Write it again from its source."
                ) from exc
            try:
                rows = batch.to_pylist()
            except (ValueError, OverflowError, ArithmeticError):  # a value Python cannot hold (a date past 9999)
                rows = None
            if rows is not None:
                for values in rows:
                    number += 1
                    yield Record(number, values=values)
                continue
            for index in range(batch.num_rows):
                number += 1
                yield _parquet_row(batch, index, number)

    return Table(path, "parquet", columns, handle.metadata.num_rows, records())


def _parquet_row(batch, index: int, number: int) -> Record:
    """One row of a batch that did not convert as a whole: its values, or a "bad row" naming the
    column whose value Python cannot represent (dates and times outside years 1-9999)."""
    try:
        return Record(number, values=batch.slice(index, 1).to_pylist()[0])
    except (ValueError, OverflowError, ArithmeticError) as exc:
        column = next((name for name, array in zip(batch.schema.names, batch.columns)
                       if not _converts(array.slice(index, 1))), None)
        where = f" in column {column!r}" if column else ""
        return Record(number, reason="bad row", detail=(
            f"Row {number} holds a value{where} that cannot be read ({exc}; a date or time outside years 1-9999?)."
        ))


def _converts(array) -> bool:
    try:
        array.to_pylist()
    except (ValueError, OverflowError, ArithmeticError):
        return False
    return True


# --------------------------------------------------------------------------------------- values
def jsonable(value: Any) -> Any:
    """A metadata value as JSON keeps it: numpy scalars to Python, NaN to null, dates to ISO text."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, _dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in value]
    return str(value)


def is_missing(value: Any) -> bool:
    """None, NaN, or a string that is empty or whitespace only."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if isinstance(value, np.floating) and np.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def as_text(value: Any, encoding: str) -> str:
    """A cell as a string for id / label / split / path columns (5.0 -> "5"; bytes decoded strictly).

    Raises UnicodeDecodeError for bytes that do not decode in ``encoding``.
    """
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode(encoding)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def surrogate_at(value: str) -> Optional[int]:
    """Index of the first lone surrogate in ``value`` (text UTF-8 cannot store), or None."""
    match = _SURROGATE.search(value)
    return match.start() if match else None
