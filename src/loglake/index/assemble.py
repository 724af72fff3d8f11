"""Turning a file's emitted records into lake rows (Arrow tables), with run ids and provenance."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from loglake.lake.schema import SCHEMAS, TS
from loglake.parse.metric_columns import MetricChunk, MetricColumns
from loglake.parse.records import Emitter
from loglake.parse.values import to_number
from loglake.runs.identity import RunIdentity
from loglake.runs.summary import resolve_status, split_facts


def _num(value: Any) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        low = value.strip().lower()
        if low in ("true", "false"):
            return 1.0 if low == "true" else 0.0
        return to_number(value)
    return None


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float) or value is None:
        return str(value)
    try:
        return json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return str(value)


def _ts(value: float | None) -> datetime | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    try:
        return datetime.fromtimestamp(float(value), tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


class RunResolver:
    """Maps an emitter's ``sub`` (None or e.g. ``trial-3``) to a run identity."""

    def __init__(self, base: RunIdentity, summaries: dict[str, dict[str, Any]]) -> None:
        self.base = base
        self.summaries = summaries
        self._cache: dict[str | None, RunIdentity] = {None: base}

    def identity(self, sub: str | None) -> RunIdentity:
        ident = self._cache.get(sub)
        if ident is None:
            meta = self.summaries.get(sub or "", {})
            ident = self.base.child(sub or "", experiment=meta.get("experiment"))
            self._cache[sub] = ident
        return ident

    def run_id(self, sub: str | None) -> str:
        return self.identity(sub).run_id


