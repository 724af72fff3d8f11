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


def _by_rows(rows: MetricRows, line: dict[str, Any]) -> None:
    rows.line(
        line["emits"],
        line["values"],
        line["offset"],
        line["step"],
        line["epoch"],
        line["ts"],
        line["sub"],
    )


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
                    _by_rows(rows, line)
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


# -- rows handed over as Arrow columns (``Emitter.metric_arrays``) ----------------------------


def _as_arrays(lines: list[dict[str, Any]]) -> dict[str, Any]:
    """``_lines`` as the arrays ``metric_arrays`` takes (one row per emitted value)."""
    import pyarrow as pa

    rows = [
        (
            line["sub"],
            key,
            line["values"][k],
            line["step"],
            line["epoch"],
            line["ts"],
            line["offset"],
        )
        for line in lines
        for key, k in line["emits"]
    ]
    cols = list(zip(*rows, strict=True)) or [[]] * 7
    types = (pa.string(), pa.string(), pa.float64(), pa.int64(), pa.float64(), pa.float64())
    arrays = [pa.array(c, t) for c, t in zip(cols, types, strict=False)]
    return {
        "sub": arrays[0],
        "key": arrays[1],
        "value": arrays[2],
        "step": arrays[3],
        "epoch": arrays[4],
        "ts": arrays[5],
        "offset": pa.array(cols[6], pa.int32()),  # cast to the chunk's int64
    }


def _hand_over(rows: MetricRows, a: dict[str, Any]) -> None:
    rows.extend_arrays(
        a["key"],
        a["value"],
        a["offset"],
        step=a["step"],
        epoch=a["epoch"],
        ts=a["ts"],
        sub=a["sub"],
    )


@settings(max_examples=150, deadline=None)
@given(
    batches=st.lists(st.lists(st.tuples(_lines(), st.booleans()), max_size=5), max_size=3),
    claim=st.booleans(),
)
def test_arrow_rows_equal_one_call_per_value_in_order(
    batches: list[list[tuple[dict[str, Any], bool]]], claim: bool
) -> None:
    reference = _emitter(claim)
    out = _emitter(claim)
    out.metrics = Emitter().metrics  # lists and Arrow chunks
    _by_calls(out, {"emits": [("seed", 0)], "values": [1.0], "offset": 7, **_NO_CONTEXT})
    for lines in batches:
        rows = MetricRows(out)
        for line, as_arrays in lines:
            _by_calls(reference, line)
            if as_arrays:
                _hand_over(rows, _as_arrays([line]))
            elif line["by_call"]:
                _by_calls(out, line)
            else:
                _by_rows(rows, line)
        rows.close()
    assert len(out.metrics) == len(reference.metrics)
    assert _state(out) == _state(reference)  # ``data`` folds the chunks in where they came


def test_one_value_for_every_row_and_other_layouts() -> None:
    import pyarrow as pa

    out = Emitter()
    out.parser = "cols@1"
    keys, values, offsets = pa.array(["a", "b"]), pa.array([1.5, 2.5]), pa.array([5, 9])
    out.metric_arrays(keys, values, offsets, step=3, sub="trial-1")
    listed = _emitter(False)  # plain column lists: the rows go through ``metric``
    listed.parser = "cols@1"
    listed.metric_arrays(keys, values, offsets, step=3, sub="trial-1")
    for emitter in (out, listed):
        d = emitter.metrics.data
        assert (d["key"][-2:], d["step"][-2:], d["sub"][-2:]) == (
            ["a", "b"],
            [3, 3],
            ["trial-1"] * 2,
        )
        assert d["parser"][-1] == "cols@1" and emitter.last_metric_offset == 9
    out.metric_arrays(pa.array([], pa.string()), pa.array([]), pa.array([]))  # nothing at all
    assert len(out.metrics) == 2


def test_marks_truncate_and_provenance_cover_the_chunks() -> None:
    import pyarrow as pa

    out = Emitter()
    out.parser = "a@1"
    out.metric("x", 1.0, 1)
    mark = out.metrics.mark()
    out.parser = "b@1"
    out.metric_arrays(pa.array(["y", "y"]), pa.array([2.0, 3.0]), pa.array([2, 3]))
    out.metric("z", 4.0, 4)
    assert list(out.metrics.provenance(mark)) == [(4, "b@1"), (2, "b@1"), (3, "b@1")]
    assert [type(s).__name__ for s in out.metrics.segments()] == ["tuple", "MetricChunk", "tuple"]
    assert len(out.metrics) == 4 and out.count() == 4
    out.metrics.truncate(mark)
    assert len(out.metrics) == 1 and out.metrics.data["key"] == ["x"]
    out.metric_arrays(pa.array(["y"]), pa.array([2.0]), pa.array([2]))
    out.clear()
    assert len(out.metrics) == 0 and not out.metrics.chunks


def _records_in_order(lines: list[str], metrics: Any, batch: int = 500) -> dict[str, list]:
    fp = FileParsers(builtin_parsers())
    out = Emitter()
    out.metrics = metrics
    for start in range(0, len(lines), batch):
        part = lines[start : start + batch]
        fp.feed(LineBatch(part, [(start + j) * 100 for j in range(len(part))]), out)
    return {
        n: ["nan" if isinstance(v, float) and math.isnan(v) else v for v in values]
        for n, values in out.metrics.data.items()
    }


def test_parsers_give_the_same_rows_in_the_same_order_as_chunks(tmp_path: Path) -> None:
    log = tmp_path / "mix.log"
    mixlog.write_log(log, 300_000, seed=11)
    lines = log.read_text(encoding="utf-8").splitlines()
    out = Emitter()
    fp = FileParsers(builtin_parsers())
    fp.feed(LineBatch(lines, [j * 100 for j in range(len(lines))]), out)
    assert out.metrics.chunks  # the generic parser's rows came as Arrow
    assert _records_in_order(lines, Emitter().metrics, 2000) == _records_in_order(
        lines, Columns(METRIC_COLUMNS), 2000
    )


class _ArrowBulk(BaseParser):
    """A team parser handing its ``loss=`` values over as Arrow; ``boom`` fails its batch."""

    name = "arrows"
    priority = 20

    def parse(self, batch: LineBatch, state: dict[str, Any], out: Emitter) -> None:
        import pyarrow as pa

        picked = [i for i, t in enumerate(batch.texts) if t.startswith("loss=")]
        out.metric_arrays(
            pa.repeat(pa.scalar("loss"), len(picked)),
            pa.array([float(batch.texts[i][5:]) for i in picked]),
            pa.array([batch.offsets[i] for i in picked]),
        )
        if "boom" in batch.texts:
            raise ValueError("cannot read this line")


def test_arrow_rows_claim_and_roll_back_with_a_failed_batch() -> None:
    fp = FileParsers([_ArrowBulk(), *(p for p in builtin_parsers() if p.name == "generic")])
    out = Emitter()
    lines = ["loss=0.5", "step 3 loss=0.25", "boom", "loss=0.125"]
    fp.feed(LineBatch(lines, [0, 10, 20, 30]), out)
    recs = emitted_records(out)
    metrics = [(r["parser"], r["offset"], r["value"]) for r in recs if r["kind"] == "metric"]
    # rolled back, then replayed line by line: the claims of the first try do not linger
    assert metrics == [("arrows@1", 0, 0.5), ("generic@1", 10, 0.25), ("arrows@1", 30, 0.125)]
    assert out.last_metric_offset == 30
    assert [(r["offset"], r["parser"]) for r in recs if r["kind"] == "error"] == [(20, "arrows@1")]
