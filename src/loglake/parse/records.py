"""The record sink parsers write into.

Parsers call one method per fact they find; each call appends to plain column lists
(no object per record), because the hot path may see millions of metric points and the
lake writer turns these lists straight into Arrow arrays. A parser that reads a batch as
Arrow columns hands its metric rows over as Arrow arrays (``Emitter.metric_arrays``): they
stay Arrow chunks up to the lake, placed among the listed rows where they were emitted.

``sub`` names a sub-run inside a log: one log of a hyperparameter search holds many
trials, each its own run (e.g. ``sub="trial-3"``); ``None`` is the log's own run.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loglake.parse.metric_columns import METRIC_COLUMNS, MetricColumns, chunk_schema
from loglake.redact import redact_param, redact_text

if TYPE_CHECKING:
    import pyarrow as pa

# Facts a parser may report about a run; these become columns of the ``runs`` table.
# Any other fact key lands in the run's ``env`` JSON column.
RUN_FACT_KEYS = (
    "framework",
    "command",
    "git_commit",
    "git_branch",
    "host",
    "user",
    "start_time",
    "end_time",
    "exit_code",
)

STATUSES = ("running", "completed", "failed", "killed", "pruned", "unknown")


@dataclass(slots=True)
class Columns:
    """Append-only column lists for one record kind."""

    names: tuple[str, ...]
    data: dict[str, list[Any]] = field(init=False)

    def __post_init__(self) -> None:
        self.data = {n: [] for n in self.names}

    def __len__(self) -> int:
        return len(self.data[self.names[0]])

    @property
    def lists(self) -> dict[str, list[Any]]:
        """The column lists to append to (``MetricColumns`` has Arrow chunks besides)."""
        return self.data

    def clear(self) -> None:
        for values in self.data.values():
            values.clear()

    def mark(self) -> int:
        """Where the rows end now, for ``truncate`` (the pipeline's rollback)."""
        return len(self.data[self.names[0]])

    def truncate(self, mark: int) -> None:
        for values in self.data.values():
            del values[mark:]

    def provenance(self, mark: int) -> Iterator[tuple[int, str]]:
        """(offset, parser) of the rows after ``mark``."""
        return zip(self.data["offset"][mark:], self.data["parser"][mark:], strict=True)


class Emitter:
    """Collects what parsers extract from one file (or one batch of it).

    Every method takes ``offset``: the byte offset of the line in the source, which is
    the record's provenance and, with the source fingerprint, its identity.

    ``claim_lines``: when a specific parser emits a metric or param for a line, the line is
    claimed so the generic fallback parser does not report the same value twice.
    """

    def __init__(self) -> None:
        self.parser = ""  # "name@version" of the parser now running; set by the pipeline
        self.claim_lines = False
        self.claimed: set[int] = set()
        self.metrics: Columns | MetricColumns = MetricColumns()
        self.params = Columns(("sub", "key", "value", "offset", "parser"))
        self.statuses = Columns(("sub", "status", "reason", "error", "offset", "parser"))
        self.facts = Columns(("sub", "key", "value", "offset", "parser"))
        self.packages = Columns(("sub", "name", "version", "offset", "parser"))
        self.datasets = Columns(
            ("sub", "name", "path", "split", "rows", "cols", "fingerprint", "offset", "parser")
        )
        self.artifacts = Columns(("sub", "path", "kind", "offset", "parser"))
        self.subruns = Columns(("sub", "name", "experiment", "offset", "parser"))
        self.errors = Columns(("offset", "message", "line", "parser"))
        self.last_metric_offset = -1

    # -- what parsers call -------------------------------------------------------------

    def metric(
        self,
        key: str,
        value: float,
        offset: int,
        *,
        step: int | None = None,
        epoch: float | None = None,
        ts: float | None = None,
        sub: str | None = None,
    ) -> None:
        """A metric value; keep the log's own numbering: ``step`` or ``epoch`` as printed."""
        d = self.metrics.lists
        d["sub"].append(sub)
        d["key"].append(key)
        d["value"].append(value)
        d["step"].append(step)
        d["epoch"].append(epoch)
        d["ts"].append(ts)
        d["offset"].append(offset)
        d["parser"].append(self.parser)
        self.last_metric_offset = max(self.last_metric_offset, offset)
        if self.claim_lines:
            self.claimed.add(offset)

    def metric_arrays(
        self,
        key: pa.Array | pa.ChunkedArray,
        value: pa.Array | pa.ChunkedArray,
        offset: pa.Array | pa.ChunkedArray,
        *,
        step: pa.Array | pa.ChunkedArray | int | None = None,
        epoch: pa.Array | pa.ChunkedArray | float | None = None,
        ts: pa.Array | pa.ChunkedArray | float | None = None,
        sub: pa.Array | pa.ChunkedArray | str | None = None,
    ) -> None:
        """Many metric values at once, as Arrow arrays of one length (a parser that reads a
        batch as columns): the rows ``metric`` gives one call per row, in array order, after
        the rows emitted so far, claims and ``last_metric_offset`` included. ``step``,
        ``epoch``, ``ts`` and ``sub`` may each be one value for every row instead of an
        array. They stay one Arrow chunk up to the lake: no Python object per value."""
        import pyarrow as pa
        import pyarrow.compute as pc

        n = len(key)
        if not n:
            return
        schema = chunk_schema()
        given = (sub, key, value, step, epoch, ts, offset)
        cols = []
        for f, v in zip(schema, given, strict=True):
            if not isinstance(v, pa.Array | pa.ChunkedArray):
                v = pa.nulls(n, f.type) if v is None else pa.repeat(pa.scalar(v, f.type), n)
            elif v.type != f.type:
                v = v.cast(f.type)
            cols.append(v)
        table = pa.Table.from_arrays(cols, schema=schema)  # raises unless lengths agree
        if table.column("offset").null_count:
            raise ValueError("every metric row needs the offset of its line")
        if not isinstance(self.metrics, MetricColumns):  # a layout of lists only
            for row in zip(*table.to_pydict().values(), strict=True):
                self.metric(
                    row[1], row[2], row[6], step=row[3], epoch=row[4], ts=row[5], sub=row[0]
                )
            return
        self.metrics.add(table, self.parser)
        last = pc.max(table.column("offset")).as_py()
        self.last_metric_offset = max(self.last_metric_offset, last)
        if self.claim_lines:
            self.claimed.update(table.column("offset").to_pylist())

    def param(self, key: str, value: Any, offset: int, *, sub: str | None = None) -> None:
        d = self.params.data
        d["sub"].append(sub)
        d["key"].append(key)
        # Secrets never land in the lake: the one door every parser's params go through.
        d["value"].append(redact_param(key, value))
        d["offset"].append(offset)
        d["parser"].append(self.parser)
        if self.claim_lines:
            self.claimed.add(offset)

    def status(
        self,
        status: str,
        offset: int,
        *,
        reason: str | None = None,
        error: str | None = None,
        sub: str | None = None,
    ) -> None:
        """A status observation; the run's status is resolved from all of them at the end."""
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}; use one of {', '.join(STATUSES)}")
        d = self.statuses.data
        d["sub"].append(sub)
        d["status"].append(status)
        d["reason"].append(reason)
        d["error"].append(redact_text(error)[0] if error else error)
        d["offset"].append(offset)
        d["parser"].append(self.parser)

    def fact(self, key: str, value: Any, offset: int, *, sub: str | None = None) -> None:
        """A fact about the run: code (git_commit, command), host, start/end time, env."""
        d = self.facts.data
        d["sub"].append(sub)
        d["key"].append(key)
        d["value"].append(redact_param(key, value))
        d["offset"].append(offset)
        d["parser"].append(self.parser)

    def package(self, name: str, version: str, offset: int, *, sub: str | None = None) -> None:
        d = self.packages.data
        d["sub"].append(sub)
        d["name"].append(name)
        d["version"].append(version)
        d["offset"].append(offset)
        d["parser"].append(self.parser)

    def dataset(
        self,
        offset: int,
        *,
        name: str | None = None,
        path: str | None = None,
        split: str | None = None,
        rows: int | None = None,
        cols: int | None = None,
        fingerprint: str | None = None,
        sub: str | None = None,
    ) -> None:
        d = self.datasets.data
        d["sub"].append(sub)
        d["name"].append(name)
        d["path"].append(path)
        d["split"].append(split)
        d["rows"].append(rows)
        d["cols"].append(cols)
        d["fingerprint"].append(fingerprint)
        d["offset"].append(offset)
        d["parser"].append(self.parser)

    def artifact(
        self, path: str, offset: int, *, kind: str | None = None, sub: str | None = None
    ) -> None:
        d = self.artifacts.data
        d["sub"].append(sub)
        d["path"].append(path)
        d["kind"].append(kind)
        d["offset"].append(offset)
        d["parser"].append(self.parser)

    def artifact_rows(
        self,
        paths: Sequence[str],
        offsets: Sequence[int],
        kinds: Sequence[str | None],
        *,
        sub: str | None = None,
    ) -> None:
        """Many artifacts at once, lists of one length: the rows ``artifact`` gives one call
        per row, in order (a log saving a checkpoint every few steps announces a path per
        save, and a call with keywords per row costs more than finding them)."""
        n = len(paths)
        if len(offsets) != n or len(kinds) != n:
            raise ValueError("artifact_rows needs paths, offsets and kinds of one length")
        d = self.artifacts.data
        d["sub"].extend([sub] * n)
        d["path"].extend(paths)
        d["kind"].extend(kinds)
        d["offset"].extend(offsets)
        d["parser"].extend([self.parser] * n)

    def subrun(
        self,
        sub: str,
        offset: int,
        *,
        name: str | None = None,
        experiment: str | None = None,
    ) -> None:
        """Declare a run inside this log (a trial of a search); records name it by ``sub``."""
        d = self.subruns.data
        d["sub"].append(sub)
        d["name"].append(name)
        d["experiment"].append(experiment)
        d["offset"].append(offset)
        d["parser"].append(self.parser)

    def error(self, offset: int, message: str, line: str = "") -> None:
        """A parser problem on one line: data for ``parse_errors``, not an exception."""
        d = self.errors.data
        d["offset"].append(offset)
        d["message"].append(message)
        d["line"].append(redact_text(line[:500])[0] if line else line)
        d["parser"].append(self.parser)

    # -- what the pipeline calls ---------------------------------------------------------

    def is_claimed(self, offset: int) -> bool:
        return offset in self.claimed

    def tables(self) -> dict[str, Columns]:
        return {
            "metrics": self.metrics,
            "params": self.params,
            "statuses": self.statuses,
            "facts": self.facts,
            "packages": self.packages,
            "datasets": self.datasets,
            "artifacts": self.artifacts,
            "subruns": self.subruns,
            "errors": self.errors,
        }

    def count(self) -> int:
        return sum(len(c) for c in self.tables().values())

    def clear(self) -> None:
        for c in self.tables().values():
            c.clear()
        self.claimed.clear()