def _table(name: str, cols: dict[str, list[Any] | pa.Array | pa.ChunkedArray]) -> pa.Table:
    schema = SCHEMAS[name]
    arrays = [
        c if isinstance(c := cols[f.name], pa.Array | pa.ChunkedArray) else pa.array(c, type=f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


# datetime's range, in epoch seconds: a stamp outside it is no time at all.
_TS_MIN, _TS_MAX = -62_135_596_800.0, 253_402_300_800.0


def _floats(values: list[Any]) -> pa.Array:
    """A float64 column in one C pass (NaN stays NaN: a diverged loss is a value).

    Parsers may hand over numeric text; that is converted per row.
    """
    try:
        return pa.array(values, type=pa.float64())
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
        return pa.array([None if v is None else float(v) for v in values], type=pa.float64())


def _timestamps(values: list[Any] | pa.Array | pa.ChunkedArray) -> pa.Array:
    """Epoch seconds to UTC microseconds without a ``datetime`` per row (NaN, None and
    out-of-range stamps become null, as ``_ts`` makes them)."""
    if isinstance(values, pa.Array | pa.ChunkedArray):
        secs = values.cast(pa.float64())  # NaN fails the range test below: null
    else:
        try:
            secs = pa.array(values, type=pa.float64(), from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
            return pa.array([_ts(v) for v in values], type=TS)
    if secs.null_count == len(secs):
        return pa.nulls(len(secs), TS)
    ok = pc.and_(pc.greater_equal(secs, _TS_MIN), pc.less(secs, _TS_MAX))
    secs = pc.if_else(ok, secs, pa.scalar(None, pa.float64()))
    # Whole seconds and a rounded fraction, as datetime.fromtimestamp rounds (half to even).
    whole = pc.floor(secs)
    micros = pc.round(pc.multiply(pc.subtract(secs, whole), 1e6)).cast(pa.int64())
    return pc.add(pc.multiply(whole.cast(pa.int64()), 1_000_000), micros).cast(TS)


def _run_ids(resolver: RunResolver, subs: list[str | None]) -> pa.Array:
    """Most rows belong to the file's own run: repeat one id instead of a list of them."""
    n = len(subs)
    distinct = set(subs)
    if len(distinct) == 1:
        return pa.repeat(pa.scalar(resolver.run_id(subs[0]), pa.string()), n)
    order = list(distinct)
    index = {s: i for i, s in enumerate(order)}
    ids = pa.array([resolver.run_id(s) for s in order], type=pa.string())
    return ids.take(pa.array([index[s] for s in subs], type=pa.int32()))


def _chunk_run_ids(resolver: RunResolver, subs: pa.Array | pa.ChunkedArray) -> pa.Array:
    """``_run_ids`` for a chunk's Arrow ``sub`` column."""
    n = len(subs)
    if subs.null_count == n:
        return pa.repeat(pa.scalar(resolver.run_id(None), pa.string()), n)
    distinct = pc.unique(subs)
    ids = pa.array([resolver.run_id(s) for s in distinct.to_pylist()], type=pa.string())
    return ids.take(pc.index_in(subs, value_set=distinct, skip_nulls=False))


def _same(value: str | None, n: int) -> pa.Array:
    return pa.repeat(pa.scalar(value, pa.string()), n)


def _metric_tables(
    out: Emitter, resolver: RunResolver, ns: str | None, source_fp: str
) -> list[pa.Table]:
    """The metrics rows in emission order: listed rows converted a range at a time, each
    Arrow chunk as it is (no Python object per value), placed where it was emitted."""
    metrics = out.metrics
    m = metrics.lists
    n_listed = len(m["key"])
    segments = metrics.segments() if isinstance(metrics, MetricColumns) else [(0, n_listed)]
    parts = []
    for seg in segments:
        if isinstance(seg, MetricChunk):
            t = seg.table
            n = t.num_rows
            cols = {
                "run_id": _chunk_run_ids(resolver, t.column("sub")),
                "namespace": _same(ns, n),
                "source_fp": _same(source_fp, n),
            }
            cols.update(
                key=t.column("key"),
                value=t.column("value"),
                step=t.column("step"),
                epoch=t.column("epoch"),
                ts=_timestamps(t.column("ts")),
                offset=t.column("offset"),
                parser=_same(seg.parser, n),
            )
            parts.append(_table("metrics", cols))
            continue
        a, b = seg
        if b <= a:
            continue
        part = m if (a, b) == (0, n_listed) else {c: v[a:b] for c, v in m.items()}
        cols = {
            "run_id": _run_ids(resolver, part["sub"]),
            "namespace": _same(ns, b - a),
            "source_fp": _same(source_fp, b - a),
        }
        cols.update(
            key=part["key"],
            value=_floats(part["value"]),
            step=part["step"],
            epoch=_floats(part["epoch"]),
            ts=_timestamps(part["ts"]),
            offset=part["offset"],
            parser=part["parser"],
        )
        parts.append(_table("metrics", cols))
    return parts


def record_tables(
    out: Emitter,
    resolver: RunResolver,
    *,
    source_fp: str,
    source_path: str,
    observed_at: datetime,
) -> dict[str, pa.Table]:
    """Rows for every record table (not ``runs``: see ``run_rows``).

    Metrics are the bulk of a log's rows, so their columns are built by Arrow kernels;
    the rarer tables convert row by row.
    """
    ns = resolver.base.namespace
    tables: dict[str, pa.Table] = {}

    def common(subs: list[str | None], n: int) -> dict[str, Any]:
        return {
            "run_id": _run_ids(resolver, subs),
            "namespace": _same(ns, n),
            "source_fp": _same(source_fp, n),
        }

    parts = _metric_tables(out, resolver, ns, source_fp)
    if parts:
        tables["metrics"] = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
    p = out.params.data
    if p["key"]:
        n = len(p["key"])
        cols = common(p["sub"], n)
        cols.update(
            key=p["key"],
            value=[_text(v) for v in p["value"]],
            value_num=[_num(v) for v in p["value"]],
            offset=p["offset"],
            parser=p["parser"],
        )
        tables["params"] = _table("params", cols)
    k = out.packages.data
    if k["name"]:
        cols = common(k["sub"], len(k["name"]))
        cols.update(name=k["name"], version=k["version"], offset=k["offset"], parser=k["parser"])
        tables["packages"] = _table("packages", cols)
    d = out.datasets.data
    if d["offset"]:
        cols = common(d["sub"], len(d["offset"]))
        for f in ("name", "path", "split", "rows", "cols", "fingerprint", "offset", "parser"):
            cols[f] = d[f]
        tables["datasets"] = _table("datasets", cols)
    a = out.artifacts.data
    if a["path"]:
        cols = common(a["sub"], len(a["path"]))
        cols.update(path=a["path"], kind=a["kind"], offset=a["offset"], parser=a["parser"])
        tables["artifacts"] = _table("artifacts", cols)
    e = out.errors.data
    if e["offset"]:
        n = len(e["offset"])
        tables["parse_errors"] = _table(
            "parse_errors",
            {
                "source_path": [source_path] * n,
                "message": e["message"],
                "line": e["line"],
                "observed_at": [observed_at] * n,
                "source_fp": [source_fp] * n,
                "offset": e["offset"],
                "parser": e["parser"],
            },
        )
    return tables


def run_rows(
    resolver: RunResolver,
    *,
    source_fp: str,
    source_path: str,
    end_offset: int,
    lines: int,
    nbytes: int,
    observed_at: datetime,
    parsers: str,
) -> pa.Table:
    """One observation row per run this file speaks for (the file's run and its sub-runs)."""
    rows: dict[str, list[Any]] = {f.name: [] for f in SCHEMAS["runs"]}
    base_id = resolver.base.run_id
    subs: list[str | None] = [None] + sorted(k for k in resolver.summaries if k)
    for sub in subs:
        summary = resolver.summaries.get(sub or "") or {}
        ident = resolver.identity(sub)
        status, reason, error = resolve_status(summary) if summary else ("unknown", None, None)
        cols, env = split_facts(summary.get("facts", {}))
        exit_code = cols.get("exit_code")
        rows["run_id"].append(ident.run_id)
        rows["namespace"].append(ident.namespace)
        rows["experiment"].append(ident.experiment)
        rows["run"].append(ident.run)
        rows["parent_run_id"].append(base_id if sub else None)
        rows["rank"].append(ident.rank)
        rows["status"].append(status)
        rows["status_reason"].append(reason)
        rows["error"].append(error)
        rows["start_time"].append(_ts(summary.get("start")))
        rows["end_time"].append(_ts(summary.get("end")))
        for f in ("framework", "command", "git_commit", "git_branch", "host", "user"):
            v = cols.get(f)
            rows[f].append(None if v is None else str(v))
        rows["exit_code"].append(None if exit_code is None else int(float(exit_code)))
        rows["env"].append(json.dumps(env, sort_keys=True, default=str) if env else None)
        rows["source_path"].append(source_path)
        rows["lines"].append(lines if not sub else None)
        rows["bytes"].append(nbytes if not sub else None)
        rows["observed_at"].append(observed_at)
        rows["source_fp"].append(source_fp)
        rows["offset"].append(end_offset)
        rows["parser"].append(parsers)
    return _table("runs", rows)
