"""What "best" means for a metric: its direction, and ``--metric KEY[:max|min]`` specs.

The direction of a key is guessed from its name when not given (losses, errors and times
go down, everything else goes up), so ``best(val_loss)`` and ``best(val_accuracy)`` both do
what a reader expects; an explicit ``:min`` / ``:max`` always wins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from loglake.explore.expr import FilterError, Metric, Node, parse

_LOWER_IS_BETTER = re.compile(
    r"loss|err|error|perplexity|ppl|mse|mae|rmse|nll|wer|cer|bpb|bpc|latency|runtime|"
    r"duration|time|_s$|seconds|regret|cost|fid|kl",
    re.IGNORECASE,
)
_EVAL_PREFIX = re.compile(r"^(val|valid|validation|eval|test|dev)[_/.\-]", re.IGNORECASE)


def direction(key: str) -> str:
    """``"min"`` when smaller values of ``key`` are better, else ``"max"``."""
    return "min" if _LOWER_IS_BETTER.search(key) else "max"


def is_eval_key(key: str) -> bool:
    """A held-out metric (``val_…``, ``eval/…``, ``test_…``): the one people rank runs by."""
    return bool(_EVAL_PREFIX.match(key))


@dataclass(frozen=True, slots=True)
class Objective:
    """One metric to optimise: an expression per run and whether larger is better."""

    text: str  # the expression as the user wrote it (the column label)
    node: Node
    goal: str  # "max" or "min"

    @property
    def label(self) -> str:
        return self.text


def parse_objective(spec: str) -> Objective:
    """``val_accuracy:max``, ``latency:min``, ``last(val_loss):min``, ``val_loss``.

    A bare key is aggregated in its own direction (``val_accuracy:max`` → ``max(val_accuracy)``);
    an expression is used as written.
    """
    text = spec.strip()
    goal: str | None = None
    head, sep, tail = text.rpartition(":")
    if sep and tail.strip().lower() in ("max", "min"):
        text, goal = head.strip(), tail.strip().lower()
    if not text:
        raise FilterError(f"empty metric in {spec!r}", fix="write e.g. val_accuracy:max")
    node = _as_node(text)
    if isinstance(node, Metric) and node.func == "best":
        goal = goal or direction(node.key)
        node = Metric(goal, node.key, node.window)
    if goal is None:
        goal = direction(node.key) if isinstance(node, Metric) else "max"
    if isinstance(node, Metric) and text == node.key:
        return key_objective(node.key, goal)
    return Objective(text, node, goal)


def key_objective(key: str, goal: str | None = None) -> Objective:
    """The objective "best value of metric ``key``" (``max(key)`` or ``min(key)``)."""
    goal = goal or direction(key)
    return Objective(f"{goal}({_show_key(key)})", Metric(goal, key), goal)


def _as_node(text: str) -> Node:
    """A bare metric key (even ``eval/loss`` or ``train-logloss``) or an expression."""
    if re.fullmatch(r"[\w.\-/]+", text) and not re.fullmatch(r"[\d.]+", text):
        try:
            node = parse(text)
        except FilterError:
            return Metric("best", text)
        if isinstance(node, Metric):
            return node
        return Metric("best", text)
    return parse(text)


def _show_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z_][\w.]*", key) else f'"{key}"'
