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
from loglake.parse.declarative_emit import records_of
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
