"""datasets, derived metrics and the notebook helpers, over real lakes."""

from __future__ import annotations

import importlib
import math
from pathlib import Path

import pyarrow as pa
import pytest

import loglake
from loglake.cli import main
from loglake.config import Config, load_config
from loglake.errors import ConfigError
from loglake.explore.datasets import dataset_history, dataset_summary
from loglake.explore.derived import install_derived, referenced_keys
from loglake.explore.history import metric_history
from loglake.explore.listing import list_runs
from loglake.explore.selection import Selection, selected_ids
from loglake.explore.session import open_lake
from loglake.explore.synthetic import SweepRun, make_sweep, sweep_tables, write_sweep
from loglake.lake.writer import LakeWriter
from loglake.query.connect import connect, refresh


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[SweepRun], Path]:
    runs = make_sweep(60, n_steps=10, seed=3)
    lake = tmp_path_factory.mktemp("data") / "lake"
    write_sweep(lake, runs, per_commit=30)
    return runs, lake


def test_dataset_summary_and_history(sweep, capsys) -> None:
    runs, lake = sweep
    conn = open_lake(Config(lake=str(lake)))
    [row] = dataset_summary(conn).to_pylist()
    assert row["dataset"] == "/data/cifar10/train" and row["runs"] == 60
    assert row["changed"] is True
    assert row["shapes"] == ["48000×3072", "50000×3072"]
    assert row["fingerprints"] == ["sha256:a1b2", "sha256:c3d4"]

    hist = dataset_history(conn, "/data/*/train").to_pylist()
    assert [h["run_id"] for h in hist] == [r.run_id for r in runs]  # oldest first
    changed = [h["run"] for h in hist if h["changed"]]
    first_new = next(r for r in runs if r.dataset[3] == "sha256:c3d4")
    assert changed == [first_new.run]

    # Within the first half nothing changed.
    early = Selection(until=str(first_new.start_time.isoformat()))
    assert dataset_summary(conn, early, changed_only=True).num_rows == 0
    assert dataset_summary(conn, early).to_pylist()[0]["changed"] is False

    assert main(["datasets", "--lake", str(lake), "cifar10", "-f", "csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 61 and sum(line.endswith(",true") for line in lines) == 1


def test_derived_metric_queryable_like_a_logged_one(sweep, tmp_path: Path) -> None:
    runs, lake = sweep
    cfg_file = tmp_path / "loglake.toml"
    cfg_file.write_text(
        f'lake = "{lake}"\n[derived]\ngap = "train_accuracy - val_accuracy"\n'
        'ratio = "\\"val_loss\\" / nullif(train_loss, 0)"\n'
    )
    cfg = load_config(cfg_file, environ={})
    conn = open_lake(cfg)

    def gaps(r: SweepRun) -> list[float]:
        val = dict(r.curves["val_accuracy"])
        return [t - val[s] for s, t in r.curves["train_accuracy"] if s in val]

    got = dict(conn.execute("SELECT run_id, max FROM metric_summary WHERE key = 'gap'").fetchall())
    assert set(got) == {r.run_id for r in runs}
    for r in runs:
        assert math.isclose(got[r.run_id], max(gaps(r)), rel_tol=1e-12)
    want = {r.run_id for r in runs if max(gaps(r)) > 0.034}
    assert 0 < len(want) < len(runs)
    assert set(selected_ids(conn, Selection(where="max(gap) > 0.034"))) == want
    res = list_runs(conn, Selection(), metrics=["gap:max", "ratio"], limit=None)
    assert res.table.num_rows == 60 and "max(gap)" in res.table.column_names
    # refresh rebuilds the raw views; installing again brings the derived keys back.
    refresh(conn, lake)
    install_derived(conn, cfg.derived)
    n = conn.execute("SELECT count(*) FROM metrics WHERE key = 'ratio'").fetchall()[0][0]
    assert n == sum(len(r.curves["val_loss"]) for r in runs)


def test_derived_epoch_and_stepless_points(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    w = LakeWriter(str(lake), tmp_path / "state", "t")
    rows = [
        # per-epoch keys (no step), a final summary pair (neither), a step-only key
        ("A", "acc", 0.5, None, 1.0),
        ("A", "loss", 0.9, None, 1.0),
        ("A", "acc", 0.7, None, 2.0),
        ("A", "loss", 0.6, None, 2.0),
        ("A", "acc", 0.8, None, None),
        ("A", "loss", 0.4, None, None),
        ("A", "acc", 0.1, 5, None),
    ]
    metrics = pa.table(
        {
            "run_id": [r[0] for r in rows],
            "key": [r[1] for r in rows],
            "value": [r[2] for r in rows],
            "step": pa.array([r[3] for r in rows], pa.int64()),
            "epoch": pa.array([r[4] for r in rows], pa.float64()),
            "offset": list(range(len(rows))),
        }
    )
    w.commit({"metrics": metrics, "runs": pa.table({"run_id": ["A"], "source_fp": ["a"]})}, {})
    conn = connect(lake)
    install_derived(conn, {"score": "acc - loss"})
    got = conn.execute(
        "SELECT epoch, round(value, 6) FROM metrics WHERE key = 'score' ORDER BY epoch NULLS LAST"
    ).fetchall()
    assert got == [(1.0, -0.4), (2.0, 0.1), (None, 0.4)]  # step 5 has no loss: no point
    # History orders by step, then epoch, then log position; x falls back the same way.
    for thin in (None, 10):
        h = metric_history(conn, ["A"], ["acc"], max_points=thin).to_pydict()
        assert h["value"] == [0.1, 0.5, 0.7, 0.8]
        assert h["x"] == [5.0, 1.0, 2.0, 3.0]


def test_bad_derived_expressions_are_config_errors(sweep) -> None:
    _, lake = sweep
    with pytest.raises(ConfigError, match="derived.bad"):
        install_derived(connect(lake), {"bad": "train_accuracy +* val_accuracy"})
    with pytest.raises(ConfigError, match="names no metric"):
        install_derived(connect(lake), {"const": "1 + 2"})
    assert referenced_keys('CAST(a AS DOUBLE) + coalesce("eval/loss", b::INTEGER, 0)') == [
        "a",
        "eval/loss",
        "b",
    ]


def test_notebook_helpers(sweep) -> None:
    runs, lake = sweep
    importlib.import_module("loglake.runs.identity")  # the subpackage of the same name
    df = loglake.runs("params.optimizer = 'sgd'", lake=lake, metrics=["val_accuracy:max"])
    sgd = [r for r in runs if r.params["optimizer"] == "sgd"]
    assert sorted(df["run_id"]) == sorted(r.run_id for r in sgd)
    assert "max(val_accuracy)" in df.columns
    table = loglake.runs(lake=lake, namespace="nlp", as_="arrow", limit=5)
    assert isinstance(table, pa.Table) and table.num_rows == 5

    picked = [runs[0].run, runs[1].run_id]
    hist = loglake.history(picked, ["val_loss", "val_accuracy"], lake=lake)
    assert set(hist["run_id"]) == {runs[0].run_id, runs[1].run_id}
    for r in runs[:2]:
        part = hist[(hist["run_id"] == r.run_id) & (hist["key"] == "val_loss")]
        assert list(part["step"]) == [s for s, _ in r.curves["val_loss"]]
        assert list(part["value"]) == [v for _, v in r.curves["val_loss"]]
    thin = loglake.history(runs[0].run, "val_loss", lake=lake, max_points=4, as_="arrow")
    steps = thin["step"].to_pylist()
    assert steps[0] == 10 and steps[-1] == runs[0].curves["val_loss"][-1][0] and len(steps) <= 5


def test_sweep_tables_are_lake_shaped() -> None:
    tables = sweep_tables(make_sweep(3, n_steps=2))
    assert tables["metrics"].num_rows == 3 * 5 * 2  # runs × keys × steps
    assert set(tables) == {"runs", "params", "metrics", "packages", "datasets"}


def test_cached_summary_equals_the_plain_view(tmp_path: Path) -> None:
    """Runs split over several files, NaN points, epoch-only and step-less keys, derived keys."""
    runs = make_sweep(30, n_steps=6, nan_every=4, seed=5)
    lake = tmp_path / "lake"
    write_sweep(lake, runs, per_commit=7)
    w = LakeWriter(str(lake), tmp_path / "state", "extra")
    ids = [r.run_id for r in runs[:5]]
    more = pa.table(
        {
            "run_id": ids * 3,
            # a run_id is derived from its namespace: one namespace per run, as in real lakes
            "namespace": [r.namespace for r in runs[:5]] * 3,
            "key": ["val_loss"] * 5 + ["epoch_acc"] * 5 + ["final"] * 5,
            "value": [0.01, float("nan"), 0.3, 0.2, 0.1] + [0.5] * 5 + [1.0, 2.0, 3.0, 4.0, 5.0],
            "step": pa.array([900] * 5 + [None] * 10, pa.int64()),
            "epoch": pa.array([None] * 5 + [2.5] * 5 + [None] * 5, pa.float64()),
            "offset": list(range(15)),
        }
    )
    w.commit({"metrics": more}, {})
    cfg = Config(lake=str(lake), derived={"gap": "train_accuracy - val_accuracy"})
    plain = open_lake(cfg, summary_cache=False)
    cached = open_lake(cfg, summary_cache=tmp_path / "cache")
    sql = "SELECT * FROM metric_summary ORDER BY run_id, key, namespace"
    a, b = plain.execute(sql).fetchall(), cached.execute(sql).fetchall()
    assert len(a) == len(b) == 30 * 6 + 10
    for x, y in zip(a, b, strict=True):
        assert [_nan_safe(v) for v in x] == [_nan_safe(v) for v in y]
    assert len(list((tmp_path / "cache").glob("*.parquet"))) >= 6  # one partial per file
    # A second open reuses the partials; filters give the same runs either way.
    again = open_lake(cfg, summary_cache=tmp_path / "cache")
    where = Selection(where="last(val_loss) < 0.2 and max(gap) > 0.03 and count(final) = 1")
    assert selected_ids(again, where) == selected_ids(plain, where)
    assert selected_ids(again, where)


def _nan_safe(v: object) -> object:
    return "nan" if isinstance(v, float) and math.isnan(v) else v
