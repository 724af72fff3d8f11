"""loglake: the training logs your cluster already writes, as a queryable lake."""

from __future__ import annotations

from loglake.errors import LoglakeError
from loglake.parse.base import BaseParser, FileInfo, LineBatch, Parser
from loglake.parse.records import Emitter

__version__ = "0.1.0"

__all__ = [
    "BaseParser",
    "Emitter",
    "FileInfo",
    "LineBatch",
    "LoglakeError",
    "Parser",
    "__version__",
    "connect",
]


def connect(*args, **kwargs):  # noqa: ANN002, ANN003, ANN201 - re-exported lazily
    """Open a DuckDB connection with one view per lake table (see ``loglake.query.connect``)."""
    from loglake.query.connect import connect as _connect

    return _connect(*args, **kwargs)
