"""Object storage problems a new user meets: an object that shrinks, an outage's warnings,
config mistakes around object-store URLs. Against the loopback S3 server (tests/s3server.py).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from loglake.cli import main
from loglake.config import Config, SourceConfig
from loglake.errors import ExitCode, SourceError
from loglake.index.runner import run_index
from loglake.objstore.filesystem import call, open_fs
from loglake.query.connect import connect

from .s3server import S3Server, free_port


def steps(start: int, stop: int) -> bytes:
    head = b"# banner that makes the first KiB the same in every copy\n" * 20
    body = b"".join(f"step={i} loss={1 / (i + 1):.5f}\n".encode() for i in range(start, stop))
    return head + body if start == 0 else body


def loss_rows(lake: Path) -> tuple[int, int]:
    con = connect(lake)
    ((n, distinct),) = con.sql(
        "SELECT count(*), count(DISTINCT step) FROM metrics WHERE key = 'loss'"
    ).fetchall()
    return int(n), int(distinct)


def test_shrunk_object_is_not_read_twice(
    tmp_path: Path, s3_server: S3Server, s3_bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An older, shorter copy uploaded over a log (a sync race) doubles no row; once the
    object is longer again, reading goes on from where it stopped."""
    cfg = Config(
        lake=str(tmp_path / "lake"),
        storage_options=s3_server.storage_options,
        sources=[SourceConfig(name="s3", paths=[f"s3://{s3_bucket}/runs"])],
    )
    full = steps(0, 60)
    s3_server.put(s3_bucket, "runs/a/train.log", full)
    run_index(cfg, [])
    assert loss_rows(tmp_path / "lake") == (60, 60)

    s3_server.put(s3_bucket, "runs/a/train.log", full[: len(full) - 400])
    with caplog.at_level(logging.WARNING):
        report = run_index(cfg, [])
    assert report.failures == []
    assert loss_rows(tmp_path / "lake") == (60, 60)
    warnings = [r.getMessage() for r in caplog.records if "shrank" in r.getMessage()]
    assert len(warnings) == 1 and f"s3://{s3_bucket}/runs/a/train.log" in warnings[0]

    s3_server.put(s3_bucket, "runs/a/train.log", full + steps(60, 70))
    run_index(cfg, [])
    assert loss_rows(tmp_path / "lake") == (70, 70)


def test_retry_warning_names_the_url_once(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()  # nothing listens there
    url = "s3://bucket/prefix"
    options = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
    }
    fs = open_fs(url, options)
    stopped = threading.Event()
    stopped.set()  # the first failure is logged, then the wait for a retry ends at once
    with caplog.at_level(logging.WARNING), pytest.raises(SourceError) as err:
        call(lambda: fs.ls("bucket/prefix"), url, options, retry_for=60, stop=stopped)
    assert "cannot reach the object store" in err.value.one_line()
    retries = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert retries and all(m.count(url) == 1 for m in retries)


def _validate(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    path = tmp_path / "bad.toml"
    path.write_text(f'lake = "{tmp_path / "lake"}"\n{text}\n')
    code = main(["validate", str(path)])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "key", "hint"),
    [
        (
            '[[sources]]\npaths = ["s3://b/x"]\npoll_interval = "0s"',
            "sources.0.poll_interval",
            "30s",
        ),
        ('[retention]\narchive = "s3//bucket/archive"', "retention.archive", "s3://bucket/archive"),
        ('[retention]\narchive = "s4://bucket/archive"', "retention.archive", "s3://"),
    ],
)
def test_bad_object_store_settings_exit_78(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, key: str, hint: str
) -> None:
    code, err = _validate(tmp_path, text, capsys)
    assert code == ExitCode.CONFIG
    lines = err.strip().splitlines()
    assert len(lines) == 1 and key in lines[0] and hint in lines[0]


