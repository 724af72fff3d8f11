"""The explore commands over a lake indexed from the real example logs (tests/corpus).

Parsers keep improving, so these tests check what must hold whatever they extract: every
run is listed, shown, comparable and plottable, and the crashed run is found as failed.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from loglake.cli import main
from loglake.config import Config
from loglake.explore.compare import compare_runs
from loglake.explore.listing import list_runs
from loglake.explore.render import show_text
from loglake.explore.selection import Selection
from loglake.explore.session import open_lake
from loglake.explore.show import show_run
from loglake.index.runner import run_index


@pytest.fixture
def corpus_lake(corpus_copy: Path, tmp_path: Path) -> Path:
    lake = tmp_path / "lake"
    run_index(Config(lake=str(lake)), [str(corpus_copy)], jobs=1, finished=True)
    return lake


def test_every_corpus_run_is_listed_shown_and_compared(corpus_lake: Path) -> None:
    conn = open_lake(Config(lake=str(corpus_lake)))
    listing = list_runs(conn, limit=None)
    experiments = set(listing.table["experiment"].to_pylist())
    assert {"keras_mlp", "xgboost_native", "crash_torch", "sklearn_mlp"} <= experiments
    assert listing.total == listing.table.num_rows >= 6

    ids = listing.table["run_id"].to_pylist()
    for rid in ids:
        detail = show_run(conn, rid)
        out = io.StringIO()
        show_text(detail, out)
        assert rid in out.getvalue()

    crash = list_runs(conn, Selection(experiments=("crash_torch",)), limit=None).table
    crash_run = crash.to_pylist()[0]
    assert crash_run["status"] == "failed"
    assert show_run(conn, crash_run["run_id"]).run["error"]
    assert crash_run["run_id"] in {
        r
        for r in list_runs(conn, Selection(statuses=("failed",)), limit=None)
        .table["run_id"]
        .to_pylist()
    }

    cmp = compare_runs(conn, ids)
    assert len(cmp.runs) == len(ids)
    assert any(p.differs for p in cmp.params)


def test_corpus_cli_filters_on_logged_metrics(corpus_lake: Path, capsys) -> None:
    conn = open_lake(Config(lake=str(corpus_lake)))
    keras = list_runs(conn, Selection(experiments=("keras_mlp",)), limit=None)
    rid = keras.table["run_id"][0].as_py()
    keys = [
        r[0]
        for r in conn.execute(
            f"SELECT key FROM metric_summary WHERE run_id = '{rid}' ORDER BY key"
        ).fetchall()
    ]
    assert keys, "the keras log has metrics"
    key = keys[0]
    low = conn.execute(
        f"SELECT min FROM metric_summary WHERE run_id = '{rid}' AND key = '{key}'"
    ).fetchall()[0][0]
    code = main(
        [
            "runs",
            "--lake",
            str(corpus_lake),
            "-w",
            f'min("{key}") <= {low!r}',
            "-e",
            "keras_mlp",
            "-f",
            "json",
        ]
    )
    assert code == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["run_id"] for r in rows] == [rid]
    assert main(["best", "--lake", str(corpus_lake), "-m", f"{key}:min", "-e", "keras_mlp"]) == 0
    assert rid in capsys.readouterr().out
