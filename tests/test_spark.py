"""Apache Spark reads the lake and gets DuckDB's answers (deploy/spark/read_lake.py).

pyspark in local mode on the machine's Java; no delta-spark (no network for Maven): Spark
reads each table's live Parquet files as deltalake lists them. The lake holds real logs
(the corpus, indexed) and a synthetic sweep, and is compacted once midway, so the test also
shows that reading the live file list, not every file on disk, is what keeps rows unique.
"""

from __future__ import annotations

import importlib.util
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from loglake.explore.synthetic import make_sweep, write_sweep
from loglake.lake.tables import optimize, table_files
from loglake.query.connect import connect

from .conftest import CORPUS

pytestmark = [
    pytest.mark.slow,
    # pyspark's version check of an installed pandas (unused here) warns about pandas 3.
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning"),
]

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "deploy" / "spark" / "read_lake.py"

pyspark = pytest.importorskip("pyspark", reason="pip install pyspark (a test dependency)")
if shutil.which("java") is None:  # pragma: no cover - CI machines have Java 17
    pytest.skip("Spark needs Java (java -version)", allow_module_level=True)


def _module() -> Any:
    spec = importlib.util.spec_from_file_location("loglake_spark_example", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


read_lake = _module()


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("spark")
    logs = root / "logs"
    shutil.copytree(CORPUS, logs, ignore=shutil.ignore_patterns("*.py", "*.json", "*.md"))
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "loglake.cli",
            "index",
            "-q",
            "--finished",
            "--lake",
            str(root / "lake"),
            str(logs),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    write_sweep(root / "lake", make_sweep(300, n_steps=30, nan_every=7), per_commit=60)
    return root / "lake"


@pytest.fixture(scope="module")
def spark(lake: Path) -> Any:
    session = read_lake.local_session("loglake-test")
    read_lake.register_lake(session, str(lake))
    yield session
    session.stop()


def duck(lake: Path, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in connect(lake).execute(sql).fetchall()]


def sparkrows(spark: Any, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in spark.sql(sql).collect()]


def same(a: list[tuple[Any, ...]], b: list[tuple[Any, ...]]) -> bool:
    if len(a) != len(b):
        return False
    for ra, rb in zip(a, b, strict=True):
        for x, y in zip(ra, rb, strict=True):
            if isinstance(x, float) or isinstance(y, float):
                if not (math.isclose(x, y, rel_tol=1e-9) or (math.isnan(x) and math.isnan(y))):
                    return False
            elif x != y:
                return False
    return True


@pytest.mark.parametrize("name", list(read_lake.QUERIES))
def test_spark_gives_duckdbs_answers(spark: Any, lake: Path, name: str) -> None:
    sql = read_lake.QUERIES[name]
    want = duck(lake, sql)
    assert want, f"{name}: the lake should answer something"
    got = sparkrows(spark, sql)
    assert same(got, want), (name, got[:5], want[:5])


def test_the_runs_view_matches_row_for_row(spark: Any, lake: Path) -> None:
    cols = (
        "run_id, namespace, experiment, run, parent_run_id, status, status_reason, error, "
        "framework, host, lines"
    )
    sql = f"SELECT {cols} FROM runs ORDER BY run_id"
    want = duck(lake, sql)
    assert len(want) > 300
    assert sparkrows(spark, sql) == want


def test_after_compaction_spark_still_sees_each_row_once(spark: Any, lake: Path) -> None:
    sql = "SELECT count(*), sum(CASE WHEN isnan(value) THEN 0 ELSE value END) FROM metrics"
    before = duck(lake, sql)
    files = len(table_files(lake, "metrics"))
    optimize(lake, "metrics")
    assert len(table_files(lake, "metrics")) < files
    # The replaced files are still on disk (readers may hold them), but not live.
    on_disk = len(list((lake / "metrics").rglob("*.parquet")))
    assert on_disk > len(table_files(lake, "metrics"))
    assert same(duck(lake, sql), before)
    read_lake.register_lake(spark, str(lake))  # the new version's file list
    assert same(sparkrows(spark, sql), before)


def test_the_example_script_runs_as_a_program(
    spark: Any, lake: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    query = "SELECT count(*) AS n FROM runs WHERE parent_run_id IS NULL"
    assert read_lake.main([str(lake), "--query", query]) == 0
    (n,) = duck(lake, query)[0]
    cells = [line.replace(" ", "") for line in capsys.readouterr().out.splitlines()]
    assert "|n|" in cells and f"|{n}|" in cells, cells
    assert spark.sql("SELECT 1").collect(), "the caller's session is left running"
