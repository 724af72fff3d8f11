"""Starting to follow a file: resume the checkpoint it continues, or take it as a new one.

A file found by a listing either continues a checkpoint entry (same first bytes and same
bytes before the saved offset: see ``identity``), is a copy of a followed file that must not
be read twice (logrotate's copy next to the original), or is new: then it gets its
fingerprint as key (salted if another file has it) and, at the first start with
``start_position = "end"``, a checkpoint after its last complete line.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from loglake.index.discover import Found
from loglake.index.job import gap_table
from loglake.runs.identity import RunIdentity, resolve
from loglake.tail.fingerprint import tail_hash
from loglake.watch.follow import run_fields
from loglake.watch.identity import (
    FD_DIR,
    EntryIndex,
    Head,
    entry_fp,
    is_sibling,
    read_head,
    salted_key,
)
from loglake.watch.tailer import COPY, Shared, Tailer, last_line_end
from loglake.watch.tailer import ROTATED as ROTATED_FILE

if TYPE_CHECKING:
    from loglake.watch.settings import WatchSettings
    from loglake.watch.stats import Stats


class Adopter:
    """The part of the engine that takes on new files (a mixin)."""

    settings: WatchSettings
    stats: Stats
    index: EntryIndex
    tailers: dict[str, Tailer]
    by_ino: dict[tuple[int, int], Tailer]
    by_dir: dict[str, set[Tailer]]
    gone_since: dict[str, float]
    shared: Shared
    first_scan: bool
    unregistered: list[Tailer]

    if TYPE_CHECKING:  # provided by the engine and the other mixin; no stubs at run time

        def track(self, t: Tailer) -> None: ...
        def note(self, message: str) -> None: ...
        def put(self, tables: dict[str, Any], checkpoints: dict[str, Any]) -> None: ...
        def entry_identity(
            self, entry: dict[str, Any], f: Found | None = None
        ) -> RunIdentity | None: ...

    def adopt(self, f: Found, st: os.stat_result, now: float) -> Tailer | None:
        """Start following the file at ``f.path``: resume its checkpoint, or as a new file."""
        if st.st_size == 0:
            return None  # nothing to recognize it by yet
        try:
            fd = os.open(f.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            self.note(f"{f.path}: cannot read: {e.strerror or e}")
            return None
        keep = False
        try:
            fst = os.fstat(fd)
            if (fst.st_dev, fst.st_ino) in self.by_ino or fst.st_size == 0:
                return None
            head = read_head(fd)
            key = self.index.match(f.path, fst.st_dev, fst.st_ino, head, fst.st_size, fd)
            t: Tailer | None = None
            if key is not None:
                t = self._resume(key, f, fst)
                if t is None:
                    return None
            else:
                if self._copy_of(f.path, head, fst, fd) is not None:
                    return None
                older = self.settings.ignore_older
                if older is not None and now - fst.st_mtime > older:
                    return None
                t = self._new(f, fst, head, fd, now)
                if t is None:
                    return None
                if t.cp is None:
                    self.unregistered.append(t)
            t.size, t.mtime = fst.st_size, fst.st_mtime
            t.grew_at = min(fst.st_mtime, now)
            t.dirty = not t.final
            if t.dirty:
                keep = True
                t.hold(fd)
            self.track(t)
            return t
        finally:
            if not keep:
                os.close(fd)

    def _resume(self, key: str, f: Found, st: os.stat_result) -> Tailer | None:
        entry = self.index.entries[key]
        own = entry.get("path") == f.path
        if own:
            identity = self.identity_of(f) or self.entry_identity(entry)
        else:
            identity = self.entry_identity(entry) or self.identity_of(f)
        if identity is None:
            return None
        self.index.pop(key)
        self.gone_since.pop(key, None)
        moved = None
        if not own:
            same = (int(entry.get("dev") or 0), int(entry.get("ino") or 0))
            moved = ROTATED_FILE if same == (st.st_dev, st.st_ino) else COPY
            self.stats.add(rotations=1)
        return Tailer(
            key=key,
            fp=entry_fp(key, entry),
            fp_len=int(entry.get("fp_len") or 0),
            path=str(entry.get("path") or f.path),
            root=f.root,
            source=f.source,
            identity=identity,
            dev=st.st_dev,
            ino=st.st_ino,
            where=f.path,
            cp=entry,
            moved=moved,
            compressed=bool(entry.get("compressed")),
            shared=self.shared,
        )

    def _new(self, f: Found, st: os.stat_result, head: Head, fd: int, now: float) -> Tailer | None:
        identity = self.identity_of(f)
        if identity is None:
            self.note(
                f"{f.path}: does not match the source template {f.source.template!r} — "
                "fix the template or exclude the file"
            )
            return None
        fp_len = len(head.data)
        fp = head.fp(fp_len) or ""
        key = fp
        if key in self.tailers or key in self.index:
            key = salted_key(fp, f.path, st.st_dev, st.st_ino, self._taken())
        t = Tailer(
            key=key,
            fp=fp,
            fp_len=fp_len,
            path=f.path,
            root=f.root,
            source=f.source,
            identity=identity,
            dev=st.st_dev,
            ino=st.st_ino,
            where=f.path,
            compressed=head.compressed,
            shared=self.shared,
        )
        if self.first_scan and self.settings.start_at_end and not t.compressed:
            self._skip_to_end(t, st, fd, now)
        return t

    def _skip_to_end(self, t: Tailer, st: os.stat_result, fd: int, now: float) -> None:
        """``start_position = "end"``: begin after the last complete line, and say so."""
        off = last_line_end(fd, st.st_size)
        if not off:
            return
        cp = {
            "path": t.path,
            "fp_len": t.fp_len,
            "offset": off,
            "tail": tail_hash(f"{FD_DIR}/{fd}", off),
            "size": st.st_size,
            "mtime": st.st_mtime,
            "run": run_fields(t.identity),
            **t.extras(),
        }
        t.cp = cp
        detail = 'start_position = "end": what the file held at the first start was not read'
        self.put({"gaps": gap_table(t.path, t.key, [("skipped", 0, off, detail)])}, {t.key: cp})

    def _copy_of(self, path: str, head: Head, st: os.stat_result, fd: int) -> Tailer | None:
        """The followed file that ``path`` is a copy of, if any (Vector ignores a file whose
        fingerprint it already follows, for the same reason).

        A rotation sibling (``train.1.log``) that starts like ``train.log``, is no longer than
        it and holds the same bytes up to what was read of it is logrotate's copy (with or
        without the truncation that follows): reading it would read those lines twice. If
        ``train.log`` is then truncated, the copy becomes its continuation; if it is deleted,
        the copy resumes its checkpoint.
        """
        folder, name = os.path.split(path)
        where = f"{FD_DIR}/{fd}"
        for t in list(self.by_dir.get(folder, ())):
            if t.moved == COPY or not t.offset:
                continue
            if not is_sibling(name, os.path.basename(t.path)):
                continue
            if st.st_size > t.size or head.fp(t.fp_len) != t.fp:
                continue
            n = min(st.st_size, t.offset)
            saved = (t.cp or {}).get("tail") if n == t.offset else tail_hash(t.read_path, n)
            if saved is None or tail_hash(where, n) == saved:
                return t
        return None

    def identity_of(self, f: Found) -> RunIdentity | None:
        return resolve(
            f.path, root=f.root, template=f.source.template, namespace=f.source.namespace
        )

    def _taken(self) -> set[str]:
        return set(self.tailers) | set(self.index.entries)
