"""The batch indexer: discover files, parse them on every core, commit rows exactly once.

Workers parse; the coordinating process is the only writer. Chunks of rows cross back over a
bounded queue (a slow lake pauses the workers instead of filling memory; large chunks' tables
wait in a RAM spool, see ``handoff``), are grouped, and are committed with their checkpoints by
the lake writer.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue as queue_mod
import shutil
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from loglake.config import Config, parse_duration
from loglake.errors import LoglakeError
from loglake.index.collector import fewer_collections, index_thresholds
from loglake.index.discover import discover
from loglake.index.handoff import make_spool, pack, unpack
from loglake.index.job import ChunkResult, FileTask, index_file
from loglake.index.pandas_probe import skip_pandas_probe
from loglake.index.sniff import read_head
from loglake.lake.checkpoint import CheckpointStore, StateLock
from loglake.lake.writer import LakeWriter
from loglake.objstore.plan import plan_remote
from loglake.objstore.reach import check_lake
from loglake.objstore.staging import Stager
from loglake.parse.registry import Registry, load_registry, route_file, routed_names
from loglake.runs.identity import resolve
from loglake.tail.fingerprint import fingerprint, identify
from loglake.watch.checkpoints import PackedCheckpoints

log = logging.getLogger(__name__)

# Spawned workers start slowly (~0.3 s); below this much input one process is faster.
PARALLEL_MIN_BYTES = 32 << 20


@dataclass
class IndexReport:
    files_seen: int = 0
    files_indexed: int = 0
    files_unchanged: int = 0
    runs: set[str] = field(default_factory=set)
    metrics: int = 0
    params: int = 0
    parse_errors: int = 0
    gaps: int = 0
    bytes: int = 0
    lines: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)  # one line each, naming the file

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        return (
            f"indexed {self.files_indexed} file(s) ({self.files_unchanged} unchanged) · "
            f"{len(self.runs)} run(s) · {self.metrics:,} metrics · {self.params:,} params · "
            f"{self.parse_errors} parse error(s) · {len(self.failures)} failed file(s) · "
            f"{_size(self.bytes)} in {self.seconds:.2f}s ({self.mb_per_s:,.1f} MB/s)"
        )


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n} B"


def _registry_for(config: Config, routed: set[str]) -> Registry:
    return load_registry(
        config.parsers.dirs,
        disable=config.parsers.disable,
        regex_timeout=config.parsers.regex_timeout,
        routed=routed,
    )


def _parsers_checked(config: Config, routed: set[str]) -> bool:
    """Whether the parsers must load even with nothing to parse: a route naming a parser
    that cannot load, or a broken team parser directory, is a startup error (or warning)
    on every run. Otherwise a run with nothing new skips loading them (~50 ms of regex
    compiling and TOML reading)."""
    return bool(routed or config.parsers.dirs)


def plan(
    config: Config,
    args: list[str],
    store: CheckpointStore,
    *,
    finished: bool,
    now: float,
    stager: Stager | None = None,
) -> tuple[list[FileTask], list[str], int]:
    """Tasks for files with something new; failures (one line each); unchanged count.

    Object-store URLs are planned by ``objstore.plan``: their tasks read staged copies.
    """
    found, missing = discover(args, config)
    failures = [m.message for m in missing]
    timeout = parse_duration(config.index.job_end_timeout)
    checkpoints = store.load()
    remote_tasks, remote_failures, remote_unchanged = plan_remote(
        config,
        args,
        checkpoints,
        stager or Stager(config.state_path(), retry_for=parse_duration(config.index.object_retry)),
        finished=finished,
        now=now,
    )
    failures.extend(remote_failures)
    by_path = {e.get("path"): fp for fp, e in checkpoints.items() if e.get("path")}
    tasks: list[FileTask] = []
    unchanged = 0
    for f in found:
        try:
            st = os.stat(f.path)
            ident = identify(f.path)
        except PermissionError:
            failures.append(f"{f.path}: permission denied — make it readable by this user")
            continue
        except OSError as e:
            failures.append(f"{f.path}: cannot read: {e.strerror or e}")
            continue
        if ident is None:
            continue  # empty file: nothing to say yet
        identity = resolve(
            f.path, root=f.root, template=f.source.template, namespace=f.source.namespace
        )
        if identity is None:
            failures.append(
                f"{f.path}: does not match the source template {f.source.template!r} — "
                "fix the template or exclude the file"
            )
            continue
        idle = finished or (now - st.st_mtime) >= timeout
        fp, fp_len = ident.fp, ident.fp_len
        cp = checkpoints.get(fp)
        if cp is None and f.path in by_path:
            # A small file first seen shorter than the fingerprint length keeps the identity it
            # had then, as long as its first bytes are unchanged.
            old_fp = by_path[f.path]
            old = checkpoints[old_fp]
            old_len = int(old.get("fp_len") or 0)
            if 0 < old_len < fp_len and fingerprint(f.path, old_len) == old_fp:
                fp, fp_len, cp = old_fp, old_len, old
        if cp and cp.get("size") == st.st_size and (cp.get("idle_final") or not idle):
            unchanged += 1
            continue
        routed, auto_detect = route_file(config, f.source, f.path, f.root, identity.namespace)
        compressed = read_head(f.path, 4).startswith((b"\x1f\x8b", b"\x28\xb5\x2f\xfd"))
        tasks.append(
            FileTask(
                path=f.path,
                fp=fp,
                fp_len=fp_len,
                compressed=compressed,
                size=st.st_size,
                mtime=st.st_mtime,
                identity=identity,
                routed=routed,
                auto_detect=auto_detect,
                checkpoint=cp,
                idle=idle,
                max_line=config.index.max_line_bytes,
                flush_records=config.index.flush_records,
            )
        )
    return tasks + remote_tasks, failures, unchanged + remote_unchanged


# -- worker side ----------------------------------------------------------------------------

_WORKER: dict[str, Any] = {}


def use_system_allocator() -> None:
    """Arrow's default jemalloc pool keeps freed batches mapped; the system allocator hands
    them back, ~40 MB less peak RSS on a 100 MB log (the issue caps it at 500 MB). An
    explicit ``ARROW_DEFAULT_MEMORY_POOL`` wins."""
    if not os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        pa.set_memory_pool(pa.system_memory_pool())


def _worker_init(config: Config, routed: set[str], q: Any, spool: Path | None = None) -> None:
    logging.basicConfig(level=logging.WARNING, format="loglake: %(message)s")
    use_system_allocator()
    index_thresholds()
    skip_pandas_probe()
    _WORKER["registry"] = _registry_for(config, routed)
    _WORKER["queue"] = q
    _WORKER["spool"] = spool
    _WORKER["sent"] = 0


def _pool_context() -> Any:
    """Workers are spawned: the coordinator holds deltalake's runtime and lock-holding
    threads, so it is never forked. (A fork server would spare each worker ~0.35 CPU-s of
    imports, but its workers are not the coordinator's children: their CPU time would be
    missing from what the coordinator's parent measures, e.g. bench/ingest.py's wait4.)
    multiprocessing (~12 ms to import) is imported only by a parallel run."""
    import multiprocessing as mp

    return mp.get_context("spawn")


def _worker_run(task: FileTask) -> None:
    q = _WORKER["queue"]
    try:
        for chunk in index_file(task, _WORKER["registry"], lambda n: q.put(("bytes", n))):
            _WORKER["sent"] += 1
            q.put(("chunk", pack(chunk, _WORKER["spool"], _WORKER["sent"])))
    except LoglakeError as e:
        q.put(("error", f"{task.path}: {e.one_line()}"))
    except Exception as e:  # noqa: BLE001 - a file failing must not stop the batch
        q.put(("error", f"{task.path}: {type(e).__name__}: {e}"))
    q.put(("done", task.path))


# -- coordinator ----------------------------------------------------------------------------


#: a file's ``runs`` observations (one per chunk) are committed with its first chunk, its
#: last, and every this many chunks between (see ``_Batcher``)
RUNS_EVERY = 8


class _Batcher:
    """Groups chunks from many files into one lake commit (fewer, larger Parquet files).

    A file's chunks each carry one ``runs`` observation (lines and bytes so far). The
    ``runs`` view keeps only a source's latest, and a Delta append of a one-row table costs
    ~10 ms however small (more as the table's log grows): the observations of a long log's
    middle chunks are held and committed together, with its first chunk (the run appears
    at once), every ``RUNS_EVERY`` chunks and its last chunk. The lake ends up with the
    same rows; only a crash can lose held observations, ones the view would not show
    (the next run of the indexer resumes the file and observes it again).
    """

    def __init__(self, writer: LakeWriter, flush_records: int, report: IndexReport) -> None:
        self.writer = writer
        self.flush_records = flush_records
        self.report = report
        self.tables: dict[str, list[pa.Table]] = {}
        self.checkpoints: dict[str, dict[str, Any]] = {}
        self.rows = 0
        self.held_runs: dict[str, list[pa.Table]] = {}  # per file: observations not sent
        self.chunks_seen: dict[str, int] = {}

    def add(self, chunk: ChunkResult) -> None:
        for name, t in chunk.tables.items():
            if name == "runs":
                t = self._runs_to_send(chunk, t)
                if t is None:
                    continue
            self.tables.setdefault(name, []).append(t)
            self.rows += t.num_rows
        self.checkpoints[chunk.fp] = chunk.checkpoint
        r = self.report
        r.metrics += chunk.stats.get("metrics", 0)
        r.params += chunk.stats.get("params", 0)
        r.parse_errors += chunk.stats.get("errors", 0)
        r.gaps += chunk.stats.get("gaps", 0)
        runs = chunk.tables.get("runs")
        if runs is not None:
            r.runs.update(runs.column("run_id").to_pylist())
        if chunk.final:
            r.files_indexed += 1
            r.lines += chunk.stats.get("lines", 0)
        if self.rows >= self.flush_records:
            self.flush()

    def _runs_to_send(self, chunk: ChunkResult, runs: pa.Table) -> pa.Table | None:
        """The ``runs`` rows to commit with this chunk (its own and those held before), or
        None when this chunk's observation is held."""
        seen = self.chunks_seen.get(chunk.fp, 0)
        self.chunks_seen[chunk.fp] = seen + 1
        held = self.held_runs.pop(chunk.fp, [])
        held.append(runs)
        if chunk.final or seen % RUNS_EVERY == 0:
            if chunk.final:
                self.chunks_seen.pop(chunk.fp, None)
            return pa.concat_tables(held) if len(held) > 1 else runs
        self.held_runs[chunk.fp] = held
        return None

    def flush(self, *, last: bool = False) -> None:
        """Commit what was added; ``last``: also every held ``runs`` observation (files
        that failed before their last chunk)."""
        if last:
            for held in self.held_runs.values():
                for t in held:
                    self.tables.setdefault("runs", []).append(t)
            self.held_runs.clear()
        if not self.checkpoints and not (last and self.tables):
            return
        tables = {k: pa.concat_tables(v) for k, v in self.tables.items() if v}
        self.writer.commit(tables, self.checkpoints)
        self.tables, self.checkpoints, self.rows = {}, {}, 0


def run_index(
    config: Config,
    args: list[str],
    *,
    jobs: int | None = None,
    finished: bool = False,
    progress: Callable[[int, int, int, int], None] | None = None,
) -> IndexReport:
    """Index ``args`` (or the configured sources) into the lake; returns what happened.

    ``progress(bytes_done, bytes_total, files_done, files_total)`` is called as work completes.
    """
    started = time.monotonic()
    report = IndexReport()
    state = config.state_path()
    state.mkdir(parents=True, exist_ok=True)
    routed = routed_names(config)
    check_lake(config)  # an object-store lake that is down: one line now, not a Delta error later
    with StateLock(state):
        store = CheckpointStore(state)
        stager = Stager(state, retry_for=parse_duration(config.index.object_retry))
        stager.cleanup()  # staged copies a killed run left behind
        # Commits journal the entries they advance instead of rewriting the whole file: with
        # hundreds of files (each entry carries its parsers' states, up to ~150 KB) a rewrite
        # per commit made the many-files index quadratic. The file is written whole at the
        # end (and by any later reader, should this run die before).
        journaled = PackedCheckpoints(state)
        writer = LakeWriter(
            config.lake,
            state,
            writer_id=f"index-{socket.gethostname()}-{state_tag(state)}",
            storage_options=config.storage_options or None,
            checkpoints=journaled,
        )
        writer.recover()
        if journaled.journal.size:
            journaled.save()  # planning reads the file: fold what recovery replayed first
        try:
            with fewer_collections():
                _index(
                    config, args, jobs, finished, progress, report, store, stager, writer, routed
                )
            journaled.save()
        finally:
            stager.cleanup()
    report.seconds = time.monotonic() - started
    return report


def state_tag(state: Path) -> str:
    """Tells apart writers on one host that share a lake (each has its own state dir), so
    their app transaction ids, and so their exactly-once sequences, never mix."""
    return hashlib.blake2b(str(state.resolve()).encode(), digest_size=4).hexdigest()


def _index(
    config: Config,
    args: list[str],
    jobs: int | None,
    finished: bool,
    progress: Callable[[int, int, int, int], None] | None,
    report: IndexReport,
    store: CheckpointStore,
    stager: Stager,
    writer: LakeWriter,
    routed: set[str],
) -> None:
    """Plan, parse and commit: the body of ``run_index``, under its lock."""
    use_system_allocator()
    tasks, failures, unchanged = plan(
        config, args, store, finished=finished, now=time.time(), stager=stager
    )
    report.failures.extend(failures)
    report.files_unchanged = unchanged
    report.files_seen = len(tasks) + unchanged
    total_bytes = sum(t.size for t in tasks)
    batcher = _Batcher(writer, config.index.flush_records, report)
    n_jobs = jobs if jobs is not None else config.index.jobs
    explicit = bool(n_jobs)
    n_jobs = n_jobs or os.cpu_count() or 1
    n_jobs = max(1, min(n_jobs, len(tasks)))
    if not explicit and total_bytes < PARALLEL_MIN_BYTES:
        n_jobs = 1
    done_bytes = 0
    done_files = 0
    if progress:
        progress(0, total_bytes, 0, len(tasks))
    if n_jobs == 1 and (tasks or _parsers_checked(config, routed)):
        registry = _registry_for(config, routed)

        def read_some(n: int) -> None:
            nonlocal done_bytes
            done_bytes += n
            if progress:
                progress(done_bytes, total_bytes, done_files, len(tasks))

        for task in tasks:
            before = done_bytes
            try:
                for chunk in index_file(task, registry, read_some):
                    batcher.add(chunk)
                    report.bytes += chunk.stats.get("bytes", 0)
            except LoglakeError as e:
                report.failures.append(f"{task.path}: {e.one_line()}")
            except Exception as e:  # noqa: BLE001
                report.failures.append(f"{task.path}: {type(e).__name__}: {e}")
            done_bytes = before + task.size
            done_files += 1
            if progress:
                progress(done_bytes, total_bytes, done_files, len(tasks))
    elif n_jobs > 1:
        ctx = _pool_context()
        q = ctx.Queue(maxsize=n_jobs * 4)
        spool = make_spool()
        pool = ctx.Pool(n_jobs, initializer=_worker_init, initargs=(config, routed, q, spool))
        try:
            results = [
                pool.apply_async(_worker_run, (task,))
                for task in sorted(tasks, key=lambda t: -t.size)
            ]
            pending = len(tasks)
            while pending:
                try:
                    kind, payload = q.get(timeout=1.0)
                except queue_mod.Empty:
                    if all(r.ready() for r in results):
                        # A worker died hard (killed): its files never reported back.
                        report.failures.append(
                            f"{pending} file(s) lost a worker process (killed?) — re-run "
                            "`loglake index`: it resumes from the last commit"
                        )
                        break
                    continue
                if kind == "bytes":
                    done_bytes += payload
                    if progress:
                        progress(done_bytes, total_bytes, done_files, len(tasks))
                elif kind == "chunk":
                    chunk = unpack(payload)
                    batcher.add(chunk)
                    report.bytes += chunk.stats.get("bytes", 0)
                elif kind == "error":
                    report.failures.append(payload)
                elif kind == "done":
                    pending -= 1
                    done_files += 1
                    if progress:
                        progress(done_bytes, total_bytes, done_files, len(tasks))
            pool.close()
            pool.join()
        finally:
            pool.terminate()
            shutil.rmtree(spool, ignore_errors=True)
    batcher.flush(last=True)


def print_failures(report: IndexReport) -> None:
    for line in report.failures:
        print(f"loglake: error: {line}", file=sys.stderr)
