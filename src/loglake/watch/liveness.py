"""What the daemon knows about a run's status that its log alone cannot say.

Parsers decide how a run ended (a completion marker, a traceback, a log that stopped
mid-loop once it has been idle past the timeout). The daemon adds two facts it observes:

- a log it is reading while it grows is ``running``, whichever parsers apply to it;
- a log that was rotated away (renamed or copied, the job writing on in a new file) did not
  end the run: its end-of-file verdict would say ``killed`` or ``completed`` for a run that
  goes on, so only a decisive status (a crash, a completion marker) is kept from it.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from loglake.runs.summary import DECISIVE

LIVE = "live"  # read while growing
FINAL = "final"  # finalized: parsers' verdict stands
ROTATED = "rotated"  # finalized or read after a rotation: the run goes on elsewhere

_REASONS = {
    LIVE: ("running", "log is growing"),
    ROTATED: ("unknown", "log rotated; the run goes on in the new file"),
}


def adjust_status(
    tables: dict[str, pa.Table], checkpoint: dict[str, Any], mode: str
) -> dict[str, pa.Table]:
    """``tables`` with the file's own run row (not its sub-runs) corrected for ``mode``."""
    runs = tables.get("runs")
    if runs is None or mode == FINAL or not runs.num_rows:
        return tables
    own = ((checkpoint.get("summaries") or {}).get("") or {}).get("decisive")
    if own:
        return tables
    status, reason = _REASONS[mode]
    is_own = pc.is_null(runs.column("parent_run_id"))
    if mode == LIVE:
        change = pc.and_(is_own, pc.is_in(runs.column("status"), pa.array(["unknown"])))
    else:
        keep = pa.array(list(DECISIVE))
        change = pc.and_(is_own, pc.invert(pc.is_in(runs.column("status"), keep)))
    if not pc.any(change).as_py():
        return tables
    names = runs.column_names
    runs = runs.set_column(
        names.index("status"),
        "status",
        pc.if_else(change, pa.scalar(status), runs.column("status")),
    )
    runs = runs.set_column(
        names.index("status_reason"),
        "status_reason",
        pc.if_else(change, pa.scalar(reason), runs.column("status_reason")),
    )
    return {**tables, "runs": runs}
