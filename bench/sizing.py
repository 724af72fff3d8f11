"""Figures for docs/sizing.md: lake size, query latency vs. runs, daemon memory per file.

    python bench/sizing.py lake   [--size-mb 200]          # lake bytes per million points
    python bench/sizing.py query  [--runs 1000,10000,100000] [--steps 20]
    python bench/sizing.py memory [--files 500,4000]       # daemon RSS vs. followed files
    python bench/sizing.py daemon [--size-mb 100]          # daemon MB per CPU-second
    python bench/sizing.py commits [--writers 1,4] [--lake s3://bucket/t]  # commits/s on one table
    python bench/sizing.py all --json sizing.json

``lake`` indexes realistic mixed logs (bench/mixlog.py: config dumps, tracebacks, tqdm bars,
several libraries' metric lines) and reports the bytes of the metrics table per million
points, before and after compaction, and the whole lake against the raw log volume.
``query`` writes synthetic sweeps (loglake.explore.synthetic) of each size through the real
lake writer, compacts them as the housekeeping job would, and times the questions people ask:
listing the best runs, counting runs by status, one run's curves, a group-by over every
run's metric summary, and a cold `loglake sql` process. ``memory`` starts `loglake watch` on
folders of quiet files and reads its resident memory once everything is committed: the slope
is the cost of one more followed file. ``daemon`` drops realistic mixed logs into a folder a
running `loglake watch` follows and measures the daemon's CPU time until every byte is
committed: log megabytes per CPU-second, the figure that sizes a node's daemon (the batch
indexer's is bench/ingest.py's). ``commits`` has several processes append small batches to
one Delta table as fast as they can, as many daemons do to one lake: commits per second in
all, and how that changes with the number of writers (on a local disk by default, or any
lake URL with its credentials in the environment).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

LOGLAKE = [sys.executable, "-m", "loglake.cli"]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("LOGLAKE_")}


def live_bytes(lake: Path, table: str) -> int:
    from loglake.lake.tables import table_files

    return sum(os.path.getsize(f.removeprefix("file://")) for f in table_files(lake, table))


def lake_bytes(lake: Path) -> int:
    from loglake.lake.schema import SCHEMAS

    return sum(live_bytes(lake, t) for t in SCHEMAS)


def _timed(fn: Callable[[], Any], repeat: int) -> float:
    fn()  # warm-up: file lists, caches, the OS page cache
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


# -- lake size -------------------------------------------------------------------------------


def lake_size(work: Path, size_mb: float) -> dict[str, Any]:
    import mixlog

    from loglake.query.connect import connect

    logs = work / "logs"
    paths, _ = mixlog.write_logs(logs, int(size_mb * (1 << 20)), 20, seed=11)
    log_bytes = sum(p.stat().st_size for p in paths)
    lake = work / "lake"
    t = time.perf_counter()
    r = subprocess.run(
        [*LOGLAKE, "index", "-q", "--finished", "--lake", str(lake), str(logs)],
        check=False,
        capture_output=True,
        text=True,
        env=_env(),
    )
    index_s = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"loglake index failed: {r.stderr}")
    points = connect(lake).execute("SELECT count(*) FROM metrics").fetchone()[0]
    before = {"metrics": live_bytes(lake, "metrics"), "lake": lake_bytes(lake)}
    from loglake.lake.schema import SCHEMAS
    from loglake.lake.tables import optimize

    for table in SCHEMAS:
        optimize(lake, table)
    after = {"metrics": live_bytes(lake, "metrics"), "lake": lake_bytes(lake)}
    return {
        "log_bytes": log_bytes,
        "index_seconds": round(index_s, 1),
        "points": points,
        "metrics_bytes": before["metrics"],
        "metrics_bytes_compacted": after["metrics"],
        "lake_bytes": before["lake"],
        "lake_bytes_compacted": after["lake"],
        "mb_per_million_points": round(before["metrics"] / points, 2) if points else None,
        "mb_per_million_points_compacted": round(after["metrics"] / points, 2) if points else None,
        "lake_per_log": round(after["lake"] / log_bytes, 4),
    }


# -- query latency ---------------------------------------------------------------------------


def query_latency(work: Path, runs: int, steps: int, repeat: int) -> dict[str, Any]:
    from loglake.config import Config
    from loglake.explore.best import best_runs
    from loglake.explore.history import metric_history
    from loglake.explore.selection import Selection
    from loglake.explore.session import open_lake
    from loglake.explore.synthetic import make_sweep, write_sweep
    from loglake.lake.tables import optimize
    from loglake.query.connect import connect

    lake = work / f"sweep-{runs}"
    shutil.rmtree(lake, ignore_errors=True)
    t = time.perf_counter()
    sweep = make_sweep(runs, n_params=10, n_metrics=5, n_steps=steps)
    points = sum(len(c) for r in sweep for c in r.curves.values())
    write_sweep(lake, sweep, per_commit=2000)
    write_s = time.perf_counter() - t
    one = sweep[len(sweep) // 2].run_id
    del sweep
    for table in ("runs", "params", "metrics"):
        optimize(lake, table)
    out: dict[str, Any] = {"runs": runs, "points": points, "write_s": round(write_s, 1)}
    out["metrics_bytes"] = live_bytes(lake, "metrics")

    t = time.perf_counter()
    explore = open_lake(Config(lake=str(lake)))  # first open summarises every data file
    out["first_open_s"] = round(time.perf_counter() - t, 2)
    plain = connect(lake)
    adam = Selection(where="params.optimizer = 'adam'")
    questions: dict[str, Callable[[], Any]] = {
        "best10": lambda: best_runs(explore, ["last(val_accuracy):max"], adam, limit=10),
        "status_counts": lambda: plain.execute(
            "SELECT status, count(*) FROM runs GROUP BY status"
        ).fetchall(),
        "one_run_curves": lambda: metric_history(explore, [one], ["val_loss", "train_loss"]),
        "summary_groupby": lambda: plain.execute(
            "SELECT r.experiment, avg(s.max) FROM metric_summary s JOIN runs r USING (run_id) "
            "WHERE s.key = 'val_accuracy' GROUP BY 1"
        ).fetchall(),
    }
    for name, fn in questions.items():
        out[f"{name}_ms"] = round(_timed(fn, repeat) * 1000, 1)

    def cold() -> None:
        subprocess.run(
            [*LOGLAKE, "sql", "--lake", str(lake), "-f", "csv", "SELECT count(*) FROM runs"],
            check=True,
            capture_output=True,
            env=_env(),
        )

    out["cold_sql_ms"] = round(_timed(cold, max(1, repeat // 2)) * 1000)
    shutil.rmtree(lake, ignore_errors=True)
    return out


# -- daemon memory per followed file ---------------------------------------------------------


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _start_daemon(root: Path, logs: Path) -> subprocess.Popen[bytes]:
    """``loglake watch`` over ``logs``, its lake and state under ``root``; retention and
    housekeeping off, so only following and flushing are measured."""
    config = root / "loglake.toml"
    config.write_text(
        f'lake = "{root / "lake"}"\nstate_dir = "{root / "state"}"\n'
        f'[[sources]]\npaths = ["{logs}"]\n[watch]\nidle_timeout = "1h"\n'
        "[retention]\nenabled = false\n[housekeeping]\nenabled = false\n"
    )
    return subprocess.Popen(
        [*LOGLAKE, "watch", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=_env(),
    )


def daemon_memory(work: Path, files: int) -> dict[str, Any]:
    from loglake.watch.status import read_status

    root = work / f"watch-{files}"
    shutil.rmtree(root, ignore_errors=True)
    logs = root / "logs"
    for i in range(files):
        d = logs / f"team-{i % 20}" / f"run-{i}"
        d.mkdir(parents=True, exist_ok=True)
        (d / "stdout.log").write_text(
            "".join(
                f"epoch {e} step {e * 10} loss={1 / (e + 1):.4f} acc={e / 10:.3f}\n"
                for e in range(10)
            )
        )
    proc = _start_daemon(root, logs)
    t = time.perf_counter()
    try:
        while True:
            doc = read_status(root / "state") or {}
            tracked = (doc.get("files") or {}).get("tracked", 0)
            if tracked >= files and doc.get("lag_bytes") == 0 and not doc.get("buffered_rows"):
                break
            if time.perf_counter() - t > 900 or proc.poll() is not None:
                raise SystemExit(f"daemon did not settle on {files} files: {doc.get('files')}")
            time.sleep(0.5)
        backfill_s = time.perf_counter() - t
        time.sleep(15)  # settle: a few idle heartbeats and flush checks
        rss = _rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(120)
    shutil.rmtree(root, ignore_errors=True)
    return {"files": files, "rss_mb": round(rss, 1), "backfill_s": round(backfill_s, 1)}


# -- daemon throughput -----------------------------------------------------------------------


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def daemon_throughput(work: Path, size_mb: float, files: int = 20) -> dict[str, Any]:
    import mixlog

    from loglake.watch.status import read_status

    root = work / "daemon"
    shutil.rmtree(root, ignore_errors=True)
    staged, logs = root / "staged", root / "logs"
    paths, _ = mixlog.write_logs(staged, int(size_mb * (1 << 20)), files, seed=5)
    logs.mkdir(parents=True)
    proc = _start_daemon(root, logs)
    try:
        while (read_status(root / "state") or {}).get("state") != "running":
            time.sleep(0.2)
        cpu0, t0 = _cpu_s(proc.pid), time.perf_counter()
        nbytes = 0
        for p in paths:  # as jobs would: the files appear and are complete
            os.replace(p, logs / p.name)
            nbytes += (logs / p.name).stat().st_size
        while True:
            doc = read_status(root / "state") or {}
            c = doc.get("counters") or {}
            if (
                c.get("bytes", 0) >= nbytes
                and doc.get("lag_bytes") == 0
                and not doc.get("buffered_rows")
            ):
                break
            if proc.poll() is not None:
                raise SystemExit("the daemon exited")
            time.sleep(0.2)
        wall, cpu = time.perf_counter() - t0, _cpu_s(proc.pid) - cpu0
        peak = _peak_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(120)
    shutil.rmtree(root, ignore_errors=True)
    return {
        "log_mb": round(nbytes / 1e6, 1),
        "files": files,
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "mb_per_cpu_s": round(nbytes / 1e6 / cpu, 2),
        "mb_per_s": round(nbytes / 1e6 / wall, 2),
        "peak_rss_mb": round(peak),
    }


# -- concurrent commits ----------------------------------------------------------------------


def _append_loop(uri: str, writer: int, commits: int) -> None:
    """Append ``commits`` batches; the exit code counts appends that gave up (lost races)."""
    import pyarrow as pa
    from deltalake import write_deltalake
    from deltalake.exceptions import CommitFailedError

    gave_up = 0
    for i in range(commits):
        rows = pa.table({"writer": [writer] * 100, "seq": [i] * 100, "v": [float(i)] * 100})
        try:
            write_deltalake(uri, rows, mode="append")
        except CommitFailedError:
            gave_up += 1
    sys.exit(min(gave_up, 255))


def commit_rate(work: Path, writers: int, commits: int, lake: str | None) -> dict[str, Any]:
    import multiprocessing

    import pyarrow as pa
    from deltalake import DeltaTable, write_deltalake

    uri = (
        f"{lake.rstrip('/')}/commits-{writers}-{time.time_ns()}"
        if lake
        else str(work / f"commits-{writers}")
    )
    write_deltalake(uri, pa.table({"writer": [0], "seq": [0], "v": [0.0]}).slice(0, 0))
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_loop, args=(uri, w, commits)) for w in range(writers)]
    t = time.perf_counter()
    for pr in procs:
        pr.start()
    for pr in procs:
        pr.join()
    elapsed = time.perf_counter() - t
    gave_up = sum(pr.exitcode or 0 for pr in procs)
    rows = DeltaTable(uri).to_pyarrow_table().num_rows
    return {
        "writers": writers,
        "commits": writers * commits,
        "gave_up": gave_up,
        "rows_ok": rows == (writers * commits - gave_up) * 100,
        "seconds": round(elapsed, 2),
        "commits_per_s": round(writers * commits / elapsed, 1),
    }


# -- driver ----------------------------------------------------------------------------------


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=["lake", "query", "memory", "daemon", "commits", "all"])
    p.add_argument("--size-mb", type=float, default=200, help="log volume (lake, daemon)")
    p.add_argument("--runs", default="1000,10000,100000", help="sweep sizes for `query`")
    p.add_argument("--steps", type=int, default=20, help="points per metric per run")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--files", default="500,4000", help="followed files for `memory`")
    p.add_argument("--writers", default="1,4", help="concurrent writers for `commits`")
    p.add_argument("--commits", type=int, default=40, help="appends per writer for `commits`")
    p.add_argument("--lake", help="where `commits` writes (default: the scratch folder)")
    p.add_argument("--work", help="scratch folder (default: a temporary one, removed after)")
    p.add_argument("--json", help="also write the figures to this file")
    args = p.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="loglake-sizing-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    try:
        if args.what in ("lake", "all"):
            results["lake"] = lake_size(work, args.size_mb)
            print(json.dumps(results["lake"]), flush=True)
        if args.what in ("query", "all"):
            results["query"] = []
            for n in (int(x) for x in args.runs.split(",")):
                results["query"].append(query_latency(work, n, args.steps, args.repeat))
                print(json.dumps(results["query"][-1]), flush=True)
        if args.what in ("daemon", "all"):
            results["daemon"] = daemon_throughput(work, args.size_mb)
            print(json.dumps(results["daemon"]), flush=True)
        if args.what in ("commits", "all"):
            results["commits"] = [
                commit_rate(work, int(n), args.commits, args.lake) for n in args.writers.split(",")
            ]
            for row in results["commits"]:
                print(json.dumps(row), flush=True)
        if args.what in ("memory", "all"):
            results["memory"] = [daemon_memory(work, int(n)) for n in args.files.split(",")]
            for row in results["memory"]:
                print(json.dumps(row), flush=True)
            if len(results["memory"]) >= 2:
                a, b = results["memory"][0], results["memory"][-1]
                per_file = (b["rss_mb"] - a["rss_mb"]) * 1024 / (b["files"] - a["files"])
                results["memory_kb_per_file"] = round(per_file, 2)
                print(f"memory: {per_file:.2f} KB per followed file", flush=True)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
