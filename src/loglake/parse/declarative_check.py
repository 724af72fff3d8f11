"""The ``[[test]]`` blocks a declarative parser file carries, like ``vector test``.

A test gives sample lines and the records they must produce; the test suite and
``loglake parsers test`` run them, so a parser file proves itself wherever it is loaded.
Records are compared as plain dicts (``records_of``), which is also how they are printed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from loglake.parse.base import FileInfo, LineBatch, Parser
from loglake.parse.declarative_spec import RECORD_FIELDS, TestSpec
from loglake.parse.records import Emitter
from loglake.tail.cleanup import FLAG_REDRAWN, clean_line, redraw_segments

GENERIC_PRIORITY = 90
_CONTROL = ("\r", "\x08", "\x1b")


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


def batch_of_lines(lines: list[str]) -> LineBatch:
    """Raw test lines as the indexer would hand them over.

    Lines holding ``\\r``, backspaces or escape codes are cleaned to their final state, and
    their earlier redraw states passed along, so a test can show a real progress bar.
    """
    texts: list[str] = []
    offsets: list[int] = []
    redraws: dict[int, list[str]] = {}
    pos = 0
    for i, line in enumerate(lines):
        raw = line.encode("utf-8")
        offsets.append(pos)
        pos += len(raw) + 1
        text, flags = clean_line(raw) if any(c in line for c in _CONTROL) else (line, 0)
        if flags & FLAG_REDRAWN:
            redraws[i] = redraw_segments(raw)
        texts.append(text)
    return LineBatch(texts, offsets, None, redraws or None)


def extract(parser: Parser, lines: list[str]) -> list[dict[str, Any]]:
    """Run ``parser`` over ``lines`` as one fresh file; the records as dicts (``line`` = index)."""
    batch = batch_of_lines(lines)
    offsets = list(batch.offsets)
    out = Emitter()
    out.parser = f"{parser.name}@{parser.version}"
    out.claim_lines = parser.priority < GENERIC_PRIORITY
    state = parser.new_state()
    parser.parse(batch, state, out)
    parser.finalize(state, out, idle=True)
    return records_of(out, offsets)


def run_test(parser: Parser, index: int, t: TestSpec) -> list[TestFailure]:
    """Check one ``[[test]]``: every expected record produced, and (``exact``) nothing else."""
    label = f"test {t.name!r}" if t.name else f"test #{index + 1}"
    if t.path is not None and not parser.detect(FileInfo(path=t.path, head=tuple(t.lines))):
        msg = "detect() is false for the test's path and lines"
        return [TestFailure(parser.name, label, msg, [], [])]
    wants_fw = any(e["kind"] == "fact" and e.get("key") == "framework" for e in t.expect)
    actual = [
        a
        for a in extract(parser, t.lines)
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
    return [TestFailure(parser.name, label, "; ".join(problems), missing, extra or actual)]


# -- records as dicts ---------------------------------------------------------------------------------

_KIND_OF_TABLE = {
    "metrics": "metric",
    "params": "param",
    "statuses": "status",
    "facts": "fact",
    "datasets": "dataset",
    "artifacts": "artifact",
    "packages": "package",
    "subruns": "subrun",
    "errors": "error",
}


def records_of(out: Emitter, line_offsets: list[int] | None = None) -> list[dict[str, Any]]:
    """Everything an Emitter holds as ``{"kind": ..., field: value}`` dicts, in line order.

    ``line`` is the index of the record's line in ``line_offsets`` when given (else the byte
    offset); an artifact's own kind is ``artifact_kind``.
    """
    index = {o: i for i, o in enumerate(line_offsets or ())}
    recs: list[dict[str, Any]] = []
    for table, cols in out.tables().items():
        kind = _KIND_OF_TABLE[table]
        for row in range(len(cols)):
            rec: dict[str, Any] = {"kind": kind}
            for name in cols.names:
                value = cols.data[name][row]
                if name in ("parser", "ts") or (name == "sub" and value is None):
                    continue
                if name == "offset":
                    rec["line"] = index.get(value, value)
                elif name == "kind":
                    rec["artifact_kind"] = value
                else:
                    rec[name] = value
            recs.append(rec)
    recs.sort(key=lambda r: r["line"])
    return recs


def _same(want: Any, got: Any) -> bool:
    number = (int, float)
    both_numbers = isinstance(want, number) and isinstance(got, number)
    if both_numbers and (isinstance(want, float) or isinstance(got, float)):
        if math.isnan(want) and math.isnan(got):
            return True
        return math.isclose(want, got, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(want, str) and isinstance(got, number) and not isinstance(got, bool):
        return want == str(got)
    return bool(want == got)


def record_matches(want: dict[str, Any], got: dict[str, Any]) -> bool:
    """Whether an actual record has every field an expectation names, with the same value."""
    return want["kind"] == got["kind"] and all(
        _same(v, got.get(k)) for k, v in want.items() if k != "kind"
    )
