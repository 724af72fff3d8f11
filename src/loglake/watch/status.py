"""`loglake status`: what the watch daemon is doing, from the status file it keeps fresh.

The daemon rewrites ``<state_dir>/watch-status.json`` every few seconds (a heartbeat);
any process can read it without touching the daemon. ``--check`` turns it into a liveness
probe (Kubernetes, Nomad, monitoring checks): exit 0 only when the daemon's process exists and
holds the state dir's lock, its heartbeat is recent, none of its workers died, and rows it
read are not stuck waiting for a lake commit. A daemon with nothing to commit is healthy
however old its last flush: quiet clusters are normal.

The plain and ``--json`` reports also list the logs the cluster will delete soon that are
not archived yet (``--expiring``), so an archive that falls behind is seen before logs are
lost.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loglake.config import Config, parse_duration
from loglake.errors import ExitCode, LoglakeError
from loglake.lake.checkpoint import pid_alive

STATUS_FILE = "watch-status.json"
VERSION = 1
HEARTBEAT = 5.0  # seconds between status writes (and after every flush)
STALE_AFTER = 30.0  # a heartbeat older than this means the daemon is hung or gone
# Rows waiting this long for a commit mean the lake refuses them (or the flusher is stuck);
# at least this many flush intervals, so a slow object store is not mistaken for a dead one.
FLUSH_STALE_AFTER = 300.0
FLUSH_STALE_INTERVALS = 20
LOCK_FILE = "lock"  # StateLock's file in the state dir
EXPIRING_WITHIN = "3d"  # `--expiring` default
EXPIRING_SHOWN = 10  # logs listed; the rest are counted


def write_status(state_dir: Path, doc: dict[str, Any]) -> None:
    """Replace the status file atomically (no fsync: it is rewritten every few seconds)."""
    path = Path(state_dir) / STATUS_FILE
    tmp = path.with_name(f"{STATUS_FILE}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps({"version": VERSION, **doc}, default=str))
    os.replace(tmp, path)


def read_status(state_dir: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads((Path(state_dir) / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("version") == VERSION else None


def lock_held(state_dir: Path) -> bool | None:
    """Whether some process holds the state dir's lock (``None``: cannot tell).

    ``/proc/locks`` answers without touching the lock. Elsewhere (or when the filesystem
    reports another device there, as overlays may) a shared, non-blocking ``flock`` is tried
    and dropped at once: it fails only while a daemon holds its exclusive lock.
    """
    path = Path(state_dir) / LOCK_FILE
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    except OSError:
        return None
    ident = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        with open("/proc/locks") as fh:
            for line in fh:
                fields = line.split()
                if "FLOCK" in fields and ident in fields:
                    return True
    except OSError:
        pass
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return None
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def flush_limit(doc: dict[str, Any]) -> float:
    """How long rows may wait for a commit before the daemon counts as stuck."""
    interval = float((doc.get("settings") or {}).get("flush_interval") or 5.0)
    return max(FLUSH_STALE_AFTER, FLUSH_STALE_INTERVALS * interval)


def _stuck_flush(doc: dict[str, Any], now: float, limit: float) -> str | None:
    """Why the daemon's rows are not reaching the lake, or ``None`` when they are."""
    since = float((doc.get("last_flush") or {}).get("at") or doc.get("started_at") or now)
    failures = [
        e
        for e in doc.get("last_errors") or []
        if e.get("where") == "flush" and float(e.get("at") or 0) >= since
    ]
    waiting = int(doc.get("buffered_rows") or 0) > 0 or bool(failures)
    age = now - since
    if not waiting or age <= limit:
        return None
    cause = f" (last error: {failures[-1].get('message')})" if failures else ""
    return f"rows waiting and no lake commit for {age:.0f}s{cause}"


