"""The declarative parser engine: loading and validating TOML files, running rules, state."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest

from loglake.errors import ParserLoadError
from loglake.parse.base import FileInfo, LineBatch, Parser
from loglake.parse.declarative import (
    DeclarativeParser,
    TestFailure,
    load_parser_dir,
    load_parser_file,
)
from loglake.parse.declarative_check import records_of
from loglake.parse.records import Emitter
from loglake.parse.registry import load_registry

TEAM = r"""
name = "team-trainer"
version = "2"
priority = 50
framework = "team"

[detect]
path_glob = ["*/jobs/*.out"]
first_lines = '^TEAM TRAINER'

[[section]]
name = "summary"
start = '^=== summary ==='
max_lines = 2

[[table]]
name = "epochs"
header = '^epoch\s+train_loss\s+valid_loss'
epoch = "epoch"

[[rule]]
name = "eval line"
match = '^step (?P<step>\d+):'
pairs = '(?P<key>[\w.-]+)=(?P<value>{NUMBER})'
key = "{key}"
value = "{value}"

[[rule]]
name = "summary value"
section = "summary"
match = '^(?P<label>[A-Za-z][\w ]*?): (?P<value>{NUMBER})$'
key = "final_{label|snake}"
value = "{value}"
step = "none"

[[rule]]
name = "commit"
match = '^git commit (?P<sha>[0-9a-f]{7,40})$'
emit = "fact"
fact = "git_commit"
value = "{sha}"

[[rule]]
name = "oom"
match = 'CUDA out of memory'
emit = "status"
status = "failed"
reason = "out_of_memory"
error = "{0}"

