"""Benchmark of `loglake watch`, the daemon, as a real process with the default config.

Three figures, each against a target from the daemon issue:

1. **Idle cost**: CPU (% of one core) and RSS of a daemon watching ``--quiet`` files
   (10,000) that nobody writes to. Target: < 2% of a core, < 300 MB.
2. **Latency**: from a metric line being written to it being queryable through
   ``loglake.connect`` (the lake is polled every 100 ms), over many lines written at random
   moments while the daemon watches those quiet files. Target: p99 <= flush_interval + 1 s.
3. **Throughput**: ``--busy`` files (1,000) written concurrently by another process; lines
   per second from the first write until every line is queryable.
4. **Checkpoint bytes per flush** during the latency run (10,000 followed files, one
   growing): what the daemon wrote to its checkpoint files (its ``checkpoint_bytes``
   counter; for a daemon without it, the file's size, rewritten whole on every flush), and
   everything it wrote (``wchar``) per flush.

Run:  python bench/watch.py              (about three minutes on two cores)
      python bench/watch.py --quick      (a smaller smoke run)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from loglake.query.connect import connect, refresh
from loglake.runs.identity import resolve
from loglake.watch.status import read_status

TICK = os.sysconf("SC_CLK_TCK")

# -- the daemon as a process ---------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def memory_mb(pid: int) -> tuple[float, float]:
    """(RSS now, peak RSS) in MB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def written_bytes(pid: int) -> int:
    """Bytes the process has handed to write() so far (``wchar``: page cache included)."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key == "wchar":
            return int(rest)
    return 0


def checkpoint_bytes(state: Path) -> int:
    """What the checkpoint files hold now (the whole file is what a full rewrite writes)."""
    names = ("checkpoints.json", "checkpoints.journal")
    return sum((state / n).stat().st_size for n in names if (state / n).exists())


def write_config(work: Path, **watch: str) -> Path:
    lines = [
        f'lake = "{work / "lake"}"',
        "[watch]",
        *(f'{k} = "{v}"' for k, v in watch.items()),
        "[[sources]]",
        'name = "logs"',
        f'paths = ["{work / "logs"}"]',
    ]
    path = work / "loglake.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


class Daemon:
    def __init__(self, config: Path, state: Path) -> None:
        self.state = state
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOGLAKE_")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "loglake.cli", "watch", "-c", str(config)],
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )

    def status(self) -> dict[str, Any]:
        doc = read_status(self.state) or {}
        return doc if doc.get("pid") == self.proc.pid else {}

    def wait_caught_up(self, files: int, timeout: float) -> float:
        """Wait until every file is followed and nothing is left to commit; seconds taken."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.proc.poll() is not None:
                raise SystemExit(f"daemon exited: {self.proc.stderr.read()}")  # type: ignore[union-attr]
            doc = self.status()
            tracked = (doc.get("files") or {}).get("tracked", 0)
            if tracked >= files and doc.get("lag_bytes") == 0 and not doc.get("buffered_rows"):
                return time.monotonic() - started
            time.sleep(0.2)
        raise SystemExit(f"daemon did not catch up in {timeout}s: {self.status()}")

    def counters(self) -> dict[str, int]:
        return dict(self.status().get("counters") or {})

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(120)


# -- the scenarios -----------------------------------------------------------------------------


def metric_lines(step: int, n: int) -> str:
    out = []
    for s in range(step, step + n):
        out.append(f"2024-06-07 12:00:00 INFO trainer: step {s} done\n")
        out.append(f"step={s} loss={1 / (s + 1):.5f} lr=0.0003\n")
    return "".join(out)


def make_quiet_files(logs: Path, count: int) -> None:
    for i in range(count):
        d = logs / f"job-{i // 100:04d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"rank-{i % 100}.log").write_text(metric_lines(0, 3))


