"""End-to-end ingest benchmark: ``loglake index`` next to ``wc -l`` and ``grep -c`` on one input.

    python bench/ingest.py [--size-mb 1024] [--files 200] [--jobs N] [--keep] [--profile]

Two scenarios over generated mixed logs (bench/mixlog.py, deterministic seed): one big file
(one core: a file is read by one worker) and the same volume split over many files
(``--jobs`` workers). Each tool runs as a child process; wall time, CPU time and peak RSS
come from ``wait4`` (the largest single process, workers included), and the summed RSS of
the whole process tree is sampled from /proc. Rows committed are read back from the lake
with ``loglake.connect`` and matched to the generator's truth by (file, offset, key, value):
speed without recall would measure nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import mixlog

GENERATOR_VERSION = 1


@dataclass
class Timing:
    tool: str
    seconds: float
    cpu: float
    max_rss_mb: float | None  # peak of the largest single process (VmHWM), workers included
    tree_rss_mb: float | None  # peak of the summed resident memory of the process tree
    stdout: str
    returncode: int


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return kids
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as fh:
                kids.extend(int(x) for x in fh.read().split())
        except OSError:
            continue
    return kids


def _tree_memory(pid: int) -> tuple[int, int]:
    """(largest VmHWM, summed VmRSS) in kB over ``pid`` and all its descendants.

    Sampled from /proc rather than taken from ``wait4``: a child's ``ru_maxrss`` starts at
    the size of the parent it was forked from, which would charge this benchmark's own
    memory (pyarrow, DuckDB) to ``wc``.
    """
    todo, hwm, rss = [pid], 0, 0
    while todo:
        p = todo.pop()
        todo.extend(_children(p))
        try:
            with open(f"/proc/{p}/status", "rb") as fh:
                for line in fh:
                    if line.startswith(b"VmHWM:"):
                        hwm = max(hwm, int(line.split()[1]))
                    elif line.startswith(b"VmRSS:"):
                        rss += int(line.split()[1])
        except OSError:
            continue
    return hwm, rss


def run_tool(label: str, cmd: list[str], env: dict[str, str] | None = None) -> Timing:
    """Run ``cmd`` to completion, measuring it (and its children) from the outside."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **(env or {})}
    )
    peak = [0, 0]
    done = threading.Event()

    def sample() -> None:
        while True:
            hwm, rss = _tree_memory(proc.pid)
            peak[0], peak[1] = max(peak[0], hwm), max(peak[1], rss)
            if done.wait(0.05):
                return

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out_chunks: list[bytes] = []
    err_chunks: list[bytes] = []
    readers = [
        threading.Thread(target=lambda: out_chunks.append(proc.stdout.read()), daemon=True),
        threading.Thread(target=lambda: err_chunks.append(proc.stderr.read()), daemon=True),
    ]
    for t in readers:
        t.start()
    # wait4 instead of proc.wait: it also gives the CPU time of the child and its workers.
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    done.set()
    for t in (*readers, sampler):
        t.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = b"".join(err_chunks).decode(errors="replace").strip()
    if proc.returncode != 0 or err:
        print(f"[{label}] exit {proc.returncode}: {err[-2000:]}", file=sys.stderr)
    return Timing(
        tool=label,
        seconds=seconds,
        cpu=usage.ru_utime + usage.ru_stime,
        max_rss_mb=peak[0] / 1024 if peak[0] else None,
        tree_rss_mb=peak[1] / 1024 if peak[1] else None,
        stdout=b"".join(out_chunks).decode(errors="replace"),
        returncode=proc.returncode,
    )


# -- data -------------------------------------------------------------------------------------


def prepare(folder: Path, size: int, files: int, seed: int) -> tuple[list[Path], dict]:
    """Generate (or reuse, when the manifest matches) ``files`` logs totalling ``size`` bytes."""
    manifest = folder / "manifest.json"
    want = {"version": GENERATOR_VERSION, "size": size, "files": files, "seed": seed}
    if manifest.exists():
        got = json.loads(manifest.read_text())
        if {k: got.get(k) for k in want} == want:
            return [folder / n for n in got["paths"]], got["stats"]
    if folder.exists():
        shutil.rmtree(folder)
    t0 = time.perf_counter()
    paths, stats = mixlog.write_logs(
        folder, size, files, seed=seed, truth_path=folder / "truth.parquet"
    )
    print(
        f"  generated {stats.bytes / 1e6:,.1f} MB in {len(paths)} file(s) "
        f"in {time.perf_counter() - t0:.1f}s",
        file=sys.stderr,
    )
    info = {**want, "paths": [p.name for p in paths], "stats": stats.__dict__}
    manifest.write_text(json.dumps(info))
    return paths, info["stats"]


