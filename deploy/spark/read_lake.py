"""Read a loglake lake with Apache Spark: no delta-spark package, no Maven download.

Each lake table is a Delta table. Its current version is a list of live Parquet files, which
the ``deltalake`` package reads from the transaction log without a JVM; Spark then reads
exactly those files, with the table's own schema (a Delta schema is Spark's StructType JSON)
and its Hive partition directories. Files that a compaction replaced or a retention run
removed are not in the list, so Spark sees each row once, as DuckDB does.

    spark-submit deploy/spark/read_lake.py /data/lake               # a local or NFS lake
    spark-submit deploy/spark/read_lake.py s3://ml-logs/lake        # s3a:// (hadoop-aws)
    python deploy/spark/read_lake.py /data/lake --query "SELECT …"  # pyspark, local mode

``register_lake(spark, lake)`` makes one temporary view per table (``runs_log`` for the raw
runs table) plus ``runs``, ``params_latest`` and ``metric_summary``, the same derived views
``loglake sql`` has, written in Spark SQL. Requirements: ``pip install pyspark deltalake``.
Where Spark has delta-spark (Databricks, EMR, a cluster with the Delta jars), read the tables
natively instead: ``spark.read.format("delta").load(f"{lake}/metrics")``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

TABLES = (
    "runs",
    "params",
    "metrics",
    "packages",
    "datasets",
    "artifacts",
    "parse_errors",
    "gaps",
    "tags",
    "notes",
    "files",
)

# A run's status is the most telling one among its sources (loglake/query/views.py).
STATUS_PRIORITY = ("failed", "killed", "running", "completed", "pruned", "unknown")
_STATUS_RANK = (
    "CASE status "
    + " ".join(f"WHEN '{s}' THEN {i}" for i, s in enumerate(STATUS_PRIORITY))
    + f" ELSE {len(STATUS_PRIORITY)} END"
)
_FIRST = ("namespace", "experiment", "run", "parent_run_id")
_LATER = ("framework", "command", "git_commit", "git_branch", "host", "user", "exit_code", "env")


def _first_non_null(col: str) -> str:
    return f"min_by(`{col}`, IF(`{col}` IS NULL, NULL, _rank)) AS `{col}`"


RUNS = f"""
CREATE OR REPLACE TEMPORARY VIEW runs AS
WITH latest AS (
    SELECT * FROM (
        SELECT *, row_number() OVER (
            PARTITION BY run_id, source_fp
            ORDER BY observed_at DESC NULLS LAST, `offset` DESC NULLS LAST
        ) AS _n
        FROM runs_log
    ) WHERE _n = 1
),
ranked AS (
    SELECT *, row_number() OVER (
        PARTITION BY run_id ORDER BY {_STATUS_RANK}, observed_at DESC NULLS LAST, source_fp
    ) AS _rank
    FROM latest
)
SELECT
    run_id,
    {", ".join(_first_non_null(c) for c in _FIRST)},
    coalesce(max(IF(_rank = 1, status, NULL)), 'unknown') AS status,
    max(IF(_rank = 1, status_reason, NULL)) AS status_reason,
    max(IF(_rank = 1, error, NULL)) AS error,
    min(start_time) AS start_time,
    max(end_time) AS end_time,
    (unix_micros(max(end_time)) - unix_micros(min(start_time))) / 1e6 AS duration_s,
    {", ".join(_first_non_null(c) for c in _LATER)},
    array_sort(collect_set(source_path)) AS sources,
    array_sort(collect_set(`rank`)) AS ranks,
    CAST(sum(lines) AS BIGINT) AS lines,
    CAST(sum(bytes) AS BIGINT) AS bytes,
    max(observed_at) AS observed_at
FROM ranked
GROUP BY run_id
"""

PARAMS_LATEST = """
CREATE OR REPLACE TEMPORARY VIEW params_latest AS
SELECT {columns} FROM (
    SELECT *, row_number() OVER (
        PARTITION BY run_id, key ORDER BY `offset` DESC NULLS LAST, source_fp DESC NULLS LAST
    ) AS _n
    FROM params
) WHERE _n = 1
"""

# NaN is counted but is neither a minimum nor a maximum, as in loglake's view.
METRIC_SUMMARY = """
CREATE OR REPLACE TEMPORARY VIEW metric_summary AS
SELECT
    run_id,
    key,
    first(namespace) AS namespace,
    min(IF(isnan(value), NULL, value)) AS min,
    max(IF(isnan(value), NULL, value)) AS max,
    count(*) AS count,
    max(step) AS last_step
