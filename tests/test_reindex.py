"""``loglake reindex``: a fixed parser replaces exactly its own rows, atomically, once.

Real files, a real Delta lake and DuckDB: index with a team parser, change the parser, reindex,
and compare every table's rows before and after.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable

from loglake.config import Config
from loglake.index.runner import run_index
from loglake.lake.checkpoint import CheckpointStore
from loglake.query.connect import connect
from loglake.reindex import PARSER_TABLES, reindex

from .conftest import CORPUS

TEAM_LOG = """\
TEAM-A trainer
hyper: lr=0.0003 batch=64
ep 1 | it 100 | loss 2.3012 | top1 12.5
ep 1 | it 200 | loss 1.9012 | top1 25.0
eval: val_loss=1.8 val_top1=31.2
ep 2 | it 100 | loss 1.5 | top1 40.5
eval: val_loss=1.4 val_top1=45.0
throughput samples_per_sec=1234.5
all done
"""

# v1 has a bug: it forgets the epoch, and it has no rule for the eval lines.
TEAM_V1 = """
name = "team_a"
version = "1"
priority = 50
[detect]
first_lines = '^NEVER'
[[rule]]
name = "train"
match = '^ep (?P<ep>\\d+) \\| it (?P<step>\\d+) \\|'
pairs = '(?P<key>[a-z0-9_]+) (?P<value>{NUMBER})(?= \\||$)'
key = "{key}"
value = "{value}"
"""

TEAM_V2 = """
name = "team_a"
version = "2"
priority = 50
[detect]
first_lines = '^NEVER'
[[rule]]
name = "train"
match = '^ep (?P<epoch>\\d+) \\| it (?P<step>\\d+) \\|'
pairs = '(?P<key>[a-z0-9_]+) (?P<value>{NUMBER})(?= \\||$)'
key = "{key}"
value = "{value}"
[[rule]]
name = "eval"
match = '^eval: '
pairs = '(?P<key>\\w+)=(?P<value>{NUMBER})'
key = "{key}"
value = "{value}"
step = "none"
"""

ROW_COLS = {
    "metrics": 'run_id, key, value, step, epoch, ts, source_fp, "offset", parser',
    "params": 'run_id, key, value, value_num, source_fp, "offset", parser',
}


@pytest.fixture
def work(tmp_path: Path) -> Path:
    team = tmp_path / "logs" / "team-a" / "run1"
    team.mkdir(parents=True)
    (team / "train.log").write_text(TEAM_LOG)
    xgb = tmp_path / "logs" / "other" / "xgb"
    xgb.mkdir(parents=True)
    shutil.copy2(CORPUS / "xgboost_native" / "stdout.log", xgb / "stdout.log")
    (tmp_path / "parsers.d").mkdir()
    (tmp_path / "parsers.d" / "team_a.toml").write_text(TEAM_V1)
    return tmp_path


def config(work: Path, *, routes: list[dict[str, Any]] | None = None) -> Config:
    return Config.model_validate(
        {
            "lake": str(work / "lake"),
            "sources": [{"name": "logs", "paths": [str(work / "logs")]}],
            "parsers": {
                "dirs": [str(work / "parsers.d")],
                "route": routes
                if routes is not None
                else [{"match": "team-a/**", "parsers": ["team_a"]}],
            },
        }
    )


def rows(cfg: Config, table: str, where: str = "true") -> list[tuple]:
    con = connect(cfg.lake)
    cols = ROW_COLS.get(table, "*")
    return sorted(con.sql(f"SELECT {cols} FROM {table} WHERE {where}").fetchall(), key=repr)


def count_by_parser(cfg: Config, table: str) -> dict[str, int]:
    con = connect(cfg.lake)
    return dict(con.sql(f"SELECT parser, count(*) FROM {table} GROUP BY 1").fetchall())


def versions(cfg: Config) -> dict[str, int]:
    return {t: DeltaTable(f"{cfg.lake}/{t}").version() for t in (*PARSER_TABLES, "runs")}


def test_reindex_replaces_exactly_that_parsers_rows(work: Path) -> None:
    cfg = config(work)
    report = run_index(cfg, [], finished=True)
    assert not report.failures
    team_fp = "source_path LIKE '%team-a%'"
    before_metrics = count_by_parser(cfg, "metrics")
    assert before_metrics["team_a@1"] == 6  # loss and top1 on three train lines
    xgb_before = rows(cfg, "metrics", "parser = 'xgboost@1'")
    params_before = rows(cfg, "params")
    generic_before = rows(cfg, "metrics", "parser LIKE 'generic@%'")
    eval_generic = [r for r in generic_before if r[1] in ("val_loss", "val_top1")]
    assert len(eval_generic) == 4  # v1 left the eval lines to the fallback
    assert rows(cfg, "metrics", "parser = 'team_a@1' AND epoch IS NOT NULL") == []
    v0 = versions(cfg)

    (work / "parsers.d" / "team_a.toml").write_text(TEAM_V2)
    rep = reindex(cfg, ["team_a"])
    assert [Path(p).name for p in rep.files] == ["train.log"] and not rep.missing
    assert rep.counts["team_a"]["metrics"] == [6, 10]
    assert rep.before["team_a"] == {"team_a@1"} and rep.after["team_a"] == {"team_a@2"}

    after = count_by_parser(cfg, "metrics")
    assert "team_a@1" not in after and after["team_a@2"] == 10
    # Every train metric now has its epoch; the eval metrics are team_a's, with the epoch
    # context of the line before.
    team = rows(cfg, "metrics", "parser = 'team_a@2'")
    assert all(r[4] is not None for r in team)
    assert {(r[1], r[2], r[4]) for r in team if r[1].startswith("val_")} == {
        ("val_loss", 1.8, 1.0),
        ("val_top1", 31.2, 1.0),
        ("val_loss", 1.4, 2.0),
        ("val_top1", 45.0, 2.0),
    }
    # The fallback no longer reports the eval lines (no value counted twice) and keeps the rest.
    generic_after = rows(cfg, "metrics", "parser LIKE 'generic@%'")
    assert generic_after == [r for r in generic_before if r not in eval_generic]
    team_run = "run_id IN (SELECT run_id FROM runs WHERE run = 'run1/train')"
    on_team_file = rows(cfg, "metrics", f"parser LIKE 'generic@%' AND {team_run}")
    assert rep.counts["generic"]["metrics"] == [len(on_team_file) + 4, len(on_team_file)]
    # No loss of other parsers' rows.
    assert rows(cfg, "metrics", "parser = 'xgboost@1'") == xgb_before
    assert rows(cfg, "params") == params_before
    assert sum(after.values()) == sum(before_metrics.values()) - 6 + 10 - 4
    # No duplicates.
    con = connect(cfg.lake)
    dup = con.sql(
        'SELECT source_fp, "offset", key, step, epoch, count(*) n FROM metrics '
        "GROUP BY ALL HAVING n > 1"
    ).fetchall()
    assert dup == []
    # One commit per table at most: readers never see a half-replaced table.
    v1 = versions(cfg)
    assert all(v1[t] - v0[t] <= 1 for t in v0)
    assert v1["metrics"] == v0["metrics"] + 1
    last = DeltaTable(f"{cfg.lake}/metrics").history(1)[0]
    assert last["operation"] == "WRITE" and "team_a@1" in last["operationParameters"]["predicate"]
    # The run's observation and the checkpoint name the new version.
    latest = con.sql(f"SELECT parser FROM runs_log WHERE {team_fp}").fetchall()
    assert len(latest) == 1 and "team_a@2" in latest[0][0]
    cp = next(e for e in CheckpointStore(cfg.state_path()).load().values() if "team-a" in e["path"])
    assert cp["parsers"]["team_a"]["__version__"] == "2"

    # Indexing again adds nothing; reindexing again changes nothing.
    again = run_index(cfg, [], finished=True)
    assert again.files_indexed == 0
    rep2 = reindex(cfg, ["team_a"])
    assert rep2.counts["team_a"]["metrics"] == [10, 10] and "generic" not in rep2.counts
    assert count_by_parser(cfg, "metrics") == after


def test_a_file_that_grew_is_reparsed_only_up_to_its_checkpoint(work: Path) -> None:
    cfg = config(work)
    run_index(cfg, [], finished=True)
    log = work / "logs" / "team-a" / "run1" / "train.log"
    with log.open("a") as f:
        f.write("ep 3 | it 100 | loss 1.1 | top1 50.5\n")
    (work / "parsers.d" / "team_a.toml").write_text(TEAM_V2)
    reindex(cfg, ["team_a"])
    assert rows(cfg, "metrics", "parser = 'team_a@2' AND epoch = 3") == []
    report = run_index(cfg, [], finished=True)
    assert report.files_indexed == 1
    new = rows(cfg, "metrics", "parser = 'team_a@2' AND epoch = 3")
    assert [(r[1], r[2], r[3]) for r in new] == [("loss", 1.1, 100), ("top1", 50.5, 100)]
    assert count_by_parser(cfg, "metrics")["team_a@2"] == 12


def test_missing_and_rotated_sources(work: Path) -> None:
    cfg = config(work)
    run_index(cfg, [], finished=True)
    before = count_by_parser(cfg, "metrics")
    log = work / "logs" / "team-a" / "run1" / "train.log"
    log.rename(log.with_name("train.log.1"))  # rotated: found beside its old path
    (work / "parsers.d" / "team_a.toml").write_text(TEAM_V2)
    rep = reindex(cfg, ["team_a"])
    assert [Path(p).name for p in rep.files] == ["train.log.1"]
    assert count_by_parser(cfg, "metrics")["team_a@2"] == 10

    log.with_name("train.log.1").unlink()
    (work / "parsers.d" / "team_a.toml").write_text(TEAM_V2.replace('"2"', '"3"'))
    after = count_by_parser(cfg, "metrics")
    rep = reindex(cfg, ["team_a"])
    assert rep.files == [] and [Path(p).name for p in rep.missing] == ["train.log.1"]
    assert "raw-log archive" in "\n".join(rep.lines())
    assert count_by_parser(cfg, "metrics") == after != before


def test_a_parser_added_after_indexing_reaches_the_history_it_is_routed_to(work: Path) -> None:
    cfg = config(work, routes=[])
    run_index(cfg, [], finished=True)
    assert "team_a@1" not in count_by_parser(cfg, "metrics")
    routed = config(work)
    rep = reindex(routed, ["team_a"])
    assert [Path(p).name for p in rep.files] == ["train.log"]
    assert count_by_parser(routed, "metrics")["team_a@1"] == 6
    cp = next(e for e in CheckpointStore(cfg.state_path()).load().values() if "team-a" in e["path"])
    assert "team_a" in cp["parser_names"]  # later growth is parsed by it too


def test_dry_run_changes_nothing(work: Path) -> None:
    cfg = config(work)
    run_index(cfg, [], finished=True)
    v0 = versions(cfg)
    (work / "parsers.d" / "team_a.toml").write_text(TEAM_V2)
    rep = reindex(cfg, ["team_a"], dry_run=True)
    assert rep.counts["team_a"]["metrics"] == [6, 10]
    assert versions(cfg) == v0
    assert "would replace" in "\n".join(rep.lines())


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGLAKE_")}
    return subprocess.run(
        [sys.executable, "-m", "loglake.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_reindex_from_the_command_line(work: Path) -> None:
    (work / "loglake.toml").write_text(
        'lake = "lake"\n[[sources]]\nname = "logs"\npaths = ["logs"]\n'
        '[parsers]\ndirs = ["parsers.d"]\n'
        '[[parsers.route]]\nmatch = "team-a/**"\nparsers = ["team_a"]\n'
    )
    assert cli("index", "-c", "loglake.toml", "--finished", "-q", cwd=work).returncode == 0
    (work / "parsers.d" / "team_a.toml").write_text(TEAM_V2)
    listed = cli("parsers", "list", "-c", "loglake.toml", cwd=work)
    line = next(x for x in listed.stdout.splitlines() if x.startswith("team_a"))
    assert "1 (1 on v1: reindex)" in line
    r = cli("reindex", "-c", "loglake.toml", "--outdated", cwd=work)
    assert r.returncode == 0, r.stderr
    assert "team_a: replaced rows of team_a@1 with team_a@2" in r.stdout
    assert "metrics" in r.stdout and "6 -> 10" in r.stdout
    assert count_by_parser(config(work), "metrics")["team_a@2"] == 10
    missing = cli("reindex", "-c", "loglake.toml", "--parser", "nope", cwd=work)
    assert missing.returncode == 78 and "'nope' is not installed" in missing.stderr
