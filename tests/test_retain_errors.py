"""Retention when things go wrong: the archive unreachable, missing or not writable, a source
store down, a corrupt ``.gz`` log, bad settings. Each gives one line naming the place and the
fix, a meaningful exit code, and loses nothing (the next run archives everything).
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import shutil
import time
from pathlib import Path

import pytest

from loglake.cli import main
from loglake.config import load_config
from loglake.errors import ConfigError, ExitCode
from loglake.index.runner import run_index
from loglake.query.connect import connect
from loglake.retain.job import archive_store, run_retention
from loglake.retain.worklist import UNAVAILABLE

from .s3server import S3Server, free_port

CORPUS = Path(__file__).parent / "corpus"
HOUR = 3600.0


def toml_value(v: object) -> str:
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {json.dumps(x)}" for k, x in v.items()) + " }"
    return json.dumps(v)


def setup_logs(
    tmp: Path, retention: dict[str, object], storage: dict[str, str] | None = None
) -> Path:
    """Two finished corpus logs, indexed; returns the config path."""
    logs = tmp / "logs"
    logs.mkdir()
    for case in ("keras_mlp", "hf_trainer_gpt2_notqdm"):
        shutil.copy(CORPUS / case / "stdout.log", logs / f"{case}.log")
    lines = [f'lake = "{tmp / "lake"}"', f'state_dir = "{tmp / "state"}"']
    if storage:
        lines.append("[storage_options]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in storage.items()]
    lines += ["[[sources]]", f'paths = ["{logs}"]', "[retention]"]
    lines += [f"{k} = {toml_value(v)}" for k, v in retention.items()]
    path = tmp / "loglake.toml"
    path.write_text("\n".join(lines) + "\n")
    run_index(load_config(path), [])
    old = time.time() - 2 * HOUR
    for f in logs.iterdir():
        os.utime(f, (old, old))
    return path


def retain(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["retain", "-c", str(path)])
    out, err = capsys.readouterr()
    return code, out, err


def archived_rows(tmp: Path) -> int:
    ((n,),) = (
        connect(tmp / "lake").sql("SELECT count(*) FROM logs WHERE state = 'archived'").fetchall()
    )
    return int(n)


def assert_one_error(err: str, *words: str) -> str:
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("loglake: error:")]
    assert len(errors) == 1, err
    for w in words:
        assert w in errors[0], errors[0]
    return errors[0]


def test_unreachable_archive_is_one_line_and_nothing_is_lost(
    tmp_path: Path, s3_server: S3Server, capsys: pytest.CaptureFixture[str]
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    bucket = s3_server.make_bucket("arch")
    options = {**s3_server.storage_options, "AWS_ENDPOINT_URL": dead}
    path = setup_logs(tmp_path, {"archive": f"s3://{bucket}/logs", "storage_options": options})
    code, out, err = retain(path, capsys)
    assert code == ExitCode.PARTIAL
    assert_one_error(err, f"archive s3://{bucket}/logs", "cannot reach", dead, "AWS_ENDPOINT_URL")
    assert "not reached" in out and "archived v1" not in out

    # The store is back: the next run archives every log.
    text = path.read_text().replace(dead, s3_server.endpoint)
    path.write_text(text)
    code, out, err = retain(path, capsys)
    assert code == ExitCode.OK, err
    assert out.count("archived v1") == 2
    assert archived_rows(tmp_path) == 2


def test_missing_archive_bucket_is_named_and_not_created(
    tmp_path: Path, s3_server: S3Server, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket = f"missing-{free_port()}"
    path = setup_logs(
        tmp_path,
        {"archive": f"s3://{bucket}/logs", "storage_options": s3_server.storage_options},
    )
    code, _, err = retain(path, capsys)
    assert code == ExitCode.PARTIAL
    assert_one_error(err, f"the bucket '{bucket}' does not exist", "[retention] archive")
    names = [b["Name"] for b in s3_server.client().list_buckets()["Buckets"]]
    assert bucket not in names  # s3fs's makedirs would have created it


def test_archive_that_is_not_writable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    path = setup_logs(tmp_path, {"archive": str(blocker / "archive")})
    code, _, err = retain(path, capsys)
    assert code == ExitCode.PARTIAL
    assert_one_error(err, str(blocker / "archive"), "writable")
    assert not list(tmp_path.glob("**/*.tmp-*"))


def test_unreachable_source_store_is_unavailable_not_lost(
    tmp_path: Path, s3_server: S3Server, s3_bucket: str
) -> None:
    for case in ("keras_mlp", "hf_trainer_gpt2_notqdm"):
        data = (CORPUS / case / "stdout.log").read_bytes()
        s3_server.put(s3_bucket, f"runs/{case}/train.log", data)
    lines = [
        f'lake = "{tmp_path / "lake"}"',
        f'state_dir = "{tmp_path / "state"}"',
        "[storage_options]",
        *(f"{k} = {json.dumps(v)}" for k, v in s3_server.storage_options.items()),
        "[[sources]]",
        f'paths = ["s3://{s3_bucket}/runs"]',
    ]
    path = tmp_path / "loglake.toml"
    path.write_text("\n".join(lines) + "\n")
    assert run_index(load_config(path), []).failures == []

    dead = f"http://127.0.0.1:{free_port()}"
    path.write_text(path.read_text() + f'storage_options = {{ AWS_ENDPOINT_URL = "{dead}" }}\n')
    started = time.monotonic()
    report = run_retention(load_config(path))
    assert time.monotonic() - started < 20  # one timeout per store, not one per object
    assert [d.action for d in report.decisions] == [UNAVAILABLE, UNAVAILABLE]
    assert report.lost == [] and report.failures == []
    assert all("cannot reach the object store" in d.reason for d in report.decisions)


def test_corrupt_gz_log_keeps_the_text_before_the_damage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    path = setup_logs(tmp_path, {"idle_after": "1h"})
    text = (CORPUS / "keras_mlp" / "stdout.log").read_bytes() * 40
    packed = gzip.compress(text)
    bad = tmp_path / "logs" / "old.log.gz"
    bad.write_bytes(packed[: len(packed) // 2])
    run_index(load_config(path), [])
    old = time.time() - 2 * HOUR
    os.utime(bad, (old, old))

    with caplog.at_level(logging.WARNING):
        code, _, err = retain(path, capsys)
    assert code == ExitCode.OK, err
    assert "Traceback" not in err
    assert any("old.log.gz" in r.getMessage() for r in caplog.records)
    cfg = load_config(path)
    ((uri, detail),) = (
        connect(tmp_path / "lake")
        .sql("SELECT archive_uri, detail FROM logs WHERE source_path LIKE '%old.log.gz'")
        .fetchall()
    )
    kept = archive_store(cfg).read_text(uri)
    assert len(kept) > 10_000 and text.startswith(kept)  # GzipFile kept nothing
    assert "corrupt or truncated" in detail


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"expire_after": "2d", "safety_margin": "3d"}, ["safety_margin", "expire_after"]),
        ({"archive": "s3//ml-archive/logs"}, ["retention.archive", "s3://ml-archive/logs"]),
        ({"expire_after": "21 days"}, ["retention.expire_after", "21d"]),
    ],
)
def test_bad_retention_settings_exit_78(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], settings: dict[str, str], words: list[str]
) -> None:
    path = tmp_path / "bad.toml"
    body = "\n".join(f"{k} = {json.dumps(v)}" for k, v in settings.items())
    path.write_text(f'lake = "{tmp_path / "lake"}"\n[retention]\n{body}\n')
    with pytest.raises(ConfigError):
        load_config(path)
    assert main(["validate", str(path)]) == ExitCode.CONFIG
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and all(w in err[0] for w in words), err


def test_unreachable_or_missing_lake_fails_fast_in_one_line(
    tmp_path: Path,
    s3_server: S3Server,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    options = {**s3_server.storage_options, "AWS_ENDPOINT_URL": dead}
    lines = [
        'lake = "s3://some-lake/loglake"',
        f'state_dir = "{tmp_path / "state"}"',
        "[storage_options]",
        *(f"{k} = {json.dumps(v)}" for k, v in options.items()),
    ]
    path = tmp_path / "loglake.toml"
    path.write_text("\n".join(lines) + "\n")
    started = time.monotonic()
    assert main(["retain", "-c", str(path)]) == ExitCode.PARTIAL
    assert_one_error(capsys.readouterr().err, "the lake s3://some-lake/loglake", dead)
    with caplog.at_level(logging.WARNING):
        assert main(["housekeep", "-c", str(path)]) == ExitCode.PARTIAL
    assert "Traceback" not in capsys.readouterr().err
    said = [r.getMessage() for r in caplog.records if "the lake s3://some-lake" in r.getMessage()]
    assert len(said) == 1 and "cannot reach the object store" in said[0]
    assert time.monotonic() - started < 30  # not a dozen tables' worth of retries

    path.write_text(path.read_text().replace(dead, s3_server.endpoint))
    assert main(["retain", "--dry-run", "-c", str(path)]) == ExitCode.PARTIAL
    assert_one_error(capsys.readouterr().err, "the bucket 'some-lake' does not exist", "lake")