[[test]]
lines = ["step 3: loss=0.5 acc=0.9"]
expect = [
  { kind = "metric", key = "loss", value = 0.5, step = 3 },
  { kind = "metric", key = "acc", value = 0.9, step = 3 },
]
"""

LINES = [
    "TEAM TRAINER v1",
    "git commit 0123abcd",
    "step 1: loss=0.9 acc=0.5",
    "noise without numbers",
    "step 2: loss=0.7 acc=1.2e-3",
    "epoch     train_loss  valid_loss  accuracy  time    ",
    "0         0.900000    0.800000    0.700000  00:02   ",
    "1         0.500000    0.400000    0.900000  00:02   ",
    "=== summary ===",
    "Best accuracy: 0.9",
    "Wall time: 12",
    "Other: 5",
    "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB",
]


def _write(tmp_path: Path, text: str, name: str = "team.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _run(p: DeclarativeParser, lines: list[str], chunks: int = 1) -> list[dict]:
    """Parse ``lines`` in ``chunks`` batches, the state round-tripped through JSON between."""
    offsets, pos = [], 0
    for line in lines:
        offsets.append(pos)
        pos += len(line.encode()) + 1
    out = Emitter()
    out.parser = f"{p.name}@{p.version}"
    out.claim_lines = True
    state = p.new_state()
    size = -(-len(lines) // chunks)
    for start in range(0, len(lines), size):
        batch = LineBatch(lines[start : start + size], offsets[start : start + size], None)
        p.parse(batch, state, out)
        state = json.loads(json.dumps(state))
    for table in out.tables().values():  # every column of a table as long as the others
        assert len({len(values) for values in table.data.values()}) == 1
    assert set(out.metrics.data["parser"]) <= {out.parser}
    assert out.claimed == set(out.metrics.data["offset"]) | set(out.params.data["offset"])
    return records_of(out, offsets)


@pytest.fixture
def team(tmp_path: Path) -> DeclarativeParser:
    return load_parser_file(_write(tmp_path, TEAM), trusted=False)


def test_team_parser_extracts_every_record_kind(team: DeclarativeParser) -> None:
    assert isinstance(team, Parser)
    assert team.run_embedded_tests() == []
    recs = _run(team, LINES)
    metrics = {(r["key"], r["step"], r["epoch"]): r["value"] for r in recs if r["kind"] == "metric"}
    assert metrics == {
        ("loss", 1, None): 0.9,
        ("acc", 1, None): 0.5,
        ("loss", 2, None): 0.7,
        ("acc", 2, None): 1.2e-3,
        ("train_loss", None, 0.0): 0.9,
        ("valid_loss", None, 0.0): 0.8,
        ("accuracy", None, 0.0): 0.7,
        ("train_loss", None, 1.0): 0.5,
        ("valid_loss", None, 1.0): 0.4,
        ("accuracy", None, 1.0): 0.9,
        ("final_best_accuracy", None, 1.0): 0.9,
        ("final_wall_time", None, 1.0): 12.0,
    }
    facts = [(r["key"], r["value"]) for r in recs if r["kind"] == "fact"]
    assert facts == [("git_commit", "0123abcd"), ("framework", "team")]
    (status,) = [r for r in recs if r["kind"] == "status"]
    assert status["status"] == "failed" and status["reason"] == "out_of_memory"
    assert status["error"].startswith("RuntimeError: CUDA out of memory")
    assert not [r for r in recs if r["kind"] == "error"]


def test_state_survives_restarts_between_any_lines(team: DeclarativeParser) -> None:
    whole = _run(team, LINES)
    for chunks in (2, 3, len(LINES)):
        assert _run(team, LINES, chunks=chunks) == whole


def test_detect_uses_path_glob_and_head(team: DeclarativeParser) -> None:
    assert team.detect(FileInfo("/scratch/jobs/1234.out"))
    assert team.detect(FileInfo("/tmp/x.log", head=("warming up", "TEAM TRAINER v1")))
    assert not team.detect(FileInfo("/tmp/x.log", head=("nothing here",)))


def test_detect_anywhere_and_no_detect_block(tmp_path: Path) -> None:
    text = TEAM.replace("first_lines = '^TEAM TRAINER'", "anywhere = true")
    p = load_parser_file(_write(tmp_path, text), trusted=True)
    assert not p.detect(FileInfo("/tmp/x.log"))  # path_glob still applies
    assert p.detect(FileInfo("/a/jobs/b.out"))
    start, end = TEAM.index("[detect]"), TEAM.index("[[section]]")
    q = load_parser_file(_write(tmp_path, TEAM[:start] + TEAM[end:], "q.toml"), trusted=True)
    assert q.detect(FileInfo("/anything.txt"))


def test_trusted_and_team_engines_agree(tmp_path: Path, team: DeclarativeParser) -> None:
    built_in = load_parser_file(_write(tmp_path, TEAM, "b.toml"), trusted=True)
    assert _run(built_in, LINES) == _run(team, LINES)


def test_prefilter_skips_lines_without_the_literal(team: DeclarativeParser) -> None:
    """Lines between candidates are never offered to the regexes (one C-level scan)."""
    assert team._prefilter is not None
    lines = ["x" * 50] * 5000 + ["step 9: loss=1.5"]
    recs = [r for r in _run(team, lines) if r["kind"] == "metric"]
    assert [(r["key"], r["step"], r["line"]) for r in recs] == [("loss", 9, 5000)]


def test_lines_claimed_by_an_earlier_parser_are_left_alone(team: DeclarativeParser) -> None:
    out = Emitter()
    out.claimed.add(0)
    team.parse(LineBatch(["step 1: loss=0.5", "step 2: loss=0.4"], [0, 17]), team.new_state(), out)
    assert out.metrics.data["step"] == [2]


def test_timestamps_from_the_line_or_the_envelope(tmp_path: Path) -> None:
    p = load_parser_file(_write(tmp_path, TEAM), trusted=True)
    out = Emitter()
    lines = ["2026-01-02 03:04:05,000 INFO step 1: loss=0.5", "step 2: loss=0.4"]
    p.parse(LineBatch(lines, [0, 50]), p.new_state(), out)
    assert out.metrics.data["step"] == [1, 2]  # the logging prefix is stripped before matching
    assert out.metrics.data["ts"] == [1767323045.0, None]
    out = Emitter()
    p.parse(LineBatch(lines[1:], [0], [123.5]), p.new_state(), out)
    assert out.metrics.data["ts"] == [123.5]


def test_catastrophic_team_regex_times_out_then_disables(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    text = """
name = "slow"
[[rule]]
name = "nested"
match = '^(a|aa)+$'
emit = "param"
key = "x"
value = "{1}"
"""
    p = load_parser_file(_write(tmp_path, text), trusted=False, regex_timeout=0.01)
    lines = ["a" * 60 + "b"] * 30
    out = Emitter()
    state = p.new_state()
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="loglake.parse.declarative"):
        p.parse(LineBatch(lines, list(range(0, 62 * 30, 62))), state, out)
        p.parse(LineBatch(lines, list(range(0, 62 * 30, 62))), state, out)
    assert time.monotonic() - started < 5
    assert len(out.errors) == 10
    assert all("timed out" in m for m in out.errors.data["message"])
    assert state["off"] is True
    assert len([r for r in caplog.records if "disabled" in r.getMessage()]) == 1


@pytest.mark.parametrize(
    ("body", "needles"),
    [
        (
            (
                "[[rule]]\nname = 'eval line'\nmatch = '^step (?P<step>\\d+)'\nkey = 'x'\n"
                "value = '{step}'\nstep = 'group:stepp'\n"
            ),
            ["rule 'eval line'", "'stepp'", "step=", "(?P<stepp>...)"],
        ),
        (
            "[[rule]]\nname = 'bad'\nmatch = '^step (?P<step>\\d+'\nkey = 'x'\nvalue = '1'\n",
            ["rule 'bad'", "bad regex", "missing )", "at position"],
        ),
        (
            "[[rule]]\nname = 'kind'\nmatch = 'x'\nemit = 'metrics'\nkey = 'x'\nvalue = '1'\n",
            ["rule 'kind' (#1): emit", "'metric'"],
        ),
        (
            "[[rule]]\nname = 'typo'\nmatch = 'x'\nkey = 'x'\nvalue = '1'\nstpe = 'none'\n",
            ["rule 'typo' (#1): stpe", "Extra inputs"],
        ),
        ("[[rule]]\nname = 'novalue'\nmatch = 'x'\n", ["rule 'novalue'", "key= and value="]),
        (
            "[[rule]]\nmatch = 'x'\nsection = 'best'\nkey = 'x'\nvalue = '1'\n",
            ["section='best' is not defined", "[[section]]"],
        ),
        ("[[rule]\nmatch = 'x'\n", ["not valid TOML"]),
        (
            "[[rule]]\nname = 'f'\nmatch = '(?P<v>\\d+)'\nkey = '{v|upper}'\nvalue = '{v}'\n",
            ["rule 'f'", "unknown filter |upper"],
        ),
    ],
)
def test_invalid_files_name_file_rule_and_fix(
    tmp_path: Path, body: str, needles: list[str]
) -> None:
    path = _write(tmp_path, "name = 'broken'\n" + body, "broken.toml")
    with pytest.raises(ParserLoadError) as err:
        load_parser_file(path, trusted=False)
    text = err.value.one_line()
    assert str(path) in text
    for needle in needles:
        assert needle in text, text
    assert err.value.fix


def test_unknown_key_error_lists_the_allowed_keys(tmp_path: Path) -> None:
    path = _write(tmp_path, "name = 'x'\n[[rule]]\nmatch = 'a'\nkey = 'k'\nvalue = '1'\nstpe = 1\n")
    with pytest.raises(ParserLoadError) as err:
        load_parser_file(path, trusted=True)
    assert "stpe" in err.value.fix and "step" in err.value.fix


def test_embedded_test_failures_show_expected_and_actual(tmp_path: Path) -> None:
    text = TEAM.replace("value = 0.5, step = 3", "value = 0.6, step = 3")
    p = load_parser_file(_write(tmp_path, text), trusted=True)
    (failure,) = p.run_embedded_tests()
    assert isinstance(failure, TestFailure)
    assert failure.expected == [{"kind": "metric", "key": "loss", "value": 0.6, "step": 3}]
    assert any(a.get("key") == "loss" and a["value"] == 0.5 for a in failure.actual)
    assert "expected" in str(failure) and "actual" in str(failure)


def test_embedded_negative_test_fails_on_any_record(tmp_path: Path) -> None:
    text = TEAM + '\n[[test]]\nname = "quiet"\nlines = ["step 1: loss=1"]\nexpect = []\n'
    p = load_parser_file(_write(tmp_path, text), trusted=True)
    (failure,) = p.run_embedded_tests()
    assert failure.test == "test 'quiet'" and "unexpected" in failure.message


def test_load_dir_reports_every_bad_file_and_duplicate_names(tmp_path: Path) -> None:
    _write(tmp_path, TEAM, "a.toml")
    _write(tmp_path, TEAM, "b.toml")
    _write(tmp_path, "name = 'c'\n", "c.toml")
    with pytest.raises(ParserLoadError) as err:
        load_parser_dir(tmp_path, trusted=True)
    text = err.value.one_line()
    assert "c.toml" in text and "also used by" in text
    with pytest.raises(ParserLoadError):
        load_parser_dir(tmp_path / "missing", trusted=True)


def test_registry_loads_team_toml_with_timeout(tmp_path: Path) -> None:
    _write(tmp_path, TEAM)
    reg = load_registry([tmp_path], regex_timeout=0.2)
    p = reg.get("team-trainer")
    assert isinstance(p, DeclarativeParser) and not p.trusted and p.regex_timeout == 0.2
    assert reg.entries["team-trainer"].origin == str(tmp_path / "team.toml")


def test_once_subruns_and_items(tmp_path: Path) -> None:
    text = r"""
