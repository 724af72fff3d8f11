"""Exactly once across kills, with real processes (Dagster's crash flags, Vector's soak tests).

A writer process appends numbered lines to many log files, splits lines across writes,
rotates files by rename (writing on into the renamed file for a moment) and by copy and
truncate, to rotated names outside the include patterns. Meanwhile the daemon is SIGKILLed
at random moments and made to kill itself at each named point of the commit path
(``LOGLAKE_CRASH_AT``), and restarted every time. At the end the lake holds every line
exactly once.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from loglake.watch.status import read_status

from .watch_support import (
    LOGLAKE,
    env_without_crash,
    expected,
    lake_counts,
    lake_rows,
    write_config,
)

WRITER = r"""
import json, os, random, shutil, sys, time

logs, nfiles, seconds, seed, out, stop = sys.argv[1:7]
nfiles, seconds = int(nfiles), float(seconds)
rng = random.Random(int(seed))
ROTATE_GAP = 5.0  # a file is rotated at most this often (each generation gets seen first)

def path(f):
    return os.path.join(logs, f"job{f}.log")

def lines(f, first, count):
    return "".join(f"f={f} n={n}\n" for n in range(first, first + count)).encode()

flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
fds = {f: os.open(path(f), flags) for f in range(nfiles)}
last = {f: 0 for f in range(nfiles)}
rest = {}
rotated_at = {f: time.monotonic() for f in range(nfiles)}
serial = 0
deadline = time.monotonic() + seconds
while time.monotonic() < deadline and not os.path.exists(stop):
    f = rng.randrange(nfiles)
    fd = fds[f]
    if f in rest:
        os.write(fd, rest.pop(f).encode())
        last[f] += 1
    k = rng.randint(1, 20)
    os.write(fd, lines(f, last[f] + 1, k))
    last[f] += k
    r = rng.random()
    now = time.monotonic()
    if r < 0.06:
        os.write(fd, f"f={f} n=".encode())  # the rest comes later, maybe after a kill
        rest[f] = f"{last[f] + 1}\n"
    elif r < 0.10 and now - rotated_at[f] > ROTATE_GAP:
        serial += 1
        if rng.random() < 0.5:
            os.rename(path(f), f"{path(f)}.{serial}")
            k = rng.randint(1, 5)  # the writer has not reopened yet
            os.write(fd, lines(f, last[f] + 1, k))
            last[f] += k
            os.close(fd)
            fds[f] = os.open(path(f), flags)
        else:
            shutil.copyfile(path(f), f"{path(f)}.{serial}")
            os.ftruncate(fd, 0)
        rotated_at[f] = now
    time.sleep(rng.uniform(0, 0.01))
for f, text in rest.items():
    os.write(fds[f], text.encode())
    last[f] += 1
with open(out, "w") as fh:
    json.dump(last, fh)
"""

CRASH_POINTS = [
    "before_spool_rename",
    "after_spool",
    "after_table:metrics",  # the Parquet file is written and committed, the others not yet
    "after_table:runs",
    "after_commit",  # every table committed, the checkpoint not yet moved
    "after_checkpoint",
]


class Daemon:
    def __init__(self, config: Path, state: Path) -> None:
        self.config, self.state = config, state
        self.proc: subprocess.Popen[str] | None = None

    def start(self, crash_at: str | None = None) -> None:
        env = env_without_crash()
        if crash_at:
            env["LOGLAKE_CRASH_AT"] = crash_at
        self.proc = subprocess.Popen(
            [*LOGLAKE, "watch", "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )

    def flushed(self, timeout: float = 30.0) -> None:
        """Wait until this process has committed at least once."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            doc = read_status(self.state) or {}
            if doc.get("pid") == self.proc.pid and doc.get("counters", {}).get("flushes"):
                return
            assert self.proc.poll() is None, self.stderr()
            time.sleep(0.05)
        raise AssertionError("the daemon did not flush")

    def stderr(self) -> str:
        return self.proc.stderr.read() if self.proc and self.proc.stderr else ""

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)


