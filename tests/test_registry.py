"""The parser registry (entry points, team directories, routes) and per-line isolation."""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path
from typing import Any

import pytest

from loglake import BaseParser
from loglake.config import Config
from loglake.errors import ParserLoadError
from loglake.parse.base import FileInfo, LineBatch
from loglake.parse.pipeline import (
    JUDGE_AFTER_LINES,
    MAX_ERROR_ROWS,
    FileParsers,
    emitted_records,
)
from loglake.parse.records import Emitter
from loglake.parse.registry import (
    embedded_test_failures,
    intended_names,
    load_registry,
    route_file,
    routed_names,
)

GOOD_TOML = """
name = "{name}"
version = "3"
priority = 50
[detect]
first_lines = '^TEAM-A'
[[rule]]
match = '^step (?P<step>\\d+) loss=(?P<loss>{{NUMBER}})'
key = "loss"
value = "{{loss}}"
[[test]]
lines = ["step 1 loss=0.5"]
expect = [{{ kind = "metric", key = "loss", value = 0.5, step = 1 }}]
"""

PY_PARSER = """
from loglake import BaseParser

class Counter(BaseParser):
    name = "team_py"
    version = "7"
    priority = 55

    def parse(self, batch, state, out):
        for text, offset in zip(batch.texts, batch.offsets):
            if text.startswith("n="):
                out.metric("n", float(text[2:]), offset)

PARSERS = [Counter]
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def team_dir(tmp_path: Path) -> Path:
    d = tmp_path / "parsers.d"
    write(d / "team_a.toml", GOOD_TOML.format(name="team_a"))
    write(d / "team_py.py", PY_PARSER)
    return d


# -- loading ----------------------------------------------------------------------------------


def test_builtins_come_through_the_entry_point_and_team_files_load(team_dir: Path) -> None:
    reg = load_registry([team_dir])
    assert reg.entries["xgboost"].origin == "builtin"
    assert reg.entries["team_a"].origin == str(team_dir / "team_a.toml")
    assert reg.entries["team_a"].parser.version == "3"
    assert reg.entries["team_py"].parser.version == "7"  # a class in PARSERS is instantiated
    assert not reg.broken


def test_broken_unrouted_parser_is_one_warning_and_the_rest_load(
    team_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(team_dir / "team_b.toml", 'name = "team_b"\n[[rule]]\nmatch = "(unclosed"\n')
    with caplog.at_level(logging.WARNING):
        reg = load_registry([team_dir], routed=["team_a"])
    assert "team_a" in reg.entries and "team_b" not in reg.entries
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "team_b.toml" in warnings[0]


def test_routed_broken_toml_stops_startup_naming_the_file(team_dir: Path) -> None:
    # The file's stem differs from the name it declares; the route uses the declared name.
    write(team_dir / "acme_rules.toml", 'name = "acme"\nversion = 1\n[[rule]]\nmatch = "(x"\n')
    with pytest.raises(ParserLoadError) as err:
        load_registry([team_dir], routed=["acme"])
    text = err.value.one_line()
    assert "'acme' is routed to but cannot load" in text and "acme_rules.toml" in text
    assert "remove it from the route" in text


def test_routed_broken_python_file_and_unparseable_toml_are_found_by_stem(team_dir: Path) -> None:
    write(team_dir / "team_c.py", "import not_a_module_anywhere\n")
    with pytest.raises(ParserLoadError, match="team_c.py: ModuleNotFoundError"):
        load_registry([team_dir], routed=["team_c"])
    write(team_dir / "team_d.toml", "name = \n")  # not even TOML
    assert intended_names(team_dir / "team_d.toml") == {"team_d"}
    with pytest.raises(ParserLoadError, match="team_d.toml: not valid TOML"):
        load_registry([team_dir], routed=["team_d"])


def test_routed_but_missing_or_disabled(team_dir: Path) -> None:
    with pytest.raises(ParserLoadError, match="'nope' is not installed") as err:
        load_registry([team_dir], routed=["nope"])
    assert "known parsers:" in err.value.one_line() and "team_a" in err.value.one_line()
    with pytest.raises(ParserLoadError, match="routed to but listed in parsers.disable"):
        load_registry([team_dir], routed=["team_a"], disable=["team_a"])
    reg = load_registry([team_dir], disable=["team_a", "generic"])
    assert "team_a" not in reg.entries and "generic" not in reg.entries


def test_a_missing_parser_dir_is_a_warning_unless_a_route_needs_it(tmp_path: Path) -> None:
    reg = load_registry([tmp_path / "nowhere"])
    assert any("does not exist" in e for e in reg.broken.values())


def test_bad_python_parsers_are_refused_with_a_fix(team_dir: Path) -> None:
    write(team_dir / "team_e.py", "X = 1\n")
    write(
        team_dir / "team_f.py",
        "from loglake import BaseParser\nclass P(BaseParser):\n    name = 'a@b'\nPARSERS = [P()]\n",
    )
    reg = load_registry([team_dir])
    assert "add `PARSERS = [MyParser()]`" in reg.broken[str(team_dir / "team_e.py")]
    assert "no '@'" in reg.broken[str(team_dir / "team_f.py")]


def test_embedded_tests_of_team_parsers(team_dir: Path) -> None:
    reg = load_registry([team_dir])
    results = embedded_test_failures([reg.get("team_a"), reg.get("team_py")])
    assert results == {"team_a": []}  # the Python parser carries no embedded tests
    write(
        team_dir / "team_a.toml",
        GOOD_TOML.format(name="team_a").replace("value = 0.5,", "value = 0.6,"),
    )
    failures = embedded_test_failures([load_registry([team_dir]).get("team_a")])["team_a"]
    assert len(failures) == 1 and "expected record(s) not produced" in str(failures[0])


# -- routing ----------------------------------------------------------------------------------


def route_config(tmp_path: Path) -> Config:
    return Config.model_validate(
        {
            "sources": [
                {"name": "k8s", "paths": [str(tmp_path / "logs")], "parsers": ["src_p"]},
                {"name": "slurm", "paths": [str(tmp_path / "slurm")]},
            ],
            "parsers": {
                "route": [
                    {"match": "team-a/**", "parsers": ["team_a"]},
                    {"namespace": "vision-*", "parsers": ["vision"], "auto_detect": False},
                    {"source": "slurm", "match": "*.out", "parsers": ["slurm_p"]},
                    {"match": str(tmp_path / "logs" / "x" / "*"), "parsers": ["abs_p"]},
                ]
            },
        }
    )


def test_routes_by_path_namespace_and_source(tmp_path: Path) -> None:
    cfg = route_config(tmp_path)
    k8s, slurm = cfg.sources
    root = str(tmp_path / "logs")
    assert route_file(cfg, k8s, f"{root}/team-a/run1/0.log", root, "default") == (
        ("src_p", "team_a"),
        True,
    )
    assert route_file(cfg, k8s, f"{root}/team-b/run1/0.log", root, "vision-prod") == (
        ("src_p", "vision"),
        False,
    )
    assert route_file(cfg, k8s, f"{root}/x/0.log", root, "default") == (("src_p", "abs_p"), True)
    sroot = str(tmp_path / "slurm")
    assert route_file(cfg, slurm, f"{sroot}/j/1.out", sroot, "default") == (("slurm_p",), True)
    assert route_file(cfg, k8s, f"{root}/j/1.out", root, "default") == (("src_p",), True)
    assert routed_names(cfg) == {"src_p", "team_a", "vision", "slurm_p", "abs_p"}


def test_a_route_without_a_condition_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="a route needs match"):
        Config.model_validate({"parsers": {"route": [{"parsers": ["x"]}]}})


def test_select_runs_routed_parsers_even_when_detection_says_no(team_dir: Path) -> None:
    reg = load_registry([team_dir])
    info = FileInfo(path="/logs/a.log", head=("step 1 loss=0.5",))
    assert "team_a" not in [p.name for p in reg.select(info)]
    chosen = [p.name for p in reg.select(info, ["team_a"], auto_detect=False)]
    assert chosen == ["team_a"]
    marked = FileInfo(path="/logs/a.log", head=("TEAM-A v2",))
    assert "team_a" in [p.name for p in reg.select(marked)]


# -- isolation --------------------------------------------------------------------------------


class Flaky(BaseParser):
    """Counts lines in its state and raises on lines containing 'bad'."""

    name = "flaky"
    priority = 50

    def new_state(self) -> dict[str, Any]:
        return {"n": 0}

    def parse(self, batch: LineBatch, state: dict[str, Any], out: Emitter) -> None:
        for text, offset in zip(batch.texts, batch.offsets, strict=True):
            state["n"] += 1
            if "bad" in text:
                raise ValueError("cannot read this line")
            out.metric("x", float(text.split()[-1]), offset, step=state["n"])


class Broken(BaseParser):
    name = "broken"
    priority = 60

    def parse(self, batch: LineBatch, state: dict[str, Any], out: Emitter) -> None:
        raise RuntimeError("always")


class Fallback(BaseParser):
    """Like the generic fallback: skips claimed lines."""

    name = "fallback"
    priority = 90

    def parse(self, batch: LineBatch, state: dict[str, Any], out: Emitter) -> None:
        for text, offset in zip(batch.texts, batch.offsets, strict=True):
            if not out.is_claimed(offset):
                out.metric("fallback", float(text.split()[-1]), offset)


def lines(texts: list[str], start: int = 0) -> LineBatch:
    return LineBatch(texts, [start + 10 * i for i in range(len(texts))])


def test_a_raising_line_costs_only_that_line() -> None:
    fp = FileParsers([Flaky(), Fallback()])
    out = Emitter()
    fp.feed(lines(["a 1", "b 2", "bad 3", "c 4"]), out)
    recs = emitted_records(out)
    flaky = [
        (r["offset"], r["step"]) for r in recs if r["parser"] == "flaky@1" and r["kind"] == "metric"
    ]
    # Steps continue from the restored state: the failed line did not count.
    assert flaky == [(0, 1), (10, 2), (30, 3)]
    errors = [r for r in recs if r["kind"] == "error"]
    assert [(e["offset"], e["parser"], e["line"]) for e in errors] == [(20, "flaky@1", "bad 3")]
    assert "ValueError: cannot read this line" in errors[0]["message"]
    # The fallback sees the failed line as unclaimed and only that one.
    fallback = [r["offset"] for r in recs if r["parser"] == "fallback@1"]
    assert fallback == [20]
    assert fp.states["flaky"] == {"n": 3}


def test_a_parser_failing_on_most_lines_is_disabled_once(caplog: pytest.LogCaptureFixture) -> None:
    fp = FileParsers([Flaky(), Broken()])
    out = Emitter()
    with caplog.at_level(logging.WARNING):
        for k in range(3):
            fp.feed(lines([f"l {i}" for i in range(80)], start=k * 1000), out)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "broken@1 gave errors on" in warnings[0]
    assert fp.health["broken"]["off"] and not fp.health["flaky"]["off"]
    broken_rows = [e for e in emitted_records(out) if e["parser"] == "broken@1"]
    assert len(broken_rows) == JUDGE_AFTER_LINES + 1  # one per line until judged, then the notice
    assert "disabled for the rest of this file" in broken_rows[-1]["message"]
    assert len(out.metrics) == 240  # flaky never stopped
    # The verdict is part of the checkpointed state: a restart keeps it off.
    again = FileParsers([Flaky(), Broken()], fp.snapshot())
    assert [p.name for p in again.active()] == ["flaky"]


def test_occasional_errors_do_not_disable_a_parser() -> None:
    fp = FileParsers([Flaky()])
    out = Emitter()
    texts = [("bad" if i % 10 == 0 else "ok") + f" {i}" for i in range(500)]
    fp.feed(lines(texts), out)
    assert not fp.health["flaky"]["off"]
    assert len(out.errors) == 50 and len(out.metrics) == 450


def test_error_rows_are_capped_per_parser_and_file() -> None:
    class Noisy(BaseParser):
        name = "noisy"

        def parse(self, batch: LineBatch, state: dict[str, Any], out: Emitter) -> None:
            for text, offset in zip(batch.texts, batch.offsets, strict=True):
                out.error(offset, "odd line", text)
                out.metric("v", 1.0, offset)

    fp = FileParsers([Noisy()])
    out = Emitter()
    for k in range(3):
        fp.feed(lines([f"x {i}" for i in range(200)], start=k * 10_000), out)
    # errors on every line: judged after JUDGE_AFTER_LINES and disabled; rows never exceed the cap
    assert fp.health["noisy"]["off"]
    assert len(out.errors) <= MAX_ERROR_ROWS + 2


def test_a_parser_upgrade_starts_with_fresh_state_and_health() -> None:
    fp = FileParsers([Flaky()])
    fp.feed(lines(["a 1", "bad 2"]), Emitter())
    snap = fp.snapshot()
    assert snap["flaky"]["state"] == {"n": 1}

    class Flaky2(Flaky):
        version = "2"

    again = FileParsers([Flaky2()], snap)
    assert again.states["flaky"] == {"n": 0} and again.health["flaky"]["errors"] == 0
