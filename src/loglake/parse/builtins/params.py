"""The fallback hyperparameter parser: the settings a run printed, in whatever form.

Read anywhere in the log (they are explicit about being settings):

- ``Namespace(lr=0.1, ...)`` and any ``Name(k=v, k2=v2)`` dataclass/config repr, also
  multi-line like HF's ``TrainingArguments(\\n_n_gpu=1,\\n...\\n)``;
- JSON objects and Python dicts, on one line or pretty-printed over many, alone or after a
  label (``config: {...}``, ``Search space: {...}`` → ``search_space.alpha``);
- titled blocks (``hyperparameters:``, ``--- arguments ---``) of ``key: value`` /
  ``key = value`` / ``key ..... value`` lines, nested YAML indentation as dotted keys;
- command lines (``python train.py --lr 0.01 --fp16``, ``torchrun ... train.py``), which
  also give the ``command`` fact.

Read only in the header, before the log shows training under way (a step/epoch counter or
a metric-named number): OmegaConf/YAML dumps, ``k=v k=v`` lines, single ``key: value``
lines and decorated banners (``***** Running training *****``). Later ones are too often
status chatter to be settings.

Values keep their printed text (``[64, 32]``, ``True``, ``adam``); a dict that looks like
metrics (metric names, a step or epoch key) is left to the metrics parser.
"""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

from loglake.parse.base import BaseParser, LineBatch
from loglake.parse.kv import has_training_signal
from loglake.parse.metric_dicts import quiet_lines
from loglake.parse.param_dumps import (
    TORCH_MODULE_KWARGS,
    feed_dump,
    join_key,
    mapping_looks_like_metrics,
    param_value,
    repr_items,
    scalar_value,
    start_dump,
)
from loglake.parse.prefilter import WS, walk
from loglake.parse.records import Emitter
from loglake.parse.run_details import detail_lines
from loglake.parse.structured import (
    bracket_depth,
    clean_value,
    find_closing,
    flatten,
    is_scalar_text,
    parse_kwargs_repr,
    parse_mapping,
    split_key_value,
    strip_comment,
)
from loglake.parse.values import normalize_key, to_number
from loglake.parse.vocabulary import (
    CONFIG_LABELS,
    has_stopword,
    is_config_label,
    is_metric_name,
    step_kind,
)

MAX_COMMAND_CHARS = 16 << 10
MAX_SETTING_CHARS = 2000  # a key: value line longer than this is not a setting

_LABEL = r"[A-Za-z_][\w .\-/]{0,40}?"
_LABEL_DICT_RE = re.compile(rf"(?P<label>{_LABEL})\s*[:=]\s*(?P<obj>\{{.*\}})")
_DICT_OPEN_RE = re.compile(rf"(?:(?P<label>{_LABEL})\s*[:=]\s*)?\{{")
_REPR_START_RE = re.compile(r"(?<![\w.])(?P<name>[A-Za-z_][\w.]*)\((?=\s*[A-Za-z_]\w*\s*=(?!=))")
_REPR_OPEN_RE = re.compile(r"(?<![\w.])(?P<name>[A-Z][\w.]*)\($")
_MODULE_CHILD_RE = re.compile(r"^\s*\([\w.]+\):")
_KEY_LABEL_RE = re.compile(r"[A-Za-z_][\w.\-]*\s*[:=]")
_DECOR = r"[\s=*#\-_~+|<>]"
_TITLE_RE = re.compile(rf"{_DECOR}*(?P<title>[A-Za-z][A-Za-z0-9 /&\-]*?){_DECOR}*:?{_DECOR}*")
_YAML_KEY_RE = re.compile(r"[A-Za-z_][\w.\-]*:")
_PAREN_GROUP_RE = re.compile(r"\([^()]*\)")
_CHILD_WORD_RE = re.compile(r"[\w.\-/&]+")
_HEADER_KEY_RE = re.compile(r"[A-Za-z_][\w.\-]*(?: [A-Za-z][\w\-]*){0,2}")
_KV_ITEM_RE = re.compile(
    r"[\s,]*(?P<k>[A-Za-z_][\w.\-]*)=(?P<v>'[^']*'|\"[^\"]*\"|\[[^\]]*\]|\([^)]*\)|\{[^}]*\}|[^\s,]+)"
)
_TIME_VALUE_RE = re.compile(r"\d{1,2}:\d{2}(?::\d{2})?(?:[.,]\d+)?|\d{4}-\d{2}-\d{2}\b.*")
_COMMAND_RE = re.compile(
    r"(?:(?:\$|\+|>+)\s+|(?:[Cc]ommand(?: line)?|CMD|[Cc]md|[Rr]unning(?: command)?|"
    r"[Ll]aunch(?:ing|ed)?(?: command)?|[Ee]xec(?:uting)?)\s*[:=]?\s+)?"
    r"(?P<cmd>(?:[A-Z_][A-Z0-9_]*=\S*\s+)*(?:\S*/)?(?:python[\d.]*|torchrun|deepspeed|"
    r"accelerate\s+launch|srun|mpirun|horovodrun|composer|uv\s+run|poetry\s+run)\s.*)"
)
# Lines that can continue a pretty-printed JSON object / a multi-line ``Name(`` repr.
_OVERRIDE_RE = re.compile(r"[+~]*[A-Za-z_][\w.\-/]*=")
_SHELL_STOP = frozenset({"|", "||", "&&", ";", ">", ">>", "2>&1", "&", "2>", "1>"})