def test_mistyped_lake_url_exit_78(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('lake = "s3:/ml-lake/loglake"\n')
    assert main(["validate", str(path)]) == ExitCode.CONFIG
    err = capsys.readouterr().err
    assert "lake" in err and "s3://ml-lake/loglake" in err
    assert not (Path.cwd() / "s3:").exists()


def test_chunks_keywords_ignore_case() -> None:
    assert SourceConfig(paths=["s3://b/x"], chunks="Auto").chunks == "auto"
    assert SourceConfig(paths=["s3://b/x"], chunks=" NONE ").chunks == "none"


def test_corrupt_gz_chunk_keeps_the_text_before_the_damage(
    tmp_path: Path, s3_server: S3Server, s3_bucket: str
) -> None:
    """A Fluent Bit chunk damaged in its middle: its text up to the damage is indexed, and
    the next chunk carries on (a single inflate call over the member kept nothing)."""
    import gzip

    first = b"".join(f"step={i} loss={1 / (i + 1):.5f}\n".encode() for i in range(3000))
    packed = gzip.compress(first)
    damaged = packed[: len(packed) // 2]  # truncated upload
    key = "fluent-bit-logs/pod-a/2026/01/01/12/00/train-object00000{}.gz"
    s3_server.put(s3_bucket, key.format(1), damaged)
    later = b"".join(f"step={i} loss={1 / (i + 1):.5f}\n".encode() for i in range(3000, 3010))
    s3_server.put(s3_bucket, key.format(2), gzip.compress(later))
    cfg = Config(
        lake=str(tmp_path / "lake"),
        storage_options=s3_server.storage_options,
        sources=[SourceConfig(name="fb", paths=[f"s3://{s3_bucket}/fluent-bit-logs"])],
    )
    run_index(cfg, [], finished=True)
    n, distinct = loss_rows(tmp_path / "lake")
    assert n == distinct and n > 500  # the first chunk's readable text
    con = connect(tmp_path / "lake")
    ((top,),) = con.sql("SELECT max(step) FROM metrics WHERE key = 'loss'").fetchall()
    assert top == 3009  # the chunk after the damage is read too


def test_watch_leaves_a_shrunk_object_alone(
    tmp_path: Path, s3_server: S3Server, s3_bucket: str
) -> None:
    import time

    from loglake.config import WatchConfig
    from loglake.watch.daemon import Daemon

    lake = tmp_path / "lake"
    cfg = Config(
        lake=str(lake),
        state_dir=str(tmp_path / "state"),
        storage_options=s3_server.storage_options,
        sources=[SourceConfig(name="s3", paths=[f"s3://{s3_bucket}/runs"], poll_interval="0.2s")],
        watch=WatchConfig(flush_interval="0.2s", rescan_interval="1s", idle_timeout="60s"),
    )

    def wait_rows(n: int) -> tuple[int, int]:
        deadline = time.monotonic() + 30
        got = (0, 0)
        while time.monotonic() < deadline:
            if lake.exists():
                got = loss_rows(lake)
                if got[0] >= n:
                    return got
            time.sleep(0.2)
        return got

    full = steps(0, 60)
    s3_server.put(s3_bucket, "runs/a/train.log", full)
    d = Daemon(cfg, threading.Event())
    t = threading.Thread(target=d.run, kwargs={"install_signals": False}, daemon=True)
    t.start()
    try:
        assert wait_rows(60) == (60, 60)
        s3_server.put(s3_bucket, "runs/a/train.log", full[: len(full) - 400])
        deadline = time.monotonic() + 20
        while not d.objpoll.shrunk and time.monotonic() < deadline:
            time.sleep(0.1)
        assert d.objpoll.shrunk
        time.sleep(0.6)  # more polls and flushes: still nothing doubled
        assert loss_rows(lake) == (60, 60)
        s3_server.put(s3_bucket, "runs/a/train.log", full + steps(60, 70))
        assert wait_rows(70) == (70, 70)
    finally:
        d.stop.set()
        t.join(timeout=60)
