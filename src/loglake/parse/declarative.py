"""Declarative parsers: a TOML file of regex rules run as a streaming, restartable parser.

The file format is described in ``declarative_spec``; ``declarative_compile`` turns it into
patterns and templates, ``declarative_emit`` turns matches into records. Built-in files
(``trusted``) compile with the stdlib ``re``; team files compile with ``regex`` and every
search runs under a time limit, so a catastrophic pattern costs one ``parse_errors`` row per
line, then (after ``MAX_TIMEOUTS``) the parser switches itself off for that file with one
warning — never a stalled daemon.

Hot path: a batch is joined once and a combined literal prefilter (each rule's ``contains``
or the literal its regex requires) finds candidate lines with one C-level scan; only those
lines (and every line while a section or table is open) reach the regexes.
"""

from __future__ import annotations

import fnmatch
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loglake.errors import ParserLoadError
from loglake.parse.base import FileInfo, LineBatch
from loglake.parse.declarative_compile import (
    CompiledRule,
    CompiledTable,
    Compiler,
    Template,
    build_prefilter,
    candidate_starts,
)
from loglake.parse.declarative_emit import (
    EMIT,
    Stamp,
    getter,
    record_matches,
    records_of,
    to_epoch,
    to_step,
)
from loglake.parse.declarative_spec import RECORD_FIELDS, ParserSpec, TestSpec, read_spec
from loglake.parse.records import Emitter
from loglake.parse.timestamps import strip_log_prefix
from loglake.parse.values import to_int, to_number

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 0.05  # seconds per team regex search
MAX_TIMEOUTS = 10  # per file, then the parser disables itself for that file
GENERIC_PRIORITY = 90
STATE_VERSION = 1


@dataclass
class TestFailure:
    """One embedded ``[[test]]`` that did not give the records it promised."""

    __test__ = False  # not a pytest class

    parser: str
    test: str
    message: str
    expected: list[dict[str, Any]]
    actual: list[dict[str, Any]]

    def __str__(self) -> str:
        lines = [f"{self.parser} {self.test}: {self.message}"]
        lines += [f"  expected {e}" for e in self.expected]
        lines += [f"  actual   {a}" for a in self.actual]
        return "\n".join(lines)


