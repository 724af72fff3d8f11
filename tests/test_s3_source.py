"""`loglake index` from S3: plain and gzip objects, appends, chunked shipper streams, errors.

Against a real S3 server on loopback (moto's server mode, see tests/s3server.py); the lake is
local here (tests/test_s3_lake.py puts it on S3 too).
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import pytest

from loglake.config import Config, SourceConfig
from loglake.index.runner import run_index
from loglake.objstore.chunks import auto_stream, group
from loglake.objstore.listing import ObjectInfo
from loglake.query.connect import connect

from .s3server import S3Server, free_port


def steps(name: str, start: int, stop: int) -> bytes:
    """Numbered metric lines: each step must land in the lake exactly once."""
    return b"".join(
        f"{name} step={i} loss={1 / (i + 1):.5f}\n".encode() for i in range(start, stop)
    )


def config(tmp_path: Path, server: S3Server, **source: object) -> Config:
    src = SourceConfig(**{"name": "s3", "paths": [], **source}) if source else None
    return Config(
        lake=str(tmp_path / "lake"),
        storage_options=server.storage_options,
        sources=[src] if src else [SourceConfig()],
    )


def loss_points(lake: Path) -> list[tuple[str, int]]:
    con = connect(lake)
    return con.sql(
        "SELECT r.run, m.step FROM metrics m JOIN runs r USING (run_id) "
        "WHERE m.key = 'loss' ORDER BY 1, 2"
    ).fetchall()


def test_plain_and_gzip_objects(tmp_path: Path, s3_server: S3Server, s3_bucket: str) -> None:
    s3_server.put(s3_bucket, "team/run-a/train.log", steps("a", 0, 50))
    s3_server.put(s3_bucket, "team/run-b/train.log.gz", gzip.compress(steps("b", 0, 40)))
    s3_server.put(s3_bucket, "team/run-b/.hidden.log", b"not me\n")
    s3_server.put(s3_bucket, "team/run-b/model.bin", b"\x00\x01")
    cfg = config(tmp_path, s3_server)
    report = run_index(cfg, [f"s3://{s3_bucket}/team"], finished=True)
    assert report.failures == []
    assert report.files_indexed == 2
    points = loss_points(tmp_path / "lake")
    assert [p for p in points if p[0] == "run-a/train"] == [("run-a/train", i) for i in range(50)]
    assert [p for p in points if p[0] == "run-b/train"] == [("run-b/train", i) for i in range(40)]
    sources = connect(tmp_path / "lake").sql("SELECT DISTINCT source_path FROM runs_log").fetchall()
    assert sorted(s for (s,) in sources) == [
        f"s3://{s3_bucket}/team/run-a/train.log",
        f"s3://{s3_bucket}/team/run-b/train.log.gz",
    ]
    again = run_index(cfg, [f"s3://{s3_bucket}/team"], finished=True)
    assert (again.files_indexed, again.files_unchanged) == (0, 2)
    assert len(loss_points(tmp_path / "lake")) == 90


def test_append_reads_only_new_bytes(tmp_path: Path, s3_server: S3Server, s3_bucket: str) -> None:
    """A key that reappears larger with the same first bytes is the same log, grown."""
    first = steps("a", 0, 30)
    s3_server.put(s3_bucket, "run-a/train.log", first)
    cfg = config(tmp_path, s3_server)
    url = f"s3://{s3_bucket}/"
    assert run_index(cfg, [url]).failures == []
    more = steps("a", 30, 45)
    s3_server.put(s3_bucket, "run-a/train.log", first + more)
    report = run_index(cfg, [url], finished=True)
    assert report.files_indexed == 1
    assert report.bytes == len(more)  # a ranged read from the saved offset
    assert loss_points(tmp_path / "lake") == [("run-a/train", i) for i in range(45)]
    fps = connect(tmp_path / "lake").sql("SELECT count(DISTINCT source_fp) FROM metrics")
    assert fps.fetchall() == [(1,)]


def test_rewritten_object_is_a_new_log(tmp_path: Path, s3_server: S3Server, s3_bucket: str) -> None:
    """Other first bytes under the same key: a new file, read from 0 under a new identity."""
    s3_server.put(s3_bucket, "run-a/train.log", steps("a", 0, 10))
    cfg = config(tmp_path, s3_server)
    run_index(cfg, [f"s3://{s3_bucket}/"], finished=True)
    s3_server.put(s3_bucket, "run-a/train.log", b"restarted\n" + steps("a", 0, 12))
    report = run_index(cfg, [f"s3://{s3_bucket}/"], finished=True)
    assert report.files_indexed == 1
    con = connect(tmp_path / "lake")
    per_fp = con.sql(
        "SELECT count(*) FROM metrics WHERE key = 'loss' GROUP BY source_fp ORDER BY 1"
    ).fetchall()
    assert per_fp == [(10,), (12,)]


def fluent_bit_key(tag: str, minute: int, seq: int) -> str:
    return f"fluent-bit-logs/{tag}/2026/01/01/12/{minute:02d}/train-object{seq:06d}.gz"


def test_fluent_bit_chunks_are_one_stream(
    tmp_path: Path, s3_server: S3Server, s3_bucket: str
) -> None:
    """Chunks in key (time) order make one log; new chunks later are an append."""
    # Uploaded out of order: the key order, not the upload order, is the stream's.
    for seq in (2, 0, 1):
        s3_server.put(
            s3_bucket,
            fluent_bit_key("pod-a", seq, seq),
            gzip.compress(steps("a", seq * 10, seq * 10 + 10)),
        )
    s3_server.put(s3_bucket, fluent_bit_key("pod-b", 0, 0), gzip.compress(steps("b", 0, 5)))
    cfg = config(tmp_path, s3_server)
    url = f"s3://{s3_bucket}/fluent-bit-logs"
    report = run_index(cfg, [url])
    assert report.failures == []
    assert report.files_indexed == 2  # two streams, not four objects
    for seq in (3, 4):
        s3_server.put(
            s3_bucket,
            fluent_bit_key("pod-a", seq, seq),
            gzip.compress(steps("a", seq * 10, seq * 10 + 10)),
        )
    report = run_index(cfg, [url], finished=True)
    assert report.failures == []
    points = loss_points(tmp_path / "lake")
    assert [p for p in points if p[0] == "pod-a/train"] == [("pod-a/train", i) for i in range(50)]
    assert [p for p in points if p[0] == "pod-b/train"] == [("pod-b/train", i) for i in range(5)]
    con = connect(tmp_path / "lake")
    offsets = con.sql(
        'SELECT "offset" FROM metrics m JOIN runs r USING (run_id) '
        "WHERE r.run = 'pod-a/train' AND key = 'loss' ORDER BY step"
    ).fetchall()
    assert [o for (o,) in offsets] == sorted(o for (o,) in offsets)  # one offset space


def test_vector_chunks_with_a_regex(tmp_path: Path, s3_server: S3Server, s3_bucket: str) -> None:
    """`chunks` names the stream explicitly; the source template then names the run."""
    uuids = ["0f8e7a1c-1111-4222-8333-444455556666", "9a8b7c6d-1111-4222-8333-444455556666"]
    for i, (epoch, uid) in enumerate(zip((1700000000, 1700000060), uuids, strict=True)):
        key = f"vector/job=exp1-run7/date=2026-01-01/{epoch}-{uid}.log.gz"
        s3_server.put(s3_bucket, key, gzip.compress(steps("v", i * 20, i * 20 + 20)))
    cfg = config(
        tmp_path,
        s3_server,
        paths=[f"s3://{s3_bucket}/vector"],
        chunks=r"job=(?P<stream>[^/]+)/date=[^/]+/\d+-[0-9a-f-]+\.log\.gz",
        template="{experiment}-{run}",
    )
    report = run_index(cfg, [], finished=True)
    assert report.failures == []
    assert report.files_indexed == 1
    con = connect(tmp_path / "lake")
    assert con.sql("SELECT experiment, run FROM runs").fetchall() == [("exp1", "run7")]
    assert con.sql("SELECT count(*) FROM metrics WHERE key = 'loss'").fetchall() == [(40,)]


def obj(key: str) -> ObjectInfo:
    return ObjectInfo(f"s3://b/{key}", 10, "e", 0.0)


def test_auto_grouping_keeps_plain_files_apart() -> None:
    assert auto_stream("team/run-3/rank0.log") is None
    assert auto_stream("fb/pod-a/2026/01/01/12/00/x-object000001.gz") == "fb/pod-a/x"
    assert auto_stream(
        "v/date=2026-01-01/1700000000-0f8e7a1c-1111-4222-8333-444455556666.log.gz"
    ) == ("v/stream.log")
    streams = group(
        [
            obj("r/rank0.log"),
            obj("r/rank1.log"),
            obj("p/2026/01/01/a-object2.gz"),
            obj("p/2026/01/02/a-object10.gz"),
        ],
        "s3://b",
        "auto",
    )
    assert [(s.path, s.chunked, len(s.objects)) for s in streams] == [
        ("s3://b/p/a", True, 2),
        ("s3://b/r/rank0.log", False, 1),
        ("s3://b/r/rank1.log", False, 1),
    ]
    assert [o.url for o in streams[0].objects][-1].endswith("a-object10.gz")  # natural order
    assert len(group([obj("p/2026/01/01/a-object2.gz")], "s3://b", "none")) == 1


def test_missing_bucket_is_one_line(tmp_path: Path, s3_server: S3Server) -> None:
    cfg = config(tmp_path, s3_server)
    report = run_index(cfg, ["s3://no-such-bucket-loglake/x"], finished=True)
    assert len(report.failures) == 1
    assert "s3://no-such-bucket-loglake/x" in report.failures[0]
    assert "bucket does not exist" in report.failures[0]


def test_unreachable_store_names_url_and_fix(tmp_path: Path, s3_server: S3Server) -> None:
    """The CLI says which URL, that the endpoint is unreachable and what to check — one line."""
    dead = f"http://127.0.0.1:{free_port()}"
    (tmp_path / "loglake.toml").write_text(
        f'lake = "{tmp_path / "lake"}"\n'
        "[storage_options]\n"
        f'AWS_ENDPOINT_URL = "{dead}"\n'
        'AWS_REGION = "us-east-1"\n'
        "[index]\n"
        'object_retry = "1s"\n'
    )
    env = {"LOGLAKE_CONFIG": str(tmp_path / "loglake.toml")}
    proc = subprocess.run(
        [sys.executable, "-m", "loglake.cli", "index", "s3://some-bucket/logs"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **env},
        cwd=tmp_path,
    )
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("loglake: error")]
    assert len(errors) == 1, proc.stderr
    assert "s3://some-bucket/logs" in errors[0]
    assert dead in errors[0]
    assert "AWS_ENDPOINT_URL" in errors[0]


@pytest.mark.parametrize("pattern", ["s3://{b}/g/*/train.log", "s3://{b}/g/**.log"])
def test_globs(tmp_path: Path, s3_server: S3Server, s3_bucket: str, pattern: str) -> None:
    s3_server.put(s3_bucket, "g/r1/train.log", steps("a", 0, 3))
    s3_server.put(s3_bucket, "g/r2/train.log", steps("a", 0, 4))
    s3_server.put(s3_bucket, "g/r2/eval.txt", steps("a", 0, 5))
    report = run_index(config(tmp_path, s3_server), [pattern.format(b=s3_bucket)], finished=True)
    assert report.failures == []
    assert report.files_indexed == 2
