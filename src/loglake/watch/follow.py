"""Following a file when it stops being where it was: renamed, copied, truncated or deleted.

- **Renamed** (rotation with create) or **deleted** while held open: it is read through its
  descriptor to the end, then finalized once it stops growing (``rotate_wait``).
- **Truncated** in place (copytruncate, or a truncate-and-regrow): the bytes after the offset
  are looked for in a rotation sibling (``train.log.1`` holding the same first bytes and the
  same bytes before the offset); the file itself is then a new file, read from 0, its NUL
  hole stripped by the reader.
- **Gone** while nothing held it open (the daemon was stopped, or past ``max_open_files``):
  the same sibling search; if nothing holds the unread bytes, a ``gaps`` row says how many
  were lost, committed together with the entry that closes the file.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

from loglake.config import SourceConfig
from loglake.index.discover import Found
from loglake.index.job import gap_table
from loglake.runs.identity import RunIdentity
from loglake.watch.checkpoints import slim
from loglake.watch.identity import EntryIndex, find_continuation
from loglake.watch.tailer import COPY, DELETED, ROTATED, Shared, Tailer

if TYPE_CHECKING:
    from loglake.watch.roots import SourceRoots
    from loglake.watch.settings import WatchSettings
    from loglake.watch.stats import Stats

# Entries of files that are gone are kept this long, so a file that comes back (an NFS mount
# remounted, a folder restored) resumes instead of being read twice; then they are forgotten.
FORGET_AFTER = 7 * 86400.0


class Follower:
    """The part of the engine that follows files out of their place (a mixin)."""

    settings: WatchSettings
    stats: Stats
    roots: SourceRoots
    index: EntryIndex
    tailers: dict[str, Tailer]
    by_ino: dict[tuple[int, int], Tailer]
    gone_since: dict[str, float]
    shared: Shared
    stop: threading.Event | None

    if TYPE_CHECKING:  # provided by the engine and the other mixin; no stubs at run time

        def track(self, t: Tailer) -> None: ...
        def untrack_path(self, t: Tailer) -> None: ...
        def forget(self, t: Tailer) -> None: ...
        def drop(self, t: Tailer) -> None: ...
        def adopt(self, f: Found, st: os.stat_result, now: float) -> Tailer | None: ...
        def put(self, tables: dict[str, Any], checkpoints: dict[str, Any]) -> None: ...
        def full_entry(self, key: str, cp: dict[str, Any] | None) -> dict[str, Any] | None: ...

    def detach(self, t: Tailer, now: float) -> None:
        """``t`` is no longer at its path: go on through its descriptor, or look for it."""
        if t.fd is not None and not t.offset_valid(os.fstat(t.fd).st_size):
            # Truncated, then renamed or deleted before anyone looked: its unread bytes
            # are in a copy next to it, which must be claimed before a listing adopts it.
            self.truncated(t, now)
            return
        self.untrack_path(t)
        if t.fd is not None:
            if t.moved is None:
                t.moved = DELETED if os.fstat(t.fd).st_nlink == 0 else ROTATED
                self.stats.add(rotations=1)
            t.dirty = True
            return
        self.forget(t)
        followed = self.continue_or_lose(
            t.key,
            self.entry_of(t),
            root=t.root,
            source=t.source,
            identity=t.identity,
            last_size=t.size,
            now=now,
            kind="file_gone",
            why="renamed or deleted before it was read to the end, while not held open",
            final=t.final,
        )
        if followed is None and t.final and t.cp is not None:
            self.index.add(t.key, slim(t.cp))

    def truncated(self, t: Tailer, now: float) -> None:
        """``t``'s file now holds other bytes before the offset: find where its bytes went,
        and follow the file itself as a new one."""
        where = t.where if t.moved is None else None
        self.untrack_path(t)
        t.close()
        self.forget(t)
        self.continue_or_lose(
            t.key,
            self.entry_of(t),
            root=t.root,
            source=t.source,
            identity=t.identity,
            last_size=t.size,
            now=now,
            kind="truncated",
            why="truncated in place (copytruncate?) before it was read to the end",
        )
        if where is not None:
            try:
                st = os.stat(where)
            except OSError:
                return
            self.adopt(Found(where, t.root, t.source), st, now)

    def continue_or_lose(
        self,
        key: str,
        entry: dict[str, Any],
        *,
        root: str,
        source: SourceConfig,
        identity: RunIdentity,
        last_size: int,
        now: float,
        kind: str,
        why: str,
        final: bool = False,
    ) -> Tailer | None:
        """Follow the file that now holds ``entry``'s bytes, or record what was lost.

        ``final``: the file was read to its end when last looked at, so nothing is known to
        be lost; but it may have grown unseen before it was renamed (outside the include
        patterns) or deleted, and a continuation longer than it was is read on.
        """
        hit = find_continuation(key, entry, self.by_ino)
        if hit is not None and final and hit[1].st_size <= int(entry.get("size") or 0):
            hit = None  # renamed as it was: nothing more to read
        if hit is not None:
            path, st = hit
            self.gone_since.pop(key, None)
            same = (int(entry.get("dev") or 0), int(entry.get("ino") or 0))
            t = Tailer(
                key=key,
                fp=str(entry.get("fp") or key),
                fp_len=int(entry.get("fp_len") or 0),
                path=str(entry.get("path") or path),
                root=root,
                source=source,
                identity=identity,
                dev=st.st_dev,
                ino=st.st_ino,
                where=path,
                cp=entry if entry.get("offset") or entry.get("lines") else None,
                moved=ROTATED if same == (st.st_dev, st.st_ino) else COPY,
                compressed=bool(entry.get("compressed")),
                shared=self.shared,
            )
            t.size, t.mtime, t.grew_at = st.st_size, st.st_mtime, now
            t.open()
            self.track(t)
            self.stats.add(rotations=1)
            return t
        if final:
            return None
        offset = int(entry.get("offset") or 0)
        lost = max(0, last_size - offset)
        detail = f"{why}; no rotated copy holding the bytes after offset {offset} was found"
        closed = {**(self.full_entry(key, entry) or entry), "closed": True, "closed_at": now}
        self.put(
            {"gaps": gap_table(str(entry.get("path") or ""), key, [(kind, offset, lost, detail)])},
            {key: closed},
        )
        self.index.add(key, slim(closed))
        self.stats.add(gaps=1)
        return None

    def sweep(self, now: float) -> None:
        """Entries no listed file continued: find their files, or close them with a gap."""
        for key, entry in list(self.index.entries.items()):
            path = str(entry.get("path") or "")
            if not self.roots.available(path):
                continue
            final = bool(entry.get("idle_final")) and not entry.get("closed")
            if entry.get("closed") or (final and key in self.gone_since):
                first = self.gone_since.setdefault(key, now)
                if now - first > FORGET_AFTER and not os.path.exists(path):
                    self.index.pop(key)
                    self.gone_since.pop(key, None)
                    self.put({}, {key: None})
                continue
            if final:
                # Once: a finished file may have grown unseen before it was renamed away.
                self.gone_since[key] = now
            hit = self.roots.source_of(path)
            if hit is None:
                continue
            source, root = hit
            identity = self.entry_identity(entry)
            if identity is None:
                continue
            self.index.pop(key)
            followed = self.continue_or_lose(
                key,
                entry,
                root=root,
                source=source,
                identity=identity,
                # A file registered and never committed: what it held when it was seen.
                last_size=max(int(entry.get("size") or 0), int(entry.get("seen_size") or 0)),
                now=now,
                kind="file_gone",
                why="gone (deleted, renamed or truncated) while loglake was not reading it",
                final=final,
            )
            if followed is None and final:
                self.index.add(key, entry)

    def entry_of(self, t: Tailer) -> dict[str, Any]:
        """``t``'s newest entry, or the little a never-read file has, to look it up by."""
        if t.cp is not None:
            return {**t.cp, **t.extras()}
        return {
            "path": t.path,
            "fp_len": t.fp_len,
            "offset": 0,
            "size": 0,
            "run": run_fields(t.identity),
            **t.extras(),
        }

    @staticmethod
    def entry_identity(entry: dict[str, Any], f: Found | None = None) -> RunIdentity | None:
        run = entry.get("run")
        if not isinstance(run, dict) or not run.get("run"):
            return None
        return RunIdentity(
            namespace=str(run.get("namespace") or "default"),
            experiment=run.get("experiment"),
            run=str(run["run"]),
            rank=run.get("rank"),
        )


def run_fields(identity: RunIdentity) -> dict[str, Any]:
    """An identity as checkpoint entries store it (``"run"``), to resolve it without a path."""
    return {
        "namespace": identity.namespace,
        "experiment": identity.experiment,
        "run": identity.run,
        "rank": identity.rank,
    }
