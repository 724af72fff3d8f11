"""Every genuine log in tests/corpus indexes with the default config and matches its truth.json.

Truth comes from the libraries' own APIs (Keras History, HF log_history, xgboost evals_result,
sklearn loss_curve_, Optuna study.trials), never from parsing the log back.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import pytest

import loglake
from loglake.config import Config
from loglake.index.runner import run_index
from loglake.parse.values import normalize_key

from .conftest import CORPUS, corpus_cases


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Any:
    import shutil

    root = tmp_path_factory.mktemp("corpus")
    logs = root / "logs"
    shutil.copytree(CORPUS, logs, ignore=shutil.ignore_patterns("*.py", "*.json", "*.md"))
    cfg = Config(lake=str(root / "lake"))
    report = run_index(cfg, [str(logs)], jobs=1, finished=True)
    assert not report.failures, report.failures
    con = loglake.connect(str(root / "lake"))
    return con


def _truth(case: str) -> dict[str, Any]:
    return json.loads((CORPUS / case / "truth.json").read_text())


def _tolerance(truth: dict[str, Any], key: str, value: float) -> float:
    fmt = truth.get("log_format", {})
    dec = fmt.get("value_decimals")
    if isinstance(dec, dict):
        dec = dec.get(key)
    if isinstance(dec, int):
        return 0.5 * 10.0**-dec + 1e-12
    formats = fmt.get("value_formats") or []
    if "repr" in formats:
        return abs(value) * 1e-12 + 1e-15
    m = next((re.match(r"%\.(\d+)g", f) for f in formats if f.startswith("%.")), None)
    if m:
        digits = int(m.group(1))
        return abs(value) * 0.5 * 10.0 ** (1 - digits) + 1e-12
    return abs(value) * 1e-3 + 1e-9


def _runs_of(con: Any, case: str) -> list[dict[str, Any]]:
    rows = con.sql(
        "SELECT run_id, run, parent_run_id, status, status_reason, error FROM runs "
        "WHERE experiment = ? OR parent_run_id IN (SELECT run_id FROM runs WHERE experiment = ?)",
        params=[case, case],
    ).fetchall()
    cols = ["run_id", "run", "parent_run_id", "status", "status_reason", "error"]
    return [dict(zip(cols, r, strict=True)) for r in rows]


def _main_run(con: Any, case: str) -> dict[str, Any]:
    runs = [r for r in _runs_of(con, case) if r["parent_run_id"] is None]
    assert len(runs) == 1, runs
    return runs[0]


def _metrics(con: Any, run_ids: list[str]) -> list[tuple[str, float, int | None, float | None]]:
    return con.sql(
        "SELECT key, value, step, epoch FROM metrics WHERE list_contains(?, run_id)",
        params=[run_ids],
    ).fetchall()


def _step_ok(
    truth: dict[str, Any], m: dict[str, Any], step: int | None, epoch: float | None
) -> bool:
    fmt = truth.get("log_format", {})
    if m.get("step") is None:
        return True
    if fmt.get("step_printed") is False and m.get("epoch") is not None:
        return epoch is not None and math.isclose(epoch, m["epoch"], abs_tol=1e-9)
    expected = m["step"] + fmt.get("log_step_minus_truth_step", 0)
    if step is not None:
        return step == expected
    return epoch is not None and epoch == expected


CASES = [c for c in corpus_cases() if c != "optuna_study"]


@pytest.mark.parametrize("case", CASES)
def test_every_printed_metric_is_found(lake: Any, case: str) -> None:
    truth = _truth(case)
    run = _main_run(lake, case)
    rows = _metrics(lake, [run["run_id"]])
    missing = []
    for m in truth["metrics"]:
        if not m.get("in_log"):
            continue
        keys = {normalize_key(m["log_key"]), m["log_key"]}
        tol = _tolerance(truth, m["key"], m["value"])
        if m.get("step") is None:  # summary lines print with their own (often fewer) decimals
            tol = max(tol, 0.5e-4 + 1e-12)
        hit = [
            r
            for r in rows
            if r[0] in keys and abs(r[1] - m["value"]) <= tol and _step_ok(truth, m, r[2], r[3])
        ]
        if not hit:
            missing.append((m["log_key"], m.get("step"), m["value"]))
    assert not missing, f"{case}: {len(missing)} printed metrics not found, e.g. {missing[:5]}"


@pytest.mark.parametrize("case", CASES)
def test_no_duplicate_metric_points(lake: Any, case: str) -> None:
    run = _main_run(lake, case)
    dups = lake.sql(
        'SELECT key, step, epoch, "offset", count(*) c FROM metrics WHERE run_id = ? '
        "GROUP BY ALL HAVING c > 1",
        params=[run["run_id"]],
    ).fetchall()
    assert not dups, dups


def _printed_forms(v: Any) -> list[str]:
    forms = {str(v), repr(v), json.dumps(v)}
    if isinstance(v, bool):
        forms |= {"true", "false"} & {json.dumps(v)}
    return [f for f in forms if f]


def _printed_params(text: str, params: dict[str, Any]) -> dict[str, Any]:
    """The truth params the log visibly prints as `key<sep>value` (others can't be expected)."""
    shown = {}
    for k, v in params.items():
        if isinstance(v, dict):
            continue
        for form in _printed_forms(v):
            pat = rf"['\"]?\b{re.escape(k)}['\"]?\s*[:=]\s*['\"]?{re.escape(form)}(?![\w.(])"
            if re.search(pat, text):
                shown[k] = v
                break
    return shown


def _same(expected: Any, got: str) -> bool:
    if isinstance(expected, bool):
        return got.strip().lower() == str(expected).lower()
    if isinstance(expected, int | float):
        try:
            return math.isclose(float(got), float(expected), rel_tol=1e-9)
        except ValueError:
            return False
    if isinstance(expected, list):
        try:
            return json.loads(got.replace("'", '"')) == expected
        except ValueError:
            return False
    return got.strip().strip("'\"") == str(expected)


@pytest.mark.parametrize("case", corpus_cases())
def test_printed_params_are_found(lake: Any, case: str) -> None:
    truth = _truth(case)
    text = (CORPUS / case / "stdout.log").read_text(errors="replace")
    expected = _printed_params(text, truth["params"])
    assert expected or case in ("optuna_study",), f"{case}: test found no printed params"
    run = _main_run(lake, case)
    got: dict[str, list[str]] = {}
    for k, v in lake.sql(
        "SELECT key, value FROM params WHERE run_id = ?", params=[run["run_id"]]
    ).fetchall():
        got.setdefault(k, []).append(v)
    wrong = {
        k: (v, got.get(k))
        for k, v in expected.items()
        if not any(_same(v, g) for g in got.get(k, []))
    }
    assert not wrong, f"{case}: params missing or wrong: {wrong}"


@pytest.mark.parametrize("case", corpus_cases())
def test_status(lake: Any, case: str) -> None:
    truth = _truth(case)
    run = _main_run(lake, case)
    assert run["status"] == truth["status"], run
    if truth.get("error"):
        assert run["error"] == truth["error"]


def test_optuna_one_run_per_trial(lake: Any) -> None:
    truth = _truth("optuna_study")
    runs = _runs_of(lake, "optuna_study")
    parent = _main_run(lake, "optuna_study")
    trials = {
        r["run"].rsplit("/", 1)[-1]: r for r in runs if r["parent_run_id"] == parent["run_id"]
    }
    assert len(trials) == len(truth["trials"])
    for t in truth["trials"]:
        r = trials.get(f"trial-{t['number']}")
        assert r is not None, t["number"]
        want = {"COMPLETE": "completed", "PRUNED": "pruned", "FAIL": "failed"}[t["state"]]
        assert r["status"] == want, (t["number"], r)
        params = dict(
            lake.sql(
                "SELECT key, value FROM params WHERE run_id = ?", params=[r["run_id"]]
            ).fetchall()
        )
        if t["state"] != "COMPLETE":
            continue  # Optuna prints no parameters for pruned trials
        for k, v in t["params"].items():
            assert _same(v, params.get(k, "<missing>")), (t["number"], k, v, params.get(k))
        vals = _metrics(lake, [r["run_id"]])
        assert any(
            key == "value" and math.isclose(val, t["value"], rel_tol=1e-12) and step == t["number"]
            for key, val, step, _ in vals
        ), (t["number"], vals)
    # All trials are grouped under one experiment, discoverable from the parent.
    exps = {
        e
        for (e,) in lake.sql(
            "SELECT DISTINCT experiment FROM runs WHERE parent_run_id = ?",
            params=[parent["run_id"]],
        ).fetchall()
    }
    assert len(exps) == 1
