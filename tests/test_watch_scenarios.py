"""What a cluster does to log files while the daemon is down, with real processes.

Each scenario: the daemon reads a first part, is SIGKILLed, the files are changed while
nothing watches them (rotated, copied and truncated, truncated, deleted and their inode
reused, ...), the daemon starts again, more is written, and the lake must hold every line
exactly once. Also: events from both observers reach the daemon without any rescan.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from loglake.watch.status import read_status

from .watch_support import LOGLAKE, append, env_without_crash, expected, lake_counts, write_config


def start(config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*LOGLAKE, "watch", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env_without_crash(),
    )


def wait_lake(lake: Path, want: Counter[tuple[str, int]], proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if lake_counts(lake) == want:
            return
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.1)
    raise AssertionError(f"lake has {lake_counts(lake)}, want {want}")


def renamed(logs: Path) -> dict[int, int]:
    append(logs / "a.log", 1, range(6, 8))  # written, never read
    os.rename(logs / "a.log", logs / "a.log.1")
    append(logs / "a.log", 1, range(8, 11))
    return {1: 10}


def copied_and_truncated(logs: Path) -> dict[int, int]:
    append(logs / "a.log", 1, range(6, 9))
    shutil.copyfile(logs / "a.log", logs / "a.log.1")
    os.truncate(logs / "a.log", 0)
    append(logs / "a.log", 1, range(9, 11))
    return {1: 10}


def truncated(logs: Path) -> dict[int, int]:
    os.truncate(logs / "a.log", 0)
    append(logs / "a.log", 1, range(6, 9))
    return {1: 8}


def inode_reused(logs: Path) -> dict[int, int]:
    os.unlink(logs / "a.log")
    append(logs / "b.log", 2, range(1, 4))
    append(logs / "a.log", 3, range(1, 4))
    return {1: 5, 2: 3, 3: 3}


def partial_line(logs: Path) -> dict[int, int]:
    append(logs / "a.log", 1, [], partial="6\n")  # the rest of the line begun before the kill
    return {1: 6}


def grown(logs: Path) -> dict[int, int]:
    append(logs / "a.log", 1, range(6, 9))
    return {1: 8}


SCENARIOS: dict[str, tuple[str, Callable[[Path], dict[int, int]]]] = {
    "rename rotation": ("", renamed),
    "copytruncate": ("", copied_and_truncated),
    "truncate while stopped": ("", truncated),
    "inode reuse": ("", inode_reused),
    "partial line across a restart": ("f=1 n=", partial_line),
    "a 12-byte file": ("twelve", grown),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_changed_while_stopped(tmp_path: Path, name: str) -> None:
    partial, change = SCENARIOS[name]
    config = write_config(tmp_path)
    logs, lake = tmp_path / "logs", tmp_path / "lake"
    if partial == "twelve":
        (logs / "a.log").write_text("f=1 n=1\nxyz\n")
        assert (logs / "a.log").stat().st_size == 12
        first: Counter[tuple[str, int]] = expected({1: 1})
    else:
        append(logs / "a.log", 1, range(1, 6), partial=partial)
        first = expected({1: 5})
    proc = start(config)
    try:
        wait_lake(lake, first, proc)
        if partial == "twelve":
            proc.kill()
            proc.wait(30)
            append(logs / "a.log", 1, range(2, 6))
            proc = start(config)
            wait_lake(lake, expected({1: 5}), proc)
        proc.kill()  # SIGKILL: nothing is flushed or closed
        proc.wait(30)
        want = expected(change(logs))
        proc = start(config)
        wait_lake(lake, want, proc)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        proc.kill()
    assert lake_counts(lake) == want


def test_two_files_with_the_same_first_line_across_a_kill(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    logs, lake = tmp_path / "logs", tmp_path / "lake"
    for name in ("a.log", "b.log"):
        (logs / name).write_text("hello world\n")
    proc = start(config)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # both followed while they are 12 equal bytes
            doc = read_status(tmp_path / "state") or {}
            if doc.get("pid") == proc.pid and doc["files"]["tracked"] == 2 and not doc["lag_bytes"]:
                break
            time.sleep(0.1)
        append(logs / "a.log", 1, range(1, 4))
        append(logs / "b.log", 2, range(1, 4))
        wait_lake(lake, expected({1: 3, 2: 3}), proc)
        proc.kill()
        proc.wait(30)
        append(logs / "a.log", 1, range(4, 6))
        append(logs / "b.log", 2, range(4, 6))
        proc = start(config)
        wait_lake(lake, expected({1: 5, 2: 5}), proc)
    finally:
        proc.kill()


@pytest.mark.parametrize("observer", ["native", "polling"])
def test_events_bring_new_lines_without_a_rescan(tmp_path: Path, observer: str) -> None:
    config = write_config(
        tmp_path, watch={"rescan_interval": "1h", "poll_interval": "0.2s"}, observer=observer
    )
    logs, lake = tmp_path / "logs", tmp_path / "lake"
    append(logs / "a.log", 1, range(1, 4))
    proc = start(config)
    try:
        wait_lake(lake, expected({1: 3}), proc)  # the first listing, at the start
        append(logs / "a.log", 1, range(4, 7))
        append(logs / "b.log", 2, range(1, 3))  # a new file: its event asks for a listing
        wait_lake(lake, expected({1: 6, 2: 2}), proc)
    finally:
        proc.kill()
