"""Where runs of planned lines are in a batch, and the batch's Arrow columns that the
declarative group reader (``declarative_groups``) shares between parsers.

A run of consecutive candidate lines whose shapes all have a plan can be read out of order;
finding how far one goes must not cost a Python step per line either, or the run's reading
saves nothing: the candidates' shapes become an Arrow column, each shape is planned once,
and a run's end is found by bisection among the few candidates that stop one.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

_UNPLANNED = object()


class Ahead:
    """A batch's candidate lines as Arrow columns, to find how far a run of planned lines
    goes on from a planned candidate (to the next candidate of a shape read the plain way,
    or a redrawn one) by bisection instead of a step per line. Every shape among the
    candidates is planned up front (once per shape, as the line loop would)."""

    def __init__(
        self,
        cands: list[int],
        ids: list[int],
        plans: dict[int, Any],
        plan_of: Any,
        texts: list[str],
        redrawn: frozenset[int],
        index: Any,
    ) -> None:
        self.cands = pa.array(cands, pa.int32())
        shape = index.take(self.cands)
        m = len(shape)
        order = pc.sort_indices(shape)  # stable: a shape's first candidate comes first
        ordered = shape.take(order)
        new = pc.not_equal(ordered.slice(1), ordered.slice(0, m - 1))
        go, full = [], []  # shapes with a plan; with one that reads something
        for at in order.filter(pa.concat_arrays([pa.array([True]), new])).to_pylist():
            i = cands[at]
            sid = ids[i]
            plan = plans.get(sid, _UNPLANNED)
            if plan is _UNPLANNED:
                plan = plans[sid] = plan_of(texts[i])
            if plan is not None:
                go.append(sid)
                if plan:
                    full.append(sid)
        planned = pc.is_in(shape, value_set=pa.array(go, pa.int32()))
        self.stops = pc.indices_nonzero(pc.invert(planned)).to_pylist()
        for i in redrawn:
            at = bisect_left(cands, i)
            if at < m and cands[at] == i:
                self.stops.append(at)
        self.stops.sort()
        self.stops.append(m)
        self.keep = pc.is_in(shape, value_set=pa.array(full, pa.int32()))

    def stop(self, k: int) -> int:
        """The first candidate from ``k`` on that ends a run of planned lines."""
        return self.stops[bisect_left(self.stops, k)]

    def lines(self, a: int, b: int) -> Any:
        """The batch indices of candidates ``a`` to ``b`` (a planned run) that read something."""
        return self.cands.slice(a, b - a).filter(self.keep.slice(a, b - a))


class BatchColumns:
    """The batch as the group reader reads it: its lines as bytes to slice at byte places,
    its offsets and times as Arrow arrays (``LineBatch`` builds those once per batch)."""

    def __init__(self, batch: Any, index: Any) -> None:
        self.batch, self.index = batch, index
        self.texts, self.offsets = batch.texts, batch.offsets
        arr = batch.arrow()
        self.binary = arr.view(pa.binary()) if arr is not None else None

    def offsets_array(self) -> Any:
        return self.batch.offsets_array()

    def ts_array(self) -> Any:
        return self.batch.ts_array()