def health(
    doc: dict[str, Any],
    now: float | None = None,
    *,
    state_dir: Path | None = None,
    max_flush_age: float | None = None,
) -> tuple[bool, str]:
    """Whether the daemon that wrote ``doc`` is alive and well, and why not.

    With ``state_dir``, the daemon must also hold its lock: a status file left "running" by
    a killed daemon on another host (or in another PID namespace) is caught this way.
    """
    now = time.time() if now is None else now
    state = doc.get("state")
    if state != "running":
        return False, f"daemon is {state}"
    if doc.get("host") == socket.gethostname() and not pid_alive(int(doc.get("pid") or 0)):
        return False, f"daemon process {doc.get('pid')} is gone (killed?)"
    if state_dir is not None and lock_held(state_dir) is False:
        return False, f"no process holds the lock of state dir {state_dir} (daemon gone?)"
    age = now - float(doc.get("heartbeat") or 0)
    if age > STALE_AFTER:
        return False, f"no heartbeat for {age:.0f}s (hung?)"
    dead = [n for n, w in (doc.get("workers") or {}).items() if not w.get("alive")]
    if dead:
        return False, f"worker(s) {', '.join(dead)} died"
    limit = flush_limit(doc) if max_flush_age is None else max_flush_age
    stuck = _stuck_flush(doc, now, limit)
    if stuck:
        return False, stuck
    return True, "ok"


def _ago(ts: float | None, now: float) -> str:
    if not ts:
        return "never"
    s = max(0.0, now - float(ts))
    if s < 90:
        return f"{s:.0f}s ago"
    if s < 5400:
        return f"{s / 60:.0f}m ago"
    return f"{s / 3600:.1f}h ago"


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:,.1f} GB"


def expiring_logs(
    config: Config,
    within: str | float = EXPIRING_WITHIN,
    *,
    clock: Callable[[], float] = time.time,
    limit: int = EXPIRING_SHOWN,
) -> dict[str, Any] | None:
    """Logs not fully archived that the cluster deletes within ``within``, most urgent
    first, at most ``limit`` of them (``total`` counts all).

    ``None`` when nothing can expire (retention off, ``expire_after = "0"``, or ``within``
    0): the check stats every file loglake knows, so it is not paid for nothing.
    """
    horizon = parse_duration(within)
    retention = config.retention
    if horizon <= 0 or not retention.enabled or parse_duration(retention.expire_after) <= 0:
        return None
    from loglake.retain.expiry import logs_near_expiry

    out: dict[str, Any] = {"within": horizon, "total": 0, "more": 0, "logs": []}
    try:
        near = logs_near_expiry(config, horizon, clock=clock)
    except LoglakeError as e:  # the lake or a source unreachable: say so, status goes on
        return {**out, "error": e.one_line()}
    except OSError as e:
        return {**out, "error": f"{type(e).__name__}: {e}"}
    shown = near[: max(0, limit)]
    out.update(
        total=len(near),
        more=len(near) - len(shown),
        logs=[
            {
                "path": n.path,
                "run_id": n.run_id,
                "expires_at": n.expires_at,
                "archived": n.archived_bytes > 0,
                "archived_bytes": n.archived_bytes,
                "bytes": n.bytes,
                "action": n.action,
                "reason": n.reason,
            }
            for n in shown
        ],
    )
    return out


def _span(seconds: float) -> str:
    """``45m``, ``36h``, ``1.5d``, ``3d``."""
    for unit, size, below in (("m", 60, 5400), ("h", 3600, 2 * 86400), ("d", 86400, None)):
        if below is None or seconds < below:
            return f"{seconds / size:.1f}".removesuffix(".0") + unit
    raise AssertionError("unreachable")


def _until(ts: float, now: float) -> str:
    return f"in {_span(ts - now)}" if ts >= now else f"overdue {_span(now - ts)}"


def _render_expiring(exp: dict[str, Any], now: float) -> list[str]:
    within = _span(float(exp["within"]))
    if exp.get("error"):
        return [f"expiring within {within}: cannot tell ({exp['error']})"]
    if not exp["total"]:
        return [f"expiring within {within}: none unarchived"]
    lines = [f"expiring within {within}: {exp['total']:,} log(s) not fully archived"]
    for x in exp["logs"]:
        at = datetime.fromtimestamp(x["expires_at"], UTC).strftime("%Y-%m-%d %H:%M UTC")
        archived = (
            f"partly archived ({_size(x['archived_bytes'])} of {_size(x['bytes'])})"
            if x["archived"]
            else "not archived"
        )
        lines.append(f"  {_until(x['expires_at'], now):>14}  {at}  {archived:<16}  {x['path']}")
    if exp["more"]:
        lines.append(f"  +{exp['more']:,} more (loglake status --json, loglake retain --dry-run)")
    return lines


