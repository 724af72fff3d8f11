"""What a log says about its run so far, carried across batches and restarts.

The run's status is resolved from status observations: the last *decisive* one by offset
(failed, completed, pruned) wins — a handled traceback followed by a completion marker is a
completed run, a completion marker followed by a crash is a failed one. Without a decisive
observation, the parsers' verdict at the end of the file decides (running while the log is
live; killed, completed or unknown once it is idle).
"""

from __future__ import annotations

from typing import Any

from loglake.parse.records import RUN_FACT_KEYS, Emitter

DECISIVE = ("failed", "completed", "pruned")
# When several end-of-file verdicts disagree (one per parser), the most alarming wins.
_FINAL_RANK = {"killed": 4, "running": 3, "completed": 2, "unknown": 1}


def new_summary() -> dict[str, Any]:
    return {
        "decisive": None,  # [status, reason, error, offset]
        "final": None,  # [status, reason]
        "facts": {},
        "start": None,
        "end": None,
        "name": None,
        "experiment": None,
    }


def resolve_status(summary: dict[str, Any]) -> tuple[str, str | None, str | None]:
    dec = summary.get("decisive")
    if dec:
        return dec[0], dec[1], dec[2]
    fin = summary.get("final")
    if fin:
        return fin[0], fin[1], None
    return "unknown", None, None


def _summary(summaries: dict[str, dict[str, Any]], sub: str | None) -> dict[str, Any]:
    key = sub or ""
    if key not in summaries:
        summaries[key] = new_summary()
    return summaries[key]


def absorb(
    summaries: dict[str, dict[str, Any]],
    out: Emitter,
    *,
    final: bool = False,
    final_from: int | None = None,
) -> None:
    """Fold an emitter's status/fact/subrun observations into the per-run summaries.

    Status observations from index ``final_from`` on were made by ``finalize()``: there a
    ``completed`` is only an end-of-file verdict (a clean end), which must never hide a failure
    seen earlier, while a ``failed`` (a traceback held until the end) stays decisive.
    ``final=True`` says every observation in ``out`` came from ``finalize()``.
    """
    if final and final_from is None:
        final_from = 0
    st = out.statuses.data
    for i, (sub, status, reason, error, offset) in enumerate(
        zip(st["sub"], st["status"], st["reason"], st["error"], st["offset"], strict=True)
    ):
        s = _summary(summaries, sub)
        at_end = final_from is not None and i >= final_from
        if status in DECISIVE and not (at_end and status == "completed"):
            dec = s["decisive"]
            if dec is None or offset >= dec[3]:
                # Keep the error line of an earlier failure when a later one has none.
                if dec and status == dec[0] == "failed" and not error:
                    error = dec[2]
                s["decisive"] = [status, reason, error, offset]
        elif at_end or status == "running":
            fin = s["final"]
            if fin is None or _FINAL_RANK.get(status, 0) > _FINAL_RANK.get(fin[0], 0):
                s["final"] = [status, reason]
    fa = out.facts.data
    for sub, key, value in zip(fa["sub"], fa["key"], fa["value"], strict=True):
        s = _summary(summaries, sub)
        if value is None:
            continue
        if key == "start_time":
            v = float(value)
            s["start"] = v if s["start"] is None else min(s["start"], v)
        elif key == "end_time":
            v = float(value)
            s["end"] = v if s["end"] is None else max(s["end"], v)
        elif key not in s["facts"] or key in ("exit_code",):
            s["facts"][key] = value if isinstance(value, int | float | bool) else str(value)
    sr = out.subruns.data
    for sub, name, experiment in zip(sr["sub"], sr["name"], sr["experiment"], strict=True):
        s = _summary(summaries, sub)
        s["name"] = name or s["name"]
        s["experiment"] = experiment or s["experiment"]


def split_facts(facts: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Facts that are ``runs`` columns, and the rest (the ``env`` JSON)."""
    cols = {k: v for k, v in facts.items() if k in RUN_FACT_KEYS}
    env = {k: v for k, v in facts.items() if k not in RUN_FACT_KEYS}
    return cols, env
