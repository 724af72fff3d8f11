"""Retention: every raw log archived before the cluster deletes it, or reported lost.

The cluster is simulated on an injected clock: jobs write logs (mtime = simulated time), a
cleaner deletes every log at mtime + 21 days, and loglake (the indexer plus the retention
job) runs once a simulated day — except for a three-day outage in the middle. Real files,
a real lake, real archives.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from loglake.config import load_config
from loglake.index.runner import run_index
from loglake.lake.checkpoint import StateLock
from loglake.lake.tables import open_table, table_files
from loglake.query.connect import connect
from loglake.retain.expiry import logs_near_expiry
from loglake.retain.housekeep import run_housekeeping
from loglake.retain.job import LOST_GAP, RetentionBusy, archive_store, run_retention
from loglake.retain.schedule import start_scheduler

from .s3server import S3Server

DAY = 86400.0


def write_config(tmp: Path, **retention: object) -> Path:
    settings = {
        "expire_after": "21d",
        "safety_margin": "2d",
        "idle_after": "6h",
        "commit_every": 4,
        **retention,
    }
    lines = [
        f'lake = "{tmp / "lake"}"',
        f'state_dir = "{tmp / "state"}"',
        "[index]",
        # The indexer runs on the real clock, the cluster on a simulated one: never let the
        # indexer call a log finished by its own clock; retention decides with the fake one.
        'job_end_timeout = "100000d"',
        "jobs = 1",
        "[[sources]]",
        f'paths = ["{tmp / "logs"}"]',
        'include = ["*.log"]',
        "[retention]",
        *(f"{k} = {json.dumps(v)}" for k, v in settings.items()),
    ]
    path = tmp / "loglake.toml"
    path.write_text("\n".join(lines) + "\n")
    (tmp / "logs").mkdir(exist_ok=True)
    return path


@dataclass
class Job:
    name: str
    start: float
    end: float
    path: Path
    lines: int = 0
    failed: bool = False

    def write(self, t: float) -> None:
        """Bring the log up to simulated time ``t``: a line per step while it runs."""
        if t < self.start or (
            self.lines and t > self.end and self.path.stat().st_mtime >= self.end
        ):
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as fh:
            if not self.lines:
                fh.write(f"job {self.name} starting token=sk-{self.name}-not-a-real-key-000\n")
            self.lines += 1
            fh.write(f"step {self.lines} loss={1.0 / self.lines:.4f}\n")
            if t >= self.end:
                fh.write(
                    "Traceback (most recent call last):\nRuntimeError: boom\n"
                    if self.failed
                    else "training done\n"
                )
        when = min(t, self.end)
        os.utime(self.path, (when, when))


class Cluster:
    """Jobs writing logs on a simulated clock, and a cleaner deleting them at mtime + 21 d."""

    def __init__(self, root: Path, t0: float) -> None:
        self.root = root
        self.t0 = t0
        self.jobs: list[Job] = []
        self.deleted: dict[str, float] = {}

    def job(self, name: str, start: float, hours: float, failed: bool = False) -> Job:
        j = Job(name, start, start + hours * 3600, self.root / name[:3] / f"{name}.log", 0, failed)
        self.jobs.append(j)
        return j

    def old_log(self, name: str, ended: float) -> Job:
        """A log that was already there (finished at ``ended``)."""
        j = self.job(name, ended - 3600, 1)
        j.write(ended)
        return j

    def advance(self, t: float) -> None:
        for j in self.jobs:
            if j.path.exists() or j.name not in self.deleted:
                j.write(t)
        for j in self.jobs:
            if j.path.exists() and j.path.stat().st_mtime + 21 * DAY <= t:
                j.path.unlink()
                self.deleted[j.name] = t


def lake_rows(tmp: Path, sql: str) -> list[tuple]:
    con = connect(tmp / "lake")
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_three_day_outage_archives_all_with_life_left_and_reports_the_rest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = load_config(write_config(tmp_path))
    # Simulated time lies in the past of the real clock (the lake stamps rows with it).
    t0 = float(int(time.time() - 60 * DAY))
    cluster = Cluster(tmp_path / "logs", t0)
    for age in (1, 5, 10, 15, 18, 19.5, 20.5):  # logs the cluster already has on day 0
        cluster.old_log(f"pre{age}", t0 - age * DAY)
    for day in range(0, 18, 2):  # two jobs every other day; some cross a step, some fail
        cluster.job(f"job{day}a", t0 + day * DAY + 3600, 30, failed=day % 4 == 0)
        cluster.job(f"job{day}b", t0 + day * DAY + 7200, 5)
    outage = (t0 + 10 * DAY, t0 + 13 * DAY)
    archived_at: dict[str, float] = {}
    written = 0
    caplog.set_level(logging.WARNING, logger="loglake.retain")
    for step in range(19):
        now = t0 + step * DAY
        if step == 10:
            # A share of old logs is copied in and indexed just before loglake goes down.
            for age in (17.2, 17.8, 18.3, 19.0, 20.0):
                cluster.old_log(f"old{age}", now - age * DAY)
        cluster.advance(now)
        if outage[0] < now < outage[1]:
            continue
        report = run_index(cfg, [], jobs=1)
        assert not report.failures
        if now == outage[0]:
            near = logs_near_expiry(cfg, "3d", clock=lambda now=now: now)
            assert sorted(Path(n.path).stem for n in near) == ["old18.3", "old19.0", "old20.0"]
            continue  # the daemon dies before its retention run
        ret = run_retention(cfg, clock=lambda now=now: now)
        assert not ret.failures, ret.failures
        written += ret.written
        for d, _ in ret.archived:
            archived_at[Path(d.source.path).stem] = now

    expected_lost = {"old18.3", "old19.0", "old20.0"}
    everyone = {j.name for j in cluster.jobs}
    # Every log with life left was archived while it still existed, before its deadline
    # unless loglake was down then; the others were reported lost, not skipped.
    assert set(archived_at) == everyone - expected_lost
    for j in cluster.jobs:
        if j.name in expected_lost:
            continue
        expiry = j.end + 21 * DAY  # a log's last mtime is its end
        assert archived_at[j.name] < expiry, j.name
        assert archived_at[j.name] <= max(expiry - 2 * DAY, outage[1]), j.name
    rows = lake_rows(
        tmp_path,
        "SELECT regexp_extract(source_path, '([^/]+)\\.log$', 1), state, version, bytes, "
        "redactions FROM logs ORDER BY 1",
    )
    states = {r[0]: r[1] for r in rows}
    assert len(rows) == len(everyone)  # one row per log: nothing archived twice
    assert {n for n, s in states.items() if s == "lost"} == expected_lost
    assert all(r[2] == 1 for r in rows if r[1] == "archived")
    assert all(r[4] == 1 for r in rows if r[1] == "archived")  # the fake key in line 1
    assert written == len(everyone) - len(expected_lost)
    details = lake_rows(tmp_path, "SELECT detail FROM logs WHERE state = 'lost'")
    assert all(d.startswith("expired (mtime + 21.0d) before it") for (d,) in details)
    gaps = lake_rows(tmp_path, f"SELECT source_path FROM gaps WHERE kind = '{LOST_GAP}'")
    assert sorted(Path(g[0]).stem for g in gaps) == sorted(expected_lost)
    warned = [r.getMessage() for r in caplog.records if "raw log lost" in r.getMessage()]
    assert len(warned) == len(expected_lost)
    # Archives hold the logs' text, with the secret gone.
    store = archive_store(cfg)
    uri = lake_rows(tmp_path, "SELECT archive_uri FROM logs WHERE source_path LIKE '%job4a.log'")
    text = store.read_text(uri[0][0]).decode()
    assert text.startswith("job job4a starting token=[REDACTED")
    assert "sk-job4a" not in text and "RuntimeError: boom" in text


def _log(tmp: Path, name: str, text: str, age: float) -> Path:
    path = tmp / "logs" / name
    path.write_text(text)
    mtime = time.time() - age
    os.utime(path, (mtime, mtime))
    return path


def test_a_log_that_grows_after_archiving_gets_a_new_version(tmp_path: Path) -> None:
    cfg = load_config(write_config(tmp_path, idle_after="1h"))
    path = _log(tmp_path, "grow.log", "epoch 1 loss=0.5\n" * 50, age=2 * 3600)
    run_index(cfg, [], jobs=1)
    first = run_retention(cfg)
    assert [a.version for _, a in first.archived] == [1]
    with open(path, "a") as fh:  # the job was only quiet; it goes on, then ends
        fh.write("epoch 2 loss=0.25\n" * 50)
    run_index(cfg, [], jobs=1)
    waiting = run_retention(cfg)
    assert not waiting.archived and [d.action for d in waiting.decisions] == ["wait"]
    later = time.time() + 2 * 3600
    second = run_retention(cfg, clock=lambda: later)
    assert [(a.version, a.bytes) for _, a in second.archived] == [(2, path.stat().st_size)]
    rows = lake_rows(tmp_path, "SELECT version, bytes FROM logs ORDER BY version")
    assert rows == [(1, 50 * 17), (2, 100 * 17 + 50)]
    store = archive_store(cfg)
    assert store.read_text(second.archived[0][1].uri) == path.read_bytes()
    assert run_retention(cfg, clock=lambda: later).archived == []


def test_decisive_status_archives_without_waiting_for_idle(tmp_path: Path) -> None:
    cfg = load_config(write_config(tmp_path, idle_after="10d"))
    _log(tmp_path, "crash.log", "step 1\nTraceback (most recent call last):\nValueError: x\n", 60)
    run_index(cfg, [str(tmp_path / "logs" / "crash.log")], jobs=1, finished=True)
    _log(tmp_path, "live.log", "step 1 loss=0.3\n", 60)
    run_index(cfg, [], jobs=1)
    report = run_retention(cfg)
    actions = {Path(d.source.path).name: (d.action, d.reason) for d in report.decisions}
    assert actions == {
        "crash.log": ("archive", "run failed"),
        "live.log": ("wait", "job running; archived in 10.0d at the latest"),
    }
    assert [Path(d.source.path).name for d, _ in report.archived] == ["crash.log"]


def test_deadline_forces_archiving_of_a_log_not_known_finished(tmp_path: Path) -> None:
    # idle_after longer than the expiry: only the deadline can trigger the archive.
    cfg = load_config(write_config(tmp_path, idle_after="30d"))
    _log(tmp_path, "slow.log", "step 1 loss=0.3\n", 60)
    run_index(cfg, [], jobs=1)
    assert run_retention(cfg).archived == []
    late = time.time() + 19.5 * DAY  # 1.5 days before expiry: inside the 2-day margin
    report = run_retention(cfg, clock=lambda: late)
    assert len(report.archived) == 1 and "expires in" in report.archived[0][0].reason


def test_dry_run_changes_nothing(tmp_path: Path) -> None:
    cfg = load_config(write_config(tmp_path))
    _log(tmp_path, "a.log", "loss=1\n", 2 * DAY)
    run_index(cfg, [], jobs=1)
    report = run_retention(cfg, dry_run=True)
    assert [d.action for d in report.decisions] == ["archive"]
    assert not (tmp_path / "lake" / "archive").exists()
    assert not (tmp_path / "state" / "retain").exists()
    assert lake_rows(tmp_path, "SELECT count(*) FROM logs") == [(0,)]


def test_runs_never_overlap(tmp_path: Path) -> None:
    cfg = load_config(write_config(tmp_path))
    with StateLock(tmp_path / "state" / "retain"), pytest.raises(RetentionBusy) as err:
        run_retention(cfg)
    assert "retention" in err.value.message


def test_scheduler_runs_retention_soon_after_start_and_stops_cleanly(tmp_path: Path) -> None:
    cfg = load_config(write_config(tmp_path))
    cfg.housekeeping.optimize_interval = "0.3s"
    cfg.retention.interval = "1s"  # first run after min(1 minute, interval)
    _log(tmp_path, "done.log", "loss=1\n", 2 * DAY)
    run_index(cfg, [], jobs=1)
    errors: list[tuple[str, str]] = []
    stop = threading.Event()
    sched = start_scheduler(cfg, stop=stop, on_error=lambda w, m: errors.append((w, m)))
    try:
        jobs = {j.id: j for j in sched.get_jobs()}
        assert set(jobs) == {"retention", "optimize", "vacuum"}
        assert all(j.max_instances == 1 and j.coalesce for j in jobs.values())
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if list((tmp_path / "lake" / "archive").rglob("*.zst.json")):
                break
            time.sleep(0.05)
        else:
            pytest.fail("the scheduler did not run retention")
    finally:
        stop.set()
        sched.shutdown(wait=True)
    assert errors == []


def test_housekeeping_compacts_vacuums_and_drops_old_runs(tmp_path: Path) -> None:
    cfg = load_config(write_config(tmp_path))
    for i in range(3):
        text = f"run {i}\n" + "".join(f"step {s} loss={s / 10}\n" for s in range(20))
        _log(tmp_path, f"old{i}.log", text, DAY)
        run_index(cfg, [], jobs=1)  # one commit (one small file) per run
    time.sleep(0.05)
    boundary = time.time()
    time.sleep(0.05)
    _log(tmp_path, "new.log", "".join(f"step {s} acc={s / 10}\n" for s in range(20)), DAY)
    run_index(cfg, [], jobs=1)
    before = len(table_files(cfg.lake, "metrics"))
    counts = lake_rows(tmp_path, "SELECT count(*) FROM metrics")[0][0]
    assert before >= 4 and counts == 80
    now = time.time()
    cfg.housekeeping.index_retention = f"{now - boundary:.3f}s"
    cfg.housekeeping.vacuum_retention = "0s"
    dry = run_housekeeping(cfg, dry_run=True, clock=lambda: now)
    assert dry.old_runs == 3 and dry.dropped == {"metrics": 60}
    report = run_housekeeping(cfg, clock=lambda: now)
    assert report.failures == []
    assert report.dropped == {"metrics": 60}
    assert report.optimized and sum(report.vacuumed.values()) > 0
    left = lake_rows(tmp_path, "SELECT DISTINCT key FROM metrics")
    assert left == [("acc",)]
    assert lake_rows(tmp_path, "SELECT count(*) FROM runs") == [(4,)]  # runs themselves stay
    assert len(table_files(cfg.lake, "metrics")) < before
    assert open_table(cfg.lake, "metrics") is not None


def test_archive_and_lake_on_s3(tmp_path: Path, s3_server: S3Server, s3_bucket: str) -> None:
    """The lake on S3 and its archive under it (``<lake>/archive``), on a loopback S3."""
    options = s3_server.storage_options
    cfg_path = write_config(tmp_path)
    text = cfg_path.read_text().replace(
        f'lake = "{tmp_path / "lake"}"', f'lake = "s3://{s3_bucket}/lake"'
    )
    cfg_path.write_text(text)
    cfg = load_config(cfg_path)
    cfg.storage_options = dict(options)
    _log(tmp_path, "s3.log", "step 1 loss=0.5\nAWS_SECRET_ACCESS_KEY=abcdEFGH1234\n", 2 * DAY)
    run_index(cfg, [], jobs=1)
    report = run_retention(cfg)
    assert report.failures == [] and report.written == 1
    (_, done) = report.archived[0]
    assert done.uri.startswith(f"s3://{s3_bucket}/lake/archive/default/")
    keys = [o["Key"] for o in s3_server.client().list_objects_v2(Bucket=s3_bucket)["Contents"]]
    assert any(k.endswith(".v1.zst") for k in keys) and any(k.endswith(".zst.json") for k in keys)
    assert archive_store(cfg).read_text(done.uri) == (
        b"step 1 loss=0.5\nAWS_SECRET_ACCESS_KEY=[REDACTED]\n"
    )
    con = connect(cfg.lake, storage_options=cfg.storage_options)
    try:
        assert con.execute("SELECT state, version FROM logs").fetchall() == [("archived", 1)]
    finally:
        con.close()
    assert run_retention(cfg).written == 0


def test_works_from_the_daemons_state_while_it_runs(tmp_path: Path) -> None:
    """The watch daemon's checkpoints (file + journal) are the work list; both write the lake."""
    from loglake.watch.daemon import run_watch

    cfg = load_config(write_config(tmp_path, idle_after="1h"))
    cfg.watch.flush_interval = "0.2s"
    cfg.watch.rescan_interval = "0.3s"
    for i in range(3):
        _log(tmp_path, f"w{i}.log", f"daemon run {i}\nstep 1 loss=0.5\n", 60)
    stop = threading.Event()
    result: list[int] = []
    daemon = threading.Thread(target=lambda: result.append(run_watch(cfg, stop=stop)))
    daemon.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            rows = lake_rows(tmp_path, "SELECT count(DISTINCT source_fp) FROM runs_log")
            if rows[0][0] == 3:
                break
            time.sleep(0.1)
        later = time.time() + 2 * 3600
        report = run_retention(cfg, clock=lambda: later)
        assert report.failures == [] and report.written == 3
    finally:
        stop.set()
        daemon.join(30)
    assert result == [0]
    assert lake_rows(tmp_path, "SELECT count(*) FROM logs WHERE state = 'archived'") == [(3,)]