# Prefilter (loglake.parse.prefilter): once training has started and no dump or block is
# open, only the forms read anywhere can give a param (see _explicit): a command line, a
# dict, a ``Name(k=v`` repr or its opening ``Name(``, a title ending in a config word.
_LAUNCHERS = (
    rf"(?:python[\pN.]*|torchrun|deepspeed|accelerate{WS}+launch|srun|mpirun|horovodrun|composer"
    rf"|uv{WS}+run|poetry{WS}+run){WS}"
)
# Python's Unicode \w, widened for RE2: anything but whitespace and ASCII punctuation ("_" aside)
_WORD_CHARS = r"[^\s!-/:-@\[-^\x60{-~]"
_CONFIG_WORDS = sorted(
    {w for label in CONFIG_LABELS for w in re.split(r"[^a-z0-9]+", label) if w in CONFIG_LABELS},
    key=lambda w: (-len(w), w),
)
CANDIDATES = "|".join(
    (
        _LAUNCHERS,
        r"\{",
        rf"\({WS}*[A-Za-z_]{_WORD_CHARS}*{WS}*=",  # _REPR_START_RE
        rf"[A-Z][^\s]*\({WS}*$",  # _REPR_OPEN_RE
        rf"(?:^|[^A-Za-z0-9])(?i:{'|'.join(_CONFIG_WORDS)})(?:{WS}|[=*#\-_~+|<>:])*$",
    )
)


class ParamsParser(BaseParser):
    """Hyperparameters of the run, from any of the forms in the module docstring."""

    name = "params"
    version = "1"
    priority = 80

    def new_state(self) -> dict[str, Any]:
        return {"started": False, "dump": None, "block": None}

    def parse(self, batch: LineBatch, state: dict[str, Any], out: Emitter) -> None:
        texts, offsets = batch.texts, batch.offsets
        candidates = detail_lines(batch, CANDIDATES)
        # Once training is under way and no dump or block is open, a metrics dict line
        # leaves the state as it is and gives nothing: those proven so per shape are skipped.
        quiet = quiet_lines(batch, candidates)
        if quiet:
            skip = set(quiet)
            reading = [i for i in candidates if i not in skip]
        else:
            reading = candidates

        def picks() -> list[int] | None:
            if not state["started"] or state["dump"] is not None or state["block"] is not None:
                return None
            return reading

        for i in walk(len(texts), picks):
            offset = offsets[i]
            try:
                self._line(batch, i, state, out)
            except Exception as e:  # noqa: BLE001 - one odd line must not stop the file
                state["dump"] = None
                state["block"] = None
                out.error(offset, f"params: {type(e).__name__}: {e}", texts[i])

    def finalize(self, state: dict[str, Any], out: Emitter, *, idle: bool) -> None:
        # A block still open at the end of a finished log ends there (its YAML list, if
        # any, is emitted); while the job runs, more of the block may still come.
        if idle and state.get("block"):
            _end_block(state, out)

    # -- one line ------------------------------------------------------------------------

    def _line(self, batch: LineBatch, i: int, state: dict[str, Any], out: Emitter) -> None:
        text, offset = batch.texts[i], batch.offsets[i]
        if out.is_claimed(offset):
            return
        if state["dump"] is not None and feed_dump(text, offset, state, out):
            return
        if not text.strip():
            if state["block"]:
                _end_block(state, out)
            return
        msg = _message(text, batch.prefix(i)[2])
        if state["block"] and _block_line(msg, offset, state, out):
            return
        body = msg.strip()
        if _explicit(msg, body, offset, state, out):
            return
        if not state["started"] and has_training_signal(body):
            state["started"] = True
        if not state["started"]:
            _header(msg, body, offset, state, out)