class DeclarativeParser:
    """A Parser (see ``loglake.parse.base``) built from one validated TOML spec."""

    def __init__(
        self,
        spec: ParserSpec,
        *,
        source_path: Path | None = None,
        trusted: bool,
        regex_timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.spec = spec
        self.source_path = source_path
        self.name = spec.name
        self.version = spec.version
        self.priority = spec.priority
        self.trusted = trusted
        self.regex_timeout = regex_timeout
        self._where = str(source_path) if source_path else spec.name
        c = Compiler(self._where, trusted=trusted, timeout=regex_timeout)
        d = spec.detect
        self._detect_first = (
            c.pattern(d.first_lines, "detect.first_lines") if d and d.first_lines else None
        )
        self._sections = {s.name: c.section(s) for s in spec.section}
        self._tables = {t.name: c.table(t) for t in spec.table}
        self._rules = [c.rule(i, r) for i, r in enumerate(spec.rule)]
        self._prefilter = build_prefilter(
            [
                *[r for r in self._rules if r.section is None],
                *self._sections.values(),
                *self._tables.values(),
            ]
        )

    def __repr__(self) -> str:
        return f"DeclarativeParser({self.name}@{self.version}, {self._where})"

    # -- the Parser protocol --------------------------------------------------------------

    def detect(self, info: FileInfo) -> bool:
        d = self.spec.detect
        if d is None:
            return True
        if d.path_glob:
            base = info.path.rsplit("/", 1)[-1]
            if any(fnmatch.fnmatch(info.path, g) or fnmatch.fnmatch(base, g) for g in d.path_glob):
                return True
            if d.anywhere or self._detect_first is None:
                return False
        if d.anywhere or self._detect_first is None:
            return True
        try:
            return any(self._detect_first(line) for line in info.head[: d.head_lines])
        except TimeoutError:
            return False

    def new_state(self) -> dict[str, Any]:
        return {
            "v": STATE_VERSION,
            "ctx": {"step": None, "epoch": None},  # the last step/epoch seen (context)
            "sec": None,  # the open [[section]] and how many lines it has left
            "sec_left": 0,
            "tab": None,  # the open [[table]]: name, columns, lines since the last row
            "fw": False,  # framework fact emitted
            "timeouts": 0,
            "off": False,
            "seen": {},  # once= signatures and declared sub-runs
        }

    def parse(self, batch: LineBatch, state: dict[str, Any], out: Emitter) -> None:
        if state.get("v") != STATE_VERSION:
            state.clear()
            state.update(self.new_state())
        if state["off"] or not batch.texts:
            return
        texts, offsets, tss = batch.texts, batch.offsets, batch.ts
        n = len(texts)
        literals = self._prefilter
        blob = "\n".join(texts) if literals is not None else ""
        if literals is None or blob.count("\n") != n - 1:  # a line holding "\n" skews offsets
            for i in range(n):
                self._line(texts[i], offsets[i], tss[i] if tss else None, state, out)
                if state["off"]:
                    return
            return
        starts = candidate_starts(blob, literals)
        k = i = pos = 0  # pos: where line i starts in blob; starts[k]: the next candidate
        while i < n:
            if state["sec"] is None and state["tab"] is None:
                while k < len(starts) and starts[k] < pos:
                    k += 1
                if k == len(starts):
                    return
                i += blob.count("\n", pos, starts[k])
                pos = starts[k]
            self._line(texts[i], offsets[i], tss[i] if tss else None, state, out)
            if state["off"]:
                return
            pos += len(texts[i]) + 1
            i += 1

    def finalize(self, state: dict[str, Any], out: Emitter, *, idle: bool) -> None:
        return None

    # -- one line -------------------------------------------------------------------------

    def _line(
        self, text: str, offset: int, ts: float | None, st: dict[str, Any], out: Emitter
    ) -> None:
        try:
            self._process(text, offset, ts, st, out)
        except TimeoutError:
            st["timeouts"] += 1
            out.error(offset, f"{self.name}: regex timed out after {self.regex_timeout}s", text)
            if st["timeouts"] >= MAX_TIMEOUTS:
                st["off"] = True
                log.warning(
                    "parser %s (%s): %d regex timeouts in one file; disabled for the rest of it",
                    self.name,
                    self._where,
                    st["timeouts"],
                )
        except Exception as e:  # noqa: BLE001 - one bad line is a parse_errors row, not a crash
            out.error(offset, f"{self.name}: {type(e).__name__}: {e}", text)

    def _process(
        self, text: str, offset: int, ts: float | None, st: dict[str, Any], out: Emitter
    ) -> None:
        stamp = Stamp(ts, text)
        if self.spec.strip_prefix:
            text = strip_log_prefix(text)
        sec = st["sec"]
        if sec is not None:
            section = self._sections.get(sec)
            if section is None or (section.end is not None and section.end(text)):
                st["sec"] = sec = None
        claimed = self.spec.skip_claimed and out.is_claimed(offset)
        opened = False
        if st["tab"] is None or not self._table_row(text, offset, stamp, st, out, claimed):
            opened = self._open_section(text, st)
            if not self._open_table(text, st):
                self._run_rules(text, offset, stamp, sec, st, out, claimed)
        if sec is not None and not opened and st["sec"] == sec:
            st["sec_left"] -= 1
            if st["sec_left"] <= 0:
                st["sec"] = None

    def _open_section(self, text: str, st: dict[str, Any]) -> bool:
        for s in self._sections.values():
            if (s.alts is None or any(a in text for a in s.alts)) and s.start(text):
                st["sec"], st["sec_left"] = s.name, s.max_lines
                return True
        return False

    def _open_table(self, text: str, st: dict[str, Any]) -> bool:
        for t in self._tables.values():
            if (t.alts is None or any(a in text for a in t.alts)) and t.header(text):
                cols = [c.strip() for c in t.columns.split(text.strip()) if c.strip()]
                if len(cols) >= 2:
                    st["tab"] = {"name": t.name, "cols": cols, "gap": 0}
                    return True
        return False

    def _table_row(
        self, text: str, offset: int, stamp: Stamp, st: dict[str, Any], out: Emitter, claimed: bool
    ) -> bool:
        """Emit a row of the open table; a line that is no row counts toward closing it."""
        tab = st["tab"]
        table: CompiledTable | None = self._tables.get(tab["name"])
        cols: list[str] = tab["cols"]
        cells = table.cells.split(text.strip()) if table is not None else []
        row = dict(zip(cols, map(to_number, cells), strict=True)) if len(cells) == len(cols) else {}
        anchor = (table.step or table.epoch or cols[0]) if table is not None else ""
        if table is None or row.get(anchor) is None:
            tab["gap"] += 1
            if table is None or tab["gap"] > table.max_gap:
                st["tab"] = None
            return False
        tab["gap"] = 0
        step = to_int(row[table.step]) if table.step in row else None
        epoch = row.get(table.epoch) if table.epoch else None
        ctx = st["ctx"]
        if step is not None:
            ctx["step"] = step
        if epoch is not None:
            ctx["epoch"] = epoch
        if claimed:
            return True
        emitted = False
        for col, value in row.items():
            if value is None or col in table.skip or col == table.step or col == table.epoch:
                continue
            key = table.key.render({"column": col}.get)
            if key:
                out.metric(key, value, offset, step=step, epoch=epoch, ts=stamp.get())
                emitted = True
        if emitted:
            self._mark_framework(offset, st, out)
        return True

    def _run_rules(
        self,
        text: str,
        offset: int,
        stamp: Stamp,
        sec: str | None,
        st: dict[str, Any],
        out: Emitter,
        claimed: bool,
    ) -> None:
        for rule in self._rules:
            if rule.section is not None and rule.section != sec:
                continue
            if rule.alts is not None and not any(a in text for a in rule.alts):
                continue
            m = rule.search(text)
            if m is None:
                continue
            if self._apply(rule, m, text, offset, stamp, st, out, claimed) and rule.marks_framework:
                self._mark_framework(offset, st, out)
            if rule.stop:
                return

    def _mark_framework(self, offset: int, st: dict[str, Any], out: Emitter) -> None:
        if self.spec.framework and not st["fw"]:
            out.fact("framework", self.spec.framework, offset)
            st["fw"] = True

    def _apply(
        self,
        rule: CompiledRule,
        m: Any,
        text: str,
        offset: int,
        stamp: Stamp,
        st: dict[str, Any],
        out: Emitter,
        claimed: bool,
    ) -> bool:
        ctx = st["ctx"]
        main = getter(m, None, text)
        for name in rule.clear:
            ctx[name] = None
        if rule.set_context:
            for name, pos, conv in (("step", rule.step, to_step), ("epoch", rule.epoch, to_epoch)):
                if isinstance(pos, Template):
                    raw = pos.render(main)
                    value = conv(raw) if raw is not None else None
                    if value is not None:
                        ctx[name] = value
        kind = rule.kind
        if kind in ("context", "skip") or (claimed and kind in ("metric", "param")):
            return False
        emit = EMIT[kind]
        if rule.pairs is None:
            return emit(rule, main, offset, stamp, st, out)
        segment = m.group(rule.pairs_in) if rule.pairs_in else text[m.end() :]
        emitted = False
        for pm in rule.pairs(segment or ""):
            emitted |= emit(rule, getter(m, pm, text), offset, stamp, st, out)
        return emitted

    # -- embedded tests -------------------------------------------------------------------

    def run_embedded_tests(self) -> list[TestFailure]:
        """Run the file's ``[[test]]`` blocks; an empty list means every test passed."""
        return [f for i, t in enumerate(self.spec.test) for f in self._run_test(i, t)]

    def extract(self, lines: list[str]) -> list[dict[str, Any]]:
        """Run over ``lines`` as one fresh file; the records as dicts (``line`` = index)."""
        offsets, pos = [], 0
        for line in lines:
            offsets.append(pos)
            pos += len(line.encode("utf-8")) + 1
        out = Emitter()
        out.parser = f"{self.name}@{self.version}"
        out.claim_lines = self.priority < GENERIC_PRIORITY
        state = self.new_state()
        self.parse(LineBatch(list(lines), offsets, None), state, out)
        self.finalize(state, out, idle=True)
        return records_of(out, offsets)

    def _run_test(self, index: int, t: TestSpec) -> list[TestFailure]:
        label = f"test {t.name!r}" if t.name else f"test #{index + 1}"
        if t.path is not None and not self.detect(FileInfo(path=t.path, head=tuple(t.lines))):
            msg = "detect() is false for the test's path and lines"
            return [TestFailure(self.name, label, msg, [], [])]
        wants_fw = any(e["kind"] == "fact" and e.get("key") == "framework" for e in t.expect)
        actual = [
            a
            for a in self.extract(t.lines)
            if wants_fw or not (a["kind"] == "fact" and a["key"] == "framework")
        ]
        checked = {e["kind"] for e in t.expect} | {"metric", "param", "error"}
        if not t.expect:
            checked = set(RECORD_FIELDS)
        unmatched = list(actual)
        missing = []
        for want in t.expect:
            hit = next((a for a in unmatched if record_matches(want, a)), None)
            if hit is None:
                missing.append(want)
            else:
                unmatched.remove(hit)
        extra = [a for a in unmatched if a["kind"] in checked] if t.exact else []
        if not missing and not extra:
            return []
        problems = []
        if missing:
            problems.append(f"{len(missing)} expected record(s) not produced")
        if extra:
            problems.append(f"{len(extra)} unexpected record(s)")
        return [TestFailure(self.name, label, "; ".join(problems), missing, extra or actual)]


def load_parser_file(
    path: Path | str, *, trusted: bool, regex_timeout: float = DEFAULT_TIMEOUT
) -> DeclarativeParser:
    """Load one ``*.toml`` parser; a bad file raises ParserLoadError naming file, rule and fix."""
    path = Path(path)
    spec = read_spec(path)
    return DeclarativeParser(spec, source_path=path, trusted=trusted, regex_timeout=regex_timeout)


def load_parser_dir(
    path: Path | str, *, trusted: bool, regex_timeout: float = DEFAULT_TIMEOUT
) -> list[DeclarativeParser]:
    """Every ``*.toml`` parser in a directory, in name order; all problems reported at once."""
    root = Path(path)
    if not root.is_dir():
        raise ParserLoadError(f"{root}: parser directory does not exist", fix="check the path")
    parsers: list[DeclarativeParser] = []
    errors: list[str] = []
    for f in sorted(root.glob("*.toml")):
        try:
            parsers.append(load_parser_file(f, trusted=trusted, regex_timeout=regex_timeout))
        except ParserLoadError as e:
            errors.append(e.one_line())
    seen: dict[str, Path | None] = {}
    for p in parsers:
        if p.name in seen:
            errors.append(f"{p.source_path}: parser name {p.name!r} is also used by {seen[p.name]}")
        seen[p.name] = p.source_path
    if errors:
        summary = errors[0] if len(errors) == 1 else f"{len(errors)} parser files failed: "
        raise ParserLoadError(
            summary + (" | ".join(errors) if len(errors) > 1 else ""),
            fix="fix the named files, then check them with `loglake parsers list`",
        )
    return parsers
