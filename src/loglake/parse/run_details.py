"""What the run-detail parsers share (params, facts, datasets, artifacts, packages: what a
run was, not how it trained): the passes that find the few lines each of them reads.

Each of them states its own RE2 prefilter (``loglake.parse.prefilter``). When a batch's
lines repeat a few shapes (the usual case), each pattern's answer per shape is remembered
across batches (``loglake.parse.line_shapes``), so a pass costs a lookup per shape. Else an
RE2 pass costs per line, whatever the pattern, and these five patterns each keep a few
percent of the lines: the first of them to scan a batch runs the union of the five once,
and each then matches its own pattern among the lines the union kept (a pass over ~15 % of
the batch instead of all of it). A line its own pattern matches matches the union, so
every parser reads exactly the lines it read with its own pass.
"""

from __future__ import annotations

from functools import cache

from loglake.parse.base import LineBatch


@cache
def details_pattern() -> str:
    """The union of the five parsers' prefilters: a line none of them can use fails it.

    Built on first use: the parser modules import this one, so it imports them late (and
    reads two patterns they keep private, as tests/test_prefilter.py names them). Facts
    contributes its pattern for a fresh file (every rule group live; it narrows to the
    groups still live itself), datasets its ``_FORMS`` (its lines must match both
    ``_HINTED`` and ``_FORMS``, and ``_FORMS`` keeps fewer).
    """
    from loglake.parse.builtins import artifacts, datasets, facts, packages, params

    own = (
        params.CANDIDATES,
        artifacts.CANDIDATES,
        facts._candidates({}),
        datasets._FORMS,
        packages.CANDIDATES,
    )
    return "|".join(f"(?:{p})" for p in own)


def detail_lines(batch: LineBatch, *own: str) -> list[int]:
    """Indices (ascending) of the lines every pattern of ``own`` matches: by the shapes'
    remembered answers, else among the lines of the shared pass (``batch.matching``
    caches it for the batch)."""
    if batch.shapes() is not None:
        return batch.matching(*own)
    return batch.matching(details_pattern(), *own)


def line_shape_ids(batch: LineBatch, lines: list[int]) -> list[int] | None:
    """Each of ``lines``' shape, as an index into the batch's distinct shapes (equal ids,
    equal shapes), or ``None`` when the batch has no shapes (``LineBatch.shape_ids``)."""
    ids = batch.shape_ids() if lines else None
    return None if ids is None else [ids[i] for i in lines]
