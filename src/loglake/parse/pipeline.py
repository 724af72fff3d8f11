"""Running a file's parsers over its line batches, each isolated from the others.

Isolation is per line, not per batch: when ``parse()`` raises, whatever it emitted for that
batch is rolled back, its state is restored, and the batch is replayed one line at a time,
so only the lines it really fails on become ``parse_errors`` rows (with their offsets) and
the rest of the batch still yields records. A parser whose errors cover most of the lines it
has seen in a file is switched off for that file with one warning, so a broken team plugin
costs its own rows, never anyone else's. Its counts live in the checkpointed state.
"""

from __future__ import annotations

import copy
import logging
import pickle
import traceback
from dataclasses import dataclass
from typing import Any

from loglake.parse import declarative_scan
from loglake.parse.base import FileInfo, LineBatch, Parser
from loglake.parse.records import Emitter

log = logging.getLogger(__name__)

GENERIC_PRIORITY = 90  # parsers at or above this are fallbacks: they do not claim lines
#: a parser is judged once it has seen this many lines of a file ...
JUDGE_AFTER_LINES = 100
#: ... and switched off when more than this share of them gave errors
MAX_ERROR_SHARE = 0.5
#: parse_errors rows kept per parser and file; later errors are only counted
MAX_ERROR_ROWS = 1000
_HEALTH = "__health__"


def parser_label(p: Parser) -> str:
    return f"{p.name}@{p.version}"


class FileParsers:
    """The parsers chosen for one file, with their per-file state (checkpointed as JSON)."""

    def __init__(self, parsers: list[Parser], states: dict[str, Any] | None = None) -> None:
        self.parsers = sorted(parsers, key=lambda p: (p.priority, p.name))
        states = states or {}
        self.states: dict[str, dict[str, Any]] = {}
        saved_health: dict[str, dict[str, Any]] = states.get(_HEALTH) or {}
        old_failures: dict[str, int] = states.get("__failures__") or {}  # before __health__
        # per parser: lines seen, error lines, error rows stored, switched off
        self.health: dict[str, dict[str, Any]] = {}
        for p in self.parsers:
            saved = states.get(p.name)
            same = saved is not None and saved.get("__version__") == p.version
            self.states[p.name] = saved["state"] if same else p.new_state()
            h = saved_health.get(p.name) if same else None
            if h is None:
                off = same and old_failures.get(p.name, 0) >= 3
                h = {"lines": 0, "errors": 0, "rows": 0, "capped": False, "off": off}
            self.health[p.name] = dict(h)

    def active(self) -> list[Parser]:
        return [p for p in self.parsers if not self.health[p.name]["off"]]

    def feed(self, batch: LineBatch, out: Emitter) -> None:
        if not batch.texts:
            return
        out.claimed.clear()  # claims only matter between parsers of the same batch
        batch_mark = _mark(out)
        batch_mark["claimers"] = {
            parser_label(p) for p in self.parsers if p.priority < GENERIC_PRIORITY
        }
        for p in self.active():
            out.parser = parser_label(p)
            out.claim_lines = p.priority < GENERIC_PRIORITY
            self._run(p, batch, out, batch_mark)
        out.claim_lines = False
        declarative_scan.release()

    def finalize(self, out: Emitter, *, idle: bool, offset: int) -> None:
        for p in self.active():
            out.parser = parser_label(p)
            out.claim_lines = False
            mark = _mark(out)
            try:
                p.finalize(self.states[p.name], out, idle=idle)
            except Exception as e:  # noqa: BLE001 - isolation is the point
                _rollback(out, mark, None)
                self._error_row(p, out, offset, f"finalize() raised {_describe(e)}", "")
            else:
                self._cap_rows(p, out, mark)

    def snapshot(self) -> dict[str, Any]:
        """JSON-serializable states, tagged with versions so a parser upgrade starts fresh."""
        snap: dict[str, Any] = {
            p.name: {"__version__": p.version, "state": self.states[p.name]} for p in self.parsers
        }
        snap[_HEALTH] = {name: dict(h) for name, h in self.health.items()}
        return snap

    # -- isolation ----------------------------------------------------------------------

    def _run(self, p: Parser, batch: LineBatch, out: Emitter, batch_mark: dict[str, Any]) -> None:
        state = self.states[p.name]
        saved = _Saved(state)
        mark = _mark(out)
        try:
            p.parse(batch, state, out)
        except Exception:  # noqa: BLE001 - replayed line by line below
            _rollback(out, mark, batch_mark)
            self.states[p.name] = saved.restore()
            self._replay_lines(p, batch, out, batch_mark)
            return
        errors = self._cap_rows(p, out, mark)
        self._judge(p, out, len(batch), min(errors, len(batch)), batch.offsets[-1])

    def _replay_lines(
        self, p: Parser, batch: LineBatch, out: Emitter, batch_mark: dict[str, Any]
    ) -> None:
        """Find the lines ``parse()`` fails on; every other line still gets parsed."""
        for i, text in enumerate(batch.texts):
            if self.health[p.name]["off"]:
                return
            one = LineBatch(
                [text],
                [batch.offsets[i]],
                [batch.ts[i]] if batch.ts is not None else None,
                {0: batch.redraws[i]} if batch.redraws and i in batch.redraws else None,
            )
            state = self.states[p.name]
            saved = _Saved(state)
            mark = _mark(out)
            try:
                p.parse(one, state, out)
            except Exception as e:  # noqa: BLE001
                _rollback(out, mark, batch_mark)
                self.states[p.name] = saved.restore()
                self._error_row(p, out, one.offsets[0], f"parse() raised {_describe(e)}", text)
                self._judge(p, out, 1, 1, one.offsets[0])
            else:
                errors = self._cap_rows(p, out, mark)
                self._judge(p, out, 1, min(errors, 1), one.offsets[0])

    def _error_row(self, p: Parser, out: Emitter, offset: int, message: str, line: str) -> None:
        h = self.health[p.name]
        if h["rows"] < MAX_ERROR_ROWS:
            out.error(offset, message, line)
            h["rows"] += 1
        else:
            self._note_cap(h, out, offset)

    def _cap_rows(self, p: Parser, out: Emitter, mark: dict[str, Any]) -> int:
        """Keep at most MAX_ERROR_ROWS error rows of ``p`` per file; returns how many it added."""
        added = len(out.errors) - mark["errors"]
        if added <= 0:
            return 0
        h = self.health[p.name]
        room = max(0, MAX_ERROR_ROWS - h["rows"])
        if added > room:
            start = mark["errors"] + room
            offset = out.errors.data["offset"][start]
            for values in out.errors.data.values():
                del values[start:]
            self._note_cap(h, out, offset)
        h["rows"] += min(added, room)
        return added

    @staticmethod
    def _note_cap(h: dict[str, Any], out: Emitter, offset: int) -> None:
        if not h.get("capped"):
            h["capped"] = True
            out.error(
                offset, f"{MAX_ERROR_ROWS} errors stored for this file; later ones are counted"
            )

    def _judge(self, p: Parser, out: Emitter, lines: int, errors: int, offset: int) -> None:
        h = self.health[p.name]
        h["lines"] += lines
        h["errors"] += errors
        if h["off"] or h["lines"] < JUDGE_AFTER_LINES:
            return
        if h["errors"] > MAX_ERROR_SHARE * h["lines"]:
            h["off"] = True
            msg = (
                f"parser {parser_label(p)} gave errors on {h['errors']} of the {h['lines']} "
                "lines it saw; disabled for the rest of this file"
            )
            out.error(offset, msg)
            log.warning("%s (%s)", msg, "see the parse_errors table")


