"""The fixed cost of a ``loglake index`` process: what it imports and loads, and what it skips.

Each check runs in a fresh interpreter (a real subprocess), since what matters is what a
new process pays before it reads its first line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from loglake.config import Config, ParsersConfig
from loglake.index.runner import run_index
from loglake.query.connect import connect

# Only a remote URL, a query, a terminal progress bar or a parallel run needs these.
NOT_FOR_A_LOCAL_INDEX = ("fsspec", "s3fs", "duckdb", "rich", "multiprocessing", "asyncio")


def _loaded_after(code: str, cwd: Path) -> dict[str, bool]:
    """Run ``code`` in a fresh interpreter; which modules of interest it left imported."""
    probe = (
        f"{code}\nimport json, sys\n"
        "mods = ('fsspec', 's3fs', 'duckdb', 'rich', 'multiprocessing', 'asyncio',\n"
        "        'loglake.parse.builtins.status', 'loglake.parse.declarative_compile')\n"
        "print(json.dumps({m: m in sys.modules for m in mods}))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    r = subprocess.run(
        [sys.executable, "-c", probe], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_importing_the_indexer_loads_no_remote_or_query_modules(tmp_path: Path) -> None:
    loaded = _loaded_after("import loglake.cli, loglake.index.runner", tmp_path)
    assert not [m for m in NOT_FOR_A_LOCAL_INDEX if loaded[m]]


def test_a_local_index_loads_no_remote_or_query_modules(tmp_path: Path) -> None:
    (tmp_path / "a.log").write_text("epoch 1 loss 0.5\n")
    code = "from loglake.cli import main\nassert main(['index', '--quiet', 'a.log']) == 0"
    loaded = _loaded_after(code, tmp_path)
    assert not [m for m in NOT_FOR_A_LOCAL_INDEX if loaded[m]]
    assert loaded["loglake.parse.builtins.status"]  # the parsers did run
    assert (tmp_path / "lake" / "runs").is_dir()


def test_nothing_new_to_index_loads_no_parsers(tmp_path: Path) -> None:
    (tmp_path / "a.log").write_text("epoch 1 loss 0.5\n")
    code = "from loglake.cli import main\nassert main(['index', '--quiet', 'a.log']) == 0"
    _loaded_after(code, tmp_path)
    again = _loaded_after(code, tmp_path)  # the same file, unchanged: nothing to parse
    assert not again["loglake.parse.builtins.status"]
    assert not again["loglake.parse.declarative_compile"]


def test_a_broken_routed_parser_fails_even_with_nothing_new(tmp_path: Path) -> None:
    """Skipping the parsers when nothing is new must not hide a config error."""
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "a.log").write_text("epoch 1 loss 0.5\n")
    pdir = tmp_path / "parsers.d"
    pdir.mkdir()
    (pdir / "team_a.toml").write_text('name = "team_a"\n[[rule]]\nmatch = "(oops"\n')
    config = (
        'lake = "lake"\n[[sources]]\nname = "c"\npaths = ["logs"]\n'
        '[parsers]\ndirs = ["parsers.d"]\n'
    )
    (tmp_path / "loglake.toml").write_text(config)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}

    def index() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "loglake.cli", "index", "-c", "loglake.toml", "-q"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )

    first = index()
    assert first.returncode == 0, first.stderr
    assert "parser not loaded (no route uses it)" in first.stderr
    again = index()  # nothing new: the unrouted broken parser still warns
    assert again.returncode == 0 and "parser not loaded (no route uses it)" in again.stderr

    routed = config + '[[parsers.route]]\nmatch = "*"\nparsers = ["team_a"]\n'
    (tmp_path / "loglake.toml").write_text(routed)
    r = index()  # still nothing new, but a route names the broken parser: a startup error
    assert r.returncode == 78
    assert "parser 'team_a' is routed to but cannot load" in r.stderr


def test_parallel_workers_give_the_rows_of_one_process(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    for i in range(3):
        lines = [f"epoch {e} loss {1.0 / (e + i + 1):.4f} acc {e / 10:.2f}" for e in range(50)]
        (logs / f"run{i}.log").write_text("\n".join(lines) + "\n")
    counts = []
    for jobs in (1, 2):
        lake = tmp_path / f"lake{jobs}"
        cfg = Config(lake=str(lake), parsers=ParsersConfig())
        report = run_index(cfg, [str(logs)], jobs=jobs, finished=True)
        assert report.files_indexed == 3 and not report.failures
        con = connect(str(lake))
        counts.append(
            con.sql(
                "SELECT key, count(*), sum(value) FROM metrics GROUP BY key ORDER BY key"
            ).fetchall()
        )
    assert counts[0] == counts[1] and counts[0]