# -- read-back --------------------------------------------------------------------------------

_RECALL_SQL = """
WITH fp AS (
    SELECT DISTINCT source_fp, regexp_extract(source_path, '[^/]+$') AS file FROM runs_log
), m AS (
    SELECT fp.file, m."offset", m.key, m.value, m.parser
    FROM metrics m JOIN fp USING (source_fp)
), t AS (
    SELECT row_number() OVER () AS id, * FROM read_parquet($truth)
), hits AS (
    SELECT t.id, bool_or(m.key = t.key) AS exact
    FROM t JOIN m ON m.file = t.file AND m."offset" = t."offset"
        AND abs(m.value - t.value) <= 1e-9 + 1e-6 * abs(t.value)
    GROUP BY t.id
)
SELECT t.format, count(*) AS expected,
       count(*) FILTER (WHERE hits.exact) AS found,
       count(hits.id) AS value_at_line
FROM t LEFT JOIN hits USING (id)
GROUP BY 1 ORDER BY 1
"""

_EXTRA_SQL = """
WITH fp AS (
    SELECT DISTINCT source_fp, regexp_extract(source_path, '[^/]+$') AS file FROM runs_log
), m AS (
    SELECT fp.file, m."offset", m.key, m.value, m.parser
    FROM metrics m JOIN fp USING (source_fp)
)
SELECT m.parser, m.key, count(*) AS n
FROM m ANTI JOIN read_parquet($truth) t
    ON m.file = t.file AND m."offset" = t."offset" AND m.key = t.key
    AND abs(m.value - t.value) <= 1e-9 + 1e-6 * abs(t.value)
GROUP BY ALL ORDER BY n DESC LIMIT 8
"""


def read_back(lake: Path, truth: Path) -> dict:
    """Rows committed, recall per format, and the commonest rows the truth does not hold."""
    import loglake

    con = loglake.connect(lake)
    rows = con.sql("SELECT count(*) FROM metrics").fetchall()[0][0]
    by_parser = con.sql(
        "SELECT parser, count(*) FROM metrics GROUP BY 1 ORDER BY 2 DESC"
    ).fetchall()
    recall = con.execute(_RECALL_SQL, {"truth": str(truth)}).fetchall()
    extra = con.execute(_EXTRA_SQL, {"truth": str(truth)}).fetchall()
    con.close()
    return {"rows": rows, "by_parser": by_parser, "recall": recall, "extra": extra}


# -- report -----------------------------------------------------------------------------------


def _fmt_rate(x: float) -> str:
    if x >= 1e6:
        return f"{x / 1e6:,.2f}M"
    if x >= 1e3:
        return f"{x / 1e3:,.1f}k"
    return f"{x:,.0f}"


def _mb(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f}"


def print_table(title: str, nbytes: int, lines: int, timings: list[Timing], rows: int) -> None:
    print(f"\n== {title}: {nbytes / 1e6:,.1f} MB, {lines:,} lines")
    head = (
        f"{'tool':<16}{'seconds':>9}{'MB/s':>9}{'lines/s':>10}{'ratio wc':>10}"
        f"{'cpu s':>9}{'MB/cpu-s':>10}{'RSS MB':>8}{'tree MB':>9}{'rows':>12}"
    )
    print(head)
    print("-" * len(head))
    wc = timings[0]
    wc_rate = nbytes / wc.seconds
    for t in timings:
        rate = nbytes / t.seconds
        committed = f"{rows:,}" if t.tool.startswith("loglake") else "-"
        print(
            f"{t.tool:<16}{t.seconds:>9.2f}{rate / 1e6:>9.1f}{_fmt_rate(lines / t.seconds):>10}"
            f"{rate / wc_rate:>10.4f}{t.cpu:>9.2f}{nbytes / 1e6 / max(t.cpu, 1e-9):>10.1f}"
            f"{_mb(t.max_rss_mb):>8}{_mb(t.tree_rss_mb):>9}{committed:>12}"
        )


def print_recall(back: dict, stats: dict) -> float:
    expected = sum(r[1] for r in back["recall"])
    found = sum(r[2] for r in back["recall"])
    recall = found / expected if expected else 0.0
    print(
        f"recall: {recall:.2%} ({found:,} of {expected:,} metric values the generator wrote, "
        f"matched by file, offset, key and value; generator says {stats['metric_values']:,})"
    )
    for fmt, exp, hit, at_line in back["recall"]:
        other = f", {at_line - hit:,} more under another key" if at_line > hit else ""
        print(f"  {fmt:<10} {hit / exp:>8.2%}  {hit:>11,} / {exp:<11,}{other}")
    print("rows by parser: " + ", ".join(f"{p}={n:,}" for p, n in back["by_parser"]))
    if back["extra"]:
        n_extra = back["rows"] - found
        print(f"rows not in the truth: {n_extra:,} (duplicates or values read from noise); top:")
        for parser, key, n in back["extra"]:
            print(f"  {parser:<14} {key:<28} {n:>10,}")
    return recall


