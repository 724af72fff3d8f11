"""The lake writer: every row exactly once, checkpoints only after the commit, across kills."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from loglake.errors import LakeError
from loglake.lake.checkpoint import CheckpointStore
from loglake.lake.schema import SCHEMAS
from loglake.lake.tables import ensure_tables, optimize, table_files, vacuum
from loglake.lake.writer import CRASH_ENV, LakeWriter, _json_bytes, conform
from loglake.query.connect import connect
from loglake.watch.checkpoints import PackedCheckpoints

UTC = dt.UTC


def flush_tables(i: int) -> dict[str, pa.Table]:
    """Flush ``i`` of one source: 10 metric points, 2 params, 1 run observation."""
    base = (i - 1) * 10
    return {
        "metrics": pa.table(
            {
                "run_id": ["r1"] * 10,
                "namespace": ["ml-team"] * 10,
                "key": ["loss"] * 10,
                "value": [float(base + j) for j in range(10)],
                "step": [base + j for j in range(10)],
                "source_fp": ["src"] * 10,
                "offset": [base + j for j in range(10)],
            }
        ),
        "params": pa.table(
            {"run_id": ["r1", "r1"], "key": [f"p{i}", f"q{i}"], "offset": [base, base + 1]}
        ),
        "runs": pa.table({"run_id": ["r1"], "status": ["running"], "offset": [base]}),
    }


def test_commit_lands_rows_and_advances_checkpoint(tmp_path: Path) -> None:
    lake, state = tmp_path / "lake", tmp_path / "state"
    writer = LakeWriter(str(lake), state, "w1")
    assert writer.commit(flush_tables(1), {"src": {"offset": 10}}) == 1
    assert writer.commit(flush_tables(2), {"src": {"offset": 20}}) == 2

    metrics = DeltaTable(str(lake / "metrics"))
    assert metrics.transaction_version("loglake:w1") == 2
    assert metrics.to_pyarrow_table().num_rows == 20
    assert CheckpointStore(state).get("src") == {"offset": 20}
    assert list((state / "spool").iterdir()) == []
    # Every table exists, with its full schema, even those no flush wrote to.
    for name, schema in SCHEMAS.items():
        assert DeltaTable(str(lake / name)).schema().to_arrow().names == schema.names


def test_checkpoint_only_flush_writes_nothing_to_the_lake(tmp_path: Path) -> None:
    writer = LakeWriter(str(tmp_path / "lake"), tmp_path / "state", "w1")
    before = DeltaTable(str(tmp_path / "lake" / "metrics")).version()
    writer.commit({"metrics": SCHEMAS["metrics"].empty_table()}, {"src": {"offset": 7}})
    assert DeltaTable(str(tmp_path / "lake" / "metrics")).version() == before
    assert CheckpointStore(tmp_path / "state").get("src") == {"offset": 7}


def test_seq_is_monotonic_even_without_state(tmp_path: Path) -> None:
    lake = str(tmp_path / "lake")
    writer = LakeWriter(lake, tmp_path / "s1", "w1")
    for i in range(1, 4):
        writer.commit(flush_tables(i), {})
    # The state dir is lost: the lake's app transactions still say where the writer was.
    again = LakeWriter(lake, tmp_path / "s2", "w1")
    assert again.last_seq == 3
    assert again.commit(flush_tables(4), {}) == 4
    other = LakeWriter(lake, tmp_path / "s3", "w2")
    assert other.last_seq == 0
    other.commit(flush_tables(5), {})
    assert DeltaTable(f"{lake}/metrics").to_pyarrow_table().num_rows == 50


def test_conform_fixes_order_types_and_missing_columns(tmp_path: Path) -> None:
    ns_times = pa.array([1_700_000_000_123_456_789, None], pa.timestamp("ns"))
    messy = pa.table(
        {
            "extra": ["dropped", "dropped"],
            "value": pa.array([1, 2], pa.int32()),
            "key": pa.array(["acc", "acc"], pa.large_string()),
            "namespace": pa.array(["", "x=y"]).dictionary_encode(),
            "ts": ns_times,
            "run_id": ["r", "r"],
        }
    )
    table = conform("metrics", messy)
    assert table.schema == SCHEMAS["metrics"]
    assert table.column("value").to_pylist() == [1.0, 2.0]
    assert table.column("namespace").to_pylist() == [None, "x=y"]
    assert table.column("step").null_count == 2
    assert table.column("ts")[0].as_py() == dt.datetime(2023, 11, 14, 22, 13, 20, 123456, UTC)

    writer = LakeWriter(str(tmp_path / "lake"), tmp_path / "state", "w1")
    writer.commit({"metrics": messy}, {})
    stored = DeltaTable(str(tmp_path / "lake" / "metrics")).to_pyarrow_table()
    assert "extra" not in stored.column_names
    assert sorted(stored.column("value").to_pylist()) == [1.0, 2.0]


def test_conform_refuses_values_of_the_wrong_kind() -> None:
    with pytest.raises(LakeError, match="column step of table metrics"):
        conform("metrics", pa.table({"step": ["not a number"]}))


def test_unwritable_lake_names_path_and_fix(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(LakeError) as info:
        LakeWriter(str(blocker / "lake"), tmp_path / "state", "w1")
    line = info.value.one_line()
    assert str(blocker / "lake") in line
    assert "writable" in line
    assert "\n" not in line


def test_ensure_tables_adds_columns_of_a_newer_schema(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    old = pa.schema([f for f in SCHEMAS["artifacts"] if f.name != "kind"])
    DeltaTable.create(str(lake / "artifacts"), old)
    ensure_tables(str(lake))
    names = DeltaTable(str(lake / "artifacts")).schema().to_arrow().names
    assert sorted(names) == sorted(SCHEMAS["artifacts"].names)
    assert table_files(str(lake), "artifacts") == []
    # New rows land by column name even though the table's column order now differs.
    writer = LakeWriter(str(lake), tmp_path / "state", "w1")
    writer.commit({"artifacts": pa.table({"path": ["m.pt"], "kind": ["model"]})}, {})
    rows = DeltaTable(str(lake / "artifacts")).to_pyarrow_table().to_pylist()
    assert [(r["path"], r["kind"]) for r in rows] == [("m.pt", "model")]
    assert table_files(str(tmp_path / "nowhere"), "artifacts") == []


# -- crashes in real subprocesses --------------------------------------------------------

SCRIPT = """
import json, os, sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_lake_writer import flush_tables
from loglake.lake.writer import LakeWriter

