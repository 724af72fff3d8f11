"""Which runs a command looks at: the flags every explore command shares, as one object.

A selection never hides runs by namespace unless asked: with no ``namespace`` it spans the
whole lake, and ``elsewhere`` tells a caller how many runs a namespace filter left out.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

import duckdb

from loglake.explore.expr import FilterError, parse
from loglake.explore.sqlgen import RunQuery, lit


@dataclass(frozen=True)
class Selection:
    """Filters over runs; empty fields filter nothing. Patterns may use ``*`` and ``?``."""

    namespaces: tuple[str, ...] = ()
    experiments: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()  # "key" (has the tag) or "key=value"
    note: str | None = None  # case-insensitive text in any note
    since: str | None = None  # ISO time or a duration back from now ("7d")
    until: str | None = None
    where: str | None = None
    run_ids: tuple[str, ...] = ()

    def query(self, *, now: dt.datetime | None = None, metrics_view: str = "metrics") -> RunQuery:
        """A ``RunQuery`` with these filters applied."""
        q = RunQuery(metrics_view=metrics_view)
        self.apply(q, now=now)
        return q

    def apply(self, q: RunQuery, *, now: dt.datetime | None = None) -> None:
        now = now or dt.datetime.now(dt.UTC)
        if self.namespaces:
            q.filters.append(_any_glob("r.namespace", self.namespaces))
        if self.experiments:
            q.filters.append(_any_glob("r.experiment", self.experiments))
        if self.statuses:
            q.filters.append(f"r.status IN ({', '.join(lit(s.lower()) for s in self.statuses)})")
        if self.run_ids:
            q.filters.append(f"r.run_id IN ({', '.join(lit(r) for r in self.run_ids)})")
        when = "coalesce(r.start_time, r.observed_at)"
        if self.since:
            q.filters.append(f"{when} >= {lit(parse_time(self.since, now).isoformat())}")
        if self.until:
            q.filters.append(f"{when} < {lit(parse_time(self.until, now).isoformat())}")
        for spec in self.tags:
            key, eq, value = spec.partition("=")
            alias = q.tag(key.strip())
            cond = f"{alias}.value = {lit(value.strip())}" if eq else f"{alias}.value IS NOT NULL"
            q.filters.append(cond)
        if self.note:
            q.filters.append(
                "r.run_id IN (SELECT run_id FROM notes WHERE "
                f"contains(lower(text), {lit(self.note.lower())}))"
            )
        if self.where:
            q.where(parse(self.where))

    def without_namespaces(self) -> Selection:
        return replace(self, namespaces=())


def parse_time(text: str, now: dt.datetime) -> dt.datetime:
    """``2024-05-01``, ``2024-05-01T12:00``, or a duration back from ``now`` (``36h``, ``7d``)."""
    from loglake.config import parse_duration  # pydantic: only when a time filter is given

    text = text.strip()
    try:
        return now - dt.timedelta(seconds=parse_duration(text))
    except ValueError:
        pass
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        raise FilterError(
            f"{text!r} is neither a time nor a duration",
            fix="write e.g. 2024-05-01, 2024-05-01T12:00 or 7d, 36h",
        ) from None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def _any_glob(column: str, patterns: tuple[str, ...]) -> str:
    terms = [
        f"{column} GLOB {lit(p)}" if any(c in p for c in "*?[") else f"{column} = {lit(p)}"
        for p in patterns
    ]
    return "(" + " OR ".join(terms) + ")"


def selected_ids(conn: duckdb.DuckDBPyConnection, selection: Selection) -> list[str]:
    """The run ids a selection matches, oldest first."""
    q = selection.query()
    sql = q.sql([("run_id", "r.run_id")], order=["r.start_time NULLS FIRST", "r.run_id"])
    return [row[0] for row in conn.execute(sql).fetchall()]


def count_selected(conn: duckdb.DuckDBPyConnection, selection: Selection) -> int:
    q = selection.query()
    sql = f"SELECT count(*) FROM ({q.sql([('run_id', 'r.run_id')])})"
    return int(conn.execute(sql).fetchall()[0][0])


def elsewhere(conn: duckdb.DuckDBPyConnection, selection: Selection) -> dict[str, int]:
    """Runs the same filters match in other namespaces: namespace → count.

    So an empty answer in one namespace can say where the runs are instead of nothing.
    """
    if not selection.namespaces:
        return {}
    q = selection.without_namespaces().query()
    q.filters.append(f"NOT {_any_glob('coalesce(r.namespace, chr(0))', selection.namespaces)}")
    sql = (
        f"SELECT namespace, count(*) FROM ({q.sql([('namespace', 'r.namespace')])}) "
        "GROUP BY namespace ORDER BY count(*) DESC, namespace"
    )
    return {ns or "(none)": int(n) for ns, n in conn.execute(sql).fetchall()}