def scenario(
    name: str, folder: Path, size: int, files: int, jobs: int | None, args: argparse.Namespace
) -> dict:
    print(f"\n[{name}] preparing {size / 1e6:,.0f} MB in {files} file(s)…", file=sys.stderr)
    paths, stats = prepare(folder / "data", size, files, args.seed)
    nbytes = sum(p.stat().st_size for p in paths)
    names = [str(p) for p in paths]
    for p in paths:  # warm the page cache so the first tool does not pay for the disk
        with p.open("rb") as fh:
            while fh.read(1 << 24):
                pass
    timings = [run_tool("wc -l", ["wc", "-l", *names])]
    wc_lines = int(timings[0].stdout.strip().splitlines()[-1].split()[0])
    grep = run_tool("grep -c loss", ["grep", "-c", "-h", "loss", *names])
    grep_lines = sum(int(x) for x in grep.stdout.split())
    timings.append(grep)
    lake = folder / "lake"
    shutil.rmtree(lake, ignore_errors=True)
    cmd = [sys.executable, "-m", "loglake.cli", "index", "--finished", "-q", "--lake", str(lake)]
    if jobs:
        cmd += ["--jobs", str(jobs)]
    if args.profile:
        prof = folder / f"{name}.prof"
        cmd[1:3] = ["-m", "cProfile", "-o", str(prof), "-m", "loglake.cli"]
    label = "loglake index" + (f" -j{jobs}" if jobs else "")
    env = {"LOGLAKE_INDEX__FLUSH_RECORDS": str(args.flush_records)} if args.flush_records else None
    timings.append(run_tool(label, [*cmd, *names], env))
    if timings[-1].returncode != 0:
        print(f"[{name}] loglake index failed (exit {timings[-1].returncode})", file=sys.stderr)
    back = read_back(lake, folder / "data" / "truth.parquet")
    print_table(f"{name}: {len(paths)} file(s)", nbytes, wc_lines, timings, back["rows"])
    if wc_lines != stats["lines"] or grep_lines != stats["loss_lines"]:
        print(
            f"warning: wc -l {wc_lines:,} / grep {grep_lines:,} vs generator "
            f"{stats['lines']:,} / {stats['loss_lines']:,}"
        )
    recall = print_recall(back, stats)
    if args.profile:
        _print_profile(folder / f"{name}.prof")
    ll = timings[-1]
    return {
        "scenario": name,
        "mb": nbytes / 1e6,
        "seconds": ll.seconds,
        "mb_s": nbytes / 1e6 / ll.seconds,
        "mb_cpu_s": nbytes / 1e6 / max(ll.cpu, 1e-9),
        "ratio_wc": timings[0].seconds / ll.seconds,
        "max_rss_mb": ll.max_rss_mb,
        "tree_rss_mb": ll.tree_rss_mb,
        "rows": back["rows"],
        "recall": recall,
        "ok": ll.returncode == 0 and back["rows"] > 0,
    }


