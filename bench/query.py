"""Query speed: loglake's lake against MLflow's own store, same sweep, same questions, one run.

    python bench/query.py                      # 5,000 runs × 10 params × 5 metrics × 100 steps
    python bench/query.py --runs 50000         # the scaling check
    python bench/query.py --skip-mlflow        # loglake only (no MLflow install)

MLflow is never a loglake dependency: the script makes its own venv for it (default
``~/.cache/loglake-bench/mlflow-venv``, ``pip install mlflow``) or uses ``--mlflow-python``,
and runs its half there as a worker process (this file again, with ``--mlflow-worker``; that
half imports only the standard library, pyarrow and MLflow).

The sweep (``loglake.explore.synthetic``) is written once as Parquet; loglake writes it with
its real lake writer, MLflow gets it in its SQLite tracking store: the first ``--api-runs``
runs through MlflowClient (create_run/log_batch/set_terminated), the rest as the very same
rows inserted in bulk (the API takes ~0.13 s per run, hours at 50,000 runs).

Questions, answered on both sides and checked to agree:
  best10       the 10 best runs by last val_accuracy among params.optimizer = 'adam'
  histories50  every point of the 5 metrics of 50 runs
  groupby      mean final val_accuracy per optimizer
  cold_start   a new process: start, open the store, answer best10
Warm questions are timed as the median of ``--repeat`` runs after one warm-up. MLflow is
timed as created and again after ``ANALYZE`` of its database.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

KEYS = ("train_loss", "val_loss", "val_accuracy", "train_accuracy", "latency_ms")
QUESTIONS = ("best10", "histories50", "groupby", "cold_start")
DEFAULT_VENV = Path.home() / ".cache" / "loglake-bench" / "mlflow-venv"
MLFLOW_SPEC = "mlflow>=3,<4"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=5000)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--work", default="bench-work", help="scratch folder (re-created)")
    p.add_argument("--skip-mlflow", action="store_true")
    p.add_argument("--mlflow-python", help="python of an env with mlflow (default: own venv)")
    p.add_argument("--api-runs", type=int, default=50, help="runs MLflow ingests via its API")
    p.add_argument("--json", help="also write the results here")
    p.add_argument(
        "--mlflow-worker", choices=("ingest", "query", "analyze"), help=argparse.SUPPRESS
    )
    p.add_argument("--db", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.mlflow_worker:
        return mlflow_worker(args)
    return run(args)


# -- the driver (loglake's environment) ------------------------------------------------


def run(args: argparse.Namespace) -> int:
    import pyarrow.parquet as pq

    from loglake.explore.synthetic import make_sweep, sweep_tables, write_sweep

    work = Path(args.work).absolute()
    shutil.rmtree(work, ignore_errors=True)
    (work / "sweep").mkdir(parents=True)
    t = time.perf_counter()
    sweep = make_sweep(args.runs, n_params=10, n_metrics=5, n_steps=args.steps)
    print(f"sweep: {args.runs} runs, {sum(len(c) for r in sweep for c in r.curves.values()):,} "
          f"points, made in {time.perf_counter() - t:.1f}s", file=sys.stderr)  # fmt: skip
    t = time.perf_counter()
    write_sweep(work / "lake", sweep, per_commit=1000)
    print(f"loglake: lake written in {time.perf_counter() - t:.1f}s", file=sys.stderr)
    tables = sweep_tables(sweep)
    for name in ("runs", "params", "metrics"):
        pq.write_table(tables[name], work / "sweep" / f"{name}.parquet")
    names = [r.run for r in sweep[:: max(1, len(sweep) // 50)][:50]]
    (work / "sweep" / "history_runs.json").write_text(json.dumps(names))

    results: dict[str, Any] = {"runs": args.runs, "steps": args.steps}
    results["loglake"] = loglake_side(work / "lake", names, args.repeat)
    if not args.skip_mlflow:
        python = args.mlflow_python or str(ensure_mlflow_venv())
        db = work / "mlflow" / "mlflow.db"
        db.parent.mkdir()
        worker = [python, __file__, "--work", str(work), "--db", str(db),
                  "--repeat", str(args.repeat), "--api-runs", str(args.api_runs)]  # fmt: skip
        results["mlflow_ingest"] = _worker(worker + ["--mlflow-worker", "ingest"])
        results["mlflow"] = _worker(worker + ["--mlflow-worker", "query"])
        _worker(worker + ["--mlflow-worker", "analyze"])
        results["mlflow_analyzed"] = _worker(worker + ["--mlflow-worker", "query"])
        for side in ("mlflow", "mlflow_analyzed"):
            check_agreement(results["loglake"]["answers"], results[side]["answers"], side)
    report(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    return 0


def loglake_side(lake: Path, names: list[str], repeat: int) -> dict[str, Any]:
    from loglake.config import Config
    from loglake.explore.session import open_lake

    t = time.perf_counter()
    open_lake(Config(lake=str(lake)))  # the first open ever also summarises every data file
    first_open_s = time.perf_counter() - t
    t = time.perf_counter()
    conn = open_lake(Config(lake=str(lake)))
    open_s = time.perf_counter() - t
    ids = dict(conn.execute("SELECT run, run_id FROM runs").fetchall())
    run_ids = [ids[n] for n in names]
    by_id = {v: k for k, v in ids.items()}
    timings, answers = {}, {}
    timings["best10"], answers["best10"] = _timed(lambda: loglake_best10(conn), repeat)
    timings["histories50"], table = _timed(lambda: loglake_histories(conn, run_ids), repeat)
    answers["histories50"] = _history_digest(
        [by_id[r] for r in table.column("run_id").to_pylist()],
        table.column("key").to_pylist(),
        table.column("value").to_pylist(),
    )
    timings["groupby"], answers["groupby"] = _timed(lambda: loglake_groupby(conn), repeat)
    code = (
        "import sys, json\n"
        "from loglake.config import Config\n"
        "from loglake.explore.session import open_lake\n"
        "from loglake.explore.best import best_runs\n"
        "from loglake.explore.selection import Selection\n"
        f"conn = open_lake(Config(lake={str(lake)!r}))\n"
        "r = best_runs(conn, ['last(val_accuracy):max'], "
        "Selection(where=\"params.optimizer = 'adam'\"), limit=10)\n"
        "print(json.dumps(r.table.column('run').to_pylist()))\n"
    )
    timings["cold_start"], answers["cold_start"] = _cold(sys.executable, code, repeat)
    return {"first_open_s": first_open_s, "open_s": open_s, "timings": timings, "answers": answers}


def loglake_best10(conn: Any) -> list[list[Any]]:
    from loglake.explore.best import best_runs
    from loglake.explore.selection import Selection

    r = best_runs(
        conn, ["last(val_accuracy):max"], Selection(where="params.optimizer = 'adam'"), limit=10
    )
    return [list(x) for x in zip(r.table.column("run").to_pylist(),
                                 r.table.column("last(val_accuracy)").to_pylist(), strict=True)]  # fmt: skip


def loglake_histories(conn: Any, run_ids: list[str]) -> Any:
    from loglake.explore.history import metric_history

    return metric_history(conn, run_ids, list(KEYS))


def loglake_groupby(conn: Any) -> dict[str, float]:
    from loglake.explore.expr import parse
    from loglake.explore.sqlgen import RunQuery

    q = RunQuery()
    last = q.compile(parse("last(val_accuracy)"))
    opt = q.param("optimizer")
    inner = q.sql([("optimizer", f"{opt}.value"), ("v", last)])
    sql = f"SELECT optimizer, avg(v) FROM ({inner}) WHERE optimizer IS NOT NULL GROUP BY 1"
    return dict(conn.execute(sql).fetchall())


def ensure_mlflow_venv() -> Path:
    python = DEFAULT_VENV / "bin" / "python"
    probe = [str(python), "-c", "import mlflow"]
    if python.exists() and subprocess.run(probe, check=False, capture_output=True).returncode == 0:
        return python
    print(f"installing {MLFLOW_SPEC} into {DEFAULT_VENV} (once)…", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(DEFAULT_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", MLFLOW_SPEC], check=True)
    return python


def _worker(cmd: list[str]) -> dict[str, Any]:
    env = {
        **os.environ,
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "PYTHONWARNINGS": "ignore",
    }
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"MLflow worker failed: {' '.join(cmd[-2:])}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def check_agreement(ours: dict[str, Any], theirs: dict[str, Any], side: str) -> None:
    problems = []
    if [n for n, _ in ours["best10"]] != [n for n, _ in theirs["best10"]]:
        problems.append(f"best10 runs differ: {ours['best10']} vs {theirs['best10']}")
    elif any(
        abs(a[1] - b[1]) > 1e-9 for a, b in zip(ours["best10"], theirs["best10"], strict=True)
    ):
        problems.append("best10 values differ")
    if ours["histories50"].keys() != theirs["histories50"].keys():
        problems.append("histories50: different (run, key) sets")
    else:
        for k, (n, s) in ours["histories50"].items():
            m, t = theirs["histories50"][k]
            if n != m or abs(s - t) > 1e-6:
                problems.append(f"histories50 {k}: {n} points sum {s} vs {m} points sum {t}")
                break
    if ours["groupby"].keys() != theirs["groupby"].keys() or any(
        abs(v - theirs["groupby"][k]) > 1e-9 for k, v in ours["groupby"].items()
    ):
        problems.append(f"groupby differs: {ours['groupby']} vs {theirs['groupby']}")
    if ours["cold_start"] != theirs["cold_start"]:
        problems.append("cold_start answers differ")
    if problems:
        raise SystemExit(f"answers disagree with {side}:\n  " + "\n  ".join(problems))
    print(f"answers agree with {side} on every question", file=sys.stderr)


def report(results: dict[str, Any]) -> None:
    ll = results["loglake"]["timings"]
    has_mlflow = "mlflow" in results
    print(f"\n{results['runs']:,} runs × 10 params × 5 metrics × {results['steps']} steps")
    ll_open = results["loglake"]
    print(
        f"loglake open: {ll_open['open_s'] * 1000:.0f} ms "
        f"(first open ever, building the summary cache: {ll_open['first_open_s'] * 1000:.0f} ms)"
    )
    print(
        f"load average (1, 5, 15 min) at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    if has_mlflow:
        print(f"MLflow ingest: {results['mlflow_ingest']['seconds']:.1f}s")
    head = f"{'question':<12} {'loglake':>10}"
    if has_mlflow:
        head += f" {'MLflow':>10} {'ratio':>8} {'MLflow+AN':>10} {'ratio':>8}"
    print(head)
    for q in QUESTIONS:
        line = f"{q:<12} {_ms(ll[q]):>10}"
        if has_mlflow:
            a = results["mlflow"]["timings"][q]
            b = results["mlflow_analyzed"]["timings"][q]
            line += f" {_ms(a):>10} {a / ll[q]:>7.0f}× {_ms(b):>10} {b / ll[q]:>7.0f}×"
        print(line)
    warm = [q for q in QUESTIONS if q != "cold_start"]
    slow = [q for q in warm if ll[q] >= 0.1]
    print("warm questions under 100 ms:", "yes" if not slow else f"no ({', '.join(slow)})")


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 10 else f"{seconds:.1f} s"


# -- shared by both sides (standard library only) ---------------------------------------


def _timed(fn: Any, repeat: int) -> tuple[float, Any]:
    answer = fn()  # warm-up: caches, file footers, query plans
    times = []
    for _ in range(max(1, repeat)):
        t = time.perf_counter()
        answer = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), answer


def _cold(python: str, code: str, repeat: int) -> tuple[float, Any]:
    times, out = [], ""
    for _ in range(max(1, min(repeat, 3))):
        t = time.perf_counter()
        proc = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
        times.append(time.perf_counter() - t)
        out = proc.stdout.strip().splitlines()[-1]
    return statistics.median(times), json.loads(out)


def _history_digest(names: list[str], keys: list[str], values: list[float]) -> dict[str, list]:
    digest: dict[str, list] = {}
    for n, k, v in zip(names, keys, values, strict=True):
        d = digest.setdefault(f"{n}/{k}", [0, 0.0])
        d[0] += 1
        d[1] += v
    return digest


# -- the MLflow worker (MLflow's environment) -------------------------------------------


def mlflow_worker(args: argparse.Namespace) -> int:
    work = Path(args.work)
    uri = f"sqlite:///{args.db}"
    if args.mlflow_worker == "ingest":
        t = time.perf_counter()
        mlflow_ingest(uri, args.db, work, args.api_runs)
        print(json.dumps({"seconds": time.perf_counter() - t}))
    elif args.mlflow_worker == "analyze":
        with sqlite3.connect(args.db) as db:
            db.execute("ANALYZE")
        print(json.dumps({}))
    else:
        print(json.dumps(mlflow_queries(uri, work, args.repeat)))
    return 0


def mlflow_ingest(uri: str, db_path: str, work: Path, api_runs: int) -> None:
    import pyarrow.parquet as pq
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    runs = pq.read_table(work / "sweep" / "runs.parquet").to_pylist()
    params: dict[str, list[tuple[str, str]]] = {}
    for r in pq.read_table(work / "sweep" / "params.parquet").to_pylist():
        params.setdefault(r["run_id"], []).append((r["key"], r["value"]))
    metrics: dict[str, list[tuple[str, float, int]]] = {}
    m = pq.read_table(
        work / "sweep" / "metrics.parquet", columns=["run_id", "key", "value", "step"]
    )
    for rid, key, value, step in zip(
        *(m.column(c).to_pylist() for c in m.column_names), strict=True
    ):
        metrics.setdefault(rid, []).append((key, value, step))

    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("sweep", artifact_location=str(work / "mlflow" / "artifacts"))
    status = {"completed": "FINISHED", "failed": "FAILED", "killed": "KILLED"}

    def ms(t: Any) -> int:
        return int(t.timestamp() * 1000)

    for r in runs[:api_runs]:
        run = client.create_run(exp, run_name=r["run"], start_time=ms(r["start_time"]))
        rid = run.info.run_id
        t0 = ms(r["start_time"])
        client.log_batch(
            rid,
            metrics=[Metric(k, v, t0 + s * 1000, s) for k, v, s in metrics[r["run_id"]]],
            params=[Param(k, v) for k, v in params[r["run_id"]]],
        )
        client.set_terminated(rid, status[r["status"]], end_time=ms(r["end_time"]))

    # The rest: the same rows the API writes (runs, tags, params, metrics, latest_metrics).
    art = work / "mlflow" / "artifacts"
    db = sqlite3.connect(db_path)
    for start in range(api_runs, len(runs), 1000):
        rows: dict[str, list[tuple]] = {
            k: [] for k in ("runs", "tags", "params", "metrics", "latest")
        }
        for r in runs[start : start + 1000]:
            u = uuid.uuid4().hex
            t0, t1 = ms(r["start_time"]), ms(r["end_time"])
            rows["runs"].append((u, r["run"], "UNKNOWN", "", "", "unknown", status[r["status"]],
                                 t0, t1, "", "active", f"{art}/{u}/artifacts", int(exp), None))  # fmt: skip
            rows["tags"].append(("mlflow.runName", r["run"], u))
            rows["params"] += [(k, v, u) for k, v in params[r["run_id"]]]
            latest: dict[str, tuple] = {}
            for k, v, s in metrics[r["run_id"]]:
                rows["metrics"].append((k, v, t0 + s * 1000, u, s, 0))
                if k not in latest or s >= latest[k][3]:
                    latest[k] = (k, v, t0 + s * 1000, s, 0, u)
            rows["latest"] += latest.values()
        with db:
            db.executemany("INSERT INTO runs (run_uuid, name, source_type, source_name, "
                           "entry_point_name, user_id, status, start_time, end_time, "
                           "source_version, lifecycle_stage, artifact_uri, experiment_id, "
                           "deleted_time) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows["runs"])  # fmt: skip
            db.executemany("INSERT INTO tags (key, value, run_uuid) VALUES (?,?,?)", rows["tags"])
            db.executemany(
                "INSERT INTO params (key, value, run_uuid) VALUES (?,?,?)", rows["params"]
            )
            db.executemany("INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) "
                           "VALUES (?,?,?,?,?,?)", rows["metrics"])  # fmt: skip
            db.executemany("INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, "
                           "run_uuid) VALUES (?,?,?,?,?,?)", rows["latest"])  # fmt: skip
    db.close()


def mlflow_queries(uri: str, work: Path, repeat: int) -> dict[str, Any]:
    import mlflow
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    mlflow.set_tracking_uri(uri)
    exp = client.get_experiment_by_name("sweep").experiment_id
    names = json.loads((work / "sweep" / "history_runs.json").read_text())
    db_path = uri.removeprefix("sqlite:///")
    with sqlite3.connect(db_path) as db:
        ids = dict(db.execute("SELECT name, run_uuid FROM runs").fetchall())
    run_ids = [ids[n] for n in names]
    by_id = {v: k for k, v in ids.items()}

    def best10() -> list[list[Any]]:
        found = client.search_runs(
            [exp], "params.optimizer = 'adam'", order_by=["metrics.val_accuracy DESC"],
            max_results=10,
        )  # fmt: skip
        return [[r.info.run_name, r.data.metrics["val_accuracy"]] for r in found]

    def histories() -> dict[str, list]:
        names_, keys_, values_ = [], [], []
        for rid in run_ids:
            for key in KEYS:
                for m in client.get_metric_history(rid, key):
                    names_.append(by_id[rid])
                    keys_.append(key)
                    values_.append(m.value)
        return _history_digest(names_, keys_, values_)

    def groupby() -> dict[str, float]:
        df = mlflow.search_runs(experiment_ids=[exp], max_results=100_000)
        return df.groupby("params.optimizer")["metrics.val_accuracy"].mean().to_dict()

    timings, answers = {}, {}
    timings["best10"], answers["best10"] = _timed(best10, repeat)
    timings["histories50"], answers["histories50"] = _timed(histories, min(repeat, 3))
    timings["groupby"], answers["groupby"] = _timed(groupby, min(repeat, 3))
    code = (
        "import json\n"
        "from mlflow.tracking import MlflowClient\n"
        f"c = MlflowClient(tracking_uri={uri!r})\n"
        "e = c.get_experiment_by_name('sweep').experiment_id\n"
        "r = c.search_runs([e], \"params.optimizer = 'adam'\", "
        "order_by=['metrics.val_accuracy DESC'], max_results=10)\n"
        "print(json.dumps([x.info.run_name for x in r]))\n"
    )
    timings["cold_start"], answers["cold_start"] = _cold(sys.executable, code, repeat)
    return {"timings": timings, "answers": answers}


if __name__ == "__main__":
    sys.exit(main())
