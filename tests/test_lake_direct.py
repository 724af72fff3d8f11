"""Direct appends to local Delta tables: the same lake delta-rs would write, readable by
delta-rs and DuckDB, and delta-rs takes over whenever a direct commit would not be valid."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake
from hypothesis import given, settings
from hypothesis import strategies as st

from loglake.lake.direct import file_stats
from loglake.lake.tables import writer_properties
from loglake.lake.writer import LakeWriter, conform
from loglake.query.connect import connect

UTC = dt.UTC


def points(n: int, namespace: str = "ml-team", start: int = 0) -> pa.Table:
    return pa.table(
        {
            "run_id": [f"r{i % 3}" for i in range(n)],
            "namespace": [namespace] * n,
            "key": [("loss", "acc")[i % 2] for i in range(n)],
            "value": [float(start + i) for i in range(n)],
            "step": [start + n - i for i in range(n)],
            "source_fp": ["src"] * n,
            "offset": [start + i for i in range(n)],
        }
    )


def log_actions(table: Path) -> list[dict]:
    actions = []
    for commit in sorted((table / "_delta_log").glob("*.json")):
        actions += [json.loads(line) for line in commit.read_text().splitlines() if line]
    return actions


def test_direct_appends_land_sorted_rows_readable_by_delta_rs_and_duckdb(
    tmp_path: Path,
) -> None:
    lake = tmp_path / "lake"
    writer = LakeWriter(str(lake), tmp_path / "state", "w")
    writer.commit({"metrics": points(30), "runs": pa.table({"run_id": ["r0"]})}, {})
    writer.commit({"metrics": points(30, start=30)}, {})

    metrics = DeltaTable(str(lake / "metrics"))
    assert metrics.version() == 2
    assert metrics.transaction_version("loglake:w") == 2
    got = metrics.to_pyarrow_table()
    assert sorted(got.column("offset").to_pylist()) == list(range(60))
    assert set(got.column("namespace").to_pylist()) == {"ml-team"}
    commits = [a for a in log_actions(lake / "metrics") if "commitInfo" in a]
    assert [c["commitInfo"]["engineInfo"] for c in commits[1:]] == ["loglake", "loglake"]
    adds = [a["add"] for a in log_actions(lake / "metrics") if "add" in a]
    assert all(a["path"].startswith("namespace=ml-team/part-") for a in adds)
    assert all(a["partitionValues"] == {"namespace": "ml-team"} for a in adds)
    # Each file is sorted by run, key and step, as delta-rs appends were.
    first = DeltaTable(str(lake / "metrics"), version=1).to_pyarrow_table()
    keys = list(zip(*(first.column(c).to_pylist() for c in ("run_id", "key", "step")), strict=True))
    assert keys == sorted(keys)

    conn = connect(lake)
    assert conn.execute("SELECT count(*), min(namespace) FROM metrics").fetchone() == (
        60,
        "ml-team",
    )
    assert conn.execute("SELECT count(*) FROM runs_log").fetchone() == (1,)


def test_a_version_taken_by_another_writer_is_committed_by_delta_rs_once(
    tmp_path: Path,
) -> None:
    lake = tmp_path / "lake"
    writer = LakeWriter(str(lake), tmp_path / "state", "w")
    writer.commit({"metrics": points(10)}, {})
    # Another process appends behind the writer's back: its next version is taken.
    write_deltalake(str(lake / "metrics"), conform("metrics", points(5, start=100)), mode="append")
    writer.commit({"metrics": points(10, start=10)}, {})
    writer.commit({"metrics": points(10, start=20)}, {})

    metrics = DeltaTable(str(lake / "metrics"))
    assert metrics.version() == 4
    assert metrics.transaction_version("loglake:w") == 3
    offsets = sorted(metrics.to_pyarrow_table().column("offset").to_pylist())
    assert offsets == list(range(30)) + list(range(100, 105))


def test_names_that_need_escaping_and_upgraded_tables_go_through_delta_rs(
    tmp_path: Path,
) -> None:
    lake = tmp_path / "lake"
    writer = LakeWriter(str(lake), tmp_path / "state", "w")
    writer.commit({"metrics": points(4, namespace="team a/b")}, {})
    writer.commit({"metrics": points(4, start=4)}, {})
    # A table needing writer features this module does not write (change data feed).
    DeltaTable(str(lake / "params")).alter.set_table_properties(
        {"delta.enableChangeDataFeed": "true"}
    )
    writer = LakeWriter(str(lake), tmp_path / "state", "w")
    writer.commit({"params": pa.table({"run_id": ["r0"], "key": ["lr"], "value": ["0.1"]})}, {})

    commits = [a["commitInfo"] for a in log_actions(lake / "metrics") if "commitInfo" in a]
    assert [c.get("engineInfo", "").split(":")[0] for c in commits[1:]] == ["delta-rs", "loglake"]
    params_commits = [a["commitInfo"] for a in log_actions(lake / "params") if "commitInfo" in a]
    assert params_commits[-1]["engineInfo"].startswith("delta-rs")
    conn = connect(lake)
    rows = conn.execute("SELECT namespace, count(*) FROM metrics GROUP BY 1 ORDER BY 1").fetchall()
    assert rows == [("ml-team", 4), ("team a/b", 4)]
    assert conn.execute("SELECT key FROM params").fetchall() == [("lr",)]


def test_delta_checkpoints_are_written_at_the_tables_interval(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    LakeWriter(str(lake), tmp_path / "state", "w")
    DeltaTable(str(lake / "metrics")).alter.set_table_properties(
        {"delta.checkpointInterval": "3"}
    )  # version 1
    writer = LakeWriter(str(lake), tmp_path / "state", "w")
    for i in range(5):  # versions 2..6
        writer.commit({"metrics": points(3, start=3 * i)}, {})

    log = lake / "metrics" / "_delta_log"
    assert sorted(p.name for p in log.glob("*.checkpoint.parquet")) == [
        "00000000000000000003.checkpoint.parquet",
        "00000000000000000006.checkpoint.parquet",
    ]
    metrics = DeltaTable(str(lake / "metrics"))
    assert metrics.transaction_version("loglake:w") == 5
    assert metrics.to_pyarrow_table().num_rows == 15


def test_file_stats_match_delta_rs_on_plain_values(tmp_path: Path) -> None:
    rows = conform("metrics", points(50)).drop_columns(["namespace"])
    rows = rows.set_column(
        rows.schema.get_field_index("ts"),
        "ts",
        pa.array([dt.datetime(2026, 1, 1, 0, 0, i % 60, tzinfo=UTC) for i in range(50)]),
    )
    write_deltalake(str(tmp_path / "t"), rows, writer_properties=writer_properties("metrics"))
    (add,) = [a["add"] for a in log_actions(tmp_path / "t") if "add" in a]
    assert json.loads(stats_of(rows)) == json.loads(add["stats"])


def stats_of(rows: pa.Table, **options: object) -> str:
    """``file_stats`` of ``rows`` written as a Parquet file (in memory)."""
    sink = pa.BufferOutputStream()
    pq.write_table(rows, sink, **options)
    return file_stats(rows, pq.read_metadata(pa.BufferReader(sink.getvalue())))


timestamps = st.datetimes(
    min_value=dt.datetime(1970, 1, 1), max_value=dt.datetime(2100, 1, 1), timezones=st.just(UTC)
)


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.none() | st.floats(allow_nan=True, allow_infinity=True), min_size=1),
    texts=st.lists(st.none() | st.text(max_size=80), min_size=1),
    times=st.lists(st.none() | timestamps, min_size=1),
)
def test_file_stats_bound_every_value(
    values: list[float | None], texts: list[str | None], times: list[dt.datetime | None]
) -> None:
    """Readers skip a file by its stats: whatever they say must hold for every row."""
    n = min(len(values), len(texts), len(times))
    rows = pa.table(
        {
            "value": pa.array(values[:n], pa.float64()),
            "key": pa.array(texts[:n], pa.string()),
            "ts": pa.array(times[:n], pa.timestamp("us", tz="UTC")),
        }
    )
    stats = json.loads(stats_of(rows, row_group_size=max(1, n // 3)))
    assert stats["numRecords"] == n
    for name in rows.column_names:
        column = rows.column(name)
        assert stats["nullCount"][name] == column.null_count
        present = [v for v in column.to_pylist() if v is not None]
        if name == "value":
            present = [v for v in present if not math.isnan(v)]
        if name == "ts":
            present = [v.isoformat(timespec="microseconds") for v in present]
            low = stats["minValues"].get(name)
            high = stats["maxValues"].get(name)
            low = low and dt.datetime.fromisoformat(low).isoformat(timespec="microseconds")
            high = high and dt.datetime.fromisoformat(high).isoformat(timespec="microseconds")
        else:
            low = stats["minValues"].get(name)
            high = stats["maxValues"].get(name)
        if low is not None:
            assert all(low <= v for v in present)
        if high is not None:
            assert all(v <= high for v in present)
        if name == "key" and present and max(map(len, present)) <= 64:
            assert (low, high) == (min(present), max(present))
    json.dumps(stats, allow_nan=False)  # strict JSON: no NaN or Infinity


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_file_stats_round_timestamps_outward_to_milliseconds(unit: str) -> None:
    values = pa.array([1_700_000_000_123_456_789, 1_700_000_000_987_654_321], pa.int64())
    per_ns = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}[unit]
    ts = pc.divide(values, per_ns).cast(pa.timestamp(unit, tz="UTC"))
    stats = json.loads(stats_of(pa.table({"ts": ts})))
    low, high = stats["minValues"]["ts"], stats["maxValues"]["ts"]
    expect = {
        "s": ("2023-11-14T22:13:20Z", "2023-11-14T22:13:20Z"),
        "ms": ("2023-11-14T22:13:20.123Z", "2023-11-14T22:13:20.987Z"),
        "us": ("2023-11-14T22:13:20.123Z", "2023-11-14T22:13:20.988Z"),
        "ns": ("2023-11-14T22:13:20.123Z", "2023-11-14T22:13:20.988Z"),
    }
    assert (low, high) == expect[unit]


def test_spooled_files_moved_before_a_crash_are_committed_once_on_recovery(
    tmp_path: Path,
) -> None:
    lake, state = tmp_path / "lake", tmp_path / "state"
    writer = LakeWriter(str(lake), state, "w")
    entry, spooled = writer._spool(1, {"metrics": conform("metrics", points(6))}, {})
    # The crash came after the files were moved into the table, before the commit.
    for file in spooled["metrics"]:
        target = lake / "metrics" / file["add"]["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        (entry / file["file"]).rename(target)

    assert LakeWriter(str(lake), state, "w").recover() == 1
    assert LakeWriter(str(lake), state, "w").recover() == 0
    metrics = DeltaTable(str(lake / "metrics"))
    assert metrics.transaction_version("loglake:w") == 1
    assert sorted(metrics.to_pyarrow_table().column("offset").to_pylist()) == list(range(6))
    assert list((state / "spool").iterdir()) == []


@pytest.mark.skipif(
    not Path("/dev/shm").is_dir() or Path("/dev/shm").stat().st_dev == Path.cwd().stat().st_dev,
    reason="needs a second filesystem",
)
def test_a_state_dir_on_another_filesystem_copies_the_spooled_files(tmp_path: Path) -> None:
    import shutil
    import tempfile

    state = Path(tempfile.mkdtemp(dir="/dev/shm"))
    try:
        lake = tmp_path / "lake"
        writer = LakeWriter(str(lake), state, "w")
        writer.commit({"metrics": points(6)}, {"src": {"offset": 6}})
        writer.commit({"metrics": points(6, start=6)}, {"src": {"offset": 12}})
        offsets = DeltaTable(str(lake / "metrics")).to_pyarrow_table().column("offset")
        assert sorted(offsets.to_pylist()) == list(range(12))
        assert list((state / "spool").iterdir()) == []
        assert not list((lake / "metrics").rglob("*.tmp"))
    finally:
        shutil.rmtree(state)
