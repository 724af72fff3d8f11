"""The daemon's engine, step by step in this process: real files, a real lake, a moved clock.

Each test writes numbered lines (``f=<file> n=<n>``), does something a cluster does to log
files (rotate, copy and truncate, delete, restart the daemon) and checks that the lake holds
every line exactly once, with every loss in the ``gaps`` table.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from pathlib import Path

from loglake.lake.checkpoint import FILE_NAME, CheckpointStore

from .watch_support import Harness, append, expected, lake_rows


def test_new_lines_are_read_and_a_partial_line_waits_for_its_newline(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    log = h.logs / "a.log"
    append(log, 1, range(1, 11), partial="f=1 n=1")
    h.step()
    assert h.counts() == expected({1: 10})
    append(log, 1, [], partial="1\n")
    append(log, 1, [12])
    h.step()
    assert h.counts() == expected({1: 12})
    assert h.gaps() == []


def test_partial_last_line_survives_a_restart_and_is_emitted_once_when_finalized(
    tmp_path: Path,
) -> None:
    h = Harness(tmp_path)
    log = h.logs / "a.log"
    append(log, 1, range(1, 4), partial="f=1 n=")
    h.step()
    h.restart()
    append(log, 1, [], partial="4")
    h.step()
    assert h.counts() == expected({1: 3})
    h.finish()  # idle: the last line has no newline, it is emitted once, flagged
    assert h.counts() == expected({1: 4})
    assert [g["kind"] for g in h.gaps()] == ["partial_line"]
    h.finish()
    assert h.counts() == expected({1: 4})


def test_rename_rotation_reads_the_old_file_to_its_end(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    log = h.logs / "a.log"
    append(log, 1, range(1, 6))
    h.step()
    os.rename(log, h.logs / "a.log.1")  # the writer still holds the old file open
    append(h.logs / "a.log.1", 1, range(6, 9))
    append(log, 1, range(9, 12))
    h.step()
    assert h.counts() == expected({1: 11})
    assert h.engine.snapshot()["files"]["rotated"] == 1
    h.finish()
    assert h.counts() == expected({1: 11})
    assert h.engine.snapshot()["files"]["rotated"] == 0
    # The rotated source does not say how the run ended: the run goes on in the new file.
    statuses = lake_rows(h.lake, "SELECT status, status_reason FROM runs_log")
    assert ("unknown", "log rotated; the run goes on in the new file") in {
        (r["status"], r["status_reason"]) for r in statuses
    }


def test_rename_rotation_while_stopped_is_found_next_to_the_log(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    log = h.logs / "a.log"
    append(log, 1, range(1, 6))
    h.step()
    h.restart()
    append(log, 1, range(6, 8))  # never read before the rotation
    os.rename(log, h.logs / "a.log.1")
    append(log, 1, range(8, 10))
    h.finish()
    assert h.counts() == expected({1: 9})
    assert h.gaps() == []


def test_copytruncate_takes_the_unread_tail_from_the_copy(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    log = h.logs / "a.log"
    append(log, 1, range(1, 6))
    h.step()
    append(log, 1, range(6, 9))  # written, not read yet
    shutil.copyfile(log, h.logs / "a.log.1")
    with open(log, "r+") as fh:
        fh.truncate(0)
    append(log, 1, range(9, 12))
    h.finish()
    assert h.counts() == expected({1: 11})
    assert h.gaps() == []


def test_copytruncate_hole_of_nul_bytes_is_stripped_and_counted(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    log = h.logs / "a.log"
    fd = os.open(log, os.O_WRONLY | os.O_CREAT)  # no O_APPEND: writes go on at its offset
    os.write(fd, b"".join(f"f=1 n={n}\n".encode() for n in range(1, 6)))
    h.step()
    shutil.copyfile(log, h.logs / "a.log.1")
    os.truncate(log, 0)
    os.write(fd, b"f=1 n=6\n")  # lands after a hole of zeros
    os.close(fd)
    h.finish()
    assert h.counts() == expected({1: 6})
    assert [g["kind"] for g in h.gaps()] == ["nul_run"]


def test_included_copy_is_not_read_twice(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    log = h.logs / "a.log"
    append(log, 1, range(1, 6))
    h.step()
    shutil.copyfile(log, h.logs / "a.1.log")  # matches *.log: listed, but it is a copy
    h.step()
    assert h.counts() == expected({1: 5})
    os.truncate(log, 0)
    append(log, 1, range(6, 8))
    h.finish()
    assert h.counts() == expected({1: 7})


def test_copy_truncate_then_delete_before_anyone_looked(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    log = h.logs / "a.log"
    append(log, 1, range(1, 5))
    h.step()
    append(log, 1, [5])
    shutil.copyfile(log, h.logs / "a.1.log")  # listed, and not to be read twice
    os.truncate(log, 0)
    os.unlink(log)  # still open in the engine
    h.finish()
    assert h.counts() == expected({1: 5})


def test_truncate_while_stopped_is_read_again_from_the_start(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    log = h.logs / "a.log"
    append(log, 1, range(1, 21))
    h.step()
    h.restart()
    os.truncate(log, 0)
    append(log, 1, range(21, 26))  # shorter than before: the offset is past the end
    h.step()
    append(log, 1, range(26, 60))  # and longer than the old offset: the tail hash differs
    h.finish()
    assert h.counts() == expected({1: 59})


def test_truncate_and_regrow_past_the_offset_while_stopped(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    log = h.logs / "a.log"
    append(log, 1, range(1, 6))
    h.step()
    h.restart()
    os.truncate(log, 0)
    append(log, 2, range(1, 30))
    h.finish()
    assert h.counts() == expected({1: 5, 2: 29})


def test_inode_reuse_while_stopped_is_a_new_file(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    append(h.logs / "a.log", 1, range(1, 6))
    h.step()
    h.restart()
    os.unlink(h.logs / "a.log")
    append(h.logs / "b.log", 2, range(1, 4))  # very likely gets a.log's inode back
    append(h.logs / "a.log", 3, range(1, 4))
    h.finish()
    assert h.counts() == expected({1: 5, 2: 3, 3: 3})
    # The old a.log went away unseen: whatever it got after the last read is unknown (0).
    assert [(g["kind"], g["bytes"]) for g in h.gaps()] == [("file_gone", 0)]


def test_two_files_with_the_same_first_line_keep_apart(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    for name in ("a.log", "b.log"):
        (h.logs / name).write_text("hello world\n")  # 12 identical bytes
    h.step()
    append(h.logs / "a.log", 1, range(1, 4))
    append(h.logs / "b.log", 2, range(1, 4))
    h.step()
    h.restart()
    append(h.logs / "a.log", 1, range(4, 6))
    append(h.logs / "b.log", 2, range(4, 6))
    h.finish()
    assert h.counts() == expected({1: 5, 2: 5})
    keys = set(CheckpointStore(h.config.state_path()).load())
    assert len(keys) == 2


def test_a_twelve_byte_file_keeps_its_identity_as_it_grows(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    log = h.logs / "a.log"
    log.write_text("f=12 n=1\nx\n\n")
    assert log.stat().st_size == 12
    h.step()
    h.restart()
    append(log, 12, range(2, 200))
    h.finish()
    assert h.counts() == expected({12: 199})


def test_deleted_while_open_is_read_to_its_end(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    log = h.logs / "a.log"
    fh = open(log, "a")  # noqa: SIM115 - the writer keeps writing after the unlink
    fh.write("".join(f"f=1 n={n}\n" for n in range(1, 6)))
    fh.flush()
    h.step()
    fh.write("".join(f"f=1 n={n}\n" for n in range(6, 9)))
    fh.flush()
    os.unlink(log)
    h.step()
    fh.write("f=1 n=9\n")
    fh.close()
    h.finish()
    assert h.counts() == expected({1: 9})
    assert h.engine.snapshot()["files"]["tracked"] == 0


def test_gone_while_stopped_is_a_gap(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    log = h.logs / "a.log"
    append(log, 1, range(1, 6))
    h.step()
    h.restart()
    append(log, 1, range(6, 9))
    os.unlink(log)  # and no rotated copy anywhere
    h.step()
    gaps = h.gaps()
    assert [g["kind"] for g in gaps] == ["file_gone"]
    h.restart()
    h.step()
    assert len(h.gaps()) == 1  # recorded once, committed with the entry that closes the file


def test_long_line_is_capped_and_tailing_goes_on(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.config.index.max_line_bytes = 1024
    h.restart()
    log = h.logs / "a.log"
    append(log, 1, [1])
    with open(log, "a") as fh:
        fh.write("x" * 5000 + "\n")
    append(log, 1, [2, 3])
    h.finish()
    assert h.counts() == expected({1: 3})
    (gap,) = h.gaps()
    assert gap["kind"] == "long_line" and gap["bytes"] > 3900


def test_torn_checkpoint_file_means_reading_again_never_skipping(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    log = h.logs / "a.log"
    append(log, 1, range(1, 6))
    h.step()
    state = h.config.state_path()
    (state / FILE_NAME).write_bytes(b'{"version": 1, "entries": {"x": ')
    h.restart()
    append(log, 1, range(6, 8))
    h.step()
    counts = h.counts()
    assert set(counts) == set(expected({1: 7}))  # nothing skipped; lines 1-5 read twice
    assert any(p.name.startswith(f"{FILE_NAME}.corrupt-") for p in state.iterdir())


def test_start_position_end_skips_what_was_there_and_says_so(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "a.log"
    log.parent.mkdir()
    append(log, 1, range(1, 6), partial="f=1 n=6")
    h = Harness(tmp_path, watch={"start_position": "end"})
    h.step()
    append(log, 1, [], partial="\n")
    append(log, 1, [7])
    append(tmp_path / "logs" / "b.log", 2, [1])  # appeared later: read from its start
    h.step()
    assert h.counts() == expected({2: 1}) + Counter({("f1", 6): 1, ("f1", 7): 1})
    assert [(g["kind"], g["bytes"]) for g in h.gaps()] == [("skipped", 40)]


def test_ignore_older_leaves_old_files_alone(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    append(logs / "old.log", 1, [1])
    os.utime(logs / "old.log", (1e9, 1e9))
    append(logs / "new.log", 2, [1])
    h = Harness(tmp_path, watch={"ignore_older": "1d"})
    h.step()
    assert h.counts() == expected({2: 1})


def test_status_goes_from_running_to_killed_when_the_log_stops(tmp_path: Path) -> None:
    h = Harness(tmp_path, seq=False)  # built-in parsers decide the end-of-log verdict
    log = h.logs / "train.log"
    with open(log, "a") as fh:
        fh.write("".join(f"epoch 1 step {i} loss={1 / i:.4f}\n" for i in range(1, 30)))
    h.step()
    status = lake_rows(h.lake, "SELECT status FROM runs")
    assert status == [{"status": "running"}]
    h.finish()
    status = lake_rows(h.lake, "SELECT status, status_reason FROM runs")
    assert status == [{"status": "killed", "status_reason": "log stopped mid-stream"}]


def test_lag_and_files_are_reported(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    append(h.logs / "a.log", 1, range(1, 4))
    h.engine.scan()
    snap = h.engine.snapshot()
    assert snap["files"]["tracked"] == 1 and snap["lag_bytes"] == 24
    h.engine.read()
    h.engine.flush()
    snap = h.engine.snapshot()
    assert snap["lag_bytes"] == 0 and snap["by_source"] == {"logs": 1}


def test_a_binary_file_is_one_error_not_one_per_pass(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    (h.logs / "core.log").write_bytes(bytes(range(1, 256)) * 40)
    append(h.logs / "a.log", 1, [1])
    h.step(3)
    h.advance(60)
    h.step(2)
    assert h.counts() == expected({1: 1})
    assert h.engine.stats.counters["errors"] == 1
    (gap,) = h.engine.stats.snapshot()["last_errors"]
    assert "binary data" in gap["message"]


def test_a_file_copied_away_before_its_first_commit_is_found_after_a_crash(
    tmp_path: Path,
) -> None:
    """Seen, read but not committed, killed; meanwhile copied outside the include patterns
    and truncated: the entry saved when it was first seen leads the restart to the copy."""
    h = Harness(tmp_path)
    log = h.logs / "a.log"
    append(log, 1, range(1, 6))
    h.engine.scan()
    h.engine.read()
    h.restart()  # a crash: what was buffered is gone, nothing was committed
    assert h.counts() == Counter()
    shutil.copyfile(log, h.logs / "a.log.1")
    os.truncate(log, 0)
    append(log, 1, range(6, 9))
    h.finish()
    assert h.counts() == expected({1: 8})
    assert h.gaps() == []


def test_a_file_deleted_before_its_first_commit_is_a_gap_after_a_crash(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    log = h.logs / "a.log"
    append(log, 1, range(1, 6))
    size = log.stat().st_size
    h.engine.scan()
    h.restart()
    log.unlink()
    h.finish()
    assert h.counts() == Counter()
    assert h.gaps() == [{"kind": "file_gone", "bytes": size, "source_path": str(log)}]


def test_a_file_seen_but_not_yet_read_then_copied_and_truncated_loses_nothing(
    tmp_path: Path,
) -> None:
    """Found by a listing, none of it read yet, then logrotate's copytruncate: at offset 0
    there are no bytes before the offset to compare, but the file no longer starts with the
    bytes it was found by, so its lines are looked for in the copy (the model test's find)."""
    h = Harness(tmp_path)
    for name, copy in (("a.log", "a.log.1"), ("b.log", "b.1.log")):  # outside / inside *.log
        log = h.logs / name
        append(log, 1 if name == "a.log" else 2, range(1, 5))
        h.engine.scan()
        shutil.copyfile(log, h.logs / copy)
        os.truncate(log, 0)
    h.engine.read()
    h.finish()
    assert h.counts() == expected({1: 4, 2: 4})
    assert h.gaps() == []


def test_a_finished_file_that_grew_unseen_then_was_renamed_away_is_read_on(
    tmp_path: Path,
) -> None:
    """Finalized (idle, descriptor closed), then written to again and renamed outside the
    include patterns before any listing saw the growth: while running, and while stopped
    (the model test's find, and the scenario test's flake when the first run went idle)."""
    h = Harness(tmp_path)
    for f, name in ((1, "a.log"), (2, "b.log")):
        append(h.logs / name, f, range(1, 6))
    h.finish()
    assert all(t.final and t.fd is None for t in h.engine.tailers.values())
    append(h.logs / "a.log", 1, range(6, 8))
    os.rename(h.logs / "a.log", h.logs / "a.log.1")
    h.step()
    h.restart()
    append(h.logs / "b.log", 2, range(6, 8))
    os.rename(h.logs / "b.log", h.logs / "b.log.1")
    h.finish()
    assert h.counts() == expected({1: 7, 2: 7})
    assert h.gaps() == []