def test_cli_dry_run_table_and_exit_codes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from loglake.cli import main

    cfg_path = write_config(tmp_path)
    _log(tmp_path, "a.log", "alpha\nloss=1\n", 2 * DAY)
    _log(tmp_path, "b.log", "beta\nloss=2\n", 60)
    assert main(["index", "-q", "-c", str(cfg_path)]) == 0
    capsys.readouterr()
    assert main(["retain", "--dry-run", "-c", str(cfg_path)]) == 0
    out, err = capsys.readouterr()
    header = out.splitlines()[0].split()
    assert header == ["file", "run", "bytes", "deadline", "action", "why"]
    assert "would archive" in out and "wait" in out
    assert "would archive 1 log(s)" in err
    assert not (tmp_path / "lake" / "archive").exists()
    assert main(["retain", "-c", str(cfg_path)]) == 0
    out, err = capsys.readouterr()
    assert "archived v1" in out and "(1 written, 0 resumed)" in err
    (tmp_path / "logs" / "b.log").unlink()  # deleted before its job was seen to end
    assert main(["retain", "-f", "json", "-c", str(cfg_path)]) == 1  # a loss is a partial run
    out, err = capsys.readouterr()
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert row["action"] == "lost" and row["why"].startswith("deleted 21.0d before its expiry")
    assert "raw log lost" in err or "1 lost" in err
    assert main(["housekeep", "--optimize", "-c", str(cfg_path)]) == 0
    assert "housekeeping: compacted" in capsys.readouterr().err


