"""The batch indexer from the command line, as a user runs it: real processes, real files."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import CORPUS

LOGLAKE = [sys.executable, "-m", "loglake.cli"]


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    e = {**os.environ, **(env or {})}
    e.pop("LOGLAKE_CONFIG", None)
    return subprocess.run(
        [*LOGLAKE, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=e,
        timeout=300,
        check=False,
    )


def sql(cwd: Path, query: str) -> list[dict]:
    r = run("sql", "--format", "json", query, cwd=cwd)
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


@pytest.fixture
def work(tmp_path: Path) -> Path:
    logs = tmp_path / "logs"
    for case in ("keras_mlp", "xgboost_native", "crash_torch"):
        (logs / case).mkdir(parents=True)
        shutil.copy2(CORPUS / case / "stdout.log", logs / case / "stdout.log")
    return tmp_path


def test_index_then_query_with_defaults(work: Path) -> None:
    r = run("index", "--finished", "logs", cwd=work)
    assert r.returncode == 0, r.stderr
    assert "3 run(s)" in r.stderr
    rows = sql(work, "SELECT experiment, status FROM runs ORDER BY experiment")
    assert [(x["experiment"], x["status"]) for x in rows] == [
        ("crash_torch", "failed"),
        ("keras_mlp", "completed"),
        ("xgboost_native", "completed"),
    ]


def test_rerun_adds_nothing_and_growth_is_read_from_where_it_stopped(work: Path) -> None:
    assert run("index", "logs", cwd=work).returncode == 0
    count = sql(work, "SELECT count(*) n FROM metrics")[0]["n"]
    assert count > 0
    r = run("index", "logs", cwd=work)
    assert r.returncode == 0
    assert sql(work, "SELECT count(*) n FROM metrics")[0]["n"] == count
    with open(work / "logs" / "xgboost_native" / "stdout.log", "a") as f:
        f.write("[30]\ttrain-logloss:0.07000\tvalid-logloss:0.09900\n")
    assert run("index", "logs", cwd=work).returncode == 0
    after = sql(
        work,
        "SELECT key, value, step FROM metrics JOIN runs USING (run_id) "
        "WHERE step = 30 AND experiment = 'xgboost_native' ORDER BY key",
    )
    assert [(x["key"], x["value"]) for x in after] == [
        ("train-logloss", 0.07),
        ("valid-logloss", 0.099),
    ]
    assert sql(work, "SELECT count(*) n FROM metrics")[0]["n"] == count + 2


def test_gzip_and_globs(work: Path) -> None:
    src = CORPUS / "sklearn_mlp" / "stdout.log"
    (work / "gz").mkdir()
    with gzip.open(work / "gz" / "sklearn.log.gz", "wb") as f:
        f.write(src.read_bytes())
    r = run("index", "--finished", "gz/*.gz", cwd=work)
    assert r.returncode == 0, r.stderr
    rows = sql(work, "SELECT count(*) n FROM metrics WHERE key = 'loss'")
    assert rows[0]["n"] == 25


def test_bad_inputs_name_the_file_and_the_rest_goes_on(work: Path) -> None:
    bad = work / "logs" / "bad"
    bad.mkdir()
    (bad / "empty.log").write_bytes(b"")
    (bad / "garbage.log").write_bytes(os.urandom(64 * 1024))
    (bad / "latin1.log").write_bytes("epoch 1 loss=0.5 caf\xe9\n".encode("latin-1"))
    with open(bad / "long.log", "wb") as f:
        f.write(b"epoch 1 loss=0.25\n")
        f.write(b"x" * (50 * 1024 * 1024))
        f.write(b"\nepoch 2 loss=0.125\n")
    unreadable = bad / "secret.log"
    unreadable.write_text("loss=1\n")
    unreadable.chmod(0)
    r = run("index", "--finished", "logs", "does/not/exist.log", cwd=work)
    assert r.returncode == 1, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("loglake: error:")]
    assert any("does/not/exist.log" in ln and "no such file" in ln for ln in errors), errors
    assert any("garbage.log" in ln for ln in errors), errors
    if os.geteuid() != 0:  # root reads anything
        assert any("secret.log" in ln for ln in errors), errors
    # The good files were indexed all the same.
    assert {x["experiment"] for x in sql(work, "SELECT experiment FROM runs")} >= {
        "keras_mlp",
        "xgboost_native",
        "crash_torch",
    }
    losses = sql(
        work,
        "SELECT m.value, m.epoch FROM metrics m JOIN runs r USING (run_id) "
        "WHERE r.run = 'bad/long' ORDER BY m.offset",
    )
    assert [x["value"] for x in losses] == [0.25, 0.125]
    gaps = sql(work, "SELECT kind, source_path FROM gaps")
    assert any(g["kind"] == "long_line" and g["source_path"].endswith("long.log") for g in gaps)
    assert any(
        g["kind"] == "invalid_utf8" and g["source_path"].endswith("latin1.log") for g in gaps
    )


def test_validate_exits_78_naming_key_and_fix(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('lake = "./lake"\n[index]\njobz = 3\n')
    r = run("validate", str(cfg), cwd=tmp_path)
    assert r.returncode == 78
    assert "index.jobz" in r.stderr and "remove it" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    good = tmp_path / "good.toml"
    good.write_text('lake = "./lake"\n[index]\njobs = 3\n')
    assert run("validate", str(good), cwd=tmp_path).returncode == 0


def test_env_override_and_sql_formats(work: Path) -> None:
    env = {"LOGLAKE_LAKE": str(work / "other-lake")}
    assert run("index", "--finished", "logs", cwd=work, env=env).returncode == 0
    assert (work / "other-lake" / "metrics").is_dir()
    assert not (work / "lake").exists()
    csv = run("sql", "-f", "csv", "SELECT count(*) AS n FROM runs", cwd=work, env=env)
    assert csv.returncode == 0 and csv.stdout.splitlines() == ["n", "3"]
    out = work / "runs.parquet"
    pq = run("sql", "-f", "parquet", "-o", str(out), "SELECT * FROM runs", cwd=work, env=env)
    assert pq.returncode == 0, pq.stderr
    import pyarrow.parquet as pq_mod

    assert pq_mod.read_table(out).num_rows == 3
    bad = run("sql", "SELECT * FROM nope", cwd=work, env=env)
    assert bad.returncode != 0 and "nope" in bad.stderr


def test_parallel_jobs_give_the_same_rows(work: Path, tmp_path: Path) -> None:
    many = work / "many"
    for i in range(12):
        d = many / f"job{i:02d}"
        d.mkdir(parents=True)
        shutil.copy2(CORPUS / "xgboost_native" / "stdout.log", d / "stdout.log")
    env = {"LOGLAKE_INDEX__JOBS": "2"}
    r = run("index", "--finished", "--jobs", "2", "many", cwd=work, env=env)
    assert r.returncode == 0, r.stderr
    rows = sql(work, "SELECT count(DISTINCT run_id) runs, count(*) n FROM metrics")
    assert rows[0]["runs"] == 12
    assert rows[0]["n"] == 12 * 181  # 30 rounds × 6 metrics + the final accuracy


def _long_log(path: Path, seed: int) -> None:
    """A log whose one chunk holds MBs of rows: a parallel run hands it over through the
    spool (``index.handoff``) rather than pickled through the queue."""
    path.parent.mkdir(parents=True)
    path.write_text(
        "".join(
            f"epoch {i // 100} step {i} loss={1 / (i + seed):.6f} accuracy={i / 6000:.4f} lr=0.001\n"
            for i in range(6000)
        )
    )


def test_parallel_handoff_of_large_chunks_commits_the_serial_rows(tmp_path: Path) -> None:
    lakes = {}
    for jobs in ("1", "2"):
        work = tmp_path / f"j{jobs}"
        for i in range(3):
            _long_log(work / "logs" / f"job{i}" / "stdout.log", seed=i + 1)
        r = run("index", "--finished", "--jobs", jobs, "logs", cwd=work)
        assert r.returncode == 0, r.stderr
        lakes[jobs] = sql(
            work,
            'SELECT run_id, key, value, step, "offset", parser FROM metrics '
            'ORDER BY run_id, "offset", key',
        )
    assert len(lakes["1"]) == 3 * 6000 * 3
    assert lakes["2"] == lakes["1"]