def idle_and_latency(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    logs = work / "logs"
    make_quiet_files(logs, args.quiet)
    probe = logs / "probe" / "train.log"
    probe.parent.mkdir()
    probe.write_text("step=0 loss=1.0\n")
    config = write_config(work, flush_interval=f"{args.flush_interval}s")
    daemon = Daemon(config, work / "lake" / "_loglake")
    try:
        ingest = daemon.wait_caught_up(args.quiet + 1, timeout=900)
        time.sleep(3)  # let the first rescan after the backfill pass
        pid = daemon.proc.pid
        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        time.sleep(args.idle_seconds)
        idle_cpu = (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0) * 100
        rss, _ = memory_mb(pid)
        before = daemon.counters()
        wchar0 = written_bytes(pid)
        latencies = probe_latency(args, work, probe)
        after = daemon.counters()
        wrote = written_bytes(pid) - wchar0
        _, peak = memory_mb(pid)
        state_size = checkpoint_bytes(daemon.state)
    finally:
        code = daemon.stop()
    q = statistics.quantiles(latencies, n=100)
    flushes = max(1, after.get("flushes", 0) - before.get("flushes", 0))
    if "checkpoint_bytes" in after:
        cp_bytes = after["checkpoint_bytes"] - before.get("checkpoint_bytes", 0)
    else:  # a daemon that does not count them rewrites the whole file on every flush
        cp_bytes = state_size * flushes
    return {
        "quiet_files": args.quiet,
        "backfill_seconds": round(ingest, 1),
        "idle_cpu_percent": round(idle_cpu, 2),
        "idle_rss_mb": round(rss, 1),
        "peak_rss_mb": round(peak, 1),
        "latency_lines": len(latencies),
        "latency_median_s": round(statistics.median(latencies), 3),
        "latency_p99_s": round(q[98], 3),
        "latency_max_s": round(max(latencies), 3),
        "flush_interval_s": args.flush_interval,
        "latency_flushes": flushes,
        "checkpoint_bytes_per_flush": round(cp_bytes / flushes),
        "written_bytes_per_flush": round(wrote / flushes),
        "checkpoint_files_bytes": state_size,
        "exit_code": code,
    }


def probe_latency(args: argparse.Namespace, work: Path, probe: Path) -> list[float]:
    """Write numbered metric lines at random moments; see when each becomes queryable."""
    run_id = resolve(str(probe), root=str(work / "logs")).run_id  # type: ignore[union-attr]
    written: dict[int, float] = {}
    seen: dict[int, float] = {}
    done = threading.Event()
    rng = random.Random(7)

    def writer() -> None:
        with open(probe, "a") as fh:
            for step in range(1, 10**9):
                if done.is_set():
                    return
                fh.write(f"step={step} loss={rng.random():.5f}\n")
                fh.flush()
                written[step] = time.time()
                time.sleep(rng.uniform(0.02, 0.3))

    t = threading.Thread(target=writer)
    t.start()
    conn = connect(work / "lake")
    deadline = time.monotonic() + args.latency_seconds
    query = f"SELECT DISTINCT step FROM metrics WHERE run_id = '{run_id}' AND step > 0"
    while True:
        refresh(conn, work / "lake")
        now = time.time()
        for (step,) in conn.execute(query).fetchall():
            seen.setdefault(int(step), now)
        if time.monotonic() > deadline and not done.is_set():
            done.set()
            t.join()
        if done.is_set() and all(s in seen for s in written):
            break
        if time.monotonic() > deadline + 60:
            raise SystemExit(f"{len(set(written) - set(seen))} probe lines never became queryable")
        time.sleep(0.1)
    return [seen[s] - written[s] for s in written]


BUSY_WRITER = r"""
import os, sys, time
logs, files, rounds, per_round = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
fds = [os.open(os.path.join(logs, f"job-{i:04d}", "train.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
       for i in range(files)]
step = 0
for r in range(rounds):
    t0 = time.monotonic()
    for fd in fds:
        os.write(fd, "".join(f"epoch {r} step={step + k} loss={1 / (step + k + 1):.6f} lr=0.0003\n"
                             for k in range(per_round)).encode())
    step += per_round
    time.sleep(max(0.0, 1.0 - (time.monotonic() - t0)))
"""


def throughput(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    logs = work / "logs"
    for i in range(args.busy):
        (logs / f"job-{i:04d}").mkdir(parents=True)
    config = write_config(work, flush_interval=f"{args.flush_interval}s")
    daemon = Daemon(config, work / "lake" / "_loglake")
    try:
        time.sleep(2)
        script = work / "busy_writer.py"
        script.write_text(BUSY_WRITER)
        total = args.busy * args.rounds * args.per_round
        started = time.monotonic()
        cpu0 = cpu_seconds(daemon.proc.pid)
        writer = subprocess.Popen(
            [
                sys.executable,
                str(script),
                str(logs),
                str(args.busy),
                str(args.rounds),
                str(args.per_round),
            ]
        )
        conn = connect(work / "lake")
        count = 0
        while count < total:
            time.sleep(0.5)
            refresh(conn, work / "lake")
            count = conn.execute("SELECT count(*) FROM metrics WHERE key = 'loss'").fetchone()[0]
            if time.monotonic() - started > 900:
                raise SystemExit(f"only {count} of {total} lines queryable after 900s")
        elapsed = time.monotonic() - started
        cpu = cpu_seconds(daemon.proc.pid) - cpu0
        writer.wait()
        _, peak = memory_mb(daemon.proc.pid)
        nbytes = sum(p.stat().st_size for p in logs.rglob("*.log"))
    finally:
        code = daemon.stop()
    return {
        "busy_files": args.busy,
        "lines": total,
        "written_over_s": args.rounds,
        "seconds_to_queryable": round(elapsed, 1),
        "lines_per_s": round(total / elapsed),
        "mb_per_s": round(nbytes / 1e6 / elapsed, 2),
        "daemon_cpu_percent": round(cpu / elapsed * 100, 1),
        "peak_rss_mb": round(peak, 1),
        "exit_code": code,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", help="scratch folder (default: a temporary one, removed after)")
    p.add_argument("--quiet", type=int, default=10_000, help="quiet files for idle/latency")
    p.add_argument("--busy", type=int, default=1_000, help="files written concurrently")
    p.add_argument("--rounds", type=int, default=20, help="seconds the busy writer writes")
    p.add_argument("--per-round", type=int, default=10, help="lines per file per second")
    p.add_argument("--idle-seconds", type=float, default=30)
    p.add_argument("--latency-seconds", type=float, default=40)
    p.add_argument("--flush-interval", type=float, default=5.0)
    p.add_argument("--quick", action="store_true", help="1,000 quiet and 100 busy files")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = p.parse_args()
    if args.quick:
        args.quiet, args.busy, args.idle_seconds, args.latency_seconds = 1000, 100, 10, 15
    root = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="loglake-bench-watch-"))
    try:
        results = {
            "idle_and_latency": idle_and_latency(args, root / "quiet"),
            "throughput": throughput(args, root / "busy"),
        }
    finally:
        if not args.work:
            shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    il, tp = results["idle_and_latency"], results["throughput"]
    target = args.flush_interval + 1
    print(f"loglake watch benchmark ({os.cpu_count()} cores)")
    print(f"  backfill of {il['quiet_files']:,} files          {il['backfill_seconds']} s")
    print(
        f"  idle CPU, {il['quiet_files']:,} quiet files      {il['idle_cpu_percent']} % of a core"
        "   (target < 2 %)"
    )
    print(
        f"  idle RSS, {il['quiet_files']:,} quiet files      {il['idle_rss_mb']} MB"
        f" (peak {il['peak_rss_mb']} MB; target < 300 MB)"
    )
    print(
        f"  write -> queryable latency        median {il['latency_median_s']} s, "
        f"p99 {il['latency_p99_s']} s, max {il['latency_max_s']} s over "
        f"{il['latency_lines']} lines (target p99 <= {target:g} s)"
    )
    print(
        f"  checkpoint bytes per flush        {il['checkpoint_bytes_per_flush']:,} "
        f"(checkpoint files {il['checkpoint_files_bytes']:,} bytes; all writes "
        f"{il['written_bytes_per_flush']:,} bytes per flush over {il['latency_flushes']} flushes)"
    )
    print(
        f"  throughput, {tp['busy_files']:,} files written at once  {tp['lines_per_s']:,} "
        f"lines/s ({tp['mb_per_s']} MB/s): {tp['lines']:,} lines queryable "
        f"{tp['seconds_to_queryable']} s after the first write ({tp['written_over_s']} s of "
        f"writing); daemon CPU {tp['daemon_cpu_percent']} %, peak RSS {tp['peak_rss_mb']} MB"
    )


if __name__ == "__main__":
    main()
