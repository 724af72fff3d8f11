"""Multi-line settings dumps (pretty-printed JSON and dicts, HF's ``TrainingArguments(...)``
over many lines), nested ``Name(k=v)`` reprs, and the value rules every settings form shares:
the params parser's multi-line half, apart so each module holds one concept."""

from __future__ import annotations

import json
import re
from typing import Any

from loglake.parse.records import Emitter
from loglake.parse.structured import (
    bracket_depth,
    clean_value,
    flatten,
    number_of,
    parse_kwargs_repr,
    parse_mapping,
)
from loglake.parse.values import normalize_key, to_number
from loglake.parse.vocabulary import is_config_label, is_metric_name, step_kind

MAX_DUMP_LINES = 2000
MAX_DUMP_CHARS = 256 << 10
TORCH_MODULE_KWARGS = frozenset(
    {"in_features", "out_features", "kernel_size", "inplace", "num_embeddings", "in_channels"}
)
_JSON_CONT_RE = re.compile(r"\s*(?:[\"'\]}\[{\d\-]|true\b|false\b|null\b|$)")
_REPR_CONT_RE = re.compile(r"\s*(?:[A-Za-z_]\w*\s*=|[\]})]|$)|\s")


def repr_items(items: list[tuple[str, str]], prefix: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for k, v in items:
        key = join_key(prefix, k)
        if v[:1].isalpha() and v.endswith(")") and "=" in v:
            nested = parse_kwargs_repr(v)
            if nested and nested[1]:
                out.extend(repr_items(nested[1], key))
                continue
        if v.startswith("{"):
            obj = parse_mapping(v)
            if obj:
                out.extend((join_key(key, kk), param_value(vv)) for kk, vv in flatten(obj, "."))
                continue
        out.append((key, clean_value(v)))
    return out


# -- multi-line dumps (pretty JSON, HF TrainingArguments) --------------------------------------


def start_dump(
    state: dict[str, Any], kind: str, first: str, offset: int, label: str | None
) -> None:
    state["dump"] = {
        "kind": kind,
        "label": label,
        "lines": [first],
        "offsets": [offset],
        "depth": bracket_depth(first),
        "chars": len(first),
    }


def feed_dump(text: str, offset: int, state: dict[str, Any], out: Emitter) -> bool:
    """Add a line to an open dump; False when the line cannot belong to it (dump dropped)."""
    dump = state["dump"]
    cont = _JSON_CONT_RE if dump["kind"] == "json" else _REPR_CONT_RE
    if not cont.match(text):
        state["dump"] = None  # an opening that was no dump: read the line normally
        return False
    dump["lines"].append(text)
    dump["offsets"].append(offset)
    dump["chars"] += len(text)
    dump["depth"] = bracket_depth(text, dump["depth"])
    if dump["depth"] <= 0:
        state["dump"] = None
        _close_dump(dump, out)
    elif len(dump["lines"]) > MAX_DUMP_LINES or dump["chars"] > MAX_DUMP_CHARS:
        state["dump"] = None  # too big to be settings
    return True


def _close_dump(dump: dict[str, Any], out: Emitter) -> None:
    text = "\n".join(dump["lines"])
    where = _key_lines(dump["lines"], dump["offsets"])
    first = dump["offsets"][0]
    if dump["kind"] == "repr":
        parsed = parse_kwargs_repr(text)
        if parsed is None or len(parsed[1]) < 2:
            return
        if any(k in TORCH_MODULE_KWARGS for k, _ in parsed[1]):
            return
        for key, value in repr_items(parsed[1], ""):
            out.param(key, value, where.get(key.split(".")[0], first))
        return
    obj = parse_mapping(text)
    if obj is None:
        try:
            obj = json.loads(text)
        except ValueError:
            return
    if not isinstance(obj, dict):
        return
    leaves = flatten(obj, ".")
    if looks_like_metrics(leaves):
        return
    label = dump["label"]
    prefix = "" if not label or is_config_label(label) else normalize_key(label)
    for key, value in leaves:
        out.param(
            join_key(prefix, key), param_value(value), where.get(key.rsplit(".", 1)[-1], first)
        )


_KEY_LINE_RE = re.compile(r"\s*[\"']?(?P<k>[\w.\-/ ]+?)[\"']?\s*[:=]")


def _key_lines(lines: list[str], offsets: list[int]) -> dict[str, int]:
    """Offset of the line where each key first appears, so each param points at its line."""
    where: dict[str, int] = {}
    for line, off in zip(lines, offsets, strict=True):
        m = _KEY_LINE_RE.match(line[:200])
        if m:
            where.setdefault(m.group("k"), off)
    return where


# -- values -----------------------------------------------------------------------------------


def join_key(prefix: str, key: str) -> str:
    key = ".".join(normalize_key(part) or part for part in str(key).split("."))
    return f"{prefix}.{key}" if prefix else key


def param_value(value: Any) -> Any:
    """A parsed value as the params table keeps it: scalars as they are, lists as JSON text."""
    if isinstance(value, list | tuple):
        try:
            return json.dumps(list(value))
        except (TypeError, ValueError):
            return repr(value)
    if isinstance(value, dict):  # only empty ones: flatten() opens the others
        return "{}"
    return value


def scalar_value(text: str) -> Any:
    num = to_number(text)
    if num is not None:
        return int(num) if num.is_integer() and "." not in text and "e" not in text.lower() else num
    return text


def looks_like_metrics(leaves: list[tuple[str, Any]]) -> bool:
    """A dict with a step/epoch key or a metric-named number is a metrics record."""
    for key, value in leaves:
        last = key.rsplit(".", 1)[-1]
        if step_kind(last) and number_of(value) is not None:
            return True
        if number_of(value) is not None and is_metric_name(last):
            return True
    return False


def mapping_looks_like_metrics(obj: dict[Any, Any]) -> bool:
    """``looks_like_metrics(flatten(obj, "."))`` without building the leaves: most dict lines
    are metrics records, decided by their first key (``step``, ``loss``).

    A leaf's last key segment is the part of its own key after its last ``.``, whatever
    the keys above it (``flatten`` joins them with ``.``)."""
    for k, v in obj.items():
        if isinstance(v, dict) and v:
            if mapping_looks_like_metrics(v):
                return True
        elif number_of(v) is not None:
            last = str(k).rsplit(".", 1)[-1]
            if step_kind(last) or is_metric_name(last):
                return True
    return False
