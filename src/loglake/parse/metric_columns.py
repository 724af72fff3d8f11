"""Metric rows as a parser emits them: column lists and, from parsers that read a batch as
Arrow columns, Arrow chunks kept in emission order up to the lake (``Emitter.metrics``).

A parser reading whole shape groups with Arrow kernels would otherwise turn its columns
into Python lists only for assembly to turn them back into Arrow (~20 % of its time).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

METRIC_COLUMNS = ("sub", "key", "value", "step", "epoch", "ts", "offset", "parser")


@dataclass(slots=True)
class MetricChunk:
    """Metric rows handed over as Arrow columns, and where they go among the listed rows."""

    at: int  # listed rows emitted before these
    table: pa.Table  # sub, key, value, step, epoch, ts, offset (``chunk_schema``)
    parser: str


def chunk_schema() -> pa.Schema:
    """The Arrow types of a chunk's columns: the lake's (``ts`` still epoch seconds)."""
    import pyarrow as pa

    return pa.schema(
        [
            ("sub", pa.string()),
            ("key", pa.string()),
            ("value", pa.float64()),
            ("step", pa.int64()),
            ("epoch", pa.float64()),
            ("ts", pa.float64()),
            ("offset", pa.int64()),
        ]
    )


class MetricColumns:
    """The metric rows: column lists as ``Columns`` has them, plus Arrow chunks.

    A chunk remembers how many listed rows came before it, so the rows keep the order they
    were emitted in (the lake's sort is stable: rows tied on run, key and step stay in
    that order) without moving a listed row. ``data`` folds the chunks into the lists for
    whoever reads rows one by one; the indexer's assembly reads ``segments`` instead.
    """

    __slots__ = ("chunks", "lists", "names")

    def __init__(self) -> None:
        self.names = METRIC_COLUMNS
        self.lists: dict[str, list[Any]] = {n: [] for n in METRIC_COLUMNS}
        self.chunks: list[MetricChunk] = []

    def __len__(self) -> int:
        return len(self.lists["key"]) + sum(c.table.num_rows for c in self.chunks)

    @property
    def data(self) -> dict[str, list[Any]]:
        """Every row as column lists, in emission order (the chunks become listed rows, so
        read it between batches: a pipeline mark taken before no longer fits after)."""
        if self.chunks:
            lists = self.lists
            merged: dict[str, list[Any]] = {n: [] for n in self.names}
            start = 0
            for c in self.chunks:
                cols = c.table.to_pydict()
                cols["parser"] = [c.parser] * c.table.num_rows
                for n in self.names:
                    merged[n] += lists[n][start : c.at]
                    merged[n] += cols[n]
                start = c.at
            for n in self.names:  # in place: a MetricRows may hold the lists' appends
                lists[n][:] = merged[n] + lists[n][start:]
            self.chunks.clear()
        return self.lists

    def add(self, table: pa.Table, parser: str) -> None:
        self.chunks.append(MetricChunk(len(self.lists["key"]), table, parser))

    def segments(self) -> Iterator[tuple[int, int] | MetricChunk]:
        """The rows in order: (start, end) ranges of the lists, and the chunks between."""
        start = 0
        for c in self.chunks:
            if c.at > start:
                yield (start, c.at)
            yield c
            start = c.at
        end = len(self.lists["key"])
        if end > start or not self.chunks:
            yield (start, end)

    def clear(self) -> None:
        for values in self.lists.values():
            values.clear()
        self.chunks.clear()

    def mark(self) -> tuple[int, int]:
        """Where the rows end now (listed rows, chunks), for ``truncate``."""
        return len(self.lists["key"]), len(self.chunks)

    def truncate(self, mark: tuple[int, int]) -> None:
        for values in self.lists.values():
            del values[mark[0] :]
        del self.chunks[mark[1] :]

    def provenance(self, mark: tuple[int, int]) -> Iterator[tuple[int, str]]:
        """(offset, parser) of the rows after ``mark``."""
        yield from zip(
            self.lists["offset"][mark[0] :], self.lists["parser"][mark[0] :], strict=True
        )
        for c in self.chunks[mark[1] :]:
            for offset in c.table.column("offset").to_pylist():
                yield offset, c.parser
