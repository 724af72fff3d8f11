"""``MetricRows``: a batch's metric values appended straight onto the Emitter's columns must
give exactly the rows ``Emitter.metric`` gives one call at a time (parser column, claims and
last offset included), for any mix of the two and for the parsers that use it."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from loglake.parse.base import BaseParser, LineBatch
from loglake.parse.builtin import builtin_parsers
from loglake.parse.pipeline import FileParsers, emitted_records
from loglake.parse.records import METRIC_COLUMNS, Columns, Emitter, MetricRows

from .conftest import CORPUS, corpus_cases
from .test_prefilter import EDGE_LINES

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import mixlog

_KEYS = st.sampled_from(["loss", "acc", "val/loss", "lr", "top1"])
_VALUE = st.floats(allow_nan=False) | st.just(math.inf)
_MAYBE_INT = st.none() | st.integers(-5, 10**6)
_MAYBE_FLOAT = st.none() | st.floats(0, 100, allow_nan=False)


@st.composite
def _lines(draw: Any) -> dict[str, Any]:
    values = draw(st.lists(_VALUE, max_size=5))
    picks = draw(st.lists(st.integers(0, max(len(values) - 1, 0)), max_size=len(values)))
    return {
        "emits": [(draw(_KEYS), k) for k in picks] if values else [],
        "values": values,
        "offset": draw(st.integers(0, 10**9)),
        "step": draw(_MAYBE_INT),
        "epoch": draw(_MAYBE_FLOAT),
        "ts": draw(_MAYBE_FLOAT),
        "sub": draw(st.none() | st.sampled_from(["trial-1", "trial-2"])),
        "by_call": draw(st.booleans()),  # this line goes through out.metric meanwhile
    }


def _by_calls(out: Emitter, line: dict[str, Any]) -> None:
    for key, k in line["emits"]:
        out.metric(
            key,
            line["values"][k],
            line["offset"],
            step=line["step"],
            epoch=line["epoch"],
            ts=line["ts"],
            sub=line["sub"],
        )


def _emitter(claim: bool, layout: tuple[str, ...] = METRIC_COLUMNS) -> Emitter:
    out = Emitter()
    out.parser, out.claim_lines = "mine@2", claim
    out.metrics = Columns(layout)
    _by_calls(out, {"emits": [("seed", 0)], "values": [1.0], "offset": 7, **_NO_CONTEXT})
    return out


_NO_CONTEXT = {"step": None, "epoch": None, "ts": None, "sub": None}


def _state(out: Emitter) -> tuple[Any, ...]:
    cols = {n: out.metrics.data[n] for n in METRIC_COLUMNS}
    return cols, out.claimed, out.last_metric_offset


def _rows(out: Emitter) -> list[tuple[Any, ...]]:
    return sorted(zip(*(out.metrics.data[n] for n in METRIC_COLUMNS), strict=True), key=repr)


@settings(max_examples=200, deadline=None)
@given(batches=st.lists(st.lists(_lines(), max_size=6), max_size=3), claim=st.booleans())
def test_rows_equal_one_call_per_value(batches: list[list[dict[str, Any]]], claim: bool) -> None:
    reference = _emitter(claim)
    for lines in batches:
        for line in lines:
            _by_calls(reference, line)
    for layout in (METRIC_COLUMNS, METRIC_COLUMNS[::-1]):  # the columns, or a copy then calls
        out = _emitter(claim, layout)
        for lines in batches:
            rows = MetricRows(out)
            for line in lines:
                if line["by_call"]:
                    _by_calls(out, line)
                else:
                    rows.line(
                        line["emits"],
                        line["values"],
                        line["offset"],
                        line["step"],
                        line["epoch"],
                        line["ts"],
                        line["sub"],
                    )
            rows.close()
        if layout == METRIC_COLUMNS:
            assert _state(out) == _state(reference)
        else:  # the values wait in a copy for close(): the rows come in another order
            assert _rows(out) == _rows(reference) and _state(out)[1:] == _state(reference)[1:]


def test_closing_twice_or_empty_changes_nothing() -> None:
    out = _emitter(True)
    before = _state(out)
    MetricRows(out).close()
    rows = MetricRows(out)
    rows.line([("loss", 0)], [0.5], 40, 3, None, None)
    rows.close()
    rows.close()
    cols, claimed, last = _state(out)
    assert cols["key"] == ["seed", "loss"] and cols["parser"] == ["mine@2", "mine@2"]
    assert claimed == {7, 40} and last == 40
    assert before[2] == 7


# -- the parsers that use it ----------------------------------------------------------------


def _records(lines: list[str], layout: tuple[str, ...], batch: int = 500) -> list[dict]:
    """Every builtin parser over ``lines``, into an Emitter with this metric column layout:
    any other than the usual one makes ``MetricRows`` hand each value to ``Emitter.metric``."""
    fp = FileParsers(builtin_parsers())
    out = Emitter()
    out.metrics = Columns(layout)
    for start in range(0, len(lines), batch):
        part = lines[start : start + batch]
        fp.feed(LineBatch(part, [(start + j) * 100 for j in range(len(part))]), out)
    return [
        {k: ("nan" if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
        for r in emitted_records(out)
    ]


def _same_both_ways(lines: list[str]) -> list[dict]:
    direct = _records(lines, METRIC_COLUMNS)
    assert direct == _records(lines, METRIC_COLUMNS[::-1])
    return direct


def test_parsers_emit_the_same_rows_as_with_one_call_per_value(tmp_path: Path) -> None:
    log = tmp_path / "mix.log"
    mixlog.write_log(log, 200_000, seed=5)
    texts = [log.read_text(encoding="utf-8"), EDGE_LINES * 2]
    texts += [(CORPUS / case / "stdout.log").read_text(encoding="utf-8") for case in corpus_cases()]
    parsers: set[str] = set()
    for text in texts:
        recs = _same_both_ways(text.splitlines())
        parsers.update(r["parser"].split("@")[0] for r in recs if r["kind"] == "metric")
    assert {"generic", "xgboost", "lightgbm"} <= parsers  # the fallback and declarative ones


# -- a plugin using it: claims, and a batch that fails half way ------------------------------


class _Bulk(BaseParser):
    """A team parser emitting ``loss=`` lines through MetricRows; ``boom`` fails its batch."""

    name = "bulk"
    priority = 20

    def parse(self, batch: LineBatch, state: dict[str, Any], out: Emitter) -> None:
        rows = MetricRows(out)
        try:
            for text, offset in zip(batch.texts, batch.offsets, strict=True):
                if text == "boom":
                    raise ValueError("cannot read this line")
                if text.startswith("loss="):
                    rows.line([("loss", 0)], [float(text[5:])], offset, None, None, None)
        finally:
            rows.close()


def test_a_plugin_claims_its_lines_and_a_failed_batch_rolls_back_evenly() -> None:
    fp = FileParsers([_Bulk(), *(p for p in builtin_parsers() if p.name == "generic")])
    out = Emitter()
    lines = ["loss=0.5", "step 3 loss=0.25", "boom", "loss=0.125"]
    fp.feed(LineBatch(lines, [0, 10, 20, 30]), out)
    recs = emitted_records(out)
    metrics = [(r["parser"], r["offset"], r["value"]) for r in recs if r["kind"] == "metric"]
    # the failed batch is replayed line by line: every good line once, claimed ones by bulk
    assert metrics == [("bulk@1", 0, 0.5), ("generic@1", 10, 0.25), ("bulk@1", 30, 0.125)]
    assert out.last_metric_offset == 30
    errors = [r for r in recs if r["kind"] == "error"]
    assert [(e["offset"], e["parser"]) for e in errors] == [(20, "bulk@1")]