def render(
    doc: dict[str, Any],
    ok: bool,
    why: str,
    now: float | None = None,
    expiring: dict[str, Any] | None = None,
) -> str:
    now = time.time() if now is None else now
    files = doc.get("files") or {}
    c = doc.get("counters") or {}
    flush = doc.get("last_flush") or {}
    lines = [
        (
            f"loglake watch: {doc.get('state')} ({'healthy' if ok else why}) · "
            f"pid {doc.get('pid')} on {doc.get('host')} · "
            f"up since {_ago(doc.get('started_at'), now)} · "
            f"heartbeat {_ago(doc.get('heartbeat'), now)}"
        ),
        f"lake: {doc.get('lake')}   state: {doc.get('state_dir')}",
        "sources:",
    ]
    for s in doc.get("sources") or []:
        lines.append(
            f"  {s['name']:<16} {s['files']:>7,} file(s)  {s['observer']:<8} {', '.join(s['paths'])}"
        )
    flushed = f" ({flush.get('rows', 0):,} rows in {flush.get('seconds', 0)}s)" if flush else ""
    lines += [
        (
            f"files: {files.get('tracked', 0):,} tracked · {files.get('live', 0):,} live · "
            f"{files.get('finished', 0):,} finished · "
            f"{files.get('rotated', 0):,} rotated/deleted being drained · "
            f"{files.get('open', 0):,} open"
        ),
        (
            f"lag: {_size(doc.get('lag_bytes') or 0)} not yet in the lake · "
            f"{doc.get('buffered_rows', 0):,} row(s) buffered"
        ),
        (f"last flush: {_ago(flush.get('at'), now)}{flushed} · {c.get('flushes', 0):,} flushes"),
        (
            f"totals: {c.get('lines', 0):,} lines · {_size(c.get('bytes', 0))} · "
            f"{c.get('records', 0):,} records · {c.get('gaps', 0):,} gaps · "
            f"{c.get('rotations', 0):,} rotations · {c.get('errors', 0):,} errors"
        ),
    ]
    lagging = doc.get("lagging") or []
    if lagging:
        lines.append("most behind:")
        lines += [f"  {_size(x['lag_bytes']):>10}  {x['path']}" for x in lagging[:5]]
    errors = doc.get("last_errors") or []
    if errors:
        lines.append("last errors:")
        for e in errors[-5:]:
            lines.append(f"  {_ago(e.get('at'), now):>8}  {e.get('where')}: {e.get('message')}")
    if expiring is not None:
        lines += _render_expiring(expiring, now)
    return "\n".join(lines)


def status_command(
    config: Config,
    *,
    as_json: bool = False,
    check: bool = False,
    max_flush_age: float | None = None,
    expiring: str | float | None = EXPIRING_WITHIN,
    clock: Callable[[], float] = time.time,
) -> int:
    """Print the daemon's status; with ``check``, the exit code says whether it is healthy.

    ``check`` prints one line (``healthy``, or why not) so a probe's log says what failed,
    and skips the list of logs near expiry (``expiring``: how far ahead it looks; ``None``
    or 0 skips it too).
    """
    state_dir = config.state_path()
    doc = read_status(state_dir)
    if doc is None:
        msg = f"no watch daemon has run with state dir {state_dir} (start one: loglake watch)"
        if as_json:
            print(json.dumps({"state": "never-run", "healthy": False, "state_dir": str(state_dir)}))
        elif check:
            print(f"loglake watch: {msg}")
        else:
            print(f"loglake: {msg}", file=sys.stderr)
        return ExitCode.PARTIAL if check else ExitCode.NO_INPUT
    now = clock()
    ok, why = health(doc, now, state_dir=state_dir, max_flush_age=max_flush_age)
    if check:
        print(f"loglake watch: {'healthy' if ok else why}")
        return ExitCode.OK if ok else ExitCode.PARTIAL
    soon = None if expiring is None else expiring_logs(config, expiring, clock=lambda: now)
    if as_json:
        extra = {} if soon is None else {"expiring": soon}
        print(json.dumps({**doc, "healthy": ok, "health": why, **extra}, default=str))
    else:
        print(render(doc, ok, why, now, expiring=soon))
    return ExitCode.OK
