"""The lake on S3: Delta writes, exactly-once commits, queries, and two writers at once.

deltalake commits to S3 with conditional puts (``If-None-Match: *``), which moto's server,
AWS S3, MinIO and R2 enforce: of two writers racing for one commit version one wins and the
other retries on the next version, so no commit is lost (docs/object-storage.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from loglake.config import Config
from loglake.index.runner import run_index
from loglake.lake.tables import open_table
from loglake.query.connect import connect

from .s3server import S3Server

LOGLAKE = [sys.executable, "-m", "loglake.cli"]


def write_logs(folder: Path, runs: int, tag: str) -> None:
    for r in range(runs):
        d = folder / f"{tag}-run{r}"
        d.mkdir(parents=True)
        lines = [f"epoch {i} step={i} loss={1 / (i + 1):.5f}" for i in range(40)]
        (d / "train.log").write_text(
            f"run {tag}-{r} lr=0.01 batch_size=32\n" + "\n".join(lines) + "\nDone\n"
        )


def config_file(tmp: Path, server: S3Server, lake: str, logs: Path, state: str) -> Path:
    lines = [f'lake = "{lake}"', f'state_dir = "{tmp / state}"', "[storage_options]"]
    lines += [f'{k} = "{v}"' for k, v in server.storage_options.items()]
    lines += ["[[sources]]", f'paths = ["{logs}"]']
    path = tmp / f"{state}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def cli(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LOGLAKE, args[0], "--config", str(cfg), *args[1:]],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ},
    )


def test_index_into_s3_lake_and_query(tmp_path: Path, s3_server: S3Server, s3_bucket: str) -> None:
    logs = tmp_path / "logs"
    write_logs(logs, 2, "a")
    lake = f"s3://{s3_bucket}/lake"
    cfg = config_file(tmp_path, s3_server, lake, logs, "state")
    proc = cli(cfg, "index", str(logs))
    assert proc.returncode == 0, proc.stderr
    # Delta on S3: one version per table commit, the app transaction recorded with it.
    dt = open_table(lake, "metrics", s3_server.storage_options)
    assert dt is not None and dt.version() >= 1
    assert dt.file_uris()  # live Parquet files on S3
    out = cli(cfg, "sql", "--format", "json", "SELECT count(*) AS n FROM metrics WHERE key='loss'")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[0])["n"] == 80
    runs = cli(cfg, "runs")
    assert runs.returncode == 0, runs.stderr
    assert "a-run0" in runs.stdout and "a-run1" in runs.stdout
    show = cli(cfg, "show", "a-run1/train")
    assert show.returncode == 0, show.stderr
    assert "loss" in show.stdout


def test_two_writers_one_s3_lake(tmp_path: Path, s3_server: S3Server, s3_bucket: str) -> None:
    """Two indexers (own state dirs, own logs) commit to one S3 lake at the same time."""
    lake = f"s3://{s3_bucket}/lake"
    cfgs = []
    for tag in ("a", "b"):
        logs = tmp_path / f"logs-{tag}"
        write_logs(logs, 6, tag)
        cfgs.append(config_file(tmp_path, s3_server, lake, logs, f"state-{tag}"))
    # Small flushes: many commits each, so the two race for the same versions.
    env = {**os.environ, "LOGLAKE_INDEX__FLUSH_RECORDS": "20"}
    procs = [
        subprocess.Popen(
            [*LOGLAKE, "index", "--config", str(c)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for c in cfgs
    ]
    for p in procs:
        _, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
    con = connect(lake, storage_options=s3_server.storage_options)
    rows = con.sql(
        "SELECT r.run, count(*) FROM metrics m JOIN runs r USING (run_id) "
        "WHERE m.key = 'loss' GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert rows == [(f"{t}-run{i}/train", 40) for t in ("a", "b") for i in range(6)]
    dupes = con.sql(
        'SELECT count(*) FROM (SELECT source_fp, "offset", key, count(*) c FROM metrics '
        "GROUP BY ALL HAVING c > 1)"
    ).fetchall()
    assert dupes == [(0,)]


def test_connect_reads_s3_lake_in_process(
    tmp_path: Path, s3_server: S3Server, s3_bucket: str
) -> None:
    logs = tmp_path / "logs"
    write_logs(logs, 1, "c")
    cfg = Config(lake=f"s3://{s3_bucket}/lake", storage_options=s3_server.storage_options)
    cfg.state_dir = str(tmp_path / "state")
    report = run_index(cfg, [str(logs)], finished=True)
    assert report.failures == []
    con = connect(config=cfg)
    assert con.sql("SELECT count(*) FROM metrics WHERE key = 'loss'").fetchall() == [(40,)]
    assert con.sql("SELECT status FROM runs").fetchall() == [("completed",)]
