"""The filter language over a real 500-run sweep lake: every form, checked against plain Python."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from pathlib import Path

import pytest

from loglake.config import Config
from loglake.explore.expr import FilterError, Metric, Param, parse
from loglake.explore.listing import list_runs
from loglake.explore.selection import Selection, count_selected, elsewhere, selected_ids
from loglake.explore.session import open_lake
from loglake.explore.synthetic import SweepRun, make_sweep, write_sweep


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[SweepRun], Path]:
    runs = make_sweep(500, n_steps=20, nan_every=50)
    lake = tmp_path_factory.mktemp("sweep") / "lake"
    write_sweep(lake, runs, per_commit=250)
    return runs, lake


@pytest.fixture(scope="module")
def conn(sweep: tuple[list[SweepRun], Path]):
    return open_lake(Config(lake=str(sweep[1])))


def values(r: SweepRun, key: str, keep: Callable[[int], bool] = lambda s: True) -> list[float]:
    return [v for s, v in r.curves.get(key, []) if keep(s) and not math.isnan(v)]


def last(r: SweepRun, key: str) -> float:
    return r.curves[key][-1][1]


def expect(runs: list[SweepRun], pred: Callable[[SweepRun], bool]) -> set[str]:
    return {r.run_id for r in runs if pred(r)}


def got(conn, where: str, **kw) -> set[str]:
    return set(selected_ids(conn, Selection(where=where, **kw)))


CASES: list[tuple[str, Callable[[SweepRun], bool]]] = [
    ("params.lr < 0.01", lambda r: float(r.params["lr"]) < 0.01),
    ("params.optimizer = 'sgd'", lambda r: r.params["optimizer"] == "sgd"),
    ("params.optimizer != 'sgd'", lambda r: r.params["optimizer"] != "sgd"),
    ("params.batch_size in (16, 128)", lambda r: r.params["batch_size"] in ("16", "128")),
    ("params.optimizer not in ('adam', 'sgd')", lambda r: r.params["optimizer"] == "adamw"),
    ("params.optimizer like 'adam%'", lambda r: r.params["optimizer"].startswith("adam")),
    ("params.optimizer ~ '^a.*w$'", lambda r: r.params["optimizer"] == "adamw"),
    ("params.nonexistent is null", lambda r: True),
    ("params.lr is not null and params.lr >= 0.001", lambda r: float(r.params["lr"]) >= 0.001),
    ("max(val_accuracy) > 0.9", lambda r: max(values(r, "val_accuracy")) > 0.9),
    ("min(val_loss) < 0.2", lambda r: min(values(r, "val_loss")) < 0.2),
    ("last(val_accuracy) >= 0.85", lambda r: last(r, "val_accuracy") >= 0.85),
    ("first(train_loss) > 2.3", lambda r: r.curves["train_loss"][0][1] > 2.3),
    ("metrics.val_accuracy > 0.8", lambda r: last(r, "val_accuracy") > 0.8),
    ("count(val_loss) < 20", lambda r: len(r.curves["val_loss"]) < 20),
    ("last_step(val_loss) = 200", lambda r: r.curves["val_loss"][-1][0] == 200),
    (
        "mean(latency_ms) > 10",
        lambda r: sum(values(r, "latency_ms")) / len(values(r, "latency_ms")) > 10,
    ),
    ("best(val_loss) < 0.2", lambda r: min(values(r, "val_loss")) < 0.2),
    ("best(val_accuracy) > 0.9", lambda r: max(values(r, "val_accuracy")) > 0.9),
    (
        "max(val_accuracy after step 100) > 0.85",
        lambda r: max(values(r, "val_accuracy", lambda s: s > 100), default=-1) > 0.85,
    ),
    (
        "max(val_accuracy before step 100) > 0.7",
        lambda r: max(values(r, "val_accuracy", lambda s: s < 100), default=-1) > 0.7,
    ),
    (
        "min(val_loss between step 50 and 100) < 0.9",
        lambda r: min(values(r, "val_loss", lambda s: 50 <= s <= 100), default=9) < 0.9,
    ),
    (
        "max(val_accuracy from 100 until 150) > 0.8",
        lambda r: max(values(r, "val_accuracy", lambda s: 100 <= s <= 150), default=-1) > 0.8,
    ),
    (
        "max(val_accuracy, step > 150) > 0.88",
        lambda r: max(values(r, "val_accuracy", lambda s: s > 150), default=-1) > 0.88,
    ),
    (
        "params.lr < 0.01 and max(val_accuracy) > 0.9",
        lambda r: float(r.params["lr"]) < 0.01 and max(values(r, "val_accuracy")) > 0.9,
    ),
    (
        "max(train_accuracy) - max(val_accuracy) > 0.034",
        lambda r: max(values(r, "train_accuracy")) - max(values(r, "val_accuracy")) > 0.034,
    ),
    (
        "status = 'failed' or (not params.optimizer = 'sgd' and params.dropout * 2 > 0.9)",
        lambda r: (
            r.status == "failed"
            or (r.params["optimizer"] != "sgd" and float(r.params["dropout"]) * 2 > 0.9)
        ),
    ),
    ("status in ('failed', 'killed')", lambda r: r.status in ("failed", "killed")),
    (
        "experiment = 'sweep-a' and run like 'trial-001%'",
        lambda r: r.experiment == "sweep-a" and r.run.startswith("trial-001"),
    ),
    ("duration > 1205", lambda r: (r.end_time - r.start_time).total_seconds() > 1205),
    (
        "start_time < '2024-05-01 12:00:00+00'",
        lambda r: r.start_time < dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC),
    ),
    ("-min(val_loss) > -0.2", lambda r: min(values(r, "val_loss")) < 0.2),
    (
        "max(val_loss) / min(val_loss) > 14",
        lambda r: max(values(r, "val_loss")) / min(values(r, "val_loss")) > 14,
    ),
]


@pytest.mark.parametrize(("where", "pred"), CASES, ids=[c[0] for c in CASES])
def test_filter_matches_plain_python(conn, sweep, where: str, pred) -> None:
    runs, _ = sweep
    want = expect(runs, pred)
    assert got(conn, where) == want
    assert 0 < len(want) < len(runs) or where == "params.nonexistent is null"


def test_nan_point_is_not_a_minimum_but_counts(conn, sweep) -> None:
    runs, _ = sweep
    diverged = [r for r in runs if any(math.isnan(v) for _, v in r.curves["val_loss"])]
    assert diverged
    ids = {r.run_id for r in diverged}
    table = list_runs(conn, Selection(run_ids=tuple(ids)), metrics=["min(val_loss)"], limit=None)
    mins = dict(zip(table.table["run_id"].to_pylist(), table.table["min(val_loss)"].to_pylist()))
    for r in diverged:
        assert mins[r.run_id] == min(values(r, "val_loss"))


def test_flags_namespace_experiment_status_time(conn, sweep) -> None:
    runs, _ = sweep
    sel = Selection(namespaces=("nlp",), statuses=("completed",), experiments=("sweep-*",))
    assert set(selected_ids(conn, sel)) == expect(
        runs, lambda r: r.namespace == "nlp" and r.status == "completed"
    )
    cut = dt.datetime(2024, 5, 2, tzinfo=dt.UTC)
    assert set(selected_ids(conn, Selection(since="2024-05-02"))) == expect(
        runs, lambda r: r.start_time >= cut
    )
    assert set(selected_ids(conn, Selection(until="2024-05-02T00:00:00+00:00"))) == expect(
        runs, lambda r: r.start_time < cut
    )
    # A relative age: everything in this sweep is older than a day before now.
    assert count_selected(conn, Selection(since="1d")) == 0
    assert count_selected(conn, Selection(until="1d")) == len(runs)


def test_namespace_miss_says_where_the_runs_are(conn, sweep) -> None:
    runs, _ = sweep
    good = [r for r in runs if max(values(r, "val_accuracy")) > 0.91]
    by_ns: dict[str, int] = {}
    for r in good:
        by_ns[r.namespace] = by_ns.get(r.namespace, 0) + 1
    sel = Selection(namespaces=("nlp",), where="max(val_accuracy) > 0.91")
    assert count_selected(conn, sel) == by_ns["nlp"]
    found = elsewhere(conn, Selection(namespaces=("audio",), where="max(val_accuracy) > 0.91"))
    assert found == by_ns and len(found) == 2
    assert elsewhere(conn, sel) == {"vision": by_ns["vision"]}


def test_sort_and_limit(conn, sweep) -> None:
    runs, _ = sweep
    res = list_runs(conn, Selection(experiments=("sweep-a",)), sort=["-max(val_accuracy)"], limit=5)
    want = sorted(
        (r for r in runs if r.experiment == "sweep-a"),
        key=lambda r: -max(values(r, "val_accuracy")),
    )[:5]
    assert res.table["run_id"].to_pylist() == [r.run_id for r in want]
    assert res.total == 250
    res = list_runs(conn, Selection(), sort=["params.lr:asc"], limit=3)
    lrs = sorted(float(r.params["lr"]) for r in runs)[:3]
    assert res.table["lr"].to_pylist() == lrs


def test_runs_columns_show_what_varies(conn, sweep) -> None:
    res = list_runs(conn, Selection(where="params.optimizer = 'sgd'"), limit=None)
    assert "optimizer" not in res.params  # constant in this selection
    assert len(res.params) == 6 and "lr" in res.params
    assert [o.label for o in res.metrics][:2] == ["max(val_accuracy)", "min(val_loss)"]
    assert res.table.num_rows == res.total
    assert res.table.schema.field("lr").type == "double"


@pytest.mark.parametrize(
    "bad",
    [
        "lr < 0.01",  # bare name: neither a run field nor qualified
        "params.lr <",
        "maxx(val_acc) > 1",
        "max(val_acc after) > 1",
        "params.lr < 0.01 and",
        "status = 'failed' )",
        "params.optimizer like adam",
        "'unclosed",
    ],
)
def test_bad_filters_fail_with_a_position(bad: str) -> None:
    with pytest.raises(FilterError) as info:
        parse(bad)
    assert "position" in info.value.message or "not a run field" in info.value.message


def test_quoted_keys_and_dotted_params() -> None:
    node = parse('max("eval/loss" after epoch 2) < params.search_space.alpha')
    assert node.left == Metric("max", "eval/loss", node.left.window)  # type: ignore[union-attr]
    assert node.left.window.terms == (("epoch", ">", 2),)  # type: ignore[union-attr]
    assert node.right == Param("search_space.alpha")  # type: ignore[union-attr]
    assert parse("params.\"model/name\" = 'x'").left == Param("model/name")  # type: ignore[union-attr]
