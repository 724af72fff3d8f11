"""Keeping pyarrow from importing pandas in an indexing process that never uses it.

pyarrow's first ``pa.array()`` of Python objects imports pandas, only to ask whether the
input is a pandas object. With pandas installed that costs ~0.2 CPU-s per process (its
import, and its share of the interpreter's teardown): 25 % of what ``loglake index`` pays on
a small file, and again in every ``--jobs`` worker. The indexer hands pyarrow lists, never
pandas objects, so its processes let that first probe find no pandas.

pyarrow remembers the answer only for its "is this a pandas object?" checks: anything that
really needs pandas later (``to_pandas``, ``from_pandas``) imports it again, normally.
Processes call this themselves (the CLI, the indexer's workers); the library never does,
so a notebook that indexes keeps pyarrow's usual behaviour.
"""

from __future__ import annotations

import sys
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from typing import Any


class _NoPandas(MetaPathFinder):
    def find_spec(self, name: str, path: Any = None, target: Any = None) -> ModuleSpec | None:
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(f"{name} is not imported while pyarrow starts up")
        return None


def skip_pandas_probe() -> None:
    """Run pyarrow's pandas probe now, with pandas out of reach; a no-op once pandas is in."""
    if "pandas" in sys.modules:
        return
    import pyarrow as pa

    blocker = _NoPandas()
    sys.meta_path.insert(0, blocker)
    try:
        pa.array([""])  # a list of Python objects: the call that asks for pandas
    finally:
        sys.meta_path.remove(blocker)
