"""Declarative parsers: a TOML file of regex rules run as a streaming, restartable parser.

The file format is described in ``declarative_spec``; ``declarative_compile`` turns it into
patterns and templates, ``declarative_emit`` turns matches into records. Built-in files
(``trusted``) compile with the stdlib ``re``; team files compile with ``regex`` and every
search runs under a time limit, so a catastrophic pattern costs one ``parse_errors`` row per
line, then (after ``MAX_TIMEOUTS``) the parser switches itself off for that file with one
warning — never a stalled daemon.

Hot path: the literals every rule needs (its ``contains`` or the text its regex requires) are
searched once per batch for all declarative parsers together (``declarative_scan``); a parser
then reads only the lines holding one of its own literals, and every line only while a table
or a section without literals is open. Lines skipped inside a section still count toward its
``max_lines``, so skipping changes nothing but the time spent. With no section or table
open, a line whose shape (digits read as ``0``) the parser has planned already is read by
that plan (``declarative_shapes``): which rules match and where their groups are is worked
out once per shape (remembered across batches), not once per line. A long run of planned
lines (nothing but the step/epoch context changes while it lasts) is read in shape groups as
Arrow columns (``declarative_groups``), or by plan line by line when its shapes are too many
and small.
"""

from __future__ import annotations

import fnmatch
import logging
from pathlib import Path
from typing import Any

from loglake.errors import ParserLoadError
from loglake.parse.base import FileInfo, LineBatch
from loglake.parse.declarative_check import TestFailure, extract, run_test
from loglake.parse.declarative_compile import (
    CompiledRule,
    Compiler,
    build_prefilter,
)
from loglake.parse.declarative_emit import (
    MetricRows,
    Runner,
    context_setters,
    log_message,
    runner,
)
from loglake.parse.declarative_groups import read_planned
from loglake.parse.declarative_runs import Ahead
from loglake.parse.declarative_scan import (
    Gate,
    candidate_lines,
    literal_gate,
    register,
    section_literals,
)
from loglake.parse.declarative_shapes import ShapeReader
from loglake.parse.declarative_spec import ParserSpec, read_spec
from loglake.parse.declarative_tables import open_table, table_row
from loglake.parse.declarative_template import Access
from loglake.parse.records import Emitter

log = logging.getLogger(__name__)

__all__ = ["DeclarativeParser", "TestFailure", "load_parser_dir", "load_parser_file"]

DEFAULT_TIMEOUT = 0.05  # seconds per team regex search
MAX_TIMEOUTS = 10  # per file, then the parser disables itself for that file
STATE_VERSION = 1
SHAPED_MIN_LINES = 16  # fewer candidate lines in a batch: planning their shapes costs more
_UNPLANNED = object()

# (rule, its runner, how its match sets the step/epoch context, whether a claim on the line
# stops its runner, whether its records name the framework): read once per matched line
Plan = tuple[CompiledRule, Runner | None, tuple[tuple[str, Access, Any], ...], bool, bool]


_CLAIMING = frozenset(("metric", "param"))  # kinds an earlier parser's claim on a line blocks