class MetricRows:
    """Where a parser's metric values for one batch go when it emits many: straight onto the
    Emitter's columns, finished by ``close``.

    ``out.metric`` pays, per value, a call with keywords, eight column lookups, the claim
    and the last-offset bookkeeping; a parser emitting a few hundred thousand values per
    file spends more on that than on reading them. Here a value costs its seven appends (a
    parser may take ``appends`` and call them itself, or give a line's values to ``line``);
    the parser column, the claims and ``last_metric_offset`` are settled once per batch in
    ``close``, which the parser calls before it returns (in a ``finally``: the pipeline rolls
    a failed batch back by row counts, so the columns must be even by then). The rows equal
    ``out.metric``'s one by one: no redaction happens at that door for metrics either.
    """

    __slots__ = ("appends", "data", "out", "start")

    def __init__(self, out: Emitter) -> None:
        self.out = out
        direct = out.metrics.names == METRIC_COLUMNS
        self.data = out.metrics.lists if direct else {n: [] for n in METRIC_COLUMNS}
        self.start = len(self.data["key"])
        # sub, key, value, step, epoch, ts, offset: the columns every value fills
        self.appends = tuple(self.data[n].append for n in METRIC_COLUMNS[:-1])

    def line(
        self,
        emits: Iterable[tuple[str, int]],
        values: Sequence[float],
        offset: int,
        step: int | None,
        epoch: float | None,
        ts: float | None,
        sub: str | None = None,
    ) -> None:
        """One line's metrics: ``emits`` pairs each metric key with its value's index in
        ``values`` (a line's plan says which of its numbers become which metrics)."""
        add_sub, add_key, add_value, add_step, add_epoch, add_ts, add_offset = self.appends
        for key, k in emits:
            add_sub(sub)
            add_key(key)
            add_value(values[k])
            add_step(step)
            add_epoch(epoch)
            add_ts(ts)
            add_offset(offset)

    def extend(self, columns: Sequence[Sequence[Any]]) -> None:
        """Many rows at once: ``columns`` holds sub, key, value, step, epoch, ts and offset
        lists of one length (a parser that reads a batch as columns)."""
        for add, values in zip(self.appends, columns, strict=True):
            add.__self__.extend(values)  # type: ignore[attr-defined]

    def extend_arrays(
        self,
        key: pa.Array | pa.ChunkedArray,
        value: pa.Array | pa.ChunkedArray,
        offset: pa.Array | pa.ChunkedArray,
        *,
        step: pa.Array | pa.ChunkedArray | int | None = None,
        epoch: pa.Array | pa.ChunkedArray | float | None = None,
        ts: pa.Array | pa.ChunkedArray | float | None = None,
        sub: pa.Array | pa.ChunkedArray | str | None = None,
    ) -> None:
        """Many rows as Arrow arrays, after the rows added so far: ``Emitter.metric_arrays``."""
        if self.data is not self.out.metrics.lists:  # the listed rows wait for close()
            self.close()
            self.start = len(self.data["key"])
        self.out.metric_arrays(key, value, offset, step=step, epoch=epoch, ts=ts, sub=sub)

    def close(self) -> None:
        """The parser column, the claims and the last offset for the values added (rows
        written with ``out.metric`` meanwhile, by the same parser, are complete already)."""
        out, d, start = self.out, self.data, self.start
        if len(d["key"]) <= start:
            return
        if d is not out.metrics.lists:  # another column layout: the Emitter's own method
            for sub, key, value, step, epoch, ts, offset in zip(
                *(d[n] for n in METRIC_COLUMNS[:-1]), strict=True
            ):
                out.metric(key, value, offset, step=step, epoch=epoch, ts=ts, sub=sub)
            for values in d.values():
                values.clear()
            return
        d["parser"].extend([out.parser] * (len(d["key"]) - len(d["parser"])))
        offsets = d["offset"][start:]
        out.last_metric_offset = max(out.last_metric_offset, max(offsets))
        if out.claim_lines:
            out.claimed.update(offsets)
        self.start = len(d["key"])
