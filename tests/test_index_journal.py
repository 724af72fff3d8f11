"""The batch indexer journals checkpoint updates per commit and writes the file whole at the end.

A crash between commits leaves the journal as the only record of what landed: the next run
must read it, neither re-adding those rows nor skipping any.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import loglake
from loglake.lake.writer import CRASH_ENV

from .conftest import CORPUS

CASES = ("keras_mlp", "xgboost_native", "crash_torch", "sklearn_mlp")
SMALL_FLUSH = {"LOGLAKE_INDEX__FLUSH_RECORDS": "40"}


def index(cwd: Path, lake: Path, *extra: str, env: dict[str, str] | None = None) -> str:
    e = {**os.environ, **(env or {})}
    e.pop("LOGLAKE_CONFIG", None)
    r = subprocess.run(
        [sys.executable, "-m", "loglake.cli", "index", "--finished", "--lake", str(lake), *extra],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=e,
        timeout=300,
        check=False,
    )
    return f"{r.returncode}\n{r.stderr}"


def metric_rows(lake: Path) -> list[tuple]:
    con = loglake.connect(str(lake))
    return con.execute(
        'SELECT source_fp, "offset", key, value FROM metrics ORDER BY ALL'
    ).fetchall()


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    for case in CASES:
        (tmp_path / "logs" / case).mkdir(parents=True)
        shutil.copy2(CORPUS / case / "stdout.log", tmp_path / "logs" / case / "stdout.log")
    return tmp_path


def test_many_commits_leave_a_whole_checkpoint_file_and_no_journal(logs: Path) -> None:
    lake = logs / "lake"
    out = index(logs, lake, "logs", env=SMALL_FLUSH)
    assert out.startswith("0\n"), out
    state = lake / "_loglake"
    doc = json.loads((state / "checkpoints.json").read_bytes())
    n = len(list((logs / "logs").iterdir()))
    assert len(doc["entries"]) == n
    assert all(e["idle_final"] and e["parsers"] for e in doc["entries"].values())
    journal = state / "checkpoints.journal"
    assert not journal.exists() or journal.stat().st_size == 0
    again = index(logs, lake, "logs")
    assert f"({n} unchanged)" in again, again


def test_crash_after_a_journaled_checkpoint_resumes_exactly_once(logs: Path) -> None:
    clean = logs / "clean"
    assert index(logs, clean, "logs", "--jobs", "1", env=SMALL_FLUSH).startswith("0\n")
    lake = logs / "lake"
    crashed = index(
        logs, lake, "logs", "--jobs", "1", env={**SMALL_FLUSH, CRASH_ENV: "after_checkpoint"}
    )
    assert not crashed.startswith("0\n"), crashed  # killed after its first commit
    journal = lake / "_loglake" / "checkpoints.journal"
    assert journal.stat().st_size > 0  # the landed commit is known only from the journal
    assert index(logs, lake, "logs", "--jobs", "1", env=SMALL_FLUSH).startswith("0\n")
    assert metric_rows(lake) == metric_rows(clean)