def test_compressed_logs_are_archived_as_redacted_text(tmp_path: Path) -> None:
    import gzip

    cfg = load_config(write_config(tmp_path, compression="gzip"))
    cfg.sources[0].include = ["*.log", "*.gz"]
    text = b"export GITHUB_TOKEN=ghp_abcdefghijklmnopqrstuvwxyz0123456789\nstep 1 loss=0.1\n"
    path = tmp_path / "logs" / "rotated.log.gz"
    path.write_bytes(gzip.compress(text))
    old = time.time() - DAY
    os.utime(path, (old, old))
    run_index(cfg, [], jobs=1)
    report = run_retention(cfg)
    assert report.failures == [] and len(report.archived) == 1
    done = report.archived[0][1]
    assert done.uri.endswith(".v1.gz") and done.bytes == path.stat().st_size
    archived = archive_store(cfg).read_text(done.uri)
    assert archived == text.replace(
        b"ghp_abcdefghijklmnopqrstuvwxyz0123456789", b"[REDACTED:github]"
    )
    assert (
        gzip.decompress(
            (tmp_path / "lake" / "archive").joinpath(done.uri.split("/archive/", 1)[1]).read_bytes()
        )
        == archived
    )


def test_an_unmounted_source_folder_is_not_a_loss(tmp_path: Path) -> None:
    cfg = load_config(write_config(tmp_path))
    _log(tmp_path, "nfs.log", "on a mount\nloss=1\n", 60)
    run_index(cfg, [], jobs=1)
    away = tmp_path / "logs-away"
    (tmp_path / "logs").rename(away)  # the NFS mount is gone for a while
    report = run_retention(cfg, clock=lambda: time.time() + DAY)
    assert [d.action for d in report.decisions] == ["unavailable"]
    assert report.lost == [] and "1 unreachable" in report.summary()
    away.rename(tmp_path / "logs")
    report = run_retention(cfg, clock=lambda: time.time() + DAY)
    assert len(report.archived) == 1 and report.lost == []


