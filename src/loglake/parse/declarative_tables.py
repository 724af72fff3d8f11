"""The padded tables a declarative parser reads (``[[table]]``: a header line naming the
columns, then rows of numbers under it, as fastai or a hand-rolled trainer prints them).

A table is open from its header until more lines than its ``max_gap`` in a row are no rows;
what it remembers (its name, columns, the gap so far) lives in the parser's state under
``"tab"`` so a restart resumes mid-table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from loglake.parse.declarative_compile import CompiledTable
from loglake.parse.declarative_emit import line_ts
from loglake.parse.declarative_scan import Gate
from loglake.parse.records import Emitter
from loglake.parse.values import to_int, to_number

#: marks the file's framework fact on the offset of the first line whose rows name it
Mark = Callable[[int, dict[str, Any], Emitter], None]


def open_table(
    headers: list[tuple[Gate | None, CompiledTable]], text: str, st: dict[str, Any]
) -> bool:
    """Open the first table whose header ``text`` is; True when one opened."""
    for header_gate, t in headers:
        if (header_gate is None or header_gate(text)) and t.header(text):
            cols = [c.strip() for c in t.columns.split(text.strip()) if c.strip()]
            if len(cols) >= 2:
                st["tab"] = {"name": t.name, "cols": cols, "gap": 0}
                return True
    return False


def table_row(
    tables: dict[str, CompiledTable],
    text: str,
    raw: str,
    offset: int,
    ts: float | None,
    st: dict[str, Any],
    out: Emitter,
    claimed: bool,
    mark: Mark,
) -> bool:
    """Emit a row of the open table; a line that is no row counts toward closing it."""
    tab = st["tab"]
    table: CompiledTable | None = tables.get(tab["name"])
    cols: list[str] = tab["cols"]
    cells = table.cells.split(text.strip()) if table is not None else []
    row = dict(zip(cols, map(to_number, cells), strict=True)) if len(cells) == len(cols) else {}
    anchor = (table.step or table.epoch or cols[0]) if table is not None else ""
    if table is None or row.get(anchor) is None:
        tab["gap"] += 1
        if table is None or tab["gap"] > table.max_gap:
            st["tab"] = None
        return False
    tab["gap"] = 0
    step = to_int(row[table.step]) if table.step in row else None
    epoch = row.get(table.epoch) if table.epoch else None
    ctx = st["ctx"]
    if step is not None:
        ctx["step"] = step
    if epoch is not None:
        ctx["epoch"] = epoch
    if claimed:
        return True
    emitted = False
    for col, value in row.items():
        if value is None or col in table.skip or col == table.step or col == table.epoch:
            continue
        key = table.key.render({"column": col}.get)
        if key:
            if ts is None:
                ts = line_ts(raw)
            out.metric(key, value, offset, step=step, epoch=epoch, ts=ts)
            emitted = True
    if emitted:
        mark(offset, st, out)
    return True