def stage_times(log: Path, mb: float, work: Path) -> None:
    """CPU time per indexing stage, in this process, over the first ``mb`` MB of ``log``.

    Wraps the functions each stage calls (reader, envelope, cleanup, every parser's
    ``parse``, assembly, lake commit) with timers; no profiler overhead per Python call.
    """
    from loglake.config import load_config
    from loglake.index import job, runner
    from loglake.index.pandas_probe import skip_pandas_probe
    from loglake.lake import writer
    from loglake.tail import cleanup

    spent: dict[str, float] = {}

    def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*a: Any, **k: Any) -> Any:
            t = time.process_time()
            try:
                return fn(*a, **k)
            finally:
                spent[name] = spent.get(name, 0.0) + time.process_time() - t

        return wrapper

    def timed_iter(name: str, fn: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
        def wrapper(*a: Any, **k: Any) -> Iterator[Any]:
            it = fn(*a, **k)
            while True:
                t = time.process_time()
                item = next(it, None)
                spent[name] = spent.get(name, 0.0) + time.process_time() - t
                if item is None:
                    return
                yield item

        return wrapper

    part = work / f"first-{mb:g}MB.log"
    with log.open("rb") as src:
        head = src.read(int(mb * 1e6))
    part.write_bytes(head[: head.rfind(b"\n") + 1])
    saved = {
        (job, "read_lines"): job.read_lines,
        (job.EnvelopeDecoder, "feed"): job.EnvelopeDecoder.feed,
        (job, "clean_lines"): job.clean_lines,
        (cleanup, "redraw_segments"): cleanup.redraw_segments,
        (job, "record_tables"): job.record_tables,
        (job, "run_rows"): job.run_rows,
        (job, "absorb"): job.absorb,
        (writer.LakeWriter, "commit"): writer.LakeWriter.commit,
        (runner, "_registry_for"): runner._registry_for,
    }
    job.read_lines = timed_iter("reader", job.read_lines)
    job.EnvelopeDecoder.feed = timed("envelope", job.EnvelopeDecoder.feed)
    job.clean_lines = timed("cleanup", job.clean_lines)
    cleanup.redraw_segments = timed("cleanup (redraw states)", cleanup.redraw_segments)
    for name in ("record_tables", "run_rows", "absorb"):
        setattr(job, name, timed("assembly (Arrow rows)", getattr(job, name)))
    writer.LakeWriter.commit = timed("lake commit (spool + Delta)", writer.LakeWriter.commit)

    def registry_for(*a: Any, **k: Any) -> Any:
        reg = saved[(runner, "_registry_for")](*a, **k)
        for pname, entry in reg.entries.items():
            entry.parser.parse = timed(f"parser {pname}", entry.parser.parse)
        return reg

    runner._registry_for = registry_for
    skip_pandas_probe()  # as `loglake index` does: pyarrow's first pa.array would import pandas
    cfg = load_config(None)
    cfg.lake = str(work / "stages-lake")
    shutil.rmtree(cfg.lake, ignore_errors=True)
    try:
        t0 = time.process_time()
        report = runner.run_index(cfg, [str(part)], jobs=1, finished=True)
        cpu = time.process_time() - t0
    finally:
        for (owner, attr), fn in saved.items():
            setattr(owner, attr, fn)
    print(
        f"\n== where the time goes: {report.bytes / 1e6:.1f} MB in {cpu:.2f} CPU-seconds, "
        "one process (CPU time per stage: a busy machine does not skew it)"
    )
    spent["other (job loop, pipeline, setup)"] = cpu - sum(spent.values())
    for name, secs in sorted(spent.items(), key=lambda kv: -kv[1]):
        alone = f"{report.bytes / 1e6 / secs:10.1f}" if secs > 0 else f"{'-':>10}"
        print(f"  {name:<34}{secs:8.2f}s {secs / cpu:6.1%}  {alone} MB/s alone")


def _print_profile(path: Path) -> None:
    import pstats

    if not path.exists():
        return
    print(f"\nprofile ({path}), top functions by own time:")
    pstats.Stats(str(path)).sort_stats("tottime").print_stats(25)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mb", type=float, default=1024, help="log volume per scenario")
    ap.add_argument("--files", type=int, default=200, help="files in the many-files scenario")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="workers, many-files")
    ap.add_argument(
        "--scenario", choices=["single", "many", "both"], default="both", help="what to run"
    )
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--dir", help="work folder; generated logs are reused when they match")
    ap.add_argument("--keep", action="store_true", help="keep the temporary work folder")
    ap.add_argument("--profile", action="store_true", help="run loglake under cProfile")
    ap.add_argument(
        "--stages", type=float, metavar="MB", help="also time each stage on the first MB MB"
    )
    ap.add_argument("--flush-records", type=int, help="index.flush_records for loglake")
    ap.add_argument("--json", help="also write the headline figures to this JSON file")
    args = ap.parse_args(argv)
    size = int(args.size_mb * (1 << 20))
    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="loglake-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    results = []
    print(f"load average before: {_load()}", file=sys.stderr)
    try:
        if args.scenario in ("single", "both"):
            results.append(scenario("single", work / "single", size, 1, None, args))
        if args.stages and args.scenario != "many":
            stage_times(work / "single" / "data" / "train.log", args.stages, work / "single")
        if args.scenario in ("many", "both") and args.files > 1:
            results.append(scenario("many", work / "many", size, args.files, args.jobs, args))
    finally:
        if args.dir or args.keep:
            print(f"\nwork folder kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\nload average after: {_load()} on {os.cpu_count()} core(s)")
    for r in results:
        print(
            f"{r['scenario']}: {r['mb_s']:.1f} MB/s end to end, {r['mb_cpu_s']:.1f} MB per "
            f"CPU-second, {r['ratio_wc']:.4f}x wc -l, peak RSS {_mb(r['max_rss_mb'])} MB "
            f"(tree {_mb(r['tree_rss_mb'])} MB), {r['rows']:,} rows, recall {r['recall']:.2%}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0 if results and all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
