"""`loglake status` lists the logs the cluster deletes soon that are not archived yet:
most urgent first, capped, with whether an earlier version is archived; on a simulated clock
over real logs, a real index, a real retention run and a real lake."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

import pytest

from loglake.config import load_config
from loglake.index.runner import run_index
from loglake.retain.job import run_retention
from loglake.watch.status import EXPIRING_SHOWN, expiring_logs, status_command, write_status

DAY = 86400.0


def write_config(tmp: Path, **retention: str | bool) -> Path:
    settings: dict[str, str | bool] = {
        "expire_after": "21d",
        "safety_margin": "2d",
        "idle_after": "100000d",  # nothing counts as finished: only the deadline archives
        **retention,
    }
    lines = [
        f'lake = "{tmp / "lake"}"',
        f'state_dir = "{tmp / "state"}"',
        "[index]",
        'job_end_timeout = "100000d"',  # the indexer's real clock never finalizes a log
        "jobs = 1",
        "[retention]",
        *(f"{k} = {json.dumps(v)}" for k, v in settings.items()),
        "[[sources]]",
        f'paths = ["{tmp / "logs"}"]',
        'include = ["*.log"]',
    ]
    (tmp / "logs").mkdir(exist_ok=True)
    path = tmp / "loglake.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def log(tmp: Path, name: str, mtime: float, steps: int = 3) -> Path:
    path = tmp / "logs" / name / "train.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:  # the name first: files are known by their first bytes
        fh.write(
            f"job {name}\n" + "".join(f"step {i} loss={1.0 / i:.3f}\n" for i in range(1, steps + 1))
        )
    os.utime(path, (mtime, mtime))
    return path


def daemon_status(tmp: Path, now: float) -> None:
    """The status file a running daemon keeps fresh."""
    (tmp / "state").mkdir(exist_ok=True)
    write_status(
        tmp / "state",
        {
            "state": "running",
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": now - 60,
            "heartbeat": now,
            "lake": str(tmp / "lake"),
            "state_dir": str(tmp / "state"),
            "sources": [],
            "workers": {},
        },
    )


@pytest.fixture
def cluster(tmp_path: Path) -> tuple[Path, float]:
    """13 logs expiring within 3 days (one archived once, then grown) and 2 that do not."""
    cfg = load_config(write_config(tmp_path))
    now = float(int(time.time() - 60 * DAY))  # the lake stamps rows with the real clock
    grown = log(tmp_path, "grown", now - 20 * DAY)  # past its deadline: archived now
    assert not run_index(cfg, [], jobs=1).failures
    assert len(run_retention(cfg, clock=lambda: now).archived) == 1
    log(tmp_path, "grown", now - 19.5 * DAY)  # then written again: expires in 1.5 d
    assert grown.stat().st_size > 0
    for i in range(12):
        log(tmp_path, f"job{i:02d}", now - (18.0 + 0.1 * i) * DAY)  # expires in 3 d - i/10
    log(tmp_path, "fresh", now - 1 * DAY)
    log(tmp_path, "week", now - 10 * DAY)
    assert not run_index(cfg, [], jobs=1).failures
    daemon_status(tmp_path, now)
    return tmp_path, now


def test_status_lists_the_most_urgent_unarchived_logs_then_counts_the_rest(
    cluster: tuple[Path, float], capsys: pytest.CaptureFixture[str]
) -> None:
    tmp, now = cluster
    cfg = load_config(tmp / "loglake.toml")
    assert status_command(cfg, expiring="3d", clock=lambda: now) == 0
    out = capsys.readouterr().out
    section = out[out.index("expiring within 3d") :].splitlines()
    assert section[0] == "expiring within 3d: 13 log(s) not fully archived"
    rows = section[1 : 1 + EXPIRING_SHOWN]
    assert "partly archived" in rows[0] and "/grown/train.log" in rows[0]
    assert "in 36h" in rows[0]
    assert [r.split("/")[-2] for r in rows[1:]] == [f"job{i:02d}" for i in range(11, 2, -1)]
    assert all("not archived" in r for r in rows[1:])
    assert section[1 + EXPIRING_SHOWN].startswith("  +3 more")
    assert "fresh" not in out and "week" not in out

    assert status_command(cfg, as_json=True, expiring="3d", clock=lambda: now) == 0
    doc = json.loads(capsys.readouterr().out)
    exp = doc["expiring"]
    assert (exp["total"], exp["more"], len(exp["logs"])) == (13, 3, EXPIRING_SHOWN)
    at = [x["expires_at"] for x in exp["logs"]]
    assert at == sorted(at) and at[0] == pytest.approx(now + 1.5 * DAY, abs=1)
    first = exp["logs"][0]
    assert first["archived"] and 0 < first["archived_bytes"] < first["bytes"]
    assert not any(x["archived"] for x in exp["logs"][1:])

    # A shorter horizon lists fewer; 0 leaves the list out.
    assert expiring_logs(cfg, "47h", clock=lambda: now)["total"] == 2  # grown, job11
    assert status_command(cfg, as_json=True, expiring="0", clock=lambda: now) == 0
    assert "expiring" not in json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("retention", [{"enabled": False}, {"expire_after": "0"}])
def test_nothing_is_looked_up_when_no_log_can_expire(
    tmp_path: Path, retention: dict[str, str | bool], capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = load_config(write_config(tmp_path, **retention))
    now = time.time()
    log(tmp_path, "old", now - 20 * DAY)
    assert not run_index(cfg, [], jobs=1).failures
    daemon_status(tmp_path, now)
    assert expiring_logs(cfg, "3d") is None
    assert status_command(cfg, expiring="3d") == 0
    assert "expiring" not in capsys.readouterr().out


def test_check_stays_a_cheap_probe(
    cluster: tuple[Path, float], capsys: pytest.CaptureFixture[str]
) -> None:
    """One line and an exit code: the probe runs every few seconds, the list is not built."""
    tmp, now = cluster
    cfg = load_config(tmp / "loglake.toml")
    with open(tmp / "state" / "lock", "w") as lock:  # held as the daemon holds it
        fcntl.flock(lock, fcntl.LOCK_EX)
        assert status_command(cfg, check=True, expiring="3d", clock=lambda: now) == 0
    assert capsys.readouterr().out == "loglake watch: healthy\n"
