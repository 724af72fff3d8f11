"""`loglake watch` with object-store sources: the poller, appends, chunks, and an S3 outage.

The daemon runs in-process (its threads, its flusher, a real lake) against a real S3 server on
loopback; the outage test gets a dedicated server it stops (saving its objects) and starts
again, with both the logs and the lake on it.
"""

from __future__ import annotations

import gzip
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from loglake.config import Config, SourceConfig, WatchConfig
from loglake.query.connect import connect
from loglake.watch.daemon import Daemon

from .s3server import S3Server


def steps(start: int, stop: int) -> bytes:
    return b"".join(f"step={i} loss={1 / (i + 1):.5f}\n".encode() for i in range(start, stop))


def watch_config(tmp: Path, server: S3Server, bucket: str, lake: str) -> Config:
    return Config(
        lake=lake,
        state_dir=str(tmp / "state"),
        storage_options=server.storage_options,
        sources=[
            SourceConfig(name="s3", paths=[f"s3://{bucket}/logs"], poll_interval="0.3s"),
        ],
        watch=WatchConfig(flush_interval="0.3s", rescan_interval="1s", idle_timeout="60s"),
    )


@pytest.fixture
def daemon() -> Iterator[Callable[[Config], Daemon]]:
    started: list[tuple[Daemon, threading.Thread]] = []

    def start(config: Config) -> Daemon:
        d = Daemon(config, threading.Event())
        t = threading.Thread(target=d.run, kwargs={"install_signals": False}, daemon=True)
        t.start()
        started.append((d, t))
        return d

    yield start
    for d, t in started:
        d.stop.set()
        t.join(timeout=60)


def losses(lake: str, options: dict[str, str] | None = None) -> dict[str, list[int]]:
    con = connect(lake, storage_options=options)
    rows = con.sql(
        "SELECT r.run, m.step FROM metrics m JOIN runs r USING (run_id) "
        "WHERE m.key = 'loss' ORDER BY 1, 2"
    ).fetchall()
    out: dict[str, list[int]] = {}
    for run, step in rows:
        out.setdefault(run, []).append(step)
    return out


def wait_for(
    lake: str,
    want: dict[str, list[int]],
    options: dict[str, str] | None = None,
    timeout: float = 40,
) -> dict[str, list[int]]:
    deadline = time.monotonic() + timeout
    got: dict[str, list[int]] = {}
    while time.monotonic() < deadline:
        try:
            got = losses(lake, options)
        except Exception:  # noqa: BLE001 - the lake may be unreachable mid-outage
            got = {}
        if all(len(got.get(k, [])) >= len(v) for k, v in want.items()):
            return got
        time.sleep(0.3)
    return got


def fluent_key(minute: int) -> str:
    return f"logs/fb/pod-a/2026/01/01/12/{minute:02d}/train-object{minute:06d}.gz"


def test_watch_polls_s3(
    tmp_path: Path, s3_server: S3Server, s3_bucket: str, daemon: Callable[[Config], Daemon]
) -> None:
    lake = str(tmp_path / "lake")
    d = daemon(watch_config(tmp_path, s3_server, s3_bucket, lake))
    s3_server.put(s3_bucket, "logs/run-a/train.log", steps(0, 20))
    s3_server.put(s3_bucket, fluent_key(0), gzip.compress(steps(0, 10)))
    first = {"run-a/train": list(range(20)), "pod-a/train": list(range(10))}
    assert wait_for(lake, first) == first
    # An append (the key re-put larger) and a new chunk of the stream.
    s3_server.put(s3_bucket, "logs/run-a/train.log", steps(0, 35))
    s3_server.put(s3_bucket, fluent_key(1), gzip.compress(steps(10, 25)))
    want = {"run-a/train": list(range(35)), "pod-a/train": list(range(25))}
    assert wait_for(lake, want) == want
    assert d.objpoll.snapshot()["remote_logs"] == 2
    d.stop.set()
    time.sleep(1.0)
    assert losses(lake) == want  # nothing doubled after the last polls


def test_s3_outage_loses_and_doubles_nothing(
    tmp_path: Path, daemon: Callable[[Config], Daemon], caplog: pytest.LogCaptureFixture
) -> None:
    """Logs and lake on one S3 server, stopped and restarted while the daemon runs."""
    server = S3Server(state=tmp_path / "s3-state.pickle").start()
    try:
        bucket = server.make_bucket("outage")
        lake = f"s3://{bucket}/lake"
        opts = server.storage_options
        d = daemon(watch_config(tmp_path, server, bucket, lake))
        server.put(bucket, "logs/run-a/train.log", steps(0, 30))
        first = {"run-a/train": list(range(30))}
        assert wait_for(lake, first, opts) == first

        caplog.set_level(logging.WARNING, logger="loglake.objstore.filesystem")
        server.stop()  # the objects are saved; every request now fails to connect
        time.sleep(2.0)
        server.start()

        server.put(bucket, "logs/run-a/train.log", steps(0, 50))
        server.put(bucket, fluent_key(0), gzip.compress(steps(0, 15)))
        want = {"run-a/train": list(range(50)), "pod-a/train": list(range(15))}
        assert wait_for(lake, want, opts, timeout=60) == want
        # The outage was seen and waited out with retries, not skipped.
        assert any("cannot reach the object store" in r.getMessage() for r in caplog.records)
        d.stop.set()
        time.sleep(1.0)
        assert losses(lake, opts) == want
    finally:
        server.stop()
