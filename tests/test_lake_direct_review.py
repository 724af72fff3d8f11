"""A second look at direct appends (lake/direct.py): commits other writers' log upkeep made
stale, stats that readers skip files by, crashes at each step of landing spooled files, and
writers racing for one table's versions — each against real delta-rs, DuckDB and processes."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, QueryBuilder

from loglake.lake.tables import optimize, vacuum
from loglake.lake.writer import CRASH_ENV, LakeWriter
from loglake.query.connect import connect

UTC = dt.UTC


def notes(*texts: str) -> dict[str, pa.Table]:
    return {"notes": pa.table({"run_id": list(texts), "text": list(texts)})}


def test_a_writer_behind_a_cleaned_up_log_commits_where_readers_see_it(tmp_path: Path) -> None:
    """Writer B last read the table long ago; writer A has since committed, checkpointed and
    removed the expired log files after B's version. B's next version file is gone, so a
    put-if-absent of it succeeds — below the checkpoint, where no reader looks."""
    lake = tmp_path / "lake"
    LakeWriter(str(lake), tmp_path / "a", "a")
    DeltaTable(str(lake / "notes")).alter.set_table_properties(
        {"delta.checkpointInterval": "2", "delta.logRetentionDuration": "interval 0 seconds"}
    )
    a = LakeWriter(str(lake), tmp_path / "a", "a")
    b = LakeWriter(str(lake), tmp_path / "b", "b")
    b.commit(notes("b1"), {})
    for i in range(5):
        a.commit(notes(f"a{i}"), {})
    assert not (lake / "notes" / "_delta_log" / f"{3:020d}.json").exists()  # cleaned up

    b.commit(notes("b2"), {})

    table = DeltaTable(str(lake / "notes"))
    assert table.transaction_version("loglake:b") == 2
    texts = sorted(table.to_pyarrow_table().column("text").to_pylist())
    assert texts == ["a0", "a1", "a2", "a3", "a4", "b1", "b2"]
    assert connect(lake).execute("SELECT count(*) FROM notes").fetchone() == (7,)


@pytest.mark.parametrize("nan", [float("nan"), float("-nan")])
def test_a_file_holding_nan_claims_no_bounds_for_readers_to_trust(
    tmp_path: Path, nan: float
) -> None:
    """Parquet leaves NaN out of its min/max. Had the add action said min = max = 1.0,
    DataFusion (delta-rs's QueryBuilder) would take the column for the constant 1.0 and
    return the NaN row as a second 1.0; and it, DuckDB and Spark order NaN past every
    number, so ``>= 1`` must not skip the file either."""
    lake = tmp_path / "lake"
    writer = LakeWriter(str(lake), tmp_path / "state", "w")
    writer.commit({"params": pa.table({"run_id": ["a", "a"], "value_num": [1.0, nan]})}, {})
    writer.commit({"params": pa.table({"run_id": ["b"], "value_num": [10.0]})}, {})
    query = QueryBuilder().register("p", DeltaTable(str(lake / "params")))

    def found(where: str) -> list[tuple[str, str]]:
        rows = query.execute(f"SELECT run_id, value_num FROM p WHERE {where}").read_all()
        return sorted((r["run_id"], str(r["value_num"])) for r in pa.table(rows).to_pylist())

    assert found("value_num = 1") == [("a", "1.0")]
    assert found("value_num < 5 OR isnan(value_num)") == [("a", "1.0"), ("a", "nan")]
    stats = [
        json.loads(json.loads(line)["add"]["stats"])
        for line in (lake / "params" / "_delta_log" / f"{1:020d}.json").read_text().splitlines()
        if '"add"' in line
    ]
    assert all("value_num" not in s["minValues"] | s["maxValues"] for s in stats)


@pytest.mark.parametrize(
    ("when", "text"),
    [
        (dt.datetime(1, 1, 1, 0, 0, 0, 1000, tzinfo=UTC), "0001-01-01T00:00:00.001Z"),
        (dt.datetime(999, 12, 31, tzinfo=UTC), "0999-12-31T00:00:00Z"),
        (dt.datetime(2026, 5, 1, 12, tzinfo=UTC), "2026-05-01T12:00:00Z"),
    ],
)
def test_timestamp_bounds_are_iso_8601_as_delta_rs_reads_them(
    tmp_path: Path, when: dt.datetime, text: str
) -> None:
    lake = tmp_path / "lake"
    writer = LakeWriter(str(lake), tmp_path / "state", "w")
    writer.commit({"notes": pa.table({"run_id": ["a"], "created_at": [when]})}, {})
    commit = (lake / "notes" / "_delta_log" / f"{1:020d}.json").read_text().splitlines()
    (add,) = [json.loads(line)["add"] for line in commit if '"add"' in line]
    stats = json.loads(add["stats"])
    assert stats["minValues"]["created_at"] == stats["maxValues"]["created_at"] == text
    actions = pa.table(DeltaTable(str(lake / "notes")).get_add_actions(flatten=True))
    assert actions.column("min.created_at").to_pylist() == [when]


def test_timestamp_bounds_past_year_9999_are_signed_as_delta_rs_writes_them(
    tmp_path: Path,
) -> None:
    lake = tmp_path / "lake"
    writer = LakeWriter(str(lake), tmp_path / "state", "w")
    far = pa.array([253402300800_000000 * 2], pa.timestamp("us", tz="UTC"))  # year 18029
    writer.commit({"notes": pa.table({"run_id": ["a"], "created_at": far})}, {})
    commit = (lake / "notes" / "_delta_log" / f"{1:020d}.json").read_text().splitlines()
    (add,) = [json.loads(line)["add"] for line in commit if '"add"' in line]
    assert json.loads(add["stats"])["minValues"]["created_at"] == "+18029-12-31T00:00:00Z"


# -- crashes and races in real processes ----------------------------------------------------

CHILD = """
import os, signal, sys, time
from pathlib import Path
import pyarrow as pa
from loglake.lake import direct
from loglake.lake.writer import LakeWriter

lake, state, writer_id, crash, flushes, start = sys.argv[1:7]


def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)