name = "trials"
[[rule]]
name = "trial"
match = '^trial (?P<n>\d+) (?P<params>\S+) value=(?P<v>{NUMBER})(?: best=(?P<b>{NUMBER}))?'
items = [{ key = "value", value = "{v}" }, { key = "best", value = "{b}" }]
sub = "trial-{n}"
sub_name = "{params}"
once = true
step = "none"
"""
    p = load_parser_file(_write(tmp_path, text), trusted=True)
    recs = p.extract(
        ["trial 1 lr=0.1 value=0.5", "trial 1 lr=0.1 value=0.5", "trial 2 lr=1 value=0.7 best=0.7"]
    )
    subs = [(r["sub"], r["name"]) for r in recs if r["kind"] == "subrun"]
    assert subs == [("trial-1", "lr=0.1"), ("trial-2", "lr=1")]
    metrics = [(r["sub"], r["key"], r["value"]) for r in recs if r["kind"] == "metric"]
    assert metrics == [
        ("trial-1", "value", 0.5),
        ("trial-2", "value", 0.7),
        ("trial-2", "best", 0.7),
    ]


def test_dataset_sizes_that_are_not_numbers_are_skipped(tmp_path: Path) -> None:
    text = "name = 'e'\n[[rule]]\nmatch = '^n=(?P<n>.+)$'\nemit = 'dataset'\ndataset = { rows = '{n}' }\n"
    p = load_parser_file(_write(tmp_path, text), trusted=True)
    recs = p.extract(["n=12", "n=x", "n=7"])
    assert [r.get("rows") for r in recs if r["kind"] == "dataset"] == [12, 7]


# -- the hot path: shared scan, skipping, sections, redraws ----------------------------------

SECTIONS = r"""
name = "sections"
priority = 40