def _message(text: str, msg: str) -> str:
    """The message (``msg``, after any log prefix) keeping its own indentation (the spaces
    after the prefix beyond the one that separates it): ``... - INFO - __main__ -   Num
    examples = 8`` is a child line of the ``***** Running training *****`` banner logged
    before it."""
    if msg is text:
        return text
    start = len(text) - len(msg)
    gap = start - len(text[:start].rstrip())
    return " " * (gap - 1) + msg if gap > 1 else msg


# -- forms read anywhere ----------------------------------------------------------------------


def _explicit(msg: str, body: str, offset: int, state: dict[str, Any], out: Emitter) -> bool:
    """Command lines, dicts, reprs and titled blocks; True when the line was one of them."""
    if _command(body, offset, out):
        return True
    if "{" in body:
        done = _dict_form(body, offset, state, out)
        if done is not None:
            return done
    if "(" in body and "=" in body and not _MODULE_CHILD_RE.match(body):
        m = _REPR_START_RE.search(body)
        if m:
            head = body[: m.start()].strip()
            if _KEY_LABEL_RE.fullmatch(head) and not is_config_label(head.rstrip(":= ")):
                return False  # "pruner: MedianPruner(...)": a header value
            return _repr_form(body[m.start() :], offset, state, out)
    if body.endswith("(") and (m := _REPR_OPEN_RE.search(body)):
        start_dump(state, "repr", body[m.start() :], offset, None)  # TrainingArguments(
        return True
    if len(body) <= 80:
        tm = _TITLE_RE.fullmatch(body)
        if tm:
            title = tm.group("title").strip()
            if is_config_label(title):
                _start_block(state, msg, titled=True, same_indent=True)
                return True
            decorated = len(body) - len(title) >= 6
            if (
                decorated
                and not state["started"]
                and not _metricish_title(title)
                and not has_training_signal(title)  # "===== Epoch 1 ====="
            ):
                _start_block(state, msg, titled=True, same_indent=False)
                return True
    return False


def _metricish_title(title: str) -> bool:
    words = title.lower().split()
    return is_metric_name(title) or any(
        w in ("metrics", "results", "eval", "evaluation", "test", "validation", "summary")
        for w in words
    )


def _command(body: str, offset: int, out: Emitter) -> bool:
    if len(body) > MAX_COMMAND_CHARS:
        return False  # shlex is quadratic; real command lines are short
    if "python" not in body and "run" not in body and "deepspeed" not in body:
        return False
    m = _COMMAND_RE.fullmatch(body)
    if not m:
        return False
    cmd = m.group("cmd").strip()
    try:
        tokens = shlex.split(cmd)
    except ValueError:
        tokens = cmd.split()
    script = next(
        (i for i, t in enumerate(tokens) if t.endswith(".py") and not t.startswith("-")), None
    )
    if script is None:
        script = next((i + 1 for i, t in enumerate(tokens[:-1]) if t == "-m"), None)
    if script is None:
        return False
    out.fact("command", cmd, offset)
    args = tokens[script + 1 :]
    i = 0
    while i < len(args):
        a = args[i]
        if a in _SHELL_STOP:
            break
        i += 1
        if a.startswith("-") and to_number(a) is None:
            name = a.lstrip("-")
            if len(name) < 2 and not a.startswith("--"):
                continue  # "-v": a short flag names nothing we can key on
            key, eq, value = name.partition("=")
            if not eq:
                vals = []
                while i < len(args) and not _ends_value(args[i]):
                    vals.append(args[i])
                    i += 1
                value = " ".join(vals) if vals else "True"
            if key:
                out.param(key.replace("-", "_"), value, offset)
        elif _OVERRIDE_RE.match(a):
            key, _, value = a.lstrip("+~").partition("=")  # Hydra override
            out.param(key, value, offset)
    return True


