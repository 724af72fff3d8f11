"""`loglake watch` and `loglake status` as real processes: signals, the lock, dead workers,
the status file, the metrics endpoint, and backpressure and retries against a real lake."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from loglake.lake.writer import LakeWriter
from loglake.watch.flusher import FlushBuffer, Flusher
from loglake.watch.stats import Stats
from loglake.watch.status import health, read_status

from .watch_support import (
    LOGLAKE,
    append,
    env_without_crash,
    expected,
    lake_counts,
    lake_rows,
    wait_for,
    write_config,
)


def start(config: Path, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*LOGLAKE, "watch", "-c", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**env_without_crash(), **env},
    )


def caught_up(doc: dict[str, Any] | None, lines: int) -> bool:
    """The status file says every line is read and committed."""
    if not doc or not doc.get("last_flush"):
        return False
    counters, files = doc.get("counters") or {}, doc.get("files") or {}
    return counters.get("lines") == lines and files.get("tracked") == 1 and doc["lag_bytes"] == 0


def running(state: Path) -> dict[str, Any] | None:
    doc = read_status(state)
    return doc if doc and doc.get("state") == "running" else None


def status(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LOGLAKE, "status", "-c", str(config), *args],
        check=False,
        capture_output=True,
        text=True,
        env=env_without_crash(),
        timeout=60,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_sigterm_flushes_what_is_buffered_and_exits_0(tmp_path: Path) -> None:
    config = write_config(tmp_path, watch={"flush_interval": "1h"})
    proc = start(config)
    try:
        wait_for(lambda: running(tmp_path / "state"), what="the daemon to start")
        append(tmp_path / "logs" / "a.log", 1, range(1, 51))
        wait_for(
            lambda: (read_status(tmp_path / "state") or {}).get("buffered_rows"),
            what="rows in the buffer",
        )
        assert lake_counts(tmp_path / "lake") == {}  # nothing flushed yet: the interval is 1h
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        proc.kill()
    assert lake_counts(tmp_path / "lake") == expected({1: 50})
    assert read_status(tmp_path / "state")["state"] == "stopped"


def test_a_second_daemon_on_the_same_state_dir_refuses(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    first = start(config)
    try:
        wait_for(lambda: running(tmp_path / "state"), what="the daemon to start")
        second = subprocess.run(
            [*LOGLAKE, "watch", "-c", str(config)],
            check=False,
            capture_output=True,
            text=True,
            env=env_without_crash(),
            timeout=60,
        )
        assert second.returncode == 2
        assert f"another loglake process (pid {first.pid})" in second.stderr
        assert first.poll() is None
    finally:
        first.send_signal(signal.SIGINT)
        assert first.wait(30) == 0


def test_a_worker_that_keeps_crashing_stops_the_process_non_zero(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    proc = start(config, LOGLAKE_TEST_FAIL_WORKER="flush")
    try:
        assert proc.wait(60) == 70
    finally:
        proc.kill()
    err = proc.stderr.read() if proc.stderr else ""
    assert "worker flush died" in err
    doc = read_status(tmp_path / "state")
    assert doc["state"] == "failed"
    assert doc["workers"]["flush"]["restarts"] == 3
    assert "simulated crash" in doc["last_errors"][-1]["message"]


def test_status_reports_and_checks_liveness(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(
        tmp_path, watch={"metrics_listen": f"127.0.0.1:{port}", "idle_timeout": "1h"}
    )
    append(tmp_path / "logs" / "a.log", 1, range(1, 11))
    proc = start(config)
    try:
        wait_for(lambda: lake_counts(tmp_path / "lake") == expected({1: 10}), what="the lines")
        wait_for(
            lambda: caught_up(running(tmp_path / "state"), lines=10),
            what="a status written after the flush",
        )
        text = status(config)
        assert text.returncode == 0, text.stderr
        assert "running (healthy)" in text.stdout
        assert "1 tracked" in text.stdout and "10 lines" in text.stdout
        check = status(config, "--check")
        assert (check.returncode, check.stdout.strip()) == (0, "loglake watch: healthy")
        doc = json.loads(status(config, "--json").stdout)
        assert doc["healthy"] and doc["files"]["tracked"] == 1 and doc["lag_bytes"] == 0
        assert doc["counters"]["lines"] == 10 and doc["sources"][0]["files"] == 1
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
        metrics = body.decode()
        assert "loglake_lines_total 10" in metrics
        assert 'loglake_files{state="live"} 1' in metrics
        assert "loglake_lag_bytes 0" in metrics
    finally:
        proc.kill()  # SIGKILL: the status file still says "running"
        proc.wait(30)
    check = status(config, "--check")
    assert check.returncode == 1
    assert "is gone (killed?)" in check.stdout


def test_status_before_any_daemon(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    r = status(config)
    assert r.returncode == 66 and "no watch daemon has run" in r.stderr
    assert status(config, "--check").returncode == 1


def test_health_needs_a_fresh_heartbeat_and_live_workers() -> None:
    now = time.time()
    doc = {"state": "running", "pid": os.getpid(), "host": socket.gethostname()}
    assert health({**doc, "heartbeat": now, "workers": {"tail": {"alive": True}}}, now)[0]
    assert health({**doc, "heartbeat": now - 60}, now) == (False, "no heartbeat for 60s (hung?)")
    dead = {**doc, "heartbeat": now, "workers": {"flush": {"alive": False}}}
    assert health(dead, now) == (False, "worker(s) flush died")


# -- the flusher against a real lake ---------------------------------------------------------


def _rows(first: int, n: int) -> dict[str, pa.Table]:
    return {
        "metrics": pa.table(
            {
                "run_id": ["r"] * n,
                "namespace": ["ns"] * n,
                "key": ["f1"] * n,
                "value": [float(i) for i in range(first, first + n)],
                "step": list(range(first, first + n)),
                "source_fp": ["fp"] * n,
                "offset": list(range(first, first + n)),
            }
        ),
        "params": pa.table({"run_id": ["r"], "key": [f"p{first}"], "value": ["1"]}),
    }


def test_a_full_buffer_makes_readers_wait_until_the_lake_takes_the_rows() -> None:
    buffer = FlushBuffer(max_bytes=1 << 20, flush_records=10**9, flush_interval=3600)
    big = pa.table({"x": pa.array(range(200_000), pa.int64())})  # 1.6 MB: over the bound
    buffer.put({"metrics": big}, {"a": {"offset": 1}})
    assert buffer.full()
    done = threading.Event()

    def reader() -> None:
        buffer.put({"metrics": big}, {"a": {"offset": 2}})
        done.set()

    t = threading.Thread(target=reader)
    t.start()
    assert not done.wait(0.5)  # paused: nothing is dropped, nothing read meanwhile
    batch = buffer.take()
    assert batch is not None and not done.wait(0.3)  # in flight still counts
    buffer.release(batch)
    assert done.wait(5)
    t.join()
    assert buffer.waits == 1


def test_a_failing_lake_is_retried_and_rows_land_once(tmp_path: Path) -> None:
    lake, state = tmp_path / "lake", tmp_path / "state"
    writer = LakeWriter(str(lake), state, "w")
    buffer = FlushBuffer(max_bytes=64 << 20, flush_records=10**9, flush_interval=3600)
    flusher = Flusher(buffer, writer, Stats())
    buffer.put(_rows(1, 10), {"fp": {"offset": 10}})
    assert flusher.flush()
    # The params table's log becomes unwritable: the metrics append lands, the params one
    # fails after the flush was spooled, so the retry must replay the spool, not commit the
    # rows again.
    log = lake / "params" / "_delta_log"
    shutil.move(log, tmp_path / "log-away")
    log.write_text("in the way")
    buffer.put(_rows(11, 10), {"fp": {"offset": 20}})
    assert not flusher.flush(attempts=1)
    assert flusher.inflight is not None and flusher.stats.counters["errors"] == 1
    log.unlink()
    shutil.move(tmp_path / "log-away", log)
    assert flusher.flush(attempts=3)
    assert flusher.inflight is None
    assert lake_counts(lake) == {("f1", n): 1 for n in range(1, 21)}
    assert writer.checkpoints.load()["fp"] == {"offset": 20}


def test_a_flush_that_fails_before_the_spool_is_committed_again(tmp_path: Path) -> None:
    lake, state = tmp_path / "lake", tmp_path / "state"
    writer = LakeWriter(str(lake), state, "w")
    buffer = FlushBuffer(max_bytes=64 << 20, flush_records=10**9, flush_interval=3600)
    flusher = Flusher(buffer, writer, Stats())
    shutil.rmtree(state / "spool")
    (state / "spool").write_text("not a folder")  # spooling fails: nothing reached the lake
    buffer.put(_rows(1, 10), {"fp": {"offset": 10}})
    assert not flusher.flush(attempts=1)
    (state / "spool").unlink()
    (state / "spool").mkdir()
    assert flusher.flush(attempts=3)
    assert lake_counts(lake) == {("f1", n): 1 for n in range(1, 11)}


@pytest.mark.parametrize("listen", ["localhost", "127.0.0.1:99999", "127.0.0.1:"])
def test_metrics_listen_must_be_host_and_port(tmp_path: Path, listen: str) -> None:
    from loglake.config import load_config
    from loglake.errors import ConfigError

    config = write_config(tmp_path, watch={"metrics_listen": listen})
    with pytest.raises(ConfigError, match="metrics_listen"):
        load_config(config)


def test_the_daemon_archives_finished_logs_on_its_scheduler(tmp_path: Path) -> None:
    """Retention runs inside `loglake watch` (APScheduler), not only as `loglake retain`."""
    config = write_config(tmp_path)
    with config.open("a") as fh:
        fh.write('[retention]\ninterval = "1s"\nidle_after = "1s"\n')
    append(tmp_path / "logs" / "a.log", 1, range(1, 21))
    proc = start(config)
    try:
        wait_for(
            lambda: (
                (tmp_path / "lake" / "logs").exists()
                and lake_rows(tmp_path / "lake", "SELECT state FROM logs WHERE state = 'archived'")
            ),
            timeout=60,
            what="an archived log row",
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        proc.kill()
    (row,) = lake_rows(tmp_path / "lake", "SELECT source_path, bytes, archive_uri FROM logs")
    assert row["source_path"].endswith("a.log")
    assert row["bytes"] == (tmp_path / "logs" / "a.log").stat().st_size
    assert lake_counts(tmp_path / "lake") == expected({1: 20})
