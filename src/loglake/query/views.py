"""The SQL of the derived views: what a run, its latest params and its metric summary are.

Kept as plain SQL over the raw table views so DuckDB plans each query whole (filters on
``run_id``/``key`` reach the Parquet scan) and no Python runs per query.
"""

from __future__ import annotations

# A run's status is the most telling one among its sources: one failed rank fails the run.
STATUS_PRIORITY = ("failed", "killed", "running", "completed", "pruned", "unknown")

_STATUS_RANK = (
    "CASE status "
    + " ".join(f"WHEN '{s}' THEN {i}" for i, s in enumerate(STATUS_PRIORITY))
    + f" ELSE {len(STATUS_PRIORITY)} END"
)

# Facts that should agree across a run's sources; the first non-null one wins, taken in
# the order the status was chosen (the failing source's facts first).
_FIRST_FACTS = (
    "namespace",
    "experiment",
    "run",
    "parent_run_id",
)
_LATER_FACTS = (
    "framework",
    "command",
    "git_commit",
    "git_branch",
    "host",
    "user",
    "exit_code",
    "env",
)


def _first(col: str) -> str:
    # arg_min skips rows whose first argument is NULL: "first non-null by rank".
    return f'arg_min("{col}", _rank) AS "{col}"'


RUNS = f"""
CREATE OR REPLACE VIEW runs AS
WITH latest AS (
    SELECT * FROM runs_log
    QUALIFY row_number() OVER (
        PARTITION BY run_id, source_fp
        ORDER BY observed_at DESC NULLS LAST, "offset" DESC NULLS LAST
    ) = 1
),
ranked AS (
    SELECT *, row_number() OVER (
        PARTITION BY run_id
        ORDER BY {_STATUS_RANK}, observed_at DESC NULLS LAST, source_fp
    ) AS _rank
    FROM latest
)
SELECT
    run_id,
    {", ".join(_first(c) for c in _FIRST_FACTS)},
    coalesce(any_value(status) FILTER (WHERE _rank = 1), 'unknown') AS status,
    any_value(status_reason) FILTER (WHERE _rank = 1) AS status_reason,
    any_value(error) FILTER (WHERE _rank = 1) AS error,
    min(start_time) AS start_time,
    max(end_time) AS end_time,
    date_diff('microsecond', min(start_time), max(end_time)) / 1e6 AS duration_s,
    {", ".join(_first(c) for c in _LATER_FACTS)},
    list_sort(list_distinct(list(source_path))) AS sources,
    list_sort(list_distinct(list(rank))) AS ranks,
    CAST(sum(lines) AS BIGINT) AS lines,
    CAST(sum(bytes) AS BIGINT) AS bytes,
    max(observed_at) AS observed_at
FROM ranked
GROUP BY run_id
"""

PARAMS_LATEST = """
CREATE OR REPLACE VIEW params_latest AS
SELECT * FROM params
QUALIFY row_number() OVER (
    PARTITION BY run_id, key ORDER BY "offset" DESC NULLS LAST, source_fp DESC NULLS LAST
) = 1
"""

# Points are ordered by step; a key logged without steps by epoch, and one with neither by
# byte offset. The order is one BIGINT in three tiers (step < 2^61 <= epoch tier < 2^62 <=
# offset tier) because arg_min over a BIGINT costs a third of one over a struct.
# Points with equal order keys (a step logged twice) are broken arbitrarily.
_ORDER = (
    "CASE WHEN step IS NOT NULL THEN step "
    "WHEN epoch IS NOT NULL THEN 2305843009213693952 + CAST(round(epoch * 1e6) AS BIGINT) "
    'ELSE 4611686018427387904 + coalesce("offset", 0) END'
)

# NaN is counted and can be first or last, but is neither a minimum nor a maximum: one
# diverged step must not hide a run's best value (DuckDB orders NaN above every number).
METRIC_SUMMARY = f"""
CREATE OR REPLACE VIEW metric_summary AS
SELECT
    run_id,
    key,
    any_value(namespace) AS namespace,
    arg_min(value, _order) AS first,
    arg_max(value, _order) AS last,
    min(_number) AS min,
    max(_number) AS max,
    arg_min_null(_step, _number) AS step_of_min,
    arg_max_null(_step, _number) AS step_of_max,
    count(*) AS count,
    max(step) AS last_step
FROM (
    SELECT
        run_id, key, namespace, value, step,
        {_ORDER} AS _order,
        coalesce(CAST(step AS DOUBLE), epoch) AS _step,
        CASE WHEN isnan(value) THEN NULL ELSE value END AS _number
    FROM metrics
)
GROUP BY run_id, key
"""

# A run's current tags: the latest edit per key wins, and a null value (a removal) hides it.
RUN_TAGS = """
CREATE OR REPLACE VIEW run_tags AS
SELECT run_id, namespace, key, value, author, created_at FROM (
    SELECT * FROM tags
    QUALIFY row_number() OVER (PARTITION BY run_id, key ORDER BY created_at DESC) = 1
)
WHERE value IS NOT NULL
"""

DERIVED = (RUNS, PARAMS_LATEST, METRIC_SUMMARY, RUN_TAGS)
