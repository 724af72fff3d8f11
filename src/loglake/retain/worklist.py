"""What retention must do now, from loglake's own state — never from a listing of the disk.

Three records are merged per source (keyed by ``source_fp``, the checkpoint key):

- the **indexer's checkpoints** (``<state>/checkpoints.json`` and the daemon's journal next to
  it, read-only): every file the indexer or daemon has seen, its path, size, run and whether
  it was finalized;
- the **retention store** (``<state>/retain/checkpoints.json``): what retention itself has
  archived, lost or is waiting for. A source is registered there the first time retention
  sees it, so a file the daemon later forgets (it drops entries of deleted files after a
  week) is never forgotten before it is archived or reported lost;
- the **lake**: the latest ``runs`` observation of the source (a decisive status ends the
  job) and its latest ``logs`` row (what is archived, if the retention store was lost).

Each source then gets one decision, judged at ``now`` (an injected clock): archive it (its
job ended, or its deadline — expiry minus the safety margin — has come), wait, nothing to do,
or report it lost (gone before its bytes were archived).
"""

from __future__ import annotations

import json
import logging
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loglake.config import Config, parse_duration
from loglake.lake.checkpoint import FILE_NAME
from loglake.retain.sources import Seen, SourceAccess, SourceUnavailable
from loglake.runs.identity import run_id_for
from loglake.watch.journal import JOURNAL_NAME

log = logging.getLogger(__name__)

DECISIVE = frozenset({"completed", "failed", "killed", "pruned"})

ARCHIVE = "archive"
WAIT = "wait"
DONE = "done"
LOST = "lost"
REPORTED = "reported"  # lost, and already said so
UNAVAILABLE = "unavailable"  # its folder or storage cannot be seen now: decided next run


@dataclass(frozen=True, slots=True)
class Policy:
    """The retention settings in seconds (0 = no expiry known)."""

    expire_after: float
    safety_margin: float
    idle_after: float

    @classmethod
    def from_config(cls, config: Config) -> Policy:
        r = config.retention
        idle = r.idle_after or config.watch.idle_timeout or config.index.job_end_timeout
        return cls(
            expire_after=parse_duration(r.expire_after),
            safety_margin=parse_duration(r.safety_margin),
            idle_after=parse_duration(idle),
        )


@dataclass(slots=True)
class Source:
    """Everything known about one raw log."""

    key: str
    path: str
    fp: str
    fp_len: int
    run_id: str
    namespace: str
    known_size: int = 0  # the largest size anyone recorded
    known_mtime: float | None = None  # the newest mtime anyone recorded
    idle_final: bool = False
    final_size: int = -1  # the size the indexer finalized it at
    status: str | None = None
    status_bytes: int = 0  # bytes the lake's latest status observation covers
    archived_version: int = 0
    archived_bytes: int = 0
    archived_uri: str | None = None
    state: str | None = None  # retention store state: pending | archived | lost
    indexed: bool = True  # the indexer's checkpoints still list it
    retained: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Decision:
    source: Source
    action: str
    reason: str
    seen: Seen | None = None
    expires_at: float | None = None
    deadline: float | None = None

    @property
    def size(self) -> int:
        return self.seen.size if self.seen else self.source.known_size

    @property
    def urgency(self) -> float:
        return self.deadline if self.deadline is not None else float("inf")


def read_indexer_checkpoints(state_dir: Path) -> dict[str, dict[str, Any]]:
    """The indexer's checkpoint entries: the checkpoint file plus the daemon's journal of
    later updates (``watch/journal.py``), read without writing either (they are not ours).

    A fold by the daemon between the two reads is noticed (the file's generation changed)
    and the read done again; what one run still misses, the next one sees.
    """
    for _ in range(3):
        gen, entries = _read_checkpoint_file(state_dir / FILE_NAME)
        stale = _apply_journal(state_dir / JOURNAL_NAME, gen, entries)
        if not stale or _read_checkpoint_file(state_dir / FILE_NAME)[0] == gen:
            break
    return entries


def _read_checkpoint_file(path: Path) -> tuple[str | None, dict[str, dict[str, Any]]]:
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None, {}
    except (OSError, ValueError) as exc:
        log.warning("retention cannot read the checkpoints %s (%s); using its own state", path, exc)
        return None, {}
    entries = doc.get("entries") if isinstance(doc, dict) else None
    gen = doc.get("gen") if isinstance(doc, dict) else None
    return (gen if isinstance(gen, str) else None), (entries if isinstance(entries, dict) else {})


def _apply_journal(path: Path, gen: str | None, entries: dict[str, dict[str, Any]]) -> bool:
    """Apply the valid journal lines of generation ``gen``; True if lines of another were
    there (the file may have been folded since it was read)."""
    try:
        data = path.read_bytes()
    except OSError:
        return False
    stale = False
    for line in data.split(b"\n"):
        crc, _, payload = line.partition(b" ")
        try:
            if len(crc) != 8 or int(crc, 16) != zlib.crc32(payload):
                break
            doc = json.loads(payload)
        except ValueError:
            break
        if gen is None or doc.get("gen") != gen:
            stale = True
            continue
        for key, entry in (doc.get("entries") or {}).items():
            if isinstance(entry, dict):
                entries[key] = entry
            else:
                entries.pop(key, None)
    return stale