def _is_option(token: str) -> bool:
    return token.startswith("-") and to_number(token) is None


def _ends_value(token: str) -> bool:
    """Whether a token ends an option's values: another option, a Hydra override, a pipe."""
    return token in _SHELL_STOP or _is_option(token) or bool(_OVERRIDE_RE.match(token))


def _dict_form(body: str, offset: int, state: dict[str, Any], out: Emitter) -> bool | None:
    """One-line or opening JSON/dict; None when the line is no such thing."""
    label: str | None = None
    if body.startswith("{"):
        obj = parse_mapping(body) if body.endswith("}") else None
    else:
        m = _LABEL_DICT_RE.fullmatch(body)
        if m:
            label = m.group("label").strip()
            if has_stopword(label.split()) or len(label.split()) > 4:
                return None
            obj = parse_mapping(m.group("obj"))
        else:
            obj = None
    if obj is not None:
        if mapping_looks_like_metrics(obj):
            state["started"] = True
            return None if label else True
        leaves = flatten(obj, ".")
        prefix = "" if label is None or is_config_label(label) else normalize_key(label)
        for key, value in leaves:
            out.param(join_key(prefix, key), param_value(value), offset)
        return True
    m = _DICT_OPEN_RE.fullmatch(body)
    if m:
        label = (m.group("label") or "").strip()
        if label and (has_stopword(label.split()) or len(label.split()) > 4):
            return None
        start_dump(state, "json", "{", offset, label or None)
        return True
    return None


def _repr_form(text: str, offset: int, state: dict[str, Any], out: Emitter) -> bool:
    open_at = text.index("(")
    if find_closing(text, open_at) < 0:
        if bracket_depth(text) > 0:
            start_dump(state, "repr", text, offset, None)
            return True
        return False
    end = find_closing(text, open_at)
    parsed = parse_kwargs_repr(text[: end + 1])
    if parsed is None or len(parsed[1]) < 2:
        return False
    if any(k in TORCH_MODULE_KWARGS for k, _ in parsed[1]):
        return True  # a torch module repr (print(model)), not settings
    for key, value in repr_items(parsed[1], ""):
        out.param(key, value, offset)
    return True


# -- titled and YAML blocks -------------------------------------------------------------------


def _indent(msg: str) -> int:
    return len(msg) - len(msg.lstrip(" \t"))


def _start_block(
    state: dict[str, Any], msg: str, *, titled: bool, same_indent: bool, prefix: str = ""
) -> None:
    """Open a block: ``titled`` allows multi-word keys (``Num examples = 320``);
    ``same_indent`` (config titles only) allows children not indented under the title
    (``Hyperparameters`` then ``lr: 0.1``). Only a config title vouches for metric-named
    children; under any other title ``loss: 0.5`` ends the block and stays a metric."""
    state["block"] = {
        "config": same_indent,
        "indent": _indent(msg),
        "titled": titled,
        "same_indent": same_indent,
        "stack": [[_indent(msg), prefix]] if prefix else [],
        "list": None,
    }