def _describe(err: BaseException) -> str:
    frame = traceback.extract_tb(err.__traceback__)[-1] if err.__traceback__ else None
    where = f" at {frame.filename}:{frame.lineno}" if frame else ""
    return f"{type(err).__name__}: {err}{where}"


class _Saved:
    """A parser state as it was before a call, for the rare call that raises.

    A deep copy: states are JSON-able trees, and a dict or list whose items are all
    immutable atoms copies in one C call (``dict.copy``), where pickling it walks every
    item twice. That matters because some states keep every path or key a file has shown
    (megabytes on a long log) and one is saved per parser and batch. A state holding
    anything else is pickled (or deep-copied when pickle refuses).
    """

    __slots__ = ("_pickled", "_tree")

    def __init__(self, state: dict[str, Any]) -> None:
        self._pickled: bytes | None = None
        try:
            self._tree: Any = _copy_tree(state)
            return
        except _NotATree:
            pass
        try:
            self._pickled = pickle.dumps(state, pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError):
            self._tree = copy.deepcopy(state)

    def restore(self) -> dict[str, Any]:
        """The saved state (call once: the copy itself is handed back)."""
        if self._pickled is not None:
            return pickle.loads(self._pickled)
        return self._tree


_ATOMS = frozenset({str, int, float, bool, type(None)})


class _NotATree(Exception):
    """A state holds something besides dicts, lists and atoms."""


def _copy_tree(value: Any) -> Any:
    kind = type(value)
    if kind is dict:
        if _ATOMS.issuperset(map(type, value.values())):
            return value.copy()
        return {k: _copy_tree(v) for k, v in value.items()}
    if kind is list:
        if _ATOMS.issuperset(map(type, value)):
            return value.copy()
        return [_copy_tree(v) for v in value]
    if kind in _ATOMS:
        return value
    raise _NotATree(kind.__name__)


def _mark(out: Emitter) -> dict[str, Any]:
    mark: dict[str, Any] = {name: cols.mark() for name, cols in out.tables().items()}
    mark["__last__"] = out.last_metric_offset
    return mark


