"""Parser plugins as a team uses them: a pip-installed distribution, a config directory, the CLI.

Everything runs through the real ``loglake`` command in subprocesses, on real files.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from loglake.query.connect import connect

EXAMPLE = Path(__file__).parent / "plugin_example"

ACME_LOG = """\
[acme] run=exp42 seed=7 lr=0.001 optimizer=adamw
=== epoch 1/2 ===
  it 10 | loss 2.3011 | acc 0.1200
  it 20 | loss 1.9012 | acc 0.2500
  eval | val_loss 1.8000 | val_acc 0.3100
=== epoch 2/2 ===
  it 10 | loss 1.5000 | acc 0.4100
  eval | val_loss 1.4000 | val_acc 0.4500
[acme] finished in 12.5s
"""

TEAM_LOG = """\
2026-03-01 10:00:00 INFO trainer up
hyper: lr=0.0003 batch=64 model=resnet18
ep 1 | it 100 | loss 2.3012 | top1 12.5
ep 1 | it 200 | loss 1.9012 | top1 25.0
ep 2 | it 100 | loss 1.5 | top1 40.5
all done
"""


def run(
    *args: str, cwd: Path, python: str = sys.executable, check: bool = False
) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGLAKE_")}
    r = subprocess.run(
        [python, "-m", "loglake.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    if check:
        assert r.returncode == 0, r.stderr
    return r


def sql(cwd: Path, query: str) -> list[dict]:
    rel = connect(cwd / "lake").sql(query)
    return [dict(zip(rel.columns, row, strict=True)) for row in rel.fetchall()]


# -- a real plugin distribution ---------------------------------------------------------------


@pytest.fixture(scope="module")
def plugin_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A fresh environment that sees loglake and its dependencies, with the example installed.

    ``--system-site-packages`` would expose the base interpreter's packages, not this
    virtualenv's, so the new environment adds this one's site-packages through a ``.pth``.
    """
    pytest.importorskip("hatchling", reason="the example plugin builds with hatchling")
    root = tmp_path_factory.mktemp("plugin-env")
    src = root / "src"
    shutil.copytree(EXAMPLE, src)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = str(venv / "bin" / "python")
    site = subprocess.run(
        [py, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    host = sysconfig.get_path("purelib")
    Path(site, "_loglake_host.pth").write_text(f"import site; site.addsitedir({host!r})\n")
    subprocess.run(
        [
            py,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--disable-pip-version-check",
            str(src),
        ],
        check=True,
        capture_output=True,
    )
    return py


def test_an_installed_plugin_indexes_a_log(plugin_python: str, tmp_path: Path) -> None:
    logs = tmp_path / "logs" / "acme" / "exp42"
    logs.mkdir(parents=True)
    (logs / "train.log").write_text(ACME_LOG)
    listed = run("parsers", "list", "--lake", "lake", cwd=tmp_path, python=plugin_python)
    line = next(x for x in listed.stdout.splitlines() if x.startswith("acme "))
    assert "plugin loglake-acme 0.1.0 (entry point acme)" in line
    # The project's own environment does not have the plugin: it really came from the install.
    assert "acme " not in run("parsers", "list", cwd=tmp_path).stdout

    r = run("index", "--finished", "-q", "logs", cwd=tmp_path, python=plugin_python)
    assert r.returncode == 0, r.stderr
    metrics = sql(
        tmp_path,
        "SELECT key, value, step, epoch FROM metrics WHERE parser = 'acme@1' "
        'ORDER BY "offset", key',
    )
    assert [(m["key"], m["value"], m["step"], m["epoch"]) for m in metrics] == [
        ("acc", 0.12, 10, 1.0),
        ("loss", 2.3011, 10, 1.0),
        ("acc", 0.25, 20, 1.0),
        ("loss", 1.9012, 20, 1.0),
        ("val_acc", 0.31, None, 1.0),
        ("val_loss", 1.8, None, 1.0),
        ("acc", 0.41, 10, 2.0),
        ("loss", 1.5, 10, 2.0),
        ("val_acc", 0.45, None, 2.0),
        ("val_loss", 1.4, None, 2.0),
    ]
    params = sql(tmp_path, "SELECT key, value FROM params WHERE parser = 'acme@1' ORDER BY key")
    assert {p["key"]: p["value"] for p in params} == {
        "lr": "0.001",
        "optimizer": "adamw",
        "run": "exp42",
        "seed": "7",
    }
    assert sql(tmp_path, "SELECT status FROM runs")[0]["status"] == "completed"
    # The fallbacks left the plugin's lines alone: no value reported twice.
    assert sql(tmp_path, "SELECT count(*) n FROM metrics WHERE parser <> 'acme@1'")[0]["n"] == 0
    listed = run("parsers", "list", "--lake", "lake", cwd=tmp_path, python=plugin_python)
    line = next(x for x in listed.stdout.splitlines() if x.startswith("acme "))
    assert line.split()[3] == "1"  # FILES: the one log it read


# -- a team's TOML parser from a config directory -----------------------------------------------


def write_config(work: Path, extra: str = "") -> None:
    (work / "loglake.toml").write_text(
        'lake = "lake"\n[[sources]]\nname = "cluster"\npaths = ["logs"]\n'
        '[parsers]\ndirs = ["parsers.d"]\n'
        '[[parsers.route]]\nmatch = "team-a/**"\nparsers = ["team_a"]\n' + extra
    )


def team_logs(work: Path) -> None:
    for team, run_name in (("team-a", "run1"), ("team-b", "run2")):
        d = work / "logs" / team / run_name
        d.mkdir(parents=True)
        (d / "train.log").write_text(
            TEAM_LOG.replace("0.0003", "0.0003" if team == "team-a" else "0.01")
        )


def test_new_user_writes_a_routed_parser_without_reading_source(tmp_path: Path) -> None:
    work = tmp_path
    team_logs(work)
    sample = "logs/team-a/run1/train.log"

    new = run("parsers", "new", "team_a", "--dir", "parsers.d", "--sample", sample, cwd=work)
    assert new.returncode == 0, new.stderr
    assert "loglake parsers test YOUR.log --parser parsers.d/team_a.toml" in new.stdout
    toml = work / "parsers.d" / "team_a.toml"
    assert "#   ep 1 | it 100 | loss 2.3012 | top1 12.5" in toml.read_text()  # the sample's lines
    ok = run("parsers", "test", "--embedded", "--parser", str(toml), cwd=work)
    assert ok.returncode == 0 and "ok    team_a@1: 1 test(s) passed" in ok.stdout

    # The user edits the example rule to their log's shape, as the comments in the file say.
    text = toml.read_text()
    text = text.replace("first_lines = '^step \\d+'", "first_lines = '^NEVER'")
    text = text.replace(
        "match = '^step (?P<step>\\d+)\\b'",
        "match = '^ep (?P<epoch>\\d+) \\| it (?P<step>\\d+) \\|'",
    )
    text = text.replace(
        "pairs = '(?P<key>[A-Za-z_][\\w./-]*)=(?P<value>{NUMBER})'",
        "pairs = '(?P<key>[a-z0-9_]+) (?P<value>{NUMBER})(?= \\||$)'",
    )
    text = text.replace("match = '^config: (?P<rest>.*)'", "match = '^hyper: (?P<rest>.*)'")
    text = text.replace("match = '^training finished'", "match = '^all done'")
    toml.write_text(text)
    # Its embedded test still speaks the old format: `parsers test --embedded` says what broke.
    bad = run("parsers", "test", "--embedded", "--parser", str(toml), cwd=work)
    assert bad.returncode == 1 and "FAIL  team_a@1" in bad.stdout
    assert "expected record(s) not produced" in bad.stdout
    text = text.replace('"config: lr=0.001 batch_size=32"', '"hyper: lr=0.001 batch_size=32"')
    text = text.replace('"step 10 loss=0.52 acc=0.81"', '"ep 1 | it 10 | loss 0.52 | acc 0.81"')
    text = text.replace('"step 20 loss=0.41 acc=0.85"', '"ep 1 | it 20 | loss 0.41 | acc 0.85"')
    text = text.replace('"training finished"', '"all done"')
    toml.write_text(text)
    assert run("parsers", "test", "--embedded", "--parser", str(toml), cwd=work).returncode == 0

    shown = run("parsers", "test", sample, "--parser", str(toml), cwd=work)
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert "team_a@1  metric  loss" in out and "team_a@1  param   lr" in out
    assert "team_a@1: 6 metric(s), 3 param(s), 1 status(s)" in out
    assert "1 matched no rule" in out and "trainer up" in out  # the unmatched line, shown

    write_config(work)
    assert run("validate", "loglake.toml", cwd=work).returncode == 0
    r = run("index", "-c", "loglake.toml", "--finished", "-q", cwd=work)
    assert r.returncode == 0, r.stderr
    by_run = sql(
        work,
        "SELECT r.run, m.parser, count(*) n FROM metrics m JOIN runs r USING (run_id) "
        "GROUP BY ALL ORDER BY ALL",
    )
    team_a = [x for x in by_run if x["run"] == "run1/train"]
    team_b = [x for x in by_run if x["run"] == "run2/train"]
    assert team_a == [{"run": "run1/train", "parser": "team_a@1", "n": 6}]
    assert all(x["parser"] != "team_a@1" for x in team_b)  # the route is per path
    epochs = sql(work, "SELECT DISTINCT epoch FROM metrics WHERE parser = 'team_a@1' ORDER BY 1")
    assert [e["epoch"] for e in epochs] == [1.0, 2.0]


def test_parsers_test_without_parser_uses_the_indexing_choice(tmp_path: Path) -> None:
    team_logs(tmp_path)
    (tmp_path / "parsers.d").mkdir()
    (tmp_path / "parsers.d" / "team_a.toml").write_text(
        'name = "team_a"\n[detect]\nfirst_lines = "^NEVER"\n[[rule]]\n'
        "match = '^ep (?P<epoch>\\d+) \\| it (?P<step>\\d+) \\| loss (?P<v>{NUMBER})'\n"
        'key = "loss"\nvalue = "{v}"\n'
    )
    write_config(tmp_path)
    a = run(
        "parsers",
        "test",
        "-c",
        "loglake.toml",
        "--json",
        "logs/team-a/run1/train.log",
        cwd=tmp_path,
        check=True,
    )
    recs = [json.loads(x) for x in a.stdout.splitlines()]
    assert [(r["line"], r["key"], r["value"]) for r in recs if r["parser"] == "team_a@1"] == [
        (3, "loss", 2.3012),
        (4, "loss", 1.9012),
        (5, "loss", 1.5),
    ]
    b = run(
        "parsers",
        "test",
        "-c",
        "loglake.toml",
        "--json",
        "logs/team-b/run2/train.log",
        cwd=tmp_path,
        check=True,
    )
    assert all(json.loads(x)["parser"] != "team_a@1" for x in b.stdout.splitlines())


def test_broken_team_parsers_routed_and_unrouted(tmp_path: Path) -> None:
    team_logs(tmp_path)
    pdir = tmp_path / "parsers.d"
    pdir.mkdir()
    (pdir / "team_a.toml").write_text('name = "team_a"\n[[rule]]\nmatch = "(oops"\n')
    write_config(tmp_path)
    r = run("index", "-c", "loglake.toml", "--finished", "-q", cwd=tmp_path)
    assert r.returncode == 78
    assert "parser 'team_a' is routed to but cannot load" in r.stderr
    assert "team_a.toml" in r.stderr and "rule #1" in r.stderr
    assert run("validate", "loglake.toml", cwd=tmp_path).returncode == 78

    # Nobody routes to it: a warning, and everyone else's logs are indexed.
    (tmp_path / "loglake.toml").write_text(
        'lake = "lake"\n[[sources]]\nname = "cluster"\npaths = ["logs"]\n'
        '[parsers]\ndirs = ["parsers.d"]\n'
    )
    r = run("index", "-c", "loglake.toml", "--finished", "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "parser not loaded (no route uses it)" in r.stderr and "team_a.toml" in r.stderr
    assert sql(tmp_path, "SELECT count(*) n FROM runs")[0]["n"] == 2
