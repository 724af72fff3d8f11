"""compare and best over a real sweep lake, checked against answers computed here in Python."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest

from loglake.cli import main
from loglake.config import Config
from loglake.explore.best import best_runs, dominates, pareto_front
from loglake.explore.compare import compare_runs
from loglake.explore.render import compare_text
from loglake.explore.resolve import RunNotFound
from loglake.explore.selection import Selection
from loglake.explore.session import open_lake
from loglake.explore.synthetic import SweepRun, make_sweep, write_sweep


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[SweepRun], Path]:
    runs = make_sweep(500, n_steps=12, nan_every=40, seed=7)
    lake = tmp_path_factory.mktemp("cmp") / "lake"
    write_sweep(lake, runs, per_commit=200)
    return runs, lake


@pytest.fixture(scope="module")
def conn(sweep):
    return open_lake(Config(lake=str(sweep[1])))


def finite(xs: list[float]) -> list[float]:
    return [x for x in xs if not math.isnan(x)]


def test_compare_200_runs_matches_python(conn, sweep) -> None:
    runs, _ = sweep
    chosen = runs[100:300]
    # Mix how runs are named: ids, names, experiment/run.
    refs = [
        r.run_id if i % 3 == 0 else r.run if i % 3 == 1 else f"{r.experiment}/{r.run}"
        for i, r in enumerate(chosen)
    ]
    cmp = compare_runs(conn, refs)
    assert [r["run_id"] for r in cmp.runs] == [r.run_id for r in chosen]

    keys = sorted({k for r in chosen for k in r.params})
    assert [p.key for p in cmp.params] == keys
    for p in cmp.params:
        vals = [r.params.get(p.key) for r in chosen]
        assert p.values == vals
        assert p.differs == (len({float(v) if _isnum(v) else v for v in vals}) > 1)
    assert {p.key for p in cmp.differing_params()} == set(keys)  # a sweep varies everything

    for m in cmp.metrics:
        for r, s in zip(chosen, m.summaries, strict=True):
            pts = r.curves[m.key]
            assert s is not None
            assert s["count"] == len(pts)
            assert s["min"] == min(finite([v for _, v in pts]))
            assert s["max"] == max(finite([v for _, v in pts]))
            last = pts[-1][1]
            assert s["last"] == last or (math.isnan(s["last"]) and math.isnan(last))
        goal_vals = [(s["min"] if m.goal == "min" else s["max"]) for s in m.summaries]
        best = (min if m.goal == "min" else max)(goal_vals)
        assert m.best == goal_vals.index(best)

    for pkg in cmp.packages:
        versions = [r.packages[pkg.key] for r in chosen]
        assert pkg.values == versions
        assert pkg.differs == (len(set(versions)) > 1)
    assert [p.key for p in cmp.packages] == ["numpy", "torch"]
    [ds] = cmp.datasets
    assert ds.differs == (len({r.dataset[3] for r in chosen}) > 1)

    wide = cmp.per_run("last")
    assert wide.num_rows == 200
    assert wide["params.lr"].to_pylist() == [r.params["lr"] for r in chosen]


def test_compare_two_runs_text_marks_differences(conn, sweep) -> None:
    import io

    runs, _ = sweep
    a, b = runs[0], runs[400]  # same namespace and experiment, other torch and data
    cmp = compare_runs(conn, [a.run, b.run_id[:8]])
    out = io.StringIO()
    compare_text(cmp, out, show_all=True)
    text = out.getvalue()
    for key in a.params:
        differs = a.params[key] != b.params[key]
        line = next(ln for ln in text.splitlines() if ln.strip(" ≠").startswith(key + " "))
        assert line.startswith("≠") == differs, line
    assert "val_accuracy" in text and a.run in text and b.run in text
    assert "≠ torch" in text and "≠ /data/cifar10/train" in text


def test_compare_cli_json(tmp_path: Path, sweep, capsys) -> None:
    runs, lake = sweep
    chosen = [r for r in runs if r.experiment == "sweep-b" and r.status == "failed"]
    code = main(
        ["compare", "--lake", str(lake), "-e", "sweep-b", "--status", "failed", "-f", "json"]
    )
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert {r["run_id"] for r in data["runs"]} == {r.run_id for r in chosen}
    assert {p["key"] for p in data["params"]} == set(chosen[0].params)


def test_unknown_and_ambiguous_refs(conn) -> None:
    with pytest.raises(RunNotFound, match="no run matches"):
        compare_runs(conn, ["trial-00001", "nope"])
    with pytest.raises(RunNotFound, match="matches 2 runs"):
        # The sweep has runs named trial-00001 only once, but "sweep-a" is no run;
        # a shared id prefix of length 4+ is ambiguous when two ids start with it.
        compare_runs(conn, ["trial-00001", _shared_prefix(conn)])


def _shared_prefix(conn) -> str:
    ids = sorted(r[0] for r in conn.execute("SELECT run_id FROM runs").fetchall())
    for x, y in itertools.pairwise(ids):
        if x[:4] == y[:4] and not any(z.startswith(x[:4]) for z in ids if z not in (x, y)):
            return x[:4]
    raise AssertionError(
        "the seeded sweep has no 4-character run_id prefix shared by exactly two runs; "
        "the fixture's seed or size changed: pick one that has"
    )


# -- best --------------------------------------------------------------------------------


def test_best_single_metric(conn, sweep) -> None:
    runs, _ = sweep
    res = best_runs(conn, ["val_accuracy:max"], Selection(where="params.optimizer = 'adam'"))
    adam = [r for r in runs if r.params["optimizer"] == "adam"]
    want = sorted(
        adam, key=lambda r: (-max(finite([v for _, v in r.curves["val_accuracy"]])), r.run_id)
    )[:10]
    assert res.table["run_id"].to_pylist() == [r.run_id for r in want]
    assert res.considered == len(adam)
    assert not res.pareto


def test_best_two_metrics_is_the_pareto_front(conn, sweep) -> None:
    runs, _ = sweep
    res = best_runs(conn, ["val_accuracy:max", "latency_ms:min"], limit=None)
    pts = {
        r.run_id: (
            max(finite([v for _, v in r.curves["val_accuracy"]])),
            min(finite([v for _, v in r.curves["latency_ms"]])),
        )
        for r in runs
    }
    # Brute force, O(n²): a run is on the front if no run is at least as good on both and
    # better on one.
    front = {
        rid
        for rid, (acc, lat) in pts.items()
        if not any(a >= acc and lt <= lat and (a > acc or lt < lat) for a, lt in pts.values())
    }
    assert res.pareto
    assert set(res.table["run_id"].to_pylist()) == front
    assert 2 <= len(front) < 50
    accs = res.table["max(val_accuracy)"].to_pylist()
    assert accs == sorted(accs, reverse=True)  # presented best-first on the first objective
    assert res.considered == len(runs)


def test_pareto_front_with_ties_and_three_axes() -> None:
    pts = [(1, 1, 1), (1, 1, 1), (2, 0, 0), (0, 2, 0), (0, 0, 2), (0, 0, 0), (1, 0, 1)]
    front = pareto_front(pts)
    assert front == [0, 1, 2, 3, 4]
    assert dominates((1, 1, 1), (1, 0, 1)) and not dominates((1, 1, 1), (1, 1, 1))


def test_best_cli_table_and_csv(sweep, capsys) -> None:
    _, lake = sweep
    code = main(
        [
            "best",
            "--lake",
            str(lake),
            "-m",
            "val_accuracy:max",
            "-m",
            "latency_ms:min",
            "-f",
            "csv",
            "--limit",
            "0",
        ]
    )
    assert code == 0
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert lines[0].split(",")[-2:] == ["max(val_accuracy)", "min(latency_ms)"]
    assert len(lines) > 2
    code = main(["best", "--lake", str(lake), "-m", "last(val_loss):min", "-n", "nlp"])
    out = capsys.readouterr()
    assert code == 0 and "last(val_loss)" in out.out and "best of 250 runs" in out.err


def _isnum(v: str | None) -> bool:
    try:
        float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return True
