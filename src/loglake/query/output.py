"""Query results as a text table, CSV, JSON lines or Parquet.

Text is for people (aligned, rich on a terminal, long values cut at a sane width); CSV,
JSON and Parquet are for programs, so they keep every value whole: full float precision,
ISO 8601 timestamps, NaN as JSON null.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import decimal
import json
import math
import re
import sys
from pathlib import Path
from typing import IO, Any

import pyarrow as pa

from loglake.errors import ExitCode, LoglakeError

FORMATS = ("table", "csv", "json", "parquet")
MAX_CELL = 80  # characters of one value in the text table; the rest becomes "…"


class OutputError(LoglakeError):
    """A result that cannot be written in the asked format or place."""

    exit_code = ExitCode.USAGE


def to_arrow(result: Any) -> pa.Table:
    """A pyarrow Table from a DuckDB relation or connection, a reader, or a Table."""
    if isinstance(result, pa.Table):
        return result
    if isinstance(result, pa.RecordBatchReader):
        return result.read_all()
    if isinstance(result, pa.RecordBatch):
        return pa.Table.from_batches([result])
    for method in ("to_arrow_table", "fetch_arrow_table"):
        if hasattr(result, method):
            return getattr(result, method)()
    raise TypeError(f"cannot write a {type(result).__name__} as a result")


def write_result(
    rel_or_table: Any,
    fmt: str,
    out: IO[str] | None = None,
    path: str | Path | None = None,
) -> None:
    """Write a query result in ``fmt`` to ``path`` if given, else to ``out`` (stdout)."""
    if fmt not in FORMATS:
        raise OutputError(f"unknown output format {fmt!r}", fix=f"use one of {', '.join(FORMATS)}")
    out = sys.stdout if out is None else out
    table = to_arrow(rel_or_table)
    if fmt == "parquet":
        _write_parquet(table, out, path)
        return
    if path is not None:
        with open(path, "w", encoding="utf-8", newline="") as fh:
            _write_text(table, fmt, fh, tty=False)
    else:
        _write_text(table, fmt, out, tty=_isatty(out))


def _write_text(table: pa.Table, fmt: str, out: IO[str], *, tty: bool) -> None:
    if fmt == "csv":
        _write_csv(table, out)
    elif fmt == "json":
        _write_json_lines(table, out)
    elif tty:
        _write_rich(table, out)
    else:
        _write_plain(table, out)


def _write_parquet(table: pa.Table, out: IO[str], path: str | Path | None) -> None:
    import pyarrow.parquet as pq

    if path is not None:
        pq.write_table(table, str(path), compression="zstd")
        return
    if _isatty(out):
        raise OutputError(
            "Parquet is binary and stdout is a terminal",
            fix="write it to a file with -o FILE.parquet, or redirect stdout",
        )
    sink = getattr(out, "buffer", out)
    out.flush()
    pq.write_table(table, sink, compression="zstd")
    sink.flush()


def _write_csv(table: pa.Table, out: IO[str]) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(table.column_names)
    for row in _rows(table):
        writer.writerow(["" if v is None else _csv_value(v) for v in row])


def _write_json_lines(table: pa.Table, out: IO[str]) -> None:
    names = table.column_names
    for row in _rows(table):
        obj = {n: _json_value(v) for n, v in zip(names, row, strict=True)}
        out.write(json.dumps(obj, ensure_ascii=False, allow_nan=False))
        out.write("\n")


def _write_plain(table: pa.Table, out: IO[str]) -> None:
    names = table.column_names
    cells = [[_text_value(v) for v in row] for row in _rows(table)]
    widths = [len(n) for n in names]
    for row in cells:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    right = [_is_numeric(f.type) for f in table.schema]

    def line(values: list[str]) -> str:
        parts = [
            v.rjust(w) if r else v.ljust(w) for v, w, r in zip(values, widths, right, strict=True)
        ]
        return "  ".join(parts).rstrip()

    out.write(line(names) + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for row in cells:
        out.write(line(row) + "\n")


def _write_rich(table: pa.Table, out: IO[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    view = Table(show_edge=False, header_style="bold")
    for field in table.schema:
        view.add_column(
            field.name, justify="right" if _is_numeric(field.type) else "left", overflow="fold"
        )
    for row in _rows(table):
        view.add_row(*(_text_value(v) for v in row))
    Console(file=out).print(view)
    if table.num_rows == 0:
        out.write("(no rows)\n")


def _rows(table: pa.Table) -> Any:
    """Rows as tuples of Python values, one batch at a time to bound memory."""
    for batch in table.to_batches(max_chunksize=10_000):
        columns = [pylist(col) for col in batch.columns]
        yield from zip(*columns, strict=True)


def pylist(col: pa.Array | pa.ChunkedArray) -> list[Any]:
    """``col.to_pylist()``, but zoned timestamps without pandas: pyarrow converts those
    through pandas' time zone support, and importing pandas costs a short command most of
    its time (0.2–0.8 s). The UTC wall time with the zone attached is the same instant."""
    t = col.type
    if not (pa.types.is_timestamp(t) and t.tz) or t.unit == "ns":
        return col.to_pylist()
    zone = _zone(t.tz)
    naive = col.cast(pa.timestamp(t.unit)).to_pylist()
    return [None if v is None else v.replace(tzinfo=dt.UTC).astimezone(zone) for v in naive]


def _zone(name: str) -> dt.tzinfo:
    if name in ("UTC", "Etc/UTC", "Z", "+00:00"):
        return dt.UTC
    m = re.fullmatch(r"([+-])(\d\d):?(\d\d)", name)
    if m:
        offset = dt.timedelta(hours=int(m.group(2)), minutes=int(m.group(3)))
        return dt.timezone(-offset if m.group(1) == "-" else offset)
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


def _is_numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


def _text_value(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, pa.MonthDayNano):
        text = _interval_text(v)
    elif isinstance(v, float):
        text = f"{v:.6g}"
    elif isinstance(v, dt.datetime):
        text = v.isoformat(sep=" ")
    elif isinstance(v, list | dict):
        text = json.dumps(_json_value(v), ensure_ascii=False)
    else:
        text = str(v)
    text = " ".join(text.splitlines()) if "\n" in text else text
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def _csv_value(v: Any) -> Any:
    if isinstance(v, pa.MonthDayNano):
        return _interval_iso(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else str(v).lower()
    if isinstance(v, dt.datetime | dt.date | dt.time):
        return v.isoformat()
    if isinstance(v, list | dict):
        return json.dumps(_json_value(v), ensure_ascii=False)
    if isinstance(v, bytes):
        return base64.b64encode(v).decode()
    return v


def _json_value(v: Any) -> Any:
    if isinstance(v, pa.MonthDayNano):
        return _interval_iso(v)
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dt.datetime | dt.date | dt.time):
        return v.isoformat()
    if isinstance(v, dt.timedelta):
        return v.total_seconds()
    if isinstance(v, decimal.Decimal):
        return float(v)
    if isinstance(v, bytes):
        return base64.b64encode(v).decode()
    if isinstance(v, list | tuple):
        return [_json_value(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _json_value(x) for k, x in v.items()}
    return v


def _interval_text(v: pa.MonthDayNano) -> str:
    """DuckDB's own spelling: ``1 month 2 days 01:30:00``."""
    parts = []
    if v.months:
        parts.append(f"{v.months} month{'s' if abs(v.months) != 1 else ''}")
    if v.days:
        parts.append(f"{v.days} day{'s' if abs(v.days) != 1 else ''}")
    if v.nanoseconds or not parts:
        parts.append(str(dt.timedelta(microseconds=v.nanoseconds / 1000)))
    return " ".join(parts)


def _interval_iso(v: pa.MonthDayNano) -> str:
    """ISO 8601 duration, e.g. ``P1M2DT5400S``: exact, and parsed by most libraries."""
    seconds = f"{v.nanoseconds / 1e9:f}".rstrip("0").rstrip(".")
    return f"P{v.months}M{v.days}DT{seconds}S"


def _isatty(out: IO[Any]) -> bool:
    isatty = getattr(out, "isatty", None)
    return bool(isatty and isatty())
