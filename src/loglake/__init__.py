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
    "history",
    "runs",
]


def connect(*args, **kwargs):
    """Open a DuckDB connection with one view per lake table (see ``loglake.query.connect``)."""
    from loglake.query.connect import connect as _connect

    return _connect(*args, **kwargs)


# `loglake.runs` is also the run-identity subpackage. Importing it here, before the helper
# below is defined, makes the helper what `loglake.runs` names: a later import of one of
# its submodules finds the package in sys.modules and does not rebind the attribute.
import loglake.runs as _run_identity  # noqa: F401


def runs(*args, **kwargs):
    """The runs of the lake as a table (pandas or Arrow; see ``loglake.explore.api.runs``)."""
    from loglake.explore.api import runs as _runs

    return _runs(*args, **kwargs)


def history(*args, **kwargs):
    """Metric points of runs (pandas or Arrow; see ``loglake.explore.api.history``)."""
    from loglake.explore.api import history as _history

    return _history(*args, **kwargs)