if crash == "before_commit":  # the files are in the table, the log does not name them yet
    direct.DirectTable._commit = die
elif crash == "in_commit":  # the log entry is linked, its temp file not yet removed
    link = os.link

    def link_then_die(src, dst, **kwargs):
        link(src, dst, **kwargs)
        die()

    os.link = link_then_die
elif crash == "in_checkpoint":  # committed; the Delta checkpoint and ours not yet written
    direct.DirectTable._checkpoint = die
while not Path(start).exists():
    time.sleep(0.01)
writer = LakeWriter(lake, Path(state), writer_id)
writer.recover()
done = (writer.checkpoints.get("src") or {"n": 0})["n"]
for i in range(done + 1, int(flushes) + 1):
    n = 6
    rows = {
        "run_id": [writer_id] * n,
        "namespace": ["ns-a", "ns-b"] * (n // 2),
        "key": ["loss"] * n,
        "value": [float(i * 100 + k) for k in range(n)],
        "step": [i] * n,
        "source_fp": [writer_id] * n,
        "offset": [i * 100 + k for k in range(n)],
    }
    note = {"run_id": [writer_id], "text": [f"{writer_id}-{i}"]}
    writer.commit({"metrics": pa.table(rows), "notes": pa.table(note)}, {"src": {"n": i}})
"""


def run_child(tmp_path: Path, lake: Path, writer_id: str, crash: str, flushes: int) -> int:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    start = tmp_path / "start"
    start.touch()
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    args = [str(lake), str(tmp_path / writer_id), writer_id, crash, str(flushes), str(start)]
    return subprocess.run(
        [sys.executable, str(script), *args], env=env, timeout=120, check=False
    ).returncode


def lake_with_small_checkpoint_interval(lake: Path, tmp_path: Path) -> None:
    LakeWriter(str(lake), tmp_path / "setup", "setup")
    for name in ("metrics", "notes"):
        DeltaTable(str(lake / name)).alter.set_table_properties({"delta.checkpointInterval": "3"})


def assert_each_flush_once(lake: Path, writers: dict[str, int]) -> None:
    metrics = DeltaTable(str(lake / "metrics"))
    for writer_id, flushes in writers.items():
        assert metrics.transaction_version(f"loglake:{writer_id}") == flushes
    expect = sorted(
        (w, i * 100 + k)
        for w, flushes in writers.items()
        for i in range(1, flushes + 1)
        for k in range(6)
    )
    rows = metrics.to_pyarrow_table()
    got = sorted(zip(rows.column("run_id").to_pylist(), rows.column("offset").to_pylist()))
    assert got == expect
    conn = connect(lake)
    assert conn.execute("SELECT count(*) FROM metrics").fetchone() == (len(expect),)
    notes_texts = sorted(r[0] for r in conn.execute("SELECT text FROM notes").fetchall())
    assert notes_texts == sorted(f"{w}-{i}" for w, n in writers.items() for i in range(1, n + 1))
    # No file left in the table that the log does not name (it would be an orphan, or
    # worse, a second copy some later replay commits).
    live = {Path(u.removeprefix("file://")) for u in metrics.file_uris()}
    assert set((lake / "metrics").glob("namespace=*/*")) == live


@pytest.mark.parametrize("crash", ["before_commit", "in_commit", "in_checkpoint"])
def test_kill_while_landing_and_again_while_replaying_lands_each_flush_once(
    tmp_path: Path, crash: str
) -> None:
    lake = tmp_path / "lake"
    lake_with_small_checkpoint_interval(lake, tmp_path)
    # in_checkpoint dies at the first version divisible by 3: flush 2 (versions 1..2 are
    # the property change and flush 1); the others die in flush 1.
    assert run_child(tmp_path, lake, "w", crash, 4) == -9
    assert run_child(tmp_path, lake, "w", crash, 4) == -9  # replaying the same flush
    assert run_child(tmp_path, lake, "w", "", 4) == 0
    assert_each_flush_once(lake, {"w": 4})
    assert list((tmp_path / "w" / "spool").iterdir()) == []


def test_writers_racing_for_versions_lose_and_repeat_nothing(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    lake_with_small_checkpoint_interval(lake, tmp_path)
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    start = tmp_path / "start"
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    writers = {f"w{i}": 12 for i in range(3)}
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(lake), str(tmp_path / w), w, "", str(n), str(start)],
            env=env,
        )
        for w, n in writers.items()
    ]
    start.touch()  # all at once, for the same versions
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    assert_each_flush_once(lake, writers)
    log = lake / "metrics" / "_delta_log"
    versions = sorted(int(p.name[:20]) for p in log.glob("*.json"))
    assert versions == list(range(versions[0], versions[-1] + 1))
    assert not list(log.glob("_commit_*.tmp"))


def test_compaction_vacuum_and_checkpoints_keep_direct_appends_whole(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    lake_with_small_checkpoint_interval(lake, tmp_path)
    start = tmp_path / "start"
    start.touch()
    assert run_child(tmp_path, lake, "w", "", 5) == 0
    assert optimize(lake, "metrics")["numFilesRemoved"] == 10
    removed = vacuum(lake, "metrics", retention_hours=0)
    assert len(removed) == 10
    assert run_child(tmp_path, lake, "w", "", 8) == 0  # appends after, at stale versions
    assert_each_flush_once(lake, {"w": 8})
    shutil.rmtree(lake / "_loglake")
    assert_each_flush_once(lake, {"w": 8})  # the reader's file list rebuilt from scratch


@pytest.mark.parametrize("folder", ["ML logs", "lé#1"])
def test_a_lake_whose_path_needs_escaping_in_a_uri_gets_its_files(
    tmp_path: Path, folder: str
) -> None:
    """delta-rs names the table by a percent-encoded URI (``ML%20logs``); the files and
    the commit go to the directory it stands for, not to one named like the URI."""
    lake = tmp_path / folder / "lake"
    writer = LakeWriter(str(lake), tmp_path / "state", "w")
    metrics = pa.table({"run_id": ["a"], "namespace": ["n"], "value": [1.0]})
    writer.commit({"metrics": metrics, **notes("x")}, {})

    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([folder, "state"])
    assert DeltaTable(str(lake / "metrics")).to_pyarrow_table().column("value").to_pylist() == [1.0]
    commit = (lake / "notes" / "_delta_log" / f"{1:020d}.json").read_text().splitlines()
    assert json.loads(commit[0])["commitInfo"]["engineInfo"] == "loglake"  # not delta-rs
    assert DeltaTable(str(lake / "notes")).to_pyarrow_table().column("text").to_pylist() == ["x"]


def test_a_link_that_reports_eexist_for_itself_is_one_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NFS: the server made the link, its reply was lost, and the client's retry got EEXIST
    for the name it had just taken (the reason link(2)-based locks check the link count).
    Committing the files again through delta-rs would land every row twice."""
    lake = tmp_path / "lake"
    writer = LakeWriter(str(lake), tmp_path / "state", "w")
    link = os.link

    def link_reply_lost(src: str, dst: str, **kwargs: object) -> None:
        link(src, dst)
        raise FileExistsError(17, "File exists", dst)

    monkeypatch.setattr(os, "link", link_reply_lost)
    writer.commit(notes("x"), {})
    writer.commit(notes("y"), {})
    monkeypatch.undo()
    writer.commit(notes("z"), {})

    table = DeltaTable(str(lake / "notes"))
    assert table.version() == 3
    assert sorted(table.to_pyarrow_table().column("text").to_pylist()) == ["x", "y", "z"]
    assert not list((lake / "notes" / "_delta_log").glob("_commit_*"))
