"""Logs close to expiry and not (fully) archived yet: what `loglake status` warns about."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from loglake.config import Config, parse_duration
from loglake.retain.job import run_retention
from loglake.retain.worklist import ARCHIVE, WAIT


@dataclass(frozen=True, slots=True)
class NearExpiry:
    path: str
    run_id: str
    bytes: int  # the log's size now
    archived_bytes: int  # what the archive already holds (0: nothing)
    expires_at: float  # epoch seconds: the cluster deletes it then
    deadline: float  # expires_at minus the safety margin
    action: str  # "archive" (due now) or "wait" (its job still runs)
    reason: str


def logs_near_expiry(
    config: Config, within: str | float, *, clock: Callable[[], float] = time.time
) -> list[NearExpiry]:
    """Logs not archived up to their end that expire within ``within`` (``"3d"`` or seconds),
    soonest first. Read-only: safe to call while the daemon or a retention run works."""
    horizon = parse_duration(within)
    now = clock()
    report = run_retention(config, clock=lambda: now, dry_run=True)
    out = [
        NearExpiry(
            path=d.seen.path,
            run_id=d.source.run_id,
            bytes=d.seen.size,
            archived_bytes=d.source.archived_bytes,
            expires_at=d.expires_at,
            deadline=d.deadline if d.deadline is not None else d.expires_at,
            action=d.action,
            reason=d.reason,
        )
        for d in report.decisions
        if d.action in (ARCHIVE, WAIT)
        and d.seen is not None
        and d.expires_at is not None
        and d.expires_at - now <= horizon
    ]
    return sorted(out, key=lambda n: n.expires_at)