lake, state, point, crash_flush, total, do_recover = sys.argv[1:7]
writer = LakeWriter(lake, Path(state), "crashy")
replayed = writer.recover() if do_recover == "1" else 0
done = (writer.checkpoints.get("src") or {{"offset": 0}})["offset"] // 10
for i in range(done + 1, int(total) + 1):
    if i == int(crash_flush):
        os.environ["LOGLAKE_CRASH_AT"] = point
    writer.commit(flush_tables(i), {{"src": {{"offset": i * 10}}}})
print(json.dumps({{"replayed": replayed, "resumed_after": done}}))
"""

CRASH_POINTS = [
    "before_spool_rename",
    "after_spool",
    "after_table:metrics",
    "after_table:params",
    "after_commit",
    "after_checkpoint",
]


def run_script(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "flusher.py"
    script.write_text(SCRIPT.format(tests=str(Path(__file__).parent)))
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    return subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=120,
    )


def assert_exactly_once(lake: Path, flushes: int) -> None:
    conn = connect(lake)

    def one(sql: str) -> tuple:
        return conn.execute(sql).fetchone()

    n = flushes * 10
    assert one('SELECT count(*), count(DISTINCT (source_fp, "offset")) FROM metrics') == (n, n)
    assert one("SELECT sum(value) FROM metrics") == (sum(range(n)),)
    assert one("SELECT count(*), count(DISTINCT key) FROM params") == (flushes * 2, flushes * 2)
    assert one("SELECT count(*) FROM runs_log") == (flushes,)


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_crash_then_recover_lands_every_row_once(tmp_path: Path, point: str) -> None:
    lake, state = tmp_path / "lake", tmp_path / "state"
    first = run_script(tmp_path, str(lake), str(state), point, "2", "4", "1")
    assert first.returncode == -9, first.stderr  # SIGKILLed itself at the crash point
    entries = sorted(p.name for p in (state / "spool").iterdir())
    checkpoint = CheckpointStore(state).get("src")
    if point == "before_spool_rename":
        assert entries == ["2.tmp"]
        assert checkpoint == {"offset": 10}
    elif point == "after_checkpoint":
        assert entries == ["2"]
        assert checkpoint == {"offset": 20}
    else:
        # The lake may already hold flush 2, in part; the offsets have not moved past it.
        assert entries == ["2"]
        assert checkpoint == {"offset": 10}

    second = run_script(tmp_path, str(lake), str(state), point, "0", "4", "1")
    assert second.returncode == 0, second.stderr
    report = json.loads(second.stdout)
    assert report["replayed"] == (0 if point == "before_spool_rename" else 1)
    # A torn spool means flush 2 is read again; a complete one was replayed instead.
    assert report["resumed_after"] == (1 if point == "before_spool_rename" else 2)
    assert list((state / "spool").iterdir()) == []
    assert CheckpointStore(state).get("src") == {"offset": 40}
    assert_exactly_once(lake, 4)


NEXT_FLUSH = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_lake_writer import flush_tables
from loglake.lake.writer import LakeWriter

writer = LakeWriter(sys.argv[1], Path(sys.argv[2]), "crashy")
writer.commit(flush_tables(4), {{"src": {{"offset": 40}}}})
"""


