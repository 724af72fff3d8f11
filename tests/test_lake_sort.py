"""``sort_rows`` ranks text columns and skips single-valued ones: it must lay rows out
exactly as Arrow's stable ``sort_by`` over the same columns does."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from loglake.lake.schema import SCHEMAS
from loglake.lake.tables import SORT_ORDER, sort_rows

TEXT = st.sampled_from(["", "a", "b", "B", "ab", "é", "模型", "a\x00", "z" * 20])


def _metrics(
    run_ids: list[str | None], keys: list[str | None], steps: list[int | None]
) -> pa.Table:
    n = len(steps)
    cols = {
        "run_id": run_ids,
        "namespace": ["ns"] * n,
        "key": keys,
        "value": [float(i) for i in range(n)],  # row identity: shows any reordering
        "step": steps,
        "offset": list(range(n)),
    }
    schema = SCHEMAS["metrics"]
    return pa.table(
        {f.name: pa.array(cols.get(f.name, [None] * n), type=f.type) for f in schema},
        schema=schema,
    )


def _slow(table: pa.Table) -> pa.Table:
    return table.sort_by([(c, "ascending") for c in SORT_ORDER["metrics"]])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), TEXT),
            st.one_of(st.none(), TEXT),
            st.one_of(st.none(), st.integers(-3, 3)),
        ),
        min_size=0,
        max_size=40,
    ),
    st.booleans(),
)
def test_ranked_sort_matches_arrows_sort(rows: list[tuple], one_run: bool) -> None:
    run_ids = ["run-1"] * len(rows) if one_run else [r[0] for r in rows]
    table = _metrics(run_ids, [r[1] for r in rows], [r[2] for r in rows])
    assert sort_rows("metrics", table).equals(_slow(table))


def test_chunked_input_and_a_single_valued_key_column() -> None:
    a = _metrics(["r"] * 3, ["loss", "acc", "loss"], [2, 1, 1])
    b = _metrics(["r"] * 3, ["acc", None, "loss"], [0, 5, None])
    table = pa.concat_tables([a, b])
    assert table.column("key").num_chunks == 2
    got = sort_rows("metrics", table)
    assert got.equals(_slow(table))
    assert got.column("key").to_pylist() == ["acc", "acc", "loss", "loss", "loss", None]
    assert got.column("step").to_pylist() == [0, 1, 1, 2, None, 5]
    one = _metrics(["r"] * 4, ["k"] * 4, [3, None, 1, 3])
    assert sort_rows("metrics", one).column("value").to_pylist() == [2.0, 0.0, 3.0, 1.0]


def test_tables_without_a_sort_order_are_left_alone() -> None:
    table = pa.table({"x": [3, 1, 2]})
    assert sort_rows("params", table) is table