def _never(text: str) -> bool:
    return False


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
        self._strip = spec.strip_prefix
        self._skip_claimed = spec.skip_claimed
        self._plan: list[Plan] = [
            (
                r,
                runner(r),
                context_setters(r),
                r.kind in _CLAIMING,
                r.marks_framework and bool(spec.framework),
            )
            for r in self._rules
        ]
        self._redraw_plan = [p for p in self._plan if p[0].redraws]
        self._free_plan = [p for p in self._plan if p[0].section is None]  # no section open
        redraw_lits = build_prefilter([p[0] for p in self._redraw_plan])
        self._redraw_gate = literal_gate(redraw_lits) if redraw_lits else None
        self._redraw_lits = tuple(redraw_lits) if redraw_lits else ()
        self._starts = [
            (literal_gate(s.alts) if s.alts else None, s) for s in self._sections.values()
        ]
        self._headers = [
            (literal_gate(t.alts) if t.alts else None, t) for t in self._tables.values()
        ]
        self._check_binds()
        # lines that interest the parser with no section open; then per open section
        self._prefilter = build_prefilter(
            [
                *[r for r in self._rules if r.section is None],
                *self._sections.values(),
                *self._tables.values(),
            ]
        )
        self._gate: Gate | None = literal_gate(self._prefilter) if self._prefilter else None
        self._section_gates: dict[str, Gate | None] = {}
        literals = set(self._prefilter or ())
        for name, section in self._sections.items():
            lits = section_literals(section.end_alts, [r for r in self._rules if r.section == name])
            self._section_gates[name] = (
                literal_gate(lits) if lits else (_never if lits == () else None)
            )
            literals.update(lits or ())
        self._literals = frozenset(literals)
        # every candidate line then holds a literal of the parser's gate (or is a redraw)
        self._gated = self._literals <= frozenset(self._prefilter or ())
        if self._gate is not None:
            register(self, self._literals)
        # lines of one shape are read alike (``declarative_shapes``); built-in patterns only
        self.by_shape = trusted
        self._shapes = ShapeReader(self._free_plan, self._starts, self._headers, strip=self._strip)

    def __repr__(self) -> str:
        return f"DeclarativeParser({self.name}@{self.version}, {self._where})"

    def _check_binds(self) -> None:
        for section in self._sections.values():
            b = section.bind
            if b is not None and not any(
                r.section == section.name and b in r.main_groups for r in self._rules
            ):
                raise ParserLoadError(
                    f"{self._where}: section {section.name!r}: bind={b!r} is not a group of "
                    "any rule in the section",
                    fix=f"name a group (?P<{b}>...) in a section={section.name!r} rule's match",
                )

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
            "sec_bind": None,  # the value of the open section's bind= group
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
        rows = MetricRows(out)
        try:
            self._parse(batch, state, out, rows)
        finally:
            rows.close()

    def finalize(self, state: dict[str, Any], out: Emitter, *, idle: bool) -> None:
        return None

    # -- which lines ----------------------------------------------------------------------

    def _parse(self, batch: LineBatch, st: dict[str, Any], out: Emitter, rows: MetricRows) -> None:
        """Each candidate line in order; lines of planned shapes are gathered in ``run`` and
        read together (``declarative_groups``) before the next line read the plain way."""
        texts, offsets, tss = batch.texts, batch.offsets, batch.ts
        redraws = batch.redraws if self._redraw_plan else None
        n = len(texts)
        # the redrawn lines of the batch, for the rules reading earlier redraw states
        redrawn = frozenset(i for i in redraws if 0 <= i < n) if redraws else frozenset()
        gate = self._gate
        if gate is None:
            cands: Any = range(n)
        else:
            cands = candidate_lines(
                texts, self._literals, batch.arrow(), batch.pattern_mask, batch.shapes()
            )
            if redrawn:
                cands = sorted({*cands, *redrawn})
        k, nc, pos = 0, len(cands), 0
        gated, section_gates = self._gated, self._section_gates
        skip_claimed, is_claimed, process = self._skip_claimed, out.is_claimed, self._process
        ids = batch.shape_ids() if self.by_shape and nc >= SHAPED_MIN_LINES else None
        plans: dict[int, Any] = {}  # shape -> its plan (None: read its lines one by one)
        plan_of = self._shapes.plan
        run: list[Any] = []  # planned lines not read yet (``read_planned``)
        ahead: Ahead | None = None
        while pos < n:
            if gate is None:
                i = pos
            else:
                sec = st["sec"]
                sec_gate = section_gates.get(sec) if sec is not None else _never
                if sec_gate is None or st["tab"] is not None:  # read every line until it closes
                    i = pos
                else:
                    while k < nc and cands[k] < pos:
                        k += 1
                    if k == nc:
                        self._skip(st, n - pos)
                        break
                    i = cands[k]
                    k += 1
                    if i > pos and sec is not None:
                        self._skip(st, i - pos)
                        sec = st["sec"]
                        sec_gate = section_gates.get(sec) if sec is not None else _never
                    text = texts[i]
                    if not (
                        gated
                        or gate(text)
                        or (sec_gate is not None and sec_gate(text))
                        or i in redrawn
                    ):
                        self._skip(st, 1)
                        pos = i + 1
                        continue
            pos = i + 1
            raw, offset = texts[i], offsets[i]
            try:
                if ids is not None and st["sec"] is None and st["tab"] is None and i not in redrawn:
                    plan = plans.get(ids[i], _UNPLANNED)
                    if plan is _UNPLANNED:
                        plan = plans[ids[i]] = plan_of(raw)
                    if plan is not None:
                        if gate is not None:  # read ahead: the planned candidates that follow
                            ahead = ahead or Ahead(
                                cands, ids, plans, plan_of, texts, redrawn, batch.shapes().index
                            )
                            stop = ahead.stop(k)
                            run.append(ahead.lines(k - 1, stop))
                            k, pos = stop, cands[stop - 1] + 1
                        elif plan:
                            run.append(i)
                        continue
                if run:
                    self._planned(run, batch, ids, plans, st, out, rows)
                claimed = skip_claimed and is_claimed(offset)
                ts = tss[i] if tss else None
                if i in redrawn:
                    states = self._earlier_states(redraws, i, raw)
                    if states:
                        self._redraws(states, raw, offset, ts, st, out, rows, claimed)
                process(raw, offset, ts, st, out, rows, claimed)
            except TimeoutError:
                self._timed_out(offset, raw, st, out)
            except Exception as e:  # noqa: BLE001 - one bad line is a parse_errors row
                out.error(offset, f"{self.name}: {type(e).__name__}: {e}", raw)
            if st["off"]:
                return
        if run:
            self._planned(run, batch, ids, plans, st, out, rows)

    def _planned(
        self,
        run: list[Any],
        batch: LineBatch,
        ids: list[int],
        plans: dict[int, Any],
        st: dict[str, Any],
        out: Emitter,
        rows: MetricRows,
    ) -> None:
        """The planned lines gathered so far, read (``declarative_groups.read_planned``)."""
        ctx, skip = st["ctx"], self._skip_claimed
        mark = read_planned(run, batch, ids, plans, ctx, out, rows, skip, self.name)
        if mark >= 0 and not st["fw"]:
            self._mark_framework(mark, st, out)
        run.clear()

    @staticmethod
    def _skip(st: dict[str, Any], lines: int) -> None:
        """Lines no rule can match: they only count toward closing the open section."""
        if st["sec"] is not None:
            st["sec_left"] -= lines
            if st["sec_left"] <= 0:
                st["sec"] = None

    # -- one line -------------------------------------------------------------------------

    def _timed_out(self, offset: int, raw: str, st: dict[str, Any], out: Emitter) -> None:
        st["timeouts"] += 1
        out.error(offset, f"{self.name}: regex timed out after {self.regex_timeout}s", raw)
        if st["timeouts"] >= MAX_TIMEOUTS:
            st["off"] = True
            log.warning(
                "parser %s (%s): %d regex timeouts in one file; disabled for the rest of it",
                self.name,
                self._where,
                st["timeouts"],
            )

    def _earlier_states(self, redraws: Any, i: int, final: str) -> list[str] | None:
        """Line ``i``'s redraw states, or None when its raw text shows that no state before
        the last holds a literal of a ``redraws`` rule (rendering it would find nothing)."""
        lits = self._redraw_lits
        may_hold = getattr(redraws, "may_hold", None)
        if lits and may_hold is not None and not may_hold(i, final, lits):
            return None
        return redraws.get(i)

    def _redraws(
        self,
        states: list[str],
        final: str,
        offset: int,
        ts: float | None,
        st: dict[str, Any],
        out: Emitter,
        rows: MetricRows,
        claimed: bool,
    ) -> None:
        """Earlier states of a redrawn line, for ``redraws = true`` rules.

        A state is skipped when the next matched state (same rule, same step/epoch) redraws
        it: a bar drawn at 100% again after validation replaces its earlier 100% state, whose
        postfix may still show the previous epoch's validation values. The last state is the
        line itself, read normally afterwards.
        """
        last = len(states) - 1 if states[-1] == final else -1
        gate = self._redraw_gate
        if gate is not None and not gate("\n".join(states[:last] if last >= 0 else states)):
            return
        hits: list[tuple[int, Plan, Any, str, str, tuple[str | None, ...]]] = []
        for j, state in enumerate(states):
            if gate is not None and not gate(state):  # the raw state holds what its message holds
                continue
            text = log_message(state) if self._strip else state
            for step in self._redraw_plan:
                rule = step[0]
                if rule.gate is not None and not rule.gate(text):
                    continue
                m = rule.search(text)
                if m is None:
                    continue
                where = tuple(get(m, None, text) for _, get, _ in step[2])
                hits.append((j, step, m, text, state, where))
                if rule.stop:
                    break
        for h, (j, step, m, text, state, where) in enumerate(hits):
            nxt = hits[h + 1] if h + 1 < len(hits) else None
            if j == last or (nxt is not None and nxt[1] is step and nxt[5] == where):
                continue
            self._apply(step, m, text, state, offset, ts, st, out, rows, claimed)

    def _process(
        self,
        raw: str,
        offset: int,
        ts: float | None,
        st: dict[str, Any],
        out: Emitter,
        rows: MetricRows,
        claimed: bool,
    ) -> None:
        text = log_message(raw) if self._strip else raw
        sec = st["sec"]
        if sec is not None:
            section = self._sections.get(sec)
            if section is None or (section.end is not None and section.end(text)):
                st["sec"] = sec = None
        opened = False
        if st["tab"] is None or not table_row(
            self._tables, text, raw, offset, ts, st, out, claimed, self._mark_framework
        ):
            for start_gate, s in self._starts:
                if (start_gate is None or start_gate(text)) and s.start(text):
                    st["sec"], st["sec_left"], st["sec_bind"] = s.name, s.max_lines, None
                    opened = True
                    break
            if not (self._headers and open_table(self._headers, text, st)):
                plan = self._plan if sec is not None else self._free_plan
                self._run_rules(text, raw, offset, ts, sec, st, out, rows, claimed, plan)
        if sec is not None and not opened and st["sec"] == sec:
            st["sec_left"] -= 1
            if st["sec_left"] <= 0:
                st["sec"] = None

    def _run_rules(
        self,
        text: str,
        raw: str,
        offset: int,
        ts: float | None,
        sec: str | None,
        st: dict[str, Any],
        out: Emitter,
        rows: MetricRows,
        claimed: bool,
        plan: list[Plan],
    ) -> None:
        for step in plan:
            rule = step[0]
            in_section = rule.section
            if in_section is not None and in_section != sec:
                continue
            gate = rule.gate
            if gate is not None and not gate(text):
                continue
            m = rule.search(text)
            if m is None:
                continue
            if in_section is not None and not self._bound(in_section, rule, m, st):
                sec = None  # another bar/table than the section's: read the line outside it
                continue
            self._apply(step, m, text, raw, offset, ts, st, out, rows, claimed)
            if rule.stop:
                return

    def _apply(
        self,
        step: Plan,
        m: Any,
        text: str,
        raw: str,
        offset: int,
        ts: float | None,
        st: dict[str, Any],
        out: Emitter,
        rows: MetricRows,
        claimed: bool,
    ) -> None:
        rule, run, setters, claiming, marks = step
        if rule.clear:
            ctx = st["ctx"]
            for name in rule.clear:
                ctx[name] = None
        if setters and rule.set_context:
            ctx = st["ctx"]
            for name, get, conv in setters:
                got = get(m, None, text)
                value = conv(got) if got is not None else None
                if value is not None:
                    ctx[name] = value
        if (
            run is not None
            and not (claimed and claiming)
            and run(m, text, raw, offset, ts, st, out, rows)
            and marks
            and not st["fw"]
        ):
            self._mark_framework(offset, st, out)

    def _bound(self, name: str, rule: CompiledRule, m: Any, st: dict[str, Any]) -> bool:
        """Whether a section rule's match belongs to the open section (see ``bind``); a match
        with another value of the bound group closes the section."""
        bind = self._sections[name].bind
        if bind is None or bind not in rule.main_groups:
            return True
        value = m.group(bind)
        held = st.get("sec_bind")
        if value is None or held == value:
            return True
        if held is None:
            st["sec_bind"] = value
            return True
        st["sec"], st["sec_bind"] = None, None
        return False

    def _mark_framework(self, offset: int, st: dict[str, Any], out: Emitter) -> None:
        if self.spec.framework and not st["fw"]:
            out.fact("framework", self.spec.framework, offset)
            st["fw"] = True

    # -- embedded tests -------------------------------------------------------------------

    def run_embedded_tests(self) -> list[TestFailure]:
        """Run the file's ``[[test]]`` blocks; an empty list means every test passed."""
        return [f for i, t in enumerate(self.spec.test) for f in run_test(self, i, t)]

    def extract(self, lines: list[str]) -> list[dict[str, Any]]:
        """Run over ``lines`` as one fresh file; the records as dicts (``line`` = index).

        Lines may hold ``\\r`` redraws and escape codes; they are cleaned as the indexer does.
        """
        return extract(self, lines)


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