FROM metrics
GROUP BY run_id, key
"""

# Questions a team asks of the whole history; the same SQL runs in DuckDB (`loglake sql`).
QUERIES = {
    "runs_by_status": """
        SELECT status, count(*) AS runs
        FROM runs WHERE parent_run_id IS NULL
        GROUP BY status ORDER BY status
    """,
    "best_val_accuracy_per_experiment": """
        SELECT r.experiment, max(s.max) AS best, max_by(r.run, s.max) AS best_run,
               count(*) AS runs
        FROM metric_summary s JOIN runs r ON r.run_id = s.run_id
        WHERE s.key = 'val_accuracy' AND s.max IS NOT NULL
        GROUP BY r.experiment ORDER BY r.experiment
    """,
    "metric_counts": """
        SELECT namespace, key, count(*) AS points, count(DISTINCT run_id) AS runs
        FROM metrics GROUP BY namespace, key ORDER BY namespace, key
    """,
    "failures_by_reason": """
        SELECT coalesce(status_reason, '') AS reason, count(*) AS runs
        FROM runs WHERE status = 'failed' GROUP BY 1 ORDER BY 1
    """,
}


def live_files(lake: str, table: str, storage_options: dict[str, str] | None = None) -> list[str]:
    """The Parquet files of the table's current version; ``[]`` if the table does not exist."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        dt = DeltaTable(f"{lake.rstrip('/')}/{table}", storage_options=storage_options)
    except TableNotFoundError:
        return []
    return dt.file_uris()


def table_schema(lake: str, table: str, storage_options: dict[str, str] | None = None) -> Any:
    """The table's schema as a Spark StructType (Delta stores Spark's own JSON form)."""
    from deltalake import DeltaTable
    from pyspark.sql.types import StructType

    dt = DeltaTable(f"{lake.rstrip('/')}/{table}", storage_options=storage_options)
    return StructType.fromJson(json.loads(dt.schema().to_json()))


def _spark_uri(uri: str) -> str:
    """Hadoop's S3 connector is s3a://; local files need no scheme."""
    if uri.startswith("s3://"):
        return "s3a://" + uri[len("s3://") :]
    return uri


def load_table(
    spark: Any, lake: str, table: str, storage_options: dict[str, str] | None = None
) -> Any:
    """One lake table as a DataFrame over exactly its live files."""
    files = live_files(lake, table, storage_options)
    if not files:  # a table with no rows yet (or none at all): an empty frame keeps views valid
        from deltalake.exceptions import TableNotFoundError
        from pyspark.sql.types import StructType

        try:
            schema = table_schema(lake, table, storage_options)
        except TableNotFoundError:
            schema = StructType([])
        return spark.createDataFrame([], schema)
    schema = table_schema(lake, table, storage_options)
    return (
        spark.read.schema(schema)
        # Partition values (e.g. namespace=…) live in directory names under the table root.
        .option("basePath", _spark_uri(f"{lake.rstrip('/')}/{table}"))
        .parquet(*[_spark_uri(f) for f in files])
    )


def register_lake(
    spark: Any, lake: str, storage_options: dict[str, str] | None = None
) -> list[str]:
    """Temporary views for every table and the derived views; returns the view names."""
    names = []
    for table in TABLES:
        view = "runs_log" if table == "runs" else table
        load_table(spark, lake, table, storage_options).createOrReplaceTempView(view)
        names.append(view)
    columns = ", ".join(f"`{c}`" for c in spark.table("params").columns)
    for sql in (RUNS, PARAMS_LATEST.format(columns=columns), METRIC_SUMMARY):
        spark.sql(sql)
    return [*names, "runs", "params_latest", "metric_summary"]


def local_session(app: str = "loglake", memory: str = "512m") -> Any:
    """A small local-mode session: two cores, little memory, no UI, UTC.

    Tuned for quick answers over a lake of modest size on a laptop or CI machine: the JIT
    stops at its fast tier and queries are interpreted rather than compiled, which costs
    more than it saves on a few million rows. Drop both settings for big jobs.
    """
    from pyspark.sql import SparkSession

    return (
        SparkSession.builder.appName(app)
        .master("local[2]")
        .config("spark.driver.memory", memory)
        .config("spark.driver.extraJavaOptions", "-XX:+UseSerialGC -XX:TieredStopAtLevel=1")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.codegen.wholeStage", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.ansi.enabled", "false")
        .getOrCreate()
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Query a loglake lake with Spark SQL.")
    parser.add_argument("lake", help="lake folder or s3:// URL")
    parser.add_argument("--query", help="Spark SQL over the lake's views (default: examples)")
    parser.add_argument(
        "--storage-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="for deltalake's reading of the transaction log, e.g. AWS_REGION=eu-west-1",
    )
    args = parser.parse_args(argv)
    options = dict(o.split("=", 1) for o in args.storage_option) or None
    from pyspark.sql import SparkSession

    # Inside a notebook or a test, use its session and leave it running.
    existing = SparkSession.getActiveSession()
    spark = existing or local_session()
    try:
        register_lake(spark, args.lake, options)
        queries = {"query": args.query} if args.query else QUERIES
        for name, sql in queries.items():
            print(f"-- {name}")
            spark.sql(sql).show(50, truncate=False)
    finally:
        if existing is None:
            spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