def _rollback(out: Emitter, mark: dict[str, Any], batch_mark: dict[str, Any] | None) -> None:
    """Forget what a parser emitted since ``mark`` (a call that raised), claims included.

    A claim is dropped unless an earlier parser of the same batch (rows since ``batch_mark``)
    claimed that line too; nothing is copied on the happy path.
    """
    dropped: set[int] = set()
    tables = out.tables()
    if out.claim_lines:
        for name in ("metrics", "params"):
            dropped.update(off for off, _ in tables[name].provenance(mark[name]))
    for name, cols in tables.items():
        cols.truncate(mark[name])
    out.last_metric_offset = mark["__last__"]
    if dropped and batch_mark is not None:
        kept: set[int] = set()
        claimers = batch_mark["claimers"]
        for name in ("metrics", "params"):
            for off, label in tables[name].provenance(batch_mark[name]):
                if label in claimers:
                    kept.add(off)
        out.claimed.difference_update(dropped - kept)


# -- looking at one file (``loglake parsers test``) -----------------------------------------

HEAD_LINES = 200


@dataclass
class FileRun:
    """What the parsers made of one file: its lines, and everything they emitted."""

    info: FileInfo
    texts: list[str]
    offsets: list[int]
    out: Emitter
    parsers: FileParsers
    truncated: bool = False  # stopped at ``max_lines``

    def line_numbers(self) -> dict[int, int]:
        """Byte offset → 1-based line number."""
        return {off: i + 1 for i, off in enumerate(self.offsets)}


def probe(path: str, *, max_line: int = 1 << 20) -> tuple[FileInfo, str]:
    """What detection sees of a file (its first clean lines), and its envelope kind."""
    from loglake.tail import EnvelopeDecoder, clean_lines, detect_envelope, read_lines

    first: list[bytes] = []
    for rb in read_lines(path, 0, max_line=max_line, chunk=1 << 16, final=True):
        first.extend(rb.lines)
        if len(first) >= HEAD_LINES:
            break
    kind = detect_envelope(first[:HEAD_LINES])
    head = clean_lines(EnvelopeDecoder(kind).decode_lines(first[:HEAD_LINES]))[0]
    return FileInfo(path=path, head=tuple(head)), kind


def run_file(
    path: str, parsers: list[Parser], *, max_lines: int | None = None, max_line: int = 1 << 20
) -> FileRun:
    """Run ``parsers`` over a whole file the way the indexer does, keeping every line's text."""
    from loglake.tail import FLAG_REDRAWN, EnvelopeDecoder, clean_lines, read_lines
    from loglake.tail.cleanup import RedrawStates

    info, kind = probe(path, max_line=max_line)
    decoder = EnvelopeDecoder(kind)
    fps = FileParsers(parsers)
    out = Emitter()
    texts: list[str] = []
    offsets: list[int] = []
    truncated = False

    def consume(decoded: Any) -> bool:
        lines, offs = decoded.lines, decoded.offsets
        if max_lines is not None and len(texts) + len(lines) > max_lines:
            keep = max(0, max_lines - len(texts))
            lines, offs = lines[:keep], offs[:keep]
        raws: dict[int, str] = {}
        clean, flags = clean_lines(lines, None, raws)
        redrawn = [i for i, f in enumerate(flags) if f & FLAG_REDRAWN]
        redraws = RedrawStates(lines, redrawn, raws)
        ts = decoded.ts[: len(clean)] if decoded.ts is not None else None
        fps.feed(LineBatch(clean, list(offs), ts, redraws or None), out)
        texts.extend(clean)
        offsets.extend(offs)
        return len(lines) < len(decoded.lines)

    for rb in read_lines(path, 0, max_line=max_line, final=True):
        if consume(decoder.feed(rb)):
            truncated = True
            break
    if not truncated:
        consume(decoder.flush())
    fps.finalize(out, idle=not truncated, offset=offsets[-1] if offsets else 0)
    return FileRun(info, texts, offsets, out, fps, truncated)


_KIND_OF_TABLE = {
    "metrics": "metric",
    "params": "param",
    "statuses": "status",
    "facts": "fact",
    "packages": "package",
    "datasets": "dataset",
    "artifacts": "artifact",
    "subruns": "subrun",
    "errors": "error",
}


def emitted_records(out: Emitter) -> list[dict[str, Any]]:
    """Everything an Emitter holds as dicts (``kind``, ``parser``, ``offset``, fields), in order."""
    recs: list[dict[str, Any]] = []
    for table, cols in out.tables().items():
        kind = _KIND_OF_TABLE[table]
        names = cols.names
        for row in zip(*(cols.data[n] for n in names), strict=True):
            rec = {"kind": kind}
            rec.update(zip(names, row, strict=True))
            recs.append(rec)
    recs.sort(key=lambda r: (r["offset"], r["parser"]))
    return recs