def gather(
    checkpoints: dict[str, dict[str, Any]],
    retained: dict[str, dict[str, Any]],
    lake_status: dict[str, dict[str, Any]],
    lake_logs: dict[str, dict[str, Any]],
) -> dict[str, Source]:
    """One ``Source`` per key known to the indexer or to retention."""
    out: dict[str, Source] = {}
    for key in set(checkpoints) | set(retained):
        cp = checkpoints.get(key) or {}
        mine = retained.get(key) or {}
        run = cp.get("run") if isinstance(cp.get("run"), dict) else {}
        path = str(cp.get("path") or mine.get("path") or "")
        if not path:
            continue
        namespace = str(run.get("namespace") or mine.get("namespace") or "default")
        run_id = mine.get("run_id") or (
            run_id_for(namespace, run.get("experiment"), str(run["run"])) if run.get("run") else ""
        )
        status = lake_status.get(key) or {}
        src = Source(
            key=key,
            path=path,
            fp=str(cp.get("fp") or mine.get("fp") or key),
            fp_len=int(cp.get("fp_len") or mine.get("fp_len") or 0),
            run_id=str(run_id or status.get("run_id") or ""),
            namespace=namespace,
            known_size=max(int(cp.get("size") or 0), int(mine.get("size") or 0)),
            known_mtime=_newest(cp.get("mtime"), mine.get("mtime")),
            idle_final=bool(cp.get("idle_final")),
            final_size=int(cp.get("size") or -1) if cp.get("idle_final") else -1,
            status=status.get("status"),
            status_bytes=int(status.get("bytes") or 0),
            state=mine.get("state"),
            indexed=key in checkpoints,
            retained=mine,
        )
        _apply_archived(src, mine, lake_logs.get(key))
        out[key] = src
    return out


def _apply_archived(src: Source, mine: dict[str, Any], row: dict[str, Any] | None) -> None:
    """The newest archived version, from the retention store or the lake, whichever is newer."""
    version, nbytes, uri = 0, 0, None
    if mine.get("state") in ("archived", "lost"):
        version, nbytes, uri = (
            int(mine.get("version") or 0),
            int(mine.get("bytes") or 0),
            mine.get("uri"),
        )
    if row is not None and row.get("state") == "archived" and int(row["version"] or 0) > version:
        version, nbytes, uri = int(row["version"]), int(row["bytes"] or 0), row["archive_uri"]
        src.state = src.state if src.state == "lost" else "archived"
    if row is not None and row.get("state") == "lost":
        src.state = "lost"
    src.archived_version, src.archived_bytes, src.archived_uri = version, nbytes, uri


def decide(src: Source, policy: Policy, now: float, access: SourceAccess) -> Decision:
    """What to do with one source at ``now``."""
    if src.state == "lost":
        return Decision(src, REPORTED, "reported lost earlier")
    try:
        seen = access.find(src.path, src.fp, src.fp_len)
    except SourceUnavailable as exc:
        return Decision(src, UNAVAILABLE, str(exc))
    if seen is None:
        if src.archived_version and src.archived_bytes >= src.known_size:
            return Decision(src, DONE, "archived; the source is gone")
        missing = max(src.known_size - src.archived_bytes, 0)
        what = f"its last {missing} byte(s)" if src.archived_version else "it"
        expires = None
        if src.known_mtime is not None and policy.expire_after > 0:
            expires = src.known_mtime + policy.expire_after
        if expires is not None and now >= expires:
            why = f"expired (mtime + {_span(policy.expire_after)}) before {what} could be archived"
        elif expires is not None:
            why = f"deleted {_span(expires - now)} before its expiry, before {what} was archived"
        else:
            why = f"gone before {what} was archived"
        return Decision(src, LOST, why, expires_at=expires)
    expires = seen.mtime + policy.expire_after if policy.expire_after > 0 else None
    deadline = expires - policy.safety_margin if expires is not None else None
    d = Decision(src, WAIT, "", seen, expires, deadline)
    if src.archived_version and src.archived_bytes >= seen.size:
        d.action, d.reason = DONE, f"archived (v{src.archived_version})"
        return d
    grew = f"grew since v{src.archived_version}; " if src.archived_version else ""
    if src.status in DECISIVE and src.status_bytes >= seen.size:
        d.action, d.reason = ARCHIVE, f"{grew}run {src.status}"
    elif src.idle_final and src.final_size == seen.size:
        d.action, d.reason = ARCHIVE, f"{grew}finalized by the indexer"
    elif now - seen.mtime >= policy.idle_after:
        d.action, d.reason = ARCHIVE, f"{grew}idle {_span(now - seen.mtime)}"
    elif deadline is not None and now >= deadline:
        d.action, d.reason = ARCHIVE, f"{grew}still written, but expires in {_span(expires - now)}"  # type: ignore[operator]
    else:
        until = seen.mtime + policy.idle_after
        if deadline is not None:
            until = min(until, deadline)
        d.reason = f"{grew}job running; archived in {_span(until - now)} at the latest"
    return d


def _newest(*values: Any) -> float | None:
    known = [float(v) for v in values if isinstance(v, int | float)]
    return max(known) if known else None


def _span(seconds: float) -> str:
    s = max(0.0, seconds)
    if s < 120:
        return f"{s:.0f}s"
    if s < 7200:
        return f"{s / 60:.0f}m"
    if s < 172800:
        return f"{s / 3600:.1f}h"
    return f"{s / 86400:.1f}d"
