"""Derived metrics: keys defined after the fact in config, queryable like logged ones.

``[derived] gap = "train_accuracy - val_accuracy"`` makes a metric ``gap`` at every step
where the run logged both keys. Points are matched on ``step`` (or on ``epoch`` for keys
logged per epoch only, or as one final point for keys logged with neither); a point where
any key is missing has no value and is left out.

The logged ``metrics`` view becomes ``metrics_logged`` and ``metrics`` the union of it
with ``metrics_derived``, so ``metric_summary``, filters, plots and SQL all see derived
keys. ``refresh`` rebuilds the raw view; call ``install_derived`` again after it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import duckdb

from loglake.errors import ConfigError
from loglake.explore.sqlgen import ident, lit

_MARK = "loglake: logged and derived metrics"
_TOKEN = re.compile(r"""'(?:[^']|'')*'|"((?:[^"]|"")*)"|([A-Za-z_]\w*)\s*(\()?|::|\S""")
_SQL_WORDS = {
    "and",
    "or",
    "not",
    "is",
    "null",
    "case",
    "when",
    "then",
    "else",
    "end",
    "in",
    "between",
    "like",
    "ilike",
    "true",
    "false",
    "as",
    "nan",
    "inf",
    "infinity",
}
_TYPE_AFTER = {"as", "::"}


def referenced_keys(expression: str) -> list[str]:
    """Metric keys an SQL expression names (identifiers that are not functions or words)."""
    keys: list[str] = []
    previous = ""
    for m in _TOKEN.finditer(expression):
        quoted, word, call = m.group(1), m.group(2), m.group(3)
        if quoted is not None:
            key = quoted.replace('""', '"')
        elif word and not call and word.lower() not in _SQL_WORDS and previous not in _TYPE_AFTER:
            key = word
        else:
            key = None
        if key is not None and key not in keys:
            keys.append(key)
        previous = (word or m.group()).lower()
    return keys


def derived_select(name: str, expression: str, source: str = "metrics_logged") -> str:
    """The points of one derived metric, in the ``metrics`` columns."""
    keys = referenced_keys(expression)
    if not keys:
        raise ConfigError(
            f"derived.{name}: {expression!r} names no metric key",
            fix='write an expression over metric keys, e.g. "train_accuracy - val_accuracy"',
        )
    pivots = ", ".join(
        f'arg_max(value, coalesce("offset", 0)) FILTER (WHERE key = {lit(k)}) AS {ident(k)}'
        for k in keys
    )
    return f"""
SELECT run_id, namespace, {lit(name)} AS key, CAST(value AS DOUBLE) AS value, step, epoch, ts,
       CAST(NULL AS VARCHAR) AS source_fp, CAST(NULL AS BIGINT) AS "offset",
       'derived' AS parser
FROM (
    SELECT run_id, namespace, step, epoch, ts, ({expression}) AS value FROM (
        SELECT run_id, any_value(namespace) AS namespace, step, max(epoch) AS epoch,
               max(ts) AS ts, {pivots}
        FROM {source}
        WHERE key IN ({", ".join(lit(k) for k in keys)})
        GROUP BY run_id, step, CASE WHEN step IS NULL THEN epoch END
    )
)
WHERE value IS NOT NULL"""


def install_derived(conn: duckdb.DuckDBPyConnection, derived: Mapping[str, str]) -> None:
    """Make ``metrics`` include the derived keys; a bad expression is a config error."""
    if not derived:
        return
    rows = conn.execute(
        "SELECT comment FROM duckdb_views() WHERE view_name = 'metrics' AND NOT internal"
    ).fetchall()
    row = rows[0] if rows else None
    if row is None:
        raise ConfigError("no metrics view to derive from", fix="open the lake with connect()")
    if row[0] != _MARK:
        conn.execute("DROP VIEW IF EXISTS metrics_logged")
        conn.execute("ALTER VIEW metrics RENAME TO metrics_logged")
    selects = []
    for name, expression in derived.items():
        sql = derived_select(name, expression)
        try:
            conn.execute(f"SELECT * FROM ({sql}) LIMIT 0").fetchall()
        except duckdb.Error as e:
            raise ConfigError(
                f"derived.{name}: {str(e).splitlines()[0]}",
                fix="write an SQL expression over metric keys; quote keys that are not "
                'identifiers ("eval/loss")',
            ) from None
        selects.append(sql)
    conn.execute(f"CREATE OR REPLACE VIEW metrics_derived AS {' UNION ALL '.join(selects)}")
    conn.execute(
        "CREATE OR REPLACE VIEW metrics AS SELECT * FROM metrics_logged "
        "UNION ALL SELECT * FROM metrics_derived"
    )
    conn.execute(f"COMMENT ON VIEW metrics IS {lit(_MARK)}")
