"""``loglake show RUN``: everything the lake knows about one run, section by section."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa

from loglake.explore.resolve import resolve_run
from loglake.explore.sqlgen import lit


@dataclass
class RunDetail:
    run: dict[str, Any]
    facts: dict[str, Any] = field(default_factory=dict)  # the run's env JSON, unpacked
    params: list[tuple[str, str]] = field(default_factory=list)
    metrics: pa.Table | None = None
    packages: list[tuple[str, str]] = field(default_factory=list)
    datasets: list[dict[str, Any]] = field(default_factory=list)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    notes: list[dict[str, Any]] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)
    archive: list[dict[str, Any]] = field(default_factory=list)
    problems: dict[str, int] = field(default_factory=dict)  # gaps and parse errors by kind

    def as_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "facts": self.facts,
            "params": dict(self.params),
            "metrics": self.metrics.to_pylist() if self.metrics is not None else [],
            "packages": dict(self.packages),
            "datasets": self.datasets,
            "artifacts": self.artifacts,
            "tags": self.tags,
            "notes": self.notes,
            "files": self.files,
            "archive": self.archive,
            "problems": self.problems,
        }


def show_run(conn: duckdb.DuckDBPyConnection, ref: str) -> RunDetail:
    """All facts about the run ``ref`` names (an id, a prefix or a name; any namespace)."""
    run_id = resolve_run(conn, ref)
    rid = lit(run_id)
    run = _dicts(conn, f"SELECT * FROM runs WHERE run_id = {rid}")[0]
    facts = _facts(run.get("env"))
    detail = RunDetail(run=run, facts=facts)
    detail.params = [
        (k, v)
        for k, v in conn.execute(
            f"SELECT key, value FROM params_latest WHERE run_id = {rid} ORDER BY key"
        ).fetchall()
    ]
    detail.metrics = conn.sql(
        "SELECT key, count, first, last, min, max, step_of_min, step_of_max, last_step "
        f"FROM metric_summary WHERE run_id = {rid} ORDER BY key"
    ).to_arrow_table()
    detail.packages = [
        (n, v)
        for n, v in conn.execute(
            'SELECT name, arg_max(version, coalesce("offset", 0)) FROM packages '
            f"WHERE run_id = {rid} GROUP BY name ORDER BY name"
        ).fetchall()
    ]
    detail.datasets = _dicts(
        conn,
        "SELECT DISTINCT name, path, split, rows, cols, fingerprint FROM datasets "
        f"WHERE run_id = {rid} ORDER BY path, name, split",
    )
    detail.artifacts = _dicts(
        conn, f"SELECT DISTINCT path, kind FROM artifacts WHERE run_id = {rid} ORDER BY path"
    )
    detail.tags = dict(
        conn.execute(
            f"SELECT key, value FROM run_tags WHERE run_id = {rid} ORDER BY key"
        ).fetchall()
    )
    detail.notes = _dicts(
        conn,
        f"SELECT created_at, author, text FROM notes WHERE run_id = {rid} ORDER BY created_at",
    )
    fps = f"SELECT DISTINCT source_fp FROM runs_log WHERE run_id = {rid}"
    detail.files = _dicts(
        conn,
        "SELECT source_path, size, end_offset, lines, mtime, indexed_at FROM files "
        f"WHERE source_fp IN ({fps}) "
        "QUALIFY row_number() OVER (PARTITION BY source_fp ORDER BY indexed_at DESC) = 1 "
        "ORDER BY source_path",
    )
    if _has_view(conn, "logs"):
        detail.archive = _dicts(conn, f"SELECT * FROM logs WHERE source_fp IN ({fps})")
    detail.problems = dict(
        conn.execute(
            f"SELECT kind, count(*) FROM gaps WHERE source_fp IN ({fps}) GROUP BY kind "
            f"UNION ALL SELECT 'parse_error', count(*) FROM parse_errors "
            f"WHERE source_fp IN ({fps}) HAVING count(*) > 0 ORDER BY 1"
        ).fetchall()
    )
    return detail


def _dicts(conn: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    cur = conn.execute(sql)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _facts(env: str | None) -> dict[str, Any]:
    if not env:
        return {}
    try:
        value = json.loads(env)
    except ValueError:
        return {"env": env}
    return value if isinstance(value, dict) else {"env": value}


def _has_view(conn: duckdb.DuckDBPyConnection, name: str) -> bool:
    found = conn.execute(
        f"SELECT count(*) FROM duckdb_views() WHERE view_name = {lit(name)} AND NOT internal"
    ).fetchall()
    return bool(found[0][0])