def _block_line(msg: str, offset: int, state: dict[str, Any], out: Emitter) -> bool:
    """A line inside an open block; False (and the block closed) when the block ended."""
    block = state["block"]
    indent = _indent(msg)
    body = msg.strip()
    pending = block["list"]
    if pending is not None:
        if (body.startswith("- ") or body == "-") and indent >= pending["indent"]:
            pending["items"].append(clean_value(body[2:]))
            return True
        _flush_list(block, out)
    kv = split_key_value(body, leader=True) if len(body) <= MAX_SETTING_CHARS else None
    deeper = indent > block["indent"]
    same = indent == block["indent"] and block["same_indent"]
    if kv is None or not (deeper or same) or (not deeper and has_training_signal(body)):
        _end_block(state, out)
        return False
    key_text = _PAREN_GROUP_RE.sub("", kv[0]).strip()
    words = key_text.split()
    if not words or len(words) > 8 or not all(_CHILD_WORD_RE.fullmatch(w) for w in words):
        _end_block(state, out)
        return False
    if not block["titled"] and len(words) > 1:
        _end_block(state, out)
        return False
    stack = block["stack"]
    while stack and stack[-1][0] >= indent:
        stack.pop()
    key = normalize_key(key_text)
    value = kv[1]
    if not block["config"] and is_metric_name(key) and to_number(value) is not None:
        _end_block(state, out)
        return False
    path = ".".join([k for _, k in stack] + [key])
    if not value or value in ("|", ">"):
        stack.append([indent, key])
        block["list"] = {"key": path, "items": [], "offset": offset, "indent": indent}
        return True
    out.param(path, clean_value(value), offset)
    return True


def _flush_list(block: dict[str, Any], out: Emitter) -> None:
    pending = block["list"]
    block["list"] = None
    if pending and pending["items"]:
        items = [scalar_value(v) for v in pending["items"]]
        out.param(pending["key"], json.dumps(items), pending["offset"])


def _end_block(state: dict[str, Any], out: Emitter) -> None:
    block = state["block"]
    state["block"] = None
    if block:
        _flush_list(block, out)


# -- header-only forms ------------------------------------------------------------------------


def _header(msg: str, body: str, offset: int, state: dict[str, Any], out: Emitter) -> None:
    if _indent(msg) > 0 or len(body) > MAX_SETTING_CHARS or "==" in body:
        return
    if body.endswith(":") and _YAML_KEY_RE.fullmatch(body):
        _start_block(state, msg, titled=False, same_indent=False, prefix=normalize_key(body[:-1]))
        return
    if "=" in body:
        if _all_pairs(body, offset, out):
            return
        label, colon, rest = body.partition(": ")  # "hyper: lr=0.0003 batch=64"
        if (
            colon
            and _HEADER_KEY_RE.fullmatch(label)
            and not has_stopword(label.split())
            and _all_pairs(
                rest, offset, out, "" if is_config_label(label) else normalize_key(label)
            )
        ):
            return
    kv = split_key_value(body, leader=False)
    if kv is None or not kv[1]:
        return
    key, value = kv[0], strip_comment(kv[1])
    if not value or not _HEADER_KEY_RE.fullmatch(key) or has_stopword(key.split()):
        return
    if not is_scalar_text(value) or _TIME_VALUE_RE.fullmatch(value):
        return
    if key[0].isupper() and value.startswith('"'):
        return  # a title such as Keras' Model: "sequential"
    if to_number(value) is not None and (is_metric_name(key) or step_kind(key)):
        return  # a result, not a setting
    out.param(normalize_key(key), clean_value(value), offset)


def _all_pairs(body: str, offset: int, out: Emitter, prefix: str = "") -> bool:
    """``lr=0.003 batch_size=64 optimizer=adam``: every token a setting."""
    items: list[tuple[str, str]] = []
    pos = 0
    while pos < len(body):
        m = _KV_ITEM_RE.match(body, pos)
        if not m:
            return False
        items.append((m.group("k"), m.group("v")))
        pos = m.end()
        while pos < len(body) and body[pos] in " ,\t":
            pos += 1
    if len(items) < 2:
        return False
    # a counter (epoch=1 step=10) or a metric makes it a progress line; "batch" among
    # settings is a batch size (kv.batch_setting)
    if any(
        (step_kind(k) and k.lower() != "batch") or (is_metric_name(k) and to_number(v) is not None)
        for k, v in items
    ):
        return False
    for k, v in items:
        out.param(join_key(prefix, k), clean_value(v), offset)
    return True


PARSERS: list[BaseParser] = [ParamsParser()]
