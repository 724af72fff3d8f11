"""Checkpoint store: durable saves, bad files fall back to re-reading, one process per dir."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from loglake.errors import LoglakeError
from loglake.lake.checkpoint import CheckpointStore, StateDirError, StateLock

ENTRY = {"path": "/logs/a.log", "offset": 1234, "tail_hash": "ab12", "parsers": {"x": [1, 2]}}


def test_update_is_saved_and_reloaded(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    store.update({"fp1": ENTRY, "fp2": {"offset": 5}})
    doc = json.loads((tmp_path / "checkpoints.json").read_text())
    assert doc == {"version": 1, "entries": {"fp1": ENTRY, "fp2": {"offset": 5}}}

    again = CheckpointStore(tmp_path)
    assert again.get("fp1") == ENTRY
    assert again.get("missing") is None
    # An update replaces whole entries (no stale keys survive) and None forgets one.
    again.update({"fp1": {"offset": 99}, "fp2": None})
    assert CheckpointStore(tmp_path).load() == {"fp1": {"offset": 99}}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoints.json"]


def test_missing_file_is_empty(tmp_path: Path) -> None:
    assert CheckpointStore(tmp_path / "new").load() == {}


BAD_FILES = {
    "torn": json.dumps({"version": 1, "entries": {"fp1": ENTRY}}).encode()[:25],
    "garbage": b"\x00\xff\xfe garbage \x9c",
    "unknown_version": json.dumps({"version": 7, "entries": {"fp1": ENTRY}}).encode(),
    "not_an_object": b"[1, 2, 3]",
    "entries_not_objects": json.dumps({"version": 1, "entries": {"fp1": 5}}).encode(),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_bad_file_is_set_aside_and_read_as_empty(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    path = tmp_path / "checkpoints.json"
    path.write_bytes(BAD_FILES[kind])
    with caplog.at_level(logging.WARNING, logger="loglake.lake.checkpoint"):
        entries = CheckpointStore(tmp_path).load()
    assert entries == {}
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert str(path) in warnings[0].getMessage()
    aside = list(tmp_path.glob("checkpoints.json.corrupt-*"))
    assert len(aside) == 1
    assert aside[0].read_bytes() == BAD_FILES[kind]
    assert not path.exists()


def test_store_recovers_after_bad_file(tmp_path: Path) -> None:
    (tmp_path / "checkpoints.json").write_bytes(b"{not json")
    store = CheckpointStore(tmp_path)
    store.update({"fp": {"offset": 1}})
    assert CheckpointStore(tmp_path).load() == {"fp": {"offset": 1}}
    # A second bad file later is kept aside too, under its own name.
    (tmp_path / "checkpoints.json").write_bytes(b"also bad")
    assert CheckpointStore(tmp_path).load() == {}
    assert len(list(tmp_path.glob("checkpoints.json.corrupt-*"))) == 2


def test_unwritable_state_dir_names_the_path(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a dir")
    store = CheckpointStore(blocker / "state")
    with pytest.raises(StateDirError) as info:
        store.update({"fp": {"offset": 1}})
    assert str(blocker / "state") in info.value.one_line()
    assert "--state-dir" in info.value.one_line()


HOLDER = """
import sys
from pathlib import Path
from loglake.lake.checkpoint import StateLock
with StateLock(Path(sys.argv[1])):
    print("locked", flush=True)
    sys.stdin.readline()
"""


def test_lock_held_by_another_process(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(LoglakeError) as info, StateLock(tmp_path):
            pass
        message = info.value.one_line()
        assert f"pid {holder.pid}" in message
        assert str(tmp_path) in message
        assert "stop it or use another --state-dir" in message
    finally:
        holder.kill()
        holder.wait(timeout=10)
    # The kernel drops a killed holder's lock: no stale lock file to clean up by hand.
    with StateLock(tmp_path) as lock:
        assert lock.path.read_text().strip() == str(os.getpid())


def test_lock_is_exclusive_within_a_process_and_reusable(tmp_path: Path) -> None:
    with StateLock(tmp_path), pytest.raises(StateDirError):
        StateLock(tmp_path).acquire()
    with StateLock(tmp_path):
        pass