def test_commit_replays_a_pending_spool_first(tmp_path: Path) -> None:
    lake, state = tmp_path / "lake", tmp_path / "state"
    first = run_script(tmp_path, str(lake), str(state), "after_table:metrics", "3", "4", "1")
    assert first.returncode == -9
    # No recover() call: the next commit must still land flush 3 before flush 4, or flush
    # 4's newer app transaction would make any later replay skip flush 3's params and runs.
    script = tmp_path / "next_flush.py"
    script.write_text(NEXT_FLUSH.format(tests=str(Path(__file__).parent)))
    done = subprocess.run(
        [sys.executable, str(script), str(lake), str(state)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert_exactly_once(lake, 4)
    assert CheckpointStore(state).get("src") == {"offset": 40}


def test_recover_twice_is_a_no_op(tmp_path: Path) -> None:
    lake, state = tmp_path / "lake", tmp_path / "state"
    assert run_script(tmp_path, str(lake), str(state), "after_commit", "1", "1", "1").returncode
    writer = LakeWriter(str(lake), state, "crashy")
    assert writer.recover() == 1
    assert writer.recover() == 0
    assert LakeWriter(str(lake), state, "crashy").recover() == 0
    assert_exactly_once(lake, 1)
    assert CheckpointStore(state).get("src") == {"offset": 10}


def test_compaction_keeps_rows_and_the_writers_position(tmp_path: Path) -> None:
    lake = str(tmp_path / "lake")
    writer = LakeWriter(lake, tmp_path / "state", "w1")
    for i in range(1, 6):
        writer.commit(flush_tables(i), {})
    assert len(table_files(lake, "metrics")) == 5
    optimize(lake, "metrics")
    assert len(table_files(lake, "metrics")) == 1
    assert vacuum(lake, "metrics", retention_hours=0) != []
    assert_exactly_once(Path(lake), 5)
    # The app transaction survives compaction, so a replay after it still skips.
    assert DeltaTable(f"{lake}/metrics").transaction_version("loglake:w1") == 5
    assert LakeWriter(lake, tmp_path / "state2", "w1").last_seq == 5


# Parser states ride in the spool manifest and the journal: NaN, non-ASCII text, huge ints.
TRICKY_ENTRY = {
    "offset": 10,
    "parsers": {
        "p": {"state": {"ctx": {"epoch": float("nan"), "best": float("inf")}, "n": 2**70}},
        "q": {"state": {"seen": {"/ckpt/é—模型.pt": "checkpoint", "x\u2028y": None}}},
    },
    "summaries": {"": {"decisive": ["completed", "done", None, 3786596], "end": 1.5e16}},
}


def test_a_journaled_commit_keeps_the_checkpoint_exactly(tmp_path: Path) -> None:
    # The entry's text is made once, for the manifest, and journaled as it is.
    lake, state = tmp_path / "lake", tmp_path / "state"
    writer = LakeWriter(str(lake), state, "w1", checkpoints=PackedCheckpoints(state))
    writer.commit(flush_tables(1), {"src": TRICKY_ENTRY, "old": None})
    got = PackedCheckpoints(state).get("src")
    assert json.dumps(got, sort_keys=True) == json.dumps(TRICKY_ENTRY, sort_keys=True)
    assert CheckpointStore(state).load().keys() == {"src"}  # folds the journal first
    assert_exactly_once(lake, 1)


def test_a_replayed_spool_restores_the_checkpoint_exactly(tmp_path: Path) -> None:
    lake, state = tmp_path / "lake", tmp_path / "state"
    entry = TRICKY_ENTRY
    writer = LakeWriter(str(lake), state, "w1")
    seq = writer.last_seq + 1
    tables = {n: conform(n, t) for n, t in flush_tables(1).items()}
    # A flush that crashed right after spooling (entries go in as the text commit makes).
    entry_dir, _ = writer._spool(seq, tables, {"src": _json_bytes(entry), "gone": None})
    assert sorted(p.name for p in entry_dir.iterdir()) == [
        "checkpoint.json",
        "metrics.0.parquet",
        "params.0.parquet",
        "runs.0.parquet",
    ]
    assert LakeWriter(str(lake), state, "w1").recover() == 1
    got = CheckpointStore(state).get("src")
    assert json.dumps(got, sort_keys=True) == json.dumps(entry, sort_keys=True)
    assert_exactly_once(lake, 1)


def test_a_spool_entry_an_older_version_compressed_still_replays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Spool entries are written uncompressed now; an LZ4 one left by a crash of an older
    loglake must still land exactly once."""
    import loglake.lake.writer as writer_module

    lake, state = tmp_path / "lake", tmp_path / "state"
    monkeypatch.setattr(writer_module, "SPOOL_COMPRESSION", "lz4")
    old = LakeWriter(str(lake), state, "crashy")
    old._direct.clear()  # as an older loglake spooled: every table as Arrow IPC
    data = {name: conform(name, t) for name, t in flush_tables(1).items()}
    entry, _ = old._spool(1, data, {"src": _json_bytes({"offset": 10})})
    with pa.ipc.open_file(entry / "metrics.arrow") as f:
        assert f.read_all().num_rows == 10
    manifest = json.loads((entry / "checkpoint.json").read_text())
    del manifest["files"]
    (entry / "checkpoint.json").write_text(json.dumps({**manifest, "version": 1}))
    monkeypatch.setattr(writer_module, "SPOOL_COMPRESSION", None)
    assert LakeWriter(str(lake), state, "crashy").recover() == 1
    assert_exactly_once(lake, 1)
    assert CheckpointStore(state).get("src") == {"offset": 10}
