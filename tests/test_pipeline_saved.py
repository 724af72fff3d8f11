"""A parser's state saved before each call comes back exactly as it was when the call raises,
whatever the call did to it in place."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from loglake.parse.base import LineBatch
from loglake.parse.pipeline import FileParsers, _Saved
from loglake.parse.records import Emitter

ATOMS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=5)
)
TREES = st.recursive(
    ATOMS,
    lambda kids: st.one_of(
        st.lists(kids, max_size=4), st.dictionaries(st.text(max_size=3), kids, max_size=4)
    ),
    max_leaves=30,
)


def scramble(value: Any) -> None:
    """Mutate every dict and list of a tree in place, as a parser may."""
    if isinstance(value, dict):
        for v in list(value.values()):
            scramble(v)
        value["__added__"] = [1]
        value.pop(next(iter(value)), None)
    elif isinstance(value, list):
        for v in value:
            scramble(v)
        value.append({"x": 1})


@settings(max_examples=300)
@given(st.dictionaries(st.text(max_size=4), TREES, max_size=6))
def test_a_saved_tree_survives_any_mutation(state: dict[str, Any]) -> None:
    before = copy.deepcopy(state)
    saved = _Saved(state)
    scramble(state)
    assert saved.restore() == before


def test_states_that_are_not_json_trees_are_pickled_or_deep_copied() -> None:
    class Opaque:  # pickle cannot find a local class: deep-copied instead
        def __init__(self) -> None:
            self.items = [1]

    for state in ({"pair": (1, [2])}, {"seen": {1, 2}}, {"obj": Opaque()}):
        before = copy.deepcopy(state)
        saved = _Saved(state)
        for v in state.values():
            if isinstance(v, tuple):
                v[1].append(3)
            elif isinstance(v, set):
                v.add(9)
            else:
                v.items.append(2)
        restored = saved.restore()
        if "obj" in restored:
            assert restored["obj"].items == [1]
        else:
            assert restored == before


class Fragile:
    """Grows a big ``seen`` map in its state, then raises on a line holding ``boom``."""

    name = "fragile"
    version = "1"
    priority = 50

    def new_state(self) -> dict[str, Any]:
        return {"seen": {}, "lines": 0}

    def detect(self, info: Any) -> bool:
        return True

    def parse(self, batch: LineBatch, state: dict[str, Any], out: Emitter) -> None:
        for text, off in zip(batch.texts, batch.offsets, strict=True):
            state["lines"] += 1
            state["seen"][text] = off
            if "boom" in text:
                raise ValueError("boom")
            out.metric("n", float(state["lines"]), off)

    def finalize(self, state: dict[str, Any], out: Emitter, *, idle: bool) -> None:
        return None


def test_a_raising_batch_is_replayed_from_the_saved_state() -> None:
    fps = FileParsers([Fragile()])  # type: ignore[list-item]
    out = Emitter()
    texts = [f"line {i}" for i in range(5)]
    fps.feed(LineBatch(texts, list(range(5)), None, None), out)
    texts = ["a", "boom", "c"]
    fps.feed(LineBatch(texts, [10, 11, 12], None, None), out)
    state = fps.states["fragile"]
    # Replayed line by line from the state before the batch: "boom" is counted once, not twice.
    assert state["lines"] == 7  # 5, then "a" and "c"; "boom" rolled back
    assert set(state["seen"]) == {*(f"line {i}" for i in range(5)), "a", "c"}
    assert out.metrics.data["value"] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    assert out.errors.data["offset"] == [11]