@pytest.mark.slow
def test_every_line_exactly_once_across_kills_and_rotations(tmp_path: Path) -> None:
    config = write_config(tmp_path, watch={"idle_timeout": "2s"})
    logs, lake, state = tmp_path / "logs", tmp_path / "lake", tmp_path / "state"
    rng = random.Random(20240607)
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    out, stop = tmp_path / "written.json", tmp_path / "stop"
    daemon = Daemon(config, state)
    daemon.start()
    writer = subprocess.Popen(
        [sys.executable, str(script), str(logs), "16", "120", "7", str(out), str(stop)]
    )
    try:
        daemon.flushed()
        plan = CRASH_POINTS + [None] * 6
        rng.shuffle(plan)
        for point in plan:
            if point is None:
                time.sleep(rng.uniform(0.2, 1.5))
                daemon.kill()  # SIGKILL at a random moment
            else:
                daemon.kill()
                daemon.start(crash_at=point)
                rc = daemon.wait(30)
                assert rc == -signal.SIGKILL, f"{point}: exit {rc} {daemon.stderr()}"
            daemon.start()
            daemon.flushed()
        stop.touch()
        assert writer.wait(60) == 0
        written = {int(f): n for f, n in json.loads(out.read_text()).items()}
        want = expected(written)
        # generous: the loop ends as soon as the lake holds every line, but a machine busy
        # with other jobs (load 7+ seen) can take the daemon more than a minute to catch up
        deadline = time.monotonic() + 180
        while lake_counts(lake) != want and time.monotonic() < deadline:
            time.sleep(0.25)
        daemon.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        assert daemon.wait(30) == 0, daemon.stderr()
    finally:
        writer.kill()
        if daemon.proc is not None:
            daemon.proc.kill()
    counts = lake_counts(lake)
    missing = sorted(k for k in want if k not in counts)
    doubled = sorted(k for k, v in counts.items() if v > 1)
    assert not missing and not doubled, (missing[:20], doubled[:20])
    assert counts == want
    assert sum(want.values()) > 2000
    rotated = [p for p in logs.iterdir() if not p.name.endswith(".log")]
    assert rotated, "the writer rotated no file"


def _wait_seen(state: Path, log: Path, daemon: Daemon, timeout: float = 30.0) -> None:
    """Until the daemon has saved the entry that names ``log`` (it follows the file)."""
    deadline = time.monotonic() + timeout
    name = json.dumps(str(log)).encode()
    files = [state / "checkpoints.journal", state / "checkpoints.json"]
    while time.monotonic() < deadline:
        if any(f.exists() and name in f.read_bytes() for f in files):
            return
        assert daemon.proc is not None and daemon.proc.poll() is None, daemon.stderr()
        time.sleep(0.05)
    raise AssertionError(f"the daemon never registered {log}")


@pytest.mark.slow
@pytest.mark.parametrize(
    "rotate_first", [False, True], ids=["kill-then-rotate", "rotate-then-kill"]
)
def test_a_file_copied_away_before_its_first_commit_loses_nothing(
    tmp_path: Path, rotate_first: bool
) -> None:
    """Created, seen, copied outside the include patterns (``a.log.1`` for ``*.log``) and
    truncated before anything of it was committed, the daemon SIGKILLed in between."""
    logs, lake, state = tmp_path / "logs", tmp_path / "lake", tmp_path / "state"
    config = write_config(tmp_path, watch={"flush_interval": "1h"})  # no commit before the kill
    log = logs / "a.log"
    (logs).mkdir(exist_ok=True)
    with open(log, "a") as fh:
        fh.write("".join(f"f=1 n={n}\n" for n in range(1, 6)))
    daemon = Daemon(config, state)
    daemon.start()
    try:
        _wait_seen(state, log, daemon)
        if rotate_first:
            shutil.copyfile(log, logs / "a.log.1")
            os.truncate(log, 0)
            daemon.kill()
        else:
            daemon.kill()
            shutil.copyfile(log, logs / "a.log.1")
            os.truncate(log, 0)
        assert lake_counts(lake) == Counter()  # nothing had been committed
        with open(log, "a") as fh:
            fh.write("".join(f"f=1 n={n}\n" for n in range(6, 9)))
        write_config(tmp_path)  # a short flush interval again
        daemon.start()
        want = expected({1: 8})
        deadline = time.monotonic() + 30
        while lake_counts(lake) != want and time.monotonic() < deadline:
            assert daemon.proc is not None and daemon.proc.poll() is None, daemon.stderr()
            time.sleep(0.1)
        assert lake_counts(lake) == want
        assert lake_rows(lake, "SELECT kind FROM gaps") == []
        daemon.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        assert daemon.wait(30) == 0, daemon.stderr()
    finally:
        if daemon.proc is not None:
            daemon.proc.kill()