def test_logs_read_from_s3_plain_and_chunked_are_archived(
    tmp_path: Path, s3_server: S3Server, s3_bucket: str
) -> None:
    import gzip

    cfg = load_config(write_config(tmp_path, idle_after="1h"))
    cfg.storage_options = dict(s3_server.storage_options)
    cfg.sources[0].paths = [f"s3://{s3_bucket}/logs"]
    cfg.sources[0].include = ["*.log", "*.gz"]
    plain = b"plain run\nstep 1 loss=0.5\npassword=hunter22\n"
    s3_server.put(s3_bucket, "logs/team/plain.log", plain)
    parts = [f"pod-a step {i} loss={1 / (i + 1):.3f}\n".encode() * 3 for i in range(3)]
    for seq, text in enumerate(parts):
        key = f"logs/fluent-bit/pod-a/2026/01/01/12/{seq:02d}/train-object{seq:06d}.gz"
        s3_server.put(s3_bucket, key, gzip.compress(text))
    report = run_index(cfg, [], jobs=1)
    assert report.failures == [] and report.files_indexed == 2
    later = time.time() + 2 * 3600
    ret = run_retention(cfg, clock=lambda: later)
    assert ret.failures == [] and ret.lost == [] and ret.written == 2
    store = archive_store(cfg)
    texts = {Path(d.source.path).name: store.read_text(a.uri) for d, a in ret.archived}
    assert texts["plain.log"] == plain.replace(b"hunter22", b"[REDACTED]")
    (chunked,) = [t for name, t in texts.items() if name != "plain.log"]
    assert chunked == b"".join(parts)
    # The cluster's bucket lifecycle deletes the objects: nothing is lost, all was archived.
    client = s3_server.client()
    for obj in client.list_objects_v2(Bucket=s3_bucket)["Contents"]:
        client.delete_object(Bucket=s3_bucket, Key=obj["Key"])
    after = run_retention(cfg, clock=lambda: later)
    assert after.lost == [] and {d.action for d in after.decisions} == {"done"}
