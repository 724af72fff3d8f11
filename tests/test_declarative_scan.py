"""A parser's own lines picked among the shared scan's by their shapes are the lines its
own pattern's mask over the whole batch picks (``declarative_scan._by_held_shapes``, used
when the caller passes ``LineBatch.shapes()``), and they hold every line with a literal."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loglake.parse import declarative_scan as scan
from loglake.parse.base import LineBatch
from loglake.parse.declarative_scan import candidate_lines, literal_gate, register

from .test_declarative_shapes import TEMPLATES, _fill

# literals like the built-ins' (with digits, tabs, non-ASCII) and some no line holds
LITERAL_SETS = [
    frozenset({"]\t", "valid_0"}),
    frozenset({"100%|", "it/s "}),
    frozenset({"Epoch ", " - loss: "}),
    frozenset({"Iteration ", "Validation score: "}),
    frozenset({"learn: ", "bestTest = "}),
    frozenset({"never printed", "ndcg@5"}),
    frozenset({"━━"}),
]


class _Owner:
    """Something to register literals for (the scan keeps the sets of live owners)."""


_OWNERS = [_Owner() for _ in LITERAL_SETS]
for owner, literals in zip(_OWNERS, LITERAL_SETS, strict=True):
    register(owner, literals)


def _candidates(batch: LineBatch, literals: frozenset[str], by_shape: bool) -> list[int]:
    scan._CACHE.texts = None  # a fresh scan of the batch
    shapes = batch.shapes() if by_shape else None
    return candidate_lines(batch.texts, literals, batch.arrow(), batch.pattern_mask, shapes)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    picks=st.lists(st.integers(0, len(TEMPLATES) - 1), min_size=2, max_size=8),
    seed=st.integers(0, 2**32),
    size=st.integers(70, 300),
)
def test_own_lines_picked_by_held_shapes_are_those_of_the_mask(
    picks: list[int], seed: int, size: int
) -> None:
    rng = random.Random(seed)
    extra = ["Epoch 3: 100%|██| 3/3 [00:01<00:00, 2.60it/s]", "23/23 ━━━━ 0s - loss: 0.5"]
    templates = [TEMPLATES[k] for k in picks] + extra
    lines = [_fill(rng.choice(templates), rng) for _ in range(size)]
    batch = LineBatch(lines, list(range(size)))
    assert batch.shapes() is not None
    for literals in LITERAL_SETS:
        by_shape = _candidates(batch, literals, True)
        by_mask = _candidates(batch, literals, False)
        assert by_shape == by_mask, sorted(literals)
        gate: Any = literal_gate(tuple(literals))
        assert {i for i, line in enumerate(lines) if gate(line)} <= set(by_shape)


def test_the_shared_scan_lets_go_of_a_batch_once_its_parsers_are_done() -> None:
    """The next batch is read while this one would otherwise stay alive through the scan
    cache: a batch's memory is several times its bytes, so peak memory would double."""
    import gc
    import weakref

    from loglake.parse.builtin import builtin_parsers
    from loglake.parse.pipeline import FileParsers
    from loglake.parse.records import Emitter

    texts = [f"{i}:\tlearn: 0.{i:04d}\ttest: 0.5\tbest: 0.4 ({i})\ttotal: 5ms" for i in range(500)]
    batch = LineBatch(texts=texts, offsets=[80 * i for i in range(500)], ts=[None] * 500)
    fp = FileParsers(builtin_parsers())
    out = Emitter()
    fp.feed(batch, out)
    assert out.count() > 0  # the declarative parsers did read this batch
    gone = weakref.ref(batch.arrow())
    del batch, texts
    gc.collect()
    assert gone() is None
