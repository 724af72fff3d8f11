"""What keeps explore fast: sorted metric files with small row groups, cached file lists,
cached view SQL and pinned views loaded from disk — each checked against the slow path."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from loglake.config import Config
from loglake.explore.history import metric_history
from loglake.explore.session import KEEP_PINNED, open_lake
from loglake.explore.synthetic import make_sweep, sweep_tables, write_sweep
from loglake.lake.tables import (
    ROW_GROUP_ROWS,
    SORT_ORDER,
    cache_dir,
    optimize,
    table_files,
    vacuum,
)
from loglake.lake.writer import LakeWriter
from loglake.query.connect import connect

METRIC_ORDER = SORT_ORDER["metrics"]


def _deltalake_files(lake: Path, name: str) -> list[str]:
    return sorted(DeltaTable(str(lake / name)).file_uris())


def _sort_key(row: dict) -> tuple:
    return tuple(row[c] for c in METRIC_ORDER)


def _segments(path: str) -> int:
    """How many ascending runs (in METRIC_ORDER) the rows of one file form."""
    rows = pq.read_table(path, columns=METRIC_ORDER).to_pylist()
    return 1 + sum(_sort_key(a) > _sort_key(b) for a, b in itertools.pairwise(rows))


def _row_groups(path: str) -> list[int]:
    md = pq.ParquetFile(path).metadata
    return [md.row_group(i).num_rows for i in range(md.num_row_groups)]


def _has_run_id_bloom_filters(path: str) -> bool:
    rows = duckdb.sql(
        "SELECT bloom_filter_offset FROM parquet_metadata(?) WHERE path_in_schema = 'run_id'",
        params=[path],
    ).fetchall()
    return bool(rows) and all(offset is not None for (offset,) in rows)


@pytest.fixture(scope="module")
def big_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two flushes of 60 runs × 5 keys × 60 steps (18,000 points each, > one row group),
    the runs of both flushes interleaved in id order."""
    lake = tmp_path_factory.mktemp("speed") / "lake"
    runs = make_sweep(120, n_steps=60, seed=5, namespaces=("one",))
    write_sweep(lake, runs, per_commit=60)
    return lake


def test_commits_write_metric_files_sorted_by_run_in_small_row_groups(big_lake: Path) -> None:
    files = table_files(big_lake, "metrics")
    assert len(files) == 2
    for path in files:
        assert _segments(path) == 1
        groups = _row_groups(path)
        assert len(groups) > 1 and max(groups) <= ROW_GROUP_ROWS
        assert _has_run_id_bloom_filters(path)


