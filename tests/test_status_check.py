"""`loglake status --check`, the liveness probe of deploy/: it fails, with one line why, for
each way a daemon can be unwell (lock not held, stale heartbeat, rows waiting for the lake)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from loglake.lake.checkpoint import StateLock
from loglake.watch.status import health, lock_held, write_status

from .test_deploy import wait_for

BIN = Path(sys.executable).parent  # the venv's bin: where the `loglake` script is


def _doc(**over: Any) -> dict[str, Any]:
    now = time.time()
    return {
        "state": "running",
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started_at": now - 3600,
        "heartbeat": now,
        "workers": {"tail": {"alive": True}, "flush": {"alive": True}},
        "settings": {"flush_interval": 5.0},
        "buffered_rows": 0,
        "last_flush": {"at": now - 2, "rows": 10},
        "last_errors": [],
        **over,
    }


def test_check_needs_the_state_dir_lock_held(tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert lock_held(state) is False  # no lock file at all
    with StateLock(state):
        assert lock_held(state) is True
        assert health(_doc(), state_dir=state) == (True, "ok")
    assert lock_held(state) is False
    # A status file a SIGKILLed daemon left "running" (its pid is meaningless here: another
    # host, or another PID namespace): the free lock gives it away.
    ok, why = health(_doc(host="node-7", pid=1), state_dir=state)
    assert not ok and why == f"no process holds the lock of state dir {state} (daemon gone?)"


def test_a_lock_held_by_another_process_counts(tmp_path: Path) -> None:
    state = tmp_path / "state"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import time; from loglake.lake.checkpoint import StateLock\n"
                f"StateLock({str(state)!r}).acquire(); print('locked', flush=True); time.sleep(60)"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        assert lock_held(state) is True
        # The probe must not disturb the daemon: it can still be locked exclusively after.
    finally:
        holder.kill()
        holder.wait(10)
    assert wait_for(lambda: lock_held(state) is False, 10, "the kernel to drop the lock")
    with StateLock(state):
        pass


def test_check_fails_when_rows_wait_too_long_for_the_lake() -> None:
    now = time.time()
    quiet = _doc(last_flush={"at": now - 86400, "rows": 5})
    assert health(quiet, now) == (True, "ok"), "nothing to commit: an old flush is fine"
    stuck = _doc(buffered_rows=1200, last_flush={"at": now - 400, "rows": 5})
    ok, why = health(stuck, now)
    assert not ok and why == "rows waiting and no lake commit for 400s"
    assert health(stuck, now, max_flush_age=600)[0]
    failing = _doc(
        last_flush={"at": now - 900},
        last_errors=[{"at": now - 10, "where": "flush", "message": "LakeError: 503 Slow Down"}],
    )
    ok, why = health(failing, now)
    assert not ok and why == (
        "rows waiting and no lake commit for 900s (last error: LakeError: 503 Slow Down)"
    )
    # Never flushed since start: measured from the start.
    young = _doc(last_flush=None, started_at=now - 60, buffered_rows=5)
    assert health(young, now)[0]
    # A long flush interval stretches the limit.
    slow = _doc(buffered_rows=5, settings={"flush_interval": 60.0}, last_flush={"at": now - 900})
    assert health(slow, now)[0]


def test_check_prints_one_line_and_exits_1_for_a_stale_status_file(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    write_status(state, _doc(host="node-7", pid=1, heartbeat=time.time() - 120))
    r = subprocess.run(
        [
            str(BIN / "loglake"),
            "status",
            "--check",
            "--lake",
            str(tmp_path / "lake"),
            "--state-dir",
            str(state),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("LOGLAKE_")},
    )
    assert r.returncode == 1
    assert r.stdout.splitlines() == [
        f"loglake watch: no process holds the lock of state dir {state} (daemon gone?)"
    ]
