"""Querying the lake: DuckDB views over the live Parquet files, and result formatting."""

from __future__ import annotations

from loglake.query.connect import connect, refresh

__all__ = ["connect", "refresh"]
