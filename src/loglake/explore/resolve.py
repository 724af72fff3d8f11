"""Turn what a user types for a run into run ids, across every namespace.

A run can be named by its id, a unique id prefix (4+ characters), its name,
``experiment/run`` or ``namespace/experiment/run``. The whole lake is searched, so a run
is never "not found" because it lives in another namespace than the one in mind.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb

from loglake.errors import ExitCode, LoglakeError
from loglake.explore.sqlgen import lit


class RunNotFound(LoglakeError):
    exit_code = ExitCode.USAGE


# The most specific way a reference matched wins: an exact id over a name over a prefix.
_MATCH_RANK = """
CASE
    WHEN r.run_id = q.ref THEN 0
    WHEN concat_ws('/', r.namespace, r.experiment, r.run) = q.ref THEN 1
    WHEN concat_ws('/', r.experiment, r.run) = q.ref THEN 2
    WHEN r.run = q.ref THEN 3
    WHEN length(q.ref) >= 4 AND starts_with(r.run_id, q.ref) THEN 4
END
"""


def resolve_runs(conn: duckdb.DuckDBPyConnection, refs: Sequence[str]) -> list[str]:
    """The run id of each reference, in order; duplicates kept once."""
    if not refs:
        return []
    values = ", ".join(f"({i}, {lit(ref.strip())})" for i, ref in enumerate(refs))
    rows = conn.execute(
        f"""
        SELECT i, ref, run_id, namespace, experiment, run, rank FROM (
            SELECT q.i, q.ref, r.run_id, r.namespace, r.experiment, r.run,
                   {_MATCH_RANK} AS rank
            FROM (VALUES {values}) q(i, ref), runs r
        ) WHERE rank IS NOT NULL
        QUALIFY rank = min(rank) OVER (PARTITION BY i)
        ORDER BY i, run_id
        """
    ).fetchall()
    found: dict[int, list[tuple]] = {}
    for row in rows:
        found.setdefault(row[0], []).append(row)
    out: list[str] = []
    for i, ref in enumerate(refs):
        matches = found.get(i, [])
        if not matches:
            raise RunNotFound(
                f"no run matches {ref!r} in any namespace",
                fix="list runs with `loglake runs` and use a run id, a name or experiment/run",
            )
        if len(matches) > 1:
            shown = "; ".join(f"{m[2]} ({_path(m)})" for m in matches[:5])
            more = f" and {len(matches) - 5} more" if len(matches) > 5 else ""
            raise RunNotFound(
                f"{ref!r} matches {len(matches)} runs: {shown}{more}",
                fix="use the run id or namespace/experiment/run",
            )
        if matches[0][2] not in out:
            out.append(matches[0][2])
    return out


def resolve_run(conn: duckdb.DuckDBPyConnection, ref: str) -> str:
    return resolve_runs(conn, [ref])[0]


def _path(row: tuple) -> str:
    return "/".join(str(p) for p in row[3:6] if p is not None)
