"""Per-source checkpoints (how far each file was read) and the state-dir lock.

Checkpoints advance only after the rows they cover are committed to the lake (the lake
writer applies them), so a crash can make loglake re-read a little, never skip. For the same
reason a torn, garbage or unknown-version checkpoint file is set aside and treated as empty:
re-reading everything is recoverable, trusting a bad offset is not.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from loglake.errors import ExitCode, LoglakeError
from loglake.lake.durable import atomic_write_json

log = logging.getLogger(__name__)

VERSION = 1
FILE_NAME = "checkpoints.json"
JOURNAL_NAME = "checkpoints.journal"


class StateDirError(LoglakeError):
    """The state dir cannot be used (unwritable, or held by another process)."""

    exit_code = ExitCode.USAGE


class CheckpointStore:
    """Checkpoint entries keyed by source fingerprint; each entry is an opaque JSON dict.

    The indexer owns what goes in an entry (path, offset, tail hash, parser states, run
    identity); this store only makes saving it atomic and loading it safe.
    """

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / FILE_NAME
        self._entries: dict[str, dict[str, Any]] | None = None

    def load(self) -> dict[str, dict[str, Any]]:
        """Read the file again; a bad file is set aside and yields no entries."""
        self._entries = self._read()
        return dict(self._entries)

    def get(self, fp: str) -> dict[str, Any] | None:
        return self._current().get(fp)

    def entries(self) -> dict[str, dict[str, Any]]:
        return dict(self._current())

    def update(
        self,
        entries: dict[str, dict[str, Any] | None],
        texts: dict[str, bytes | None] | None = None,
    ) -> None:
        """Replace the given entries (``None`` forgets one) and save durably.

        ``texts`` may hold entries' JSON text when the caller has serialized them already
        (the lake writer has, for its spool manifest): the journaled store appends it as it
        is; this one rewrites the whole file in one ``json.dumps`` and has no use for it.
        """
        if not entries:
            return
        current = self._current()
        for fp, entry in entries.items():
            if entry is None:
                current.pop(fp, None)
            else:
                current[fp] = entry
        self.save()

    def save(self) -> None:
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.path, {"version": VERSION, "entries": self._current()})
        except OSError as exc:
            raise StateDirError(
                f"cannot write checkpoints to {self.path}: {exc.strerror or exc}",
                fix="make the state dir writable or pass another --state-dir",
            ) from exc

    # -- internals ---------------------------------------------------------------------

    def _current(self) -> dict[str, dict[str, Any]]:
        if self._entries is None:
            self._entries = self._read()
        return self._entries

    def _read(self) -> dict[str, dict[str, Any]]:
        self._fold_daemon_journal()
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise StateDirError(
                f"cannot read checkpoints {self.path}: {exc.strerror or exc}",
                fix="make the state dir readable or pass another --state-dir",
            ) from exc
        problem = _validate(raw)
        if problem is None:
            return json.loads(raw)["entries"]
        aside = self._set_aside()
        log.warning(
            "checkpoint file %s is unusable (%s); moved it to %s and starting from empty "
            "checkpoints: sources will be re-read, not skipped",
            self.path,
            problem,
            aside,
        )
        return {}

    def _fold_daemon_journal(self) -> None:
        """The daemon appends checkpoint updates to a journal that it folds into the file at
        its next start; a batch reader (index, reindex) coming first after a daemon crash
        folds it itself, else it would re-read lines the lake already holds."""
        journal = self.state_dir / JOURNAL_NAME
        if type(self) is not CheckpointStore or not journal.exists():
            return
        if journal.stat().st_size == 0:
            return
        from loglake.watch.checkpoints import PackedCheckpoints

        PackedCheckpoints(self.state_dir).save()

    def _set_aside(self) -> Path:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        aside = self.path.with_name(f"{FILE_NAME}.corrupt-{stamp}")
        n = 1
        while aside.exists():
            n += 1
            aside = self.path.with_name(f"{FILE_NAME}.corrupt-{stamp}-{n}")
        try:
            os.replace(self.path, aside)
        except OSError:
            return self.path
        return aside


def _validate(raw: bytes) -> str | None:
    """Why ``raw`` is not a checkpoint file we can trust, or ``None`` when it is."""
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return f"not valid JSON: {exc}"
    if not isinstance(doc, dict):
        return "not a JSON object"
    if doc.get("version") != VERSION:
        return f"unknown version {doc.get('version')!r} (expected {VERSION})"
    entries = doc.get("entries")
    if not isinstance(entries, dict) or not all(isinstance(v, dict) for v in entries.values()):
        return "'entries' is not an object of objects"
    return None


class StateLock:
    """Only one process may use a state dir: two would both advance the same offsets.

    ``flock`` is released by the kernel when the holder dies, so a crash never leaves a
    stale lock behind (unlike a pid file alone); the pid in the file is only for the message.
    """

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / "lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StateDirError(
                f"cannot create the lock file {self.path}: {exc.strerror or exc}",
                fix="make the state dir writable or pass another --state-dir",
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"pid {holder}" if holder else "unknown pid"
            raise StateDirError(
                f"another loglake process ({who}) uses state dir {self.state_dir}",
                fix="stop it or use another --state-dir",
            ) from None
        except OSError as exc:
            os.close(fd)
            raise StateDirError(
                f"cannot lock {self.path}: {exc.strerror or exc}",
                fix="put the state dir on a local filesystem that supports flock",
            ) from exc
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (another user's counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True