[[section]]
name = "epoch"
start = '^== epoch (?P<epoch>\d+) ==$'
max_lines = 6
bind = "total"

[[section]]
name = "summary"
start = '^=== summary ==='
end = '^=== end ==='
max_lines = 1000

[[table]]
name = "rounds"
header = '^round\s+loss\s+acc'
step = "round"

[[rule]]
name = "epoch header"
match = '^== epoch (?P<epoch>\d+) ==$'
emit = "context"

[[rule]]
name = "bar of the epoch"
section = "epoch"
match = '^bar (?P<done>\d+)/(?P<total>\d+) loss=(?P<value>{NUMBER})$'
key = "loss"
value = "{value}"
step = "none"

[[rule]]
name = "bar outside an epoch"
match = '^bar (?P<done>\d+)/(?P<total>\d+) loss=(?P<value>{NUMBER})$'
key = "eval_loss"
value = "{value}"
step = "none"
epoch = "none"

[[rule]]
name = "summary value"
section = "summary"
match = '^(?P<label>[a-z]+) = (?P<value>{NUMBER})$'
key = "final_{label}"
value = "{value}"
step = "none"

[[rule]]
name = "step line"
match = '^step (?P<step>\d+): loss=(?P<value>{NUMBER})'
key = "loss"
value = "{value}"
"""


def _sections_log() -> list[str]:
    """Sections, a table and a bound section separated by runs of irrelevant lines."""
    noise = [f"INFO worker {i}: shard {i} loaded" for i in range(5)]
    lines: list[str] = []
    for e in range(3):  # the epoch section (6 lines) runs out before epoch 2's second bar
        lines += [f"== epoch {e} ==", *noise[:e], f"bar 8/8 loss=0.{e}", *noise[: 2 * e]]
        lines += [f"bar 8/8 loss=0.{e}5"] + (["bar 3/3 loss=9"] if e == 1 else [])
    lines += ["=== summary ===", *noise, "best = 0.5", "wall = 12", "=== end ===", "other = 1"]
    lines += ["round   loss   acc", "1   0.9   0.5", *noise[:2], "2   0.8   0.6", "junk"]
    lines += [*noise, "step 7: loss=0.75", *noise]
    return lines * 3


def _read_every_line(monkeypatch: pytest.MonkeyPatch, *parsers: DeclarativeParser) -> None:
    """The reference: no prefilter at all, every line through every rule."""
    for p in parsers:
        monkeypatch.setattr(p, "_gate", None)


@pytest.mark.parametrize("chunks", [1, 4, 29])
def test_reading_only_candidate_lines_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunks: int
) -> None:
    """Skipping lines without a literal (and counting them toward a section's max_lines)
    gives exactly the records of reading every line."""
    p = load_parser_file(_write(tmp_path, SECTIONS), trusted=True)
    lines = _sections_log()
    skipped = _run(p, lines, chunks=chunks)
    _read_every_line(monkeypatch, p)
    assert _run(p, lines, chunks=chunks) == skipped
    metrics = [(r["key"], r["epoch"], r["value"]) for r in skipped if r["kind"] == "metric"]
    assert ("loss", 1.0, 0.15) in metrics and ("eval_loss", None, 9.0) in metrics
    assert ("eval_loss", None, 0.25) in metrics and ("loss", 2.0, 0.25) not in metrics
    assert ("final_best", 2.0, 0.5) in metrics and ("final_other", 2.0, 1.0) not in metrics


def test_builtins_read_only_candidate_lines_without_changing_records(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from loglake.parse.builtin import builtin_parser_dir

    from .conftest import CORPUS

    parsers = load_parser_dir(builtin_parser_dir(), trusted=True)
    lines: list[str] = []
    for log_file in sorted(CORPUS.glob("*/stdout.log")):
        lines += [t.split("\r")[-1] for t in log_file.read_text().splitlines()]
    for p in parsers:  # every parser's own samples, with noise between: sections, tables
        for t in p.spec.test:
            for text in t.lines:
                lines += [text.split("\r")[-1], "INFO noise line", "noise 2"]

    def run_all() -> list[list[dict]]:
        return [_run(p, lines, chunks=3) for p in parsers]

    skipped = run_all()
    _read_every_line(monkeypatch, *parsers)
    assert run_all() == skipped
    assert sum(len(r) for r in skipped) > 300


def test_section_bind_closes_the_section_on_another_value(tmp_path: Path) -> None:
    p = load_parser_file(_write(tmp_path, SECTIONS), trusted=True)
    recs = p.extract(["== epoch 4 ==", "bar 5/5 loss=0.5", "bar 5/5 loss=0.4", "bar 9/9 loss=0.3"])
    got = [(r["key"], r["epoch"], r["value"]) for r in recs if r["kind"] == "metric"]
    assert got == [("loss", 4.0, 0.5), ("loss", 4.0, 0.4), ("eval_loss", None, 0.3)]


def test_bind_must_name_a_group_of_the_section(tmp_path: Path) -> None:
    text = SECTIONS.replace('bind = "total"', 'bind = "totl"')
    with pytest.raises(ParserLoadError) as err:
        load_parser_file(_write(tmp_path, text), trusted=True)
    assert "bind='totl'" in err.value.one_line() and "(?P<totl>" in err.value.fix


def test_scans_in_arrow_and_python_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    from loglake.parse import declarative_scan as scan

    texts = ["plain", "", "a ━━ b] x", "x]\ty", "dup]\t]\t", "héllo Epoch 3", "\\x", "ab\ncd"]
    texts = texts * 20
    literals = frozenset({"]\t", "Epoch ", "━ b", "\\"})
    want = [i for i, t in enumerate(texts) if any(lit in t for lit in literals)]
    assert scan._scan_arrow(texts, literals)[0] == want
    assert scan.scan_python(texts, tuple(literals)) == want
    assert scan.scan_python([t for t in texts if "\n" not in t], tuple(literals)) == [
        i for i, t in enumerate(t for t in texts if "\n" not in t) if any(x in t for x in literals)
    ]


def test_the_arrow_scan_and_the_small_batch_path_give_the_same_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = load_parser_file(_write(tmp_path, SECTIONS), trusted=True)
    lines = _sections_log()
    arrow = _run(p, lines, chunks=2)
    monkeypatch.setattr("loglake.parse.declarative_scan.ARROW_MIN_LINES", 10**9)
    assert _run(p, lines, chunks=2) == arrow
    monkeypatch.setattr("loglake.parse.declarative_scan.ARROW_MIN_LINES", 1)
    monkeypatch.setattr("loglake.parse.declarative_scan.NARROW_MIN_LINES", 1)
    assert _run(p, lines, chunks=2) == arrow


def test_a_batch_list_refilled_in_place_is_scanned_again(team: DeclarativeParser) -> None:
    texts = ["noise"] * 100
    out = Emitter()
    team.parse(LineBatch(texts, list(range(100))), team.new_state(), out)
    texts[:] = ["noise"] * 99 + ["step 4: loss=0.5"]
    team.parse(LineBatch(texts, list(range(100, 200))), team.new_state(), out)
    assert out.metrics.data["offset"] == [199]


def test_parsers_on_threads_share_nothing_but_literals(tmp_path: Path) -> None:
    import threading

    p = load_parser_file(_write(tmp_path, SECTIONS), trusted=True)
    q = load_parser_file(_write(tmp_path, TEAM, "team.toml"), trusted=True)
    jobs = {"a": (p, _sections_log()), "b": (q, LINES * 50)}
    want = {k: _run(parser, lines, chunks=3) for k, (parser, lines) in jobs.items()}
    got: dict[str, list[list[dict]]] = {k: [] for k in jobs}

    def work(key: str) -> None:
        parser, lines = jobs[key]
        for _ in range(5):
            got[key].append(_run(parser, lines, chunks=3))

    threads = [threading.Thread(target=work, args=(k,)) for k in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(runs == [want[k]] * 5 for k, runs in got.items())


REDRAWS = r"""
name = "bars"
[[rule]]
name = "finished bar"
match = '^epoch (?P<epoch>\d+) 100% \[(?P<post>[^\]]*)\]'
redraws = true
pairs = '(?P<key>\w+)=(?P<value>{NUMBER})'
pairs_in = "post"
key = "{key}"
value = "{value}"
step = "none"
once = true

[[rule]]
name = "plain"
match = '^note (?P<key>\w+)=(?P<value>{NUMBER})'
key = "{key}"
value = "{value}"
"""


def test_redraw_rules_read_earlier_states_and_the_last_of_each_epoch(tmp_path: Path) -> None:
    p = load_parser_file(_write(tmp_path, REDRAWS), trusted=True)
    states = [
        "epoch 0 50% [a=9]",
        "epoch 0 100% [a=1]",
        "note b=5",  # not a redraw rule: only read when it is the final state
        "epoch 0 100% [a=1, v=2]",
        "epoch 1 100% [a=3, v=2]",  # stale v: replaced by the next state of epoch 1
        "epoch 1 100% [a=3, v=4]",
        "epoch 2 10% [a=7, v=4]",
    ]
    line = "\r".join(states)
    recs = p.extract(["\r" + line, "epoch 2 100% [a=5, v=6]", "note c=1"])
    got = [(r["key"], r["epoch"], r["value"], r["line"]) for r in recs if r["kind"] == "metric"]
    assert got == [
        ("a", 0.0, 1.0, 0),
        ("v", 0.0, 2.0, 0),
        ("a", 1.0, 3.0, 0),
        ("v", 1.0, 4.0, 0),
        ("a", 2.0, 5.0, 1),
        ("v", 2.0, 6.0, 1),
        ("c", 2.0, 1.0, 2),
    ]
    assert p.extract([line.replace("\r", " | ")]) == []  # no redraws: the text alone


def test_a_redrawn_final_state_is_read_once(tmp_path: Path) -> None:
    p = load_parser_file(_write(tmp_path, REDRAWS.replace("once = true", "")), trusted=True)
    recs = p.extract(["\repoch 0 50% [a=9]\repoch 0 100% [a=1]\repoch 1 100% [a=2]"])
    assert [(r["key"], r["epoch"], r["value"]) for r in recs if r["kind"] == "metric"] == [
        ("a", 0.0, 1.0),
        ("a", 1.0, 2.0),
    ]


def test_redraws_are_not_for_section_rules(tmp_path: Path) -> None:
    text = SECTIONS.replace('section = "summary"\n', 'section = "summary"\nredraws = true\n')
    with pytest.raises(ParserLoadError) as err:
        load_parser_file(_write(tmp_path, text), trusted=True)
    assert "redraws" in err.value.one_line()


def test_quick_prefix_check_agrees_with_strip_log_prefix() -> None:
    from loglake.parse.declarative_emit import line_ts, log_message
    from loglake.parse.timestamps import leading_timestamp, strip_log_prefix

    from .conftest import CORPUS

    samples = [
        "[12]\ttrain-logloss:0.5",
        "[2026-01-01 10:00:00] INFO step 1",
        "[I 2026-11-27 05:15:16,121] Trial 3 finished",
        "[rank0]: 2026-01-01 10:00:00 INFO x",
        "[INFO] loss=1",
        "12:\tlearn: 0.5",
        "0: 2026-01-01 10:00:00,000 INFO srun label",
        "23/23 ━━━━ 0s 3ms/step - loss: 0.5",
        "11/27/2026 05:15:19 - INFO - x - y",
        "2026/11/27 05:15:19 z",
        "2026-11-27T05:15:19Z msg",
        "I1127 05:15:16.121000 12345 file.py:12] glog",
        "INFO: something",
        "Trainer INFO epoch 1",
        "mmdet - INFO - x",
        "Epoch 3/10",
        "Iteration 5, loss = 0.2",
        "12 ",
        "7",
        "",
    ]
    for path in sorted(CORPUS.glob("*/stdout.log")):
        samples += [t.split("\r")[-1] for t in path.read_text().splitlines()]
    for text in samples:
        assert log_message(text) == strip_log_prefix(text), text
        assert line_ts(text) == leading_timestamp(text)[0], text


def test_metric_rows_reach_an_emitter_with_other_columns(team: DeclarativeParser) -> None:
    """The batch-level append falls back to Emitter.metric when the columns differ."""
    from loglake.parse.records import Columns

    out = Emitter()
    out.metrics = Columns(("key", "value", "step", "epoch", "ts", "offset", "parser", "sub"))
    team.parse(LineBatch(["step 1: loss=0.5"], [0]), team.new_state(), out)
    assert out.metrics.data["key"] == ["loss"] and out.metrics.data["step"] == [1]
