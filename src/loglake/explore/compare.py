"""``loglake compare RUN RUN…``: params, metrics, packages and data of runs side by side.

Works the same for two runs and for a 200-trial sweep: every row says whether the runs
differ on it, so a reader (or a program) can drop what is constant. Parameter values are
compared as numbers when both are numbers (``0.001`` equals ``1e-3``), else as text.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa

from loglake.explore.objective import direction
from loglake.explore.resolve import resolve_runs
from loglake.explore.sqlgen import lit

SUMMARY_FIELDS = ("last", "min", "max", "count")


@dataclass
class Row:
    """One compared key: a value per run (``None`` when the run lacks it)."""

    key: str
    values: list[Any]
    differs: bool


@dataclass
class MetricRow:
    key: str
    goal: str  # which direction is better, for marking the best run
    summaries: list[dict[str, Any] | None]  # per run: last, min, max, count
    differs: bool
    best: int | None  # index of the run with the best value (by goal), if any

    def column(self, field_name: str) -> list[Any]:
        return [s.get(field_name) if s else None for s in self.summaries]


@dataclass
class Comparison:
    runs: list[dict[str, Any]]
    labels: list[str]  # a short, unique column label per run
    params: list[Row] = field(default_factory=list)
    metrics: list[MetricRow] = field(default_factory=list)
    packages: list[Row] = field(default_factory=list)
    datasets: list[Row] = field(default_factory=list)

    def differing_params(self) -> list[Row]:
        return [p for p in self.params if p.differs]

    def side_by_side(self, section: str = "params") -> pa.Table:
        """Keys as rows, one column per run, plus ``differs``: the two-run view."""
        rows: list[Row] = getattr(self, section)
        cols: dict[str, list[Any]] = {"key": [r.key for r in rows]}
        cols["differs"] = [r.differs for r in rows]
        for i, label in enumerate(self.labels):
            cols[label] = [_text(r.values[i]) for r in rows]
        return pa.table(cols)

    def metrics_side_by_side(self, field_name: str = "last") -> pa.Table:
        cols: dict[str, list[Any]] = {"key": [m.key for m in self.metrics]}
        cols["best"] = [self.labels[m.best] if m.best is not None else None for m in self.metrics]
        for i, label in enumerate(self.labels):
            cols[label] = [m.column(field_name)[i] for m in self.metrics]
        return pa.table(cols)

    def per_run(self, metric_field: str = "last") -> pa.Table:
        """Runs as rows: identity, the params that differ, each metric's ``metric_field``."""
        cols: dict[str, list[Any]] = {
            name: [r[name] for r in self.runs]
            for name in ("run_id", "namespace", "experiment", "run", "status")
        }
        for p in self.differing_params():
            cols[f"params.{p.key}"] = [_text(v) for v in p.values]
        for m in self.metrics:
            cols[f"{metric_field}({m.key})"] = m.column(metric_field)
        return pa.table(cols)

    def as_dict(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "params": [
                {"key": p.key, "differs": p.differs, "values": p.values} for p in self.params
            ],
            "metrics": [
                {
                    "key": m.key,
                    "goal": m.goal,
                    "differs": m.differs,
                    "best_run": self.runs[m.best]["run_id"] if m.best is not None else None,
                    "values": m.summaries,
                }
                for m in self.metrics
            ],
            "packages": [
                {"name": p.key, "differs": p.differs, "versions": p.values} for p in self.packages
            ],
            "datasets": [
                {"dataset": d.key, "differs": d.differs, "values": d.values} for d in self.datasets
            ],
        }


def compare_runs(conn: duckdb.DuckDBPyConnection, refs: Sequence[str]) -> Comparison:
    """Compare the runs ``refs`` name, in the order given."""
    ids = resolve_runs(conn, refs)
    index = {rid: i for i, rid in enumerate(ids)}
    id_list = ", ".join(lit(r) for r in ids)
    runs_by_id = {
        row[0]: dict(zip(("run_id", "namespace", "experiment", "run", "status"), row, strict=True))
        for row in conn.execute(
            "SELECT run_id, namespace, experiment, run, status FROM runs "
            f"WHERE run_id IN ({id_list})"
        ).fetchall()
    }
    runs = [runs_by_id[r] for r in ids]
    cmp = Comparison(runs=runs, labels=_labels(runs))
    n = len(ids)

    params: dict[str, list[Any]] = {}
    comparable: dict[str, list[Any]] = {}
    for rid, key, value, num in conn.execute(
        f"SELECT run_id, key, value, value_num FROM params_latest WHERE run_id IN ({id_list})"
    ).fetchall():
        params.setdefault(key, [None] * n)[index[rid]] = value
        comparable.setdefault(key, [None] * n)[index[rid]] = num if num is not None else value
    cmp.params = [
        Row(k, params[k], len({_hashable(v) for v in comparable[k]}) > 1) for k in sorted(params)
    ]

    summaries: dict[str, list[dict[str, Any] | None]] = {}
    for rid, key, last, lo, hi, count in conn.execute(
        f"SELECT run_id, key, last, min, max, count FROM metric_summary WHERE run_id IN ({id_list})"
    ).fetchall():
        summaries.setdefault(key, [None] * n)[index[rid]] = dict(
            zip(SUMMARY_FIELDS, (last, lo, hi, count), strict=True)
        )
    for key in sorted(summaries):
        per_run = summaries[key]
        goal = direction(key)
        cmp.metrics.append(
            MetricRow(key, goal, per_run, _metric_differs(per_run), _best(per_run, goal))
        )

    packages: dict[str, list[Any]] = {}
    for rid, name, version in conn.execute(
        'SELECT run_id, name, arg_max(version, coalesce("offset", 0)) FROM packages '
        f"WHERE run_id IN ({id_list}) GROUP BY run_id, name"
    ).fetchall():
        packages.setdefault(name, [None] * n)[index[rid]] = version
    cmp.packages = [Row(k, v, len(set(v)) > 1) for k, v in sorted(packages.items())]

    datasets: dict[str, list[Any]] = {}
    for rid, ds, rows, ncols, fp in conn.execute(
        "SELECT run_id, coalesce(path, name), any_value(rows), any_value(cols), "
        f"any_value(fingerprint) FROM datasets WHERE run_id IN ({id_list}) "
        "GROUP BY run_id, coalesce(path, name)"
    ).fetchall():
        shape = f"{rows}×{ncols}" if rows is not None or ncols is not None else None
        value = " ".join(x for x in (shape, fp) if x) or "seen"
        datasets.setdefault(ds, [None] * n)[index[rid]] = value
    cmp.datasets = [Row(k, v, len(set(v)) > 1) for k, v in sorted(datasets.items())]
    return cmp


def _labels(runs: list[dict[str, Any]]) -> list[str]:
    names = [r["run"] or r["run_id"] for r in runs]
    if len(set(names)) == len(names):
        return names
    return [f"{name}@{r['run_id'][:8]}" for name, r in zip(names, runs, strict=True)]


def _metric_differs(per_run: list[dict[str, Any] | None]) -> bool:
    return len({None if s is None else _hashable(s["last"]) for s in per_run}) > 1


def _best(per_run: list[dict[str, Any] | None], goal: str) -> int | None:
    field_name = "min" if goal == "min" else "max"
    scored = [(s[field_name], i) for i, s in enumerate(per_run) if s and s[field_name] is not None]
    if not scored:
        return None
    return (min(scored) if goal == "min" else max(scored, key=lambda t: (t[0], -t[1])))[1]


def _hashable(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    return v


def _text(v: Any) -> str | None:
    return None if v is None else str(v)
