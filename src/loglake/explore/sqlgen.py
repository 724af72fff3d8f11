"""Filter trees → one DuckDB query over ``runs``, with one join per param, tag and metric key.

Each parameter, tag and (metric key, step window) a query names becomes one CTE that reads
only that key (the filter on ``key`` reaches the Parquet scan), aggregated per run and
left-joined to ``runs``. All aggregates of one key and window share one pass.
Literals are inlined with SQL quoting; user text never becomes SQL unquoted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from loglake.explore.expr import (
    NUMERIC_RUN_FIELDS,
    Binary,
    FilterError,
    InList,
    IsNull,
    Literal,
    Match,
    Metric,
    Node,
    Notes,
    Param,
    RunField,
    Tag,
    Unary,
    Window,
)
from loglake.explore.objective import direction

# Same point order as the metric_summary view: step, else epoch, else byte offset.
POINT_ORDER = (
    "CASE WHEN step IS NOT NULL THEN step "
    "WHEN epoch IS NOT NULL THEN 2305843009213693952 + CAST(round(epoch * 1e6) AS BIGINT) "
    'ELSE 4611686018427387904 + coalesce("offset", 0) END'
)

_AGG_SQL = {
    "last": "arg_max(value, _o)",
    "first": "arg_min(value, _o)",
    "min": "min(_n)",
    "max": "max(_n)",
    "mean": "avg(_n)",
    "count": "count(*)",
    "last_step": "max(step)",
}
_SUMMARY_COLUMNS = {
    "last": "last",
    "first": "first",
    "min": "min",
    "max": "max",
    "count": "count",
    "last_step": "last_step",
}
_COMPARISONS = {"<", "<=", ">", ">=", "=", "!="}


def lit(value: object) -> str:
    """An SQL literal for a Python value."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else f"'{value}'::DOUBLE"
    return "'" + str(value).replace("'", "''") + "'"


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def window_sql(window: Window) -> str:
    parts = []
    for axis, op, value in window.terms:
        column = "coalesce(CAST(step AS DOUBLE), epoch)" if axis == "any" else axis
        parts.append(f"{column} {op} {lit(value)}")
    return " AND ".join(parts)


@dataclass
class _MetricCte:
    alias: str
    key: str
    window: Window
    funcs: dict[str, str] = field(default_factory=dict)  # func -> column name


