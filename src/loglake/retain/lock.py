"""One run at a time: retention and housekeeping each hold a lock of their own.

``StateLock`` (``flock``, released by the kernel when the holder dies) on a folder of the
state dir; a second run fails fast with ``Busy``, which the scheduler treats as "skip this
turn" and the CLI as a usage error naming the holder.
"""

from __future__ import annotations

from pathlib import Path

from loglake.lake.checkpoint import StateDirError, StateLock


class Busy(StateDirError):
    """Another process is doing this work right now."""


def exclusive(folder: Path, what: str) -> StateLock:
    """The acquired lock of ``folder``; ``Busy`` if another process holds it."""
    lock = StateLock(folder)
    try:
        lock.acquire()
    except StateDirError as exc:
        if "another loglake process" not in exc.message:
            raise
        holder = exc.message.split("(", 1)[-1].split(")", 1)[0]
        raise Busy(
            f"another loglake process ({holder}) is running {what} in {folder}",
            fix="wait for it to end (runs never overlap); it does the work that is due",
        ) from None
    return lock
