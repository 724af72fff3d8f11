"""Keeping a parser's per-file memory of what it already reported bounded.

A parser that reports a thing once per file (an artifact path, a ``once=`` signature) keeps
what it has seen in its checkpointed state, which is copied before every batch and written
at every commit. Unbounded, that memory grows with the log (a checkpoint path per save: 1.6
MB of state per 100 MB of log) and so would the indexer's memory and its commits. Past
``SEEN_CAP`` entries the oldest half is forgotten: a thing reported again after that many
newer ones is reported twice, which costs a duplicate row, never a lost one.
"""

from __future__ import annotations

from typing import Any

SEEN_CAP = 20_000  # entries kept per parser and file


def remember(seen: dict[str, Any], key: str, value: Any = 1) -> None:
    """``seen[key] = value``, forgetting the oldest half first when ``seen`` is full."""
    if key not in seen and len(seen) >= SEEN_CAP:
        forget_half(seen)
    seen[key] = value


def forget_half(seen: dict[str, Any]) -> None:
    """Drop the oldest half of ``seen`` (dicts keep insertion order)."""
    for old in list(seen)[: SEEN_CAP // 2]:
        del seen[old]