def test_optimize_keeps_runs_together_in_small_row_groups(big_lake: Path, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    shutil.copytree(big_lake, lake)
    before = connect(lake).sql("SELECT * FROM metrics ORDER BY ALL").fetchall()
    optimize(lake, "metrics")
    [path] = table_files(lake, "metrics")
    # Compaction copies its inputs a batch at a time, interleaving them, but each batch stays
    # one sorted stretch: a run's points stay together, not scattered over the file.
    rows = pq.ParquetFile(path).metadata.num_rows
    assert 2 <= _segments(path) <= rows // 1024
    assert max(_row_groups(path)) <= ROW_GROUP_ROWS
    assert _has_run_id_bloom_filters(path)
    assert connect(lake).sql("SELECT * FROM metrics ORDER BY ALL").fetchall() == before


def test_history_of_a_few_runs_equals_a_full_scan(big_lake: Path) -> None:
    conn = connect(big_lake)
    ids = [r for (r,) in conn.sql("SELECT DISTINCT run_id FROM metrics ORDER BY 1").fetchall()]
    some = ids[::17]
    got = metric_history(conn, some, ["val_loss", "latency_ms"])
    want = conn.sql(
        "SELECT run_id, key, step, value FROM read_parquet(?) "
        "WHERE list_contains(?, run_id) AND key IN ('val_loss', 'latency_ms') "
        "ORDER BY run_id, key, step",
        params=[table_files(big_lake, "metrics"), some],
    ).fetchall()
    assert len({r[0] for r in want}) == len(some) > 5
    assert list(zip(*(got.column(c).to_pylist() for c in ("run_id", "key", "step", "value")))) == [
        tuple(r) for r in want
    ]


def test_file_list_cache_follows_commits_compaction_and_odd_partition_values(
    tmp_path: Path,
) -> None:
    lake = tmp_path / "lake"
    writer = LakeWriter(str(lake), tmp_path / "state", "w")
    odd = ["a b", "x=y%z/w", "é"]

    def flush(i: int) -> dict[str, pa.Table]:
        return {
            "metrics": pa.table(
                {
                    "run_id": [f"r{i}"] * 3,
                    "namespace": odd,
                    "key": ["loss"] * 3,
                    "value": [float(i)] * 3,
                    "step": [i] * 3,
                }
            )
        }

    writer.commit(flush(1), {})
    cache = cache_dir(lake, "files") / "metrics.json"
    assert table_files(lake, "metrics") == _deltalake_files(lake, "metrics")
    assert json.loads(cache.read_text())["version"] == 1
    for i in range(2, 5):
        writer.commit(flush(i), {})
        # Moved on by replaying the new commit, not by a fresh snapshot.
        assert table_files(lake, "metrics") == _deltalake_files(lake, "metrics")
        assert json.loads(cache.read_text())["version"] == i
    optimize(lake, "metrics")
    assert table_files(lake, "metrics") == _deltalake_files(lake, "metrics")
    assert len(table_files(lake, "metrics")) == 3
    vacuum(lake, "metrics", retention_hours=0)
    assert connect(lake).sql("SELECT count(*) FROM metrics").fetchall() == [(12,)]
    # A table that was never created has no files, and needs no cache.
    assert table_files(lake, "no_such_table") == []


def test_file_list_cache_is_not_fooled_by_a_table_made_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The cache lives outside the lake here, so it outlives the lake's deletion.
    monkeypatch.setenv("LOGLAKE_CACHE_DIR", str(tmp_path / "cache"))
    lake = tmp_path / "lake"
    runs = make_sweep(4, n_steps=3)
    write_sweep(lake, runs[:2], per_commit=1)
    assert len(table_files(lake, "metrics")) == 2
    shutil.rmtree(lake)
    write_sweep(lake, runs[2:], per_commit=2)
    assert table_files(lake, "metrics") == _deltalake_files(lake, "metrics")
    conn = connect(lake)
    got = {r for (r,) in conn.sql("SELECT DISTINCT run_id FROM metrics").fetchall()}
    assert got == {r.run_id for r in runs[2:]}


def test_a_new_delta_version_reaches_views_and_pinned_views(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    runs = make_sweep(6, n_steps=4)
    write_sweep(lake, runs[:4], per_commit=4)
    cfg = Config(lake=str(lake))
    pinned = cache_dir(lake, "pinned")

    first = open_lake(cfg)
    assert first.sql("SELECT count(*) FROM runs").fetchall() == [(4,)]
    files = sorted(pinned.glob("*.parquet"))
    names = [p.name.split("-")[0] for p in files]
    assert names == ["_pinned_metric_summary", "_pinned_params_latest", "_pinned_runs"]
    again = open_lake(cfg)  # loads the pinned rows: the same files, nothing new written
    assert sorted(pinned.glob("*.parquet")) == files
    for view in ("runs", "metric_summary", "params_latest"):
        sql = f"SELECT * FROM {view} ORDER BY ALL"
        assert again.sql(sql).fetchall() == open_lake(cfg, pin=False).sql(sql).fetchall()

    LakeWriter(str(lake), lake / "_loglake", "synthetic").commit(sweep_tables(runs[4:]), {})
    after = open_lake(cfg)
    assert after.sql("SELECT count(*) FROM runs").fetchall() == [(6,)]
    assert after.sql("SELECT count(DISTINCT run_id) FROM metric_summary").fetchall() == [(6,)]
    assert len(list(pinned.glob("*.parquet"))) == 6  # the old ones stay for open sessions
    assert first.sql("SELECT count(*) FROM runs").fetchall() == [(4,)]


def test_pinned_views_work_without_a_writable_cache(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    write_sweep(lake, make_sweep(3, n_steps=2), per_commit=3)
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where a folder should be")
    conn = open_lake(Config(lake=str(lake)), pin_cache=blocked / "pinned")
    assert conn.sql("SELECT count(*) FROM runs").fetchall() == [(3,)]


def test_a_command_on_a_local_lake_loads_neither_deltalake_nor_pandas(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    write_sweep(lake, make_sweep(5, n_steps=3), per_commit=5)
    code = (
        "import sys\n"
        "from loglake.cli import main\n"
        f"rc = main(['runs', '--lake', {str(lake)!r}])\n"
        "heavy = [m for m in ('deltalake', 'pandas', 'fsspec') if m in sys.modules]\n"
        "print('LOADED', rc, heavy)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGLAKE_")}
    outputs = []
    for _ in range(2):  # the first run caches file lists; the second only reads them
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
        )
        outputs.append(proc.stdout.strip().splitlines()[-1])
    assert outputs[1] == "LOADED 0 []", outputs
    assert "trial-00004" in proc.stdout


def test_pinned_files_of_a_busy_lake_are_bounded(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    write_sweep(lake, make_sweep(3, n_steps=2), per_commit=3)
    pinned = tmp_path / "pinned"
    pinned.mkdir()
    now = time.time()
    # 20 files of earlier versions last opened two days ago, one eight days ago.
    ages = [2 * 86400 + i for i in range(20)] + [8 * 86400]
    for i, age in enumerate(ages):
        old = pinned / f"_pinned_runs-{i:032d}.parquet"
        old.write_bytes(b"")
        os.utime(old, (now - age, now - age))
    open_lake(Config(lake=str(lake)), pin_cache=pinned)
    left = sorted(p.name for p in pinned.glob("_pinned_runs-*.parquet"))
    # The new file and the 15 most recently opened old ones stay; a week unused always goes.
    assert len(left) == KEEP_PINNED
    assert [f"_pinned_runs-{i:032d}.parquet" for i in range(15)] == [
        n for n in left if n.startswith("_pinned_runs-000")
    ]