@dataclass
class RunQuery:
    """A query over the ``runs`` view (alias ``r``) that filters, adds columns, and sorts."""

    metrics_view: str = "metrics"
    filters: list[str] = field(default_factory=list)
    _params: dict[str, str] = field(default_factory=dict)
    _tags: dict[str, str] = field(default_factory=dict)
    _metrics: dict[tuple[str, Window], _MetricCte] = field(default_factory=dict)
    _notes: bool = False
    _n: int = 0

    # -- references -------------------------------------------------------------------
    def param(self, key: str) -> str:
        if key not in self._params:
            self._params[key] = self._alias("p")
        return self._params[key]

    def tag(self, key: str) -> str:
        if key not in self._tags:
            self._tags[key] = self._alias("t")
        return self._tags[key]

    def metric(self, node: Metric) -> str:
        """The SQL column holding ``node``'s aggregate for each run."""
        func = direction(node.key) if node.func == "best" else node.func
        func = "mean" if func == "avg" else func
        cte = self._metrics.get((node.key, node.window))
        if cte is None:
            cte = _MetricCte(self._alias("m"), node.key, node.window)
            self._metrics[(node.key, node.window)] = cte
        cte.funcs.setdefault(func, f"a_{func}")
        return f"{cte.alias}.{cte.funcs[func]}"

    def _alias(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}{self._n}"

    # -- compiling --------------------------------------------------------------------
    def where(self, node: Node) -> None:
        """Keep only runs for which ``node`` is true."""
        self.filters.append(self.compile(node))

    def compile(self, node: Node, want: str | None = None) -> str:
        """SQL for ``node``; ``want`` ("num"/"text") picks a param's typed column."""
        if isinstance(node, Literal):
            if want == "text" and isinstance(node.value, bool):
                return lit(str(node.value).lower())
            if want == "text" and isinstance(node.value, int | float):
                return lit(_number_text(node.value))
            return lit(node.value)
        if isinstance(node, RunField):
            return f"r.{ident(node.column)}"
        if isinstance(node, Param):
            alias = self.param(node.key)
            return f"{alias}.value_num" if want == "num" else f"{alias}.value"
        if isinstance(node, Tag):
            return f"{self.tag(node.key)}.value"
        if isinstance(node, Notes):
            self._notes = True
            return "n.text"
        if isinstance(node, Metric):
            return self.metric(node)
        if isinstance(node, Unary):
            if node.op == "not":
                return f"(NOT {self.compile(node.operand)})"
            return f"(-{self.compile(node.operand, 'num')})"
        if isinstance(node, Binary):
            return self._binary(node)
        if isinstance(node, InList):
            kind = _kind_of_literals(node.items)
            items = ", ".join(self.compile(i, kind) for i in node.items)
            neg = "NOT " if node.negated else ""
            return f"({self.compile(node.operand, kind)} {neg}IN ({items}))"
        if isinstance(node, IsNull):
            return f"({self.compile(node.operand)} IS {'NOT ' if node.negated else ''}NULL)"
        if isinstance(node, Match):
            target = f"CAST({self.compile(node.operand, 'text')} AS VARCHAR)"
            if node.kind == "~":
                sql = f"regexp_matches({target}, {lit(node.pattern)})"
            else:
                sql = f"({target} {node.kind.upper()} {lit(node.pattern)})"
            return f"(NOT coalesce({sql}, FALSE))" if node.negated else sql
        raise FilterError(f"cannot compile {node!r}")

    def _binary(self, node: Binary) -> str:
        if node.op in ("and", "or"):
            return f"({self.compile(node.left)} {node.op.upper()} {self.compile(node.right)})"
        if node.op in _COMPARISONS:
            kind = _comparison_kind(node.left, node.right)
            left, right = self.compile(node.left, kind), self.compile(node.right, kind)
            if kind == "text" and _is_bool(node.left, node.right):
                left, right = f"lower({left})", f"lower({right})"
            return f"({left} {node.op} {right})"
        left, right = self.compile(node.left, "num"), self.compile(node.right, "num")
        if node.op == "/":
            return f"({left} / nullif({right}, 0))"
        return f"({left} {node.op} {right})"

    # -- the query --------------------------------------------------------------------
    def ctes(self) -> list[str]:
        out = []
        for key, alias in self._params.items():
            # Pinned, params_latest is a ready table; as a view, DuckDB pushes the key filter
            # below its window (key is a partition column), so only one key is read.
            out.append(
                f"{alias} AS (SELECT run_id, value, value_num FROM params_latest "
                f"WHERE key = {lit(key)})"
            )
        for key, alias in self._tags.items():
            out.append(f"{alias} AS (SELECT run_id, value FROM run_tags WHERE key = {lit(key)})")
        for cte in self._metrics.values():
            out.append(f"{cte.alias} AS ({self._metric_sql(cte)})")
        if self._notes:
            out.append(
                "n AS (SELECT run_id, string_agg(text, chr(10) ORDER BY created_at) AS text "
                "FROM notes GROUP BY run_id)"
            )
        return out

    def _metric_sql(self, cte: _MetricCte) -> str:
        if not cte.window.terms and cte.funcs.keys() <= _SUMMARY_COLUMNS.keys():
            # Whole-history aggregates are columns of metric_summary (cached per file).
            cols = ", ".join(f"{_SUMMARY_COLUMNS[f]} AS {name}" for f, name in cte.funcs.items())
            return f"SELECT run_id, {cols} FROM metric_summary WHERE key = {lit(cte.key)}"
        cond = f"key = {lit(cte.key)}"
        if cte.window.terms:
            cond += f" AND {window_sql(cte.window)}"
        cols = ", ".join(f"{_AGG_SQL[f]} AS {name}" for f, name in cte.funcs.items())
        inner = ["run_id", "value", "step"]
        if {"last", "first"} & cte.funcs.keys():
            inner.append(f"{POINT_ORDER} AS _o")
        inner.append("CASE WHEN isnan(value) THEN NULL ELSE value END AS _n")
        return (
            f"SELECT run_id, {cols} FROM (SELECT {', '.join(inner)} "
            f"FROM {self.metrics_view} WHERE {cond}) GROUP BY run_id"
        )

    def joins(self) -> list[str]:
        out = []
        for alias in [*self._params.values(), *self._tags.values()]:
            out.append(f"LEFT JOIN {alias} ON {alias}.run_id = r.run_id")
        for cte in self._metrics.values():
            out.append(f"LEFT JOIN {cte.alias} ON {cte.alias}.run_id = r.run_id")
        if self._notes:
            out.append("LEFT JOIN n ON n.run_id = r.run_id")
        return out

    def sql(
        self,
        columns: list[tuple[str, str]],
        order: list[str] | None = None,
        limit: int | None = None,
    ) -> str:
        """``SELECT columns FROM runs r … WHERE filters ORDER BY order LIMIT limit``."""
        ctes = self.ctes()
        head = f"WITH {', '.join(ctes)} " if ctes else ""
        select = ", ".join(f"{expr} AS {ident(name)}" for name, expr in columns)
        sql = f"{head}SELECT {select} FROM runs r {' '.join(self.joins())}"
        if self.filters:
            sql += " WHERE " + " AND ".join(f"coalesce({f}, FALSE)" for f in self.filters)
        if order:
            sql += " ORDER BY " + ", ".join(order)
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return sql


def _comparison_kind(left: Node, right: Node) -> str:
    """Compare as text when either side is text-like (a string, a text field, a tag)."""
    for side in (left, right):
        if isinstance(side, Literal) and isinstance(side.value, str | bool):
            return "text"
        if isinstance(side, Tag | Notes):
            return "text"
        if isinstance(side, RunField) and side.column not in NUMERIC_RUN_FIELDS:
            return "text"
    if isinstance(left, Param) and isinstance(right, Param):
        return "text"
    return "num"


def _kind_of_literals(items: tuple[Literal, ...]) -> str:
    return "text" if any(isinstance(i.value, str | bool) for i in items) else "num"


def _is_bool(left: Node, right: Node) -> bool:
    return any(isinstance(s, Literal) and isinstance(s.value, bool) for s in (left, right))


def _number_text(value: float) -> str:
    """``0.01`` as a param prints it; ``3.0`` as ``3`` so ``params.layers in (3, 'x')`` matches."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value)
