"""Reading a declarative parser's lines once per line *shape*, not once per line.

A training log repeats a few templates with other numbers in them: ``[12]\\tvalid_0's auc:
0.98`` and ``[13]\\tvalid_0's auc: 0.97`` have one shape once every digit ``1``-``9`` reads
as ``0`` (``loglake.parse.line_shapes``): the same length, the same non-digit characters at
the same places. A regex that cannot tell one ASCII digit from another (``digit_uniform``:
every character test it makes accepts all ten digits or none, and it never compares text
with a back reference) takes the same decisions on every line of a shape, so it matches
all of them or none, with its groups at the same places. So which rules match a line,
where their groups are and which templates read them is worked out once per shape
(``ShapeReader.plan``, by the parser's own regexes on the shape's first line), and every
line of that shape is read by slicing it at those places (``run_plan``).

Only what is provably the same for the whole shape goes through here: a line of a shape
the plan cannot vouch for (a log prefix to strip, a section or table opening, a rule whose
pattern or literals look at particular digits, a rule with ``once``/``sub``/a record kind
other than a metric, a redrawn line, an open section or table) is read the plain way. The
conversions stay those of the plain reading (``float``, ``to_number``, ``to_step``,
``to_epoch``, template filters on the sliced text), so the records are the same;
tests/test_declarative_shapes.py checks that on generated lines.
"""

from __future__ import annotations

from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser as sre_parser  # type: ignore[attr-defined]
from typing import Any

from loglake.parse.declarative_compile import CompiledRule, Position
from loglake.parse.declarative_emit import line_ts, prefixed, stampless, to_epoch, to_step
from loglake.parse.declarative_template import LINE, Template
from loglake.parse.values import to_number

_DIGITS = frozenset("0123456789")
_ZERO = str.maketrans("123456789", "000000000")  # a line's shape, as ``line_shapes`` reads it
# character categories that accept the ASCII digits (every other one accepts none of them)
_DIGIT_CATEGORIES = frozenset(
    (
        sre.CATEGORY_DIGIT,
        sre.CATEGORY_NOT_SPACE,
        sre.CATEGORY_WORD,
        sre.CATEGORY_NOT_LINEBREAK,
        sre.CATEGORY_LOC_WORD,
        sre.CATEGORY_UNI_DIGIT,
        sre.CATEGORY_UNI_NOT_SPACE,
        sre.CATEGORY_UNI_WORD,
        sre.CATEGORY_UNI_NOT_LINEBREAK,
    )
)
_REPEATS = (sre.MAX_REPEAT, sre.MIN_REPEAT, getattr(sre, "POSSESSIVE_REPEAT", sre.MAX_REPEAT))

# how a template reads a line of the shape: a fixed text (None: a group it needs did not
# take part), one slice of the line, one slice with fixed text around it (a %-format), or
# parts joined (texts and filtered slices)
CONST, SLICE, FORMAT, PARTS = 0, 1, 2, 3
Piece = tuple[Any, ...]
_NONE_PIECE: Piece = (CONST, None)
# step/epoch of a metric: none, the context, or a template of the match
_NONE, _CONTEXT, _TEMPLATE = 0, 1, 2
MEMO_SHAPES = 2048  # plans a reader keeps (per parser, across batches) ...
MEMO_CHARS = 1024  # ... of lines this long at most (a longer one is planned per batch)
_UNSEEN = object()


def digit_uniform(pattern: str) -> bool:
    """Whether the (stdlib ``re``) ``pattern`` cannot tell one ASCII digit from another.

    True when every literal, class and category in it accepts all of ``0``-``9`` or none of
    them and it has no back reference or conditional: it then decides the same on two texts
    that differ only by which digits stand where, with its groups at the same places.
    Lookarounds are read like the rest (their tests are such tests too).
    """
    try:
        return _uniform(sre_parser.parse(pattern))
    except Exception:  # noqa: BLE001 - syntax this reader does not know: not uniform
        return False


def _uniform(items: Any) -> bool:
    for op, av in items:
        if op in (sre.LITERAL, sre.NOT_LITERAL):
            if chr(av) in _DIGITS:
                return False
        elif op is sre.IN:
            if not _class_uniform(av):
                return False
        elif op in (sre.ANY, sre.AT):
            continue
        elif op is sre.BRANCH:
            if not all(_uniform(alt) for alt in av[1]):
                return False
        elif op is sre.SUBPATTERN:
            if not _uniform(av[3]):
                return False
        elif op in _REPEATS:
            if not _uniform(av[2]):
                return False
        elif op in (sre.ASSERT, sre.ASSERT_NOT):
            if not _uniform(av[1]):
                return False
        elif op is getattr(sre, "ATOMIC_GROUP", None):
            if not _uniform(av):
                return False
        else:  # back references, conditionals, anything new: not read here
            return False
    return True


def _class_uniform(items: Any) -> bool:
    digits: set[str] = set()
    for op, av in items:
        if op is sre.NEGATE:
            continue  # negation keeps "all or none"
        if op is sre.LITERAL:
            if chr(av) in _DIGITS:
                digits.add(chr(av))
        elif op is sre.RANGE:
            digits.update(d for d in _DIGITS if av[0] <= ord(d) <= av[1])
        elif op is sre.CATEGORY:
            if av in _DIGIT_CATEGORIES:
                digits.update(_DIGITS)
        else:
            return False
    return not digits or digits == _DIGITS


def _source(search: Any) -> str | None:
    """The pattern text behind a compiled ``search``/``finditer`` (trusted parsers only)."""
    owner = getattr(search, "__self__", None)
    return getattr(owner, "pattern", None)


def _blinded(alts: tuple[str, ...] | None) -> tuple[str, ...] | None:
    """``alts`` as the shape of a line holding one of them holds them (digits read as 0)."""
    return tuple(a.translate(_ZERO) for a in alts) if alts else None  # none: no gate


def _literals_blind(alts: tuple[str, ...] | None) -> bool:
    """Whether a line holds one of ``alts`` exactly when every line of its shape does."""
    return alts is None or not any(_DIGITS.intersection(a) for a in alts)


def _safe(search: Any, alts: tuple[str, ...] | None) -> bool:
    source = _source(search)
    return source is not None and _literals_blind(alts) and digit_uniform(source)


def _position(pos: Position, pairs: frozenset[str], set_context: bool) -> tuple[int, Any]:
    """``declarative_emit._position`` for a plan: how a metric's step/epoch is found."""
    if pos == "none":
        return _NONE, None
    if pos == "context" or not isinstance(pos, Template):
        return _CONTEXT, None
    if set_context and not pos.uses(pairs):
        return _CONTEXT, None
    return _TEMPLATE, pos


class _RuleShape:
    """What the plan needs of one rule, worked out when the parser is built."""

    __slots__ = ("epoch", "items", "metric", "pairs", "per_pair", "rule", "safe", "setters", "step")

    def __init__(self, rule: CompiledRule, setters: tuple[tuple[str, Any, Any], ...]) -> None:
        self.rule = rule
        self.metric = rule.kind == "metric"
        self.pairs = rule.pairs_groups
        self.safe = (
            _safe(rule.search, rule.alts)
            and (rule.pairs is None or _safe(rule.pairs, None))
            and (rule.kind in ("context", "skip") or (self.metric and not rule.once))
            and rule.sub is None
        )
        conv = {"step": to_step, "epoch": to_epoch}
        self.setters = tuple(
            (name, getattr(rule, name), conv[name])
            for name, _, _ in setters
            if rule.set_context and isinstance(getattr(rule, name), Template)
        )
        self.step = _position(rule.step, self.pairs, rule.set_context)
        self.epoch = _position(rule.epoch, self.pairs, rule.set_context)
        self.per_pair = self.step[0] == _TEMPLATE and self.step[1].uses(self.pairs)
        self.per_pair |= self.epoch[0] == _TEMPLATE and self.epoch[1].uses(self.pairs)
        self.items = [(v, k, v.single in rule.numeric) for k, v in rule.items]


class ShapeReader:
    """One parser's per-shape plans: which rules a shape's lines match and how to read them.

    ``plan(line)`` returns None when the line must be read the plain way; otherwise a
    tuple of rule steps ``(clear, setters, emit, claiming, marks)`` that ``run_plan`` runs on
    every line of the shape (an empty tuple: no rule matches the shape).
    """

    def __init__(
        self,
        free_plan: list[Any],
        sections: list[Any],
        tables: list[Any],
        *,
        strip: bool,
    ) -> None:
        self.strip = strip
        # (literals as the shape holds them, section start / table header, safe): a line
        # opening one is read plainly
        self.openers = [(_blinded(o.alts), o.start, _safe(o.start, o.alts)) for _, o in sections]
        self.openers += [(_blinded(o.alts), o.header, _safe(o.header, o.alts)) for _, o in tables]
        self.rules = [
            (step, _RuleShape(step[0], step[2]), _blinded(step[0].alts)) for step in free_plan
        ]
        self.known: dict[str, tuple[Any, ...] | None] = {}  # shape -> its plan

    def plan(self, text: str) -> tuple[Any, ...] | None:
        """The plan of ``text``'s shape, made once (by the first line of the shape seen, in
        any batch: a plan holds places and fixed texts of the shape, nothing of its digits)."""
        if self.strip and prefixed(text):
            return None
        shape = text.translate(_ZERO)
        got = self.known.get(shape, _UNSEEN)
        if got is _UNSEEN:
            got = self._plan(text, shape)
            if len(shape) <= MEMO_CHARS:
                if len(self.known) >= MEMO_SHAPES:  # ever new shapes: keep the memory bounded
                    self.known.clear()
                self.known[shape] = got
        return got

    def _plan(self, text: str, shape: str) -> tuple[Any, ...] | None:
        for alts, opens, safe in self.openers:
            if alts is not None and not any(a in shape for a in alts):
                continue  # no line of the shape holds a literal it needs
            if not safe or opens(text):
                return None
        steps: list[Any] = []
        for (rule, run, _, claiming, marks), ruled, alts in self.rules:
            if alts is not None and not any(a in shape for a in alts):
                continue
            if not ruled.safe:
                return None
            m = rule.search(text)
            if m is None:
                continue
            setters = tuple(
                _converted(
                    name, _piece(tpl, text, m, None, 0, rule.main_groups, frozenset()), text, conv
                )
                for name, tpl, conv in ruled.setters
            )
            emit = _metric_plan(ruled, text, m) if run is not None else None
            steps.append((rule.clear, setters, emit, claiming, marks))
            if rule.stop:
                break
        return tuple(steps)


def _converted(name: str, piece: Piece, text: str, conv: Any) -> tuple[str, Piece, Any]:
    """(name, piece, conversion): ``to_step``/``to_epoch`` of a slice of plain ASCII digits
    is ``int``/``float`` of it, on every line of the shape."""
    if piece[0] == SLICE:
        got = text[piece[1] : piece[2]]
        if got and got.isascii() and got.isdigit():
            return name, piece, int if conv is to_step else float
    return name, piece, conv


def _piece(
    tpl: Template,
    text: str,
    m: Any,
    pm: Any,
    off: int,
    main: frozenset[str],
    pairs: frozenset[str],
) -> Piece:
    """How ``tpl`` reads every line of ``text``'s shape (see ``declarative_template``)."""
    if tpl.const is not None:
        return (CONST, tpl.const)
    parts: list[Any] = []
    for part in tpl.parts:
        if isinstance(part, str):
            parts.append(part)
            continue
        name, filters = part
        if name == LINE:
            a, b = 0, len(text)
        elif name in pairs:
            a, b = pm.span(name)
            a, b = (a + off, b + off) if a >= 0 else (a, b)
        elif name in main:
            a, b = m.span(int(name) if name.isdigit() else name)
        else:
            return _NONE_PIECE
        if a < 0:
            return _NONE_PIECE
        parts.append((a, b, filters))
    # a slice with no digit in it reads the same text on every line of the shape
    merged: list[Any] = []
    for part in parts:
        if not isinstance(part, str) and _DIGITS.intersection(text[part[0] : part[1]]):
            merged.append(part)
            continue
        fixed = part if isinstance(part, str) else _render((part,), text)
        if merged and isinstance(merged[-1], str):
            merged[-1] += fixed
        else:
            merged.append(fixed)
    if not merged or (len(merged) == 1 and isinstance(merged[0], str)):
        return (CONST, merged[0] if merged else "")
    slices = [p for p in merged if not isinstance(p, str)]
    if len(slices) == 1 and not slices[0][2]:
        if len(merged) == 1:
            return (SLICE, slices[0][0], slices[0][1])
        fmt = "".join(p.replace("%", "%%") if isinstance(p, str) else "%s" for p in merged)
        return (FORMAT, slices[0][0], slices[0][1], fmt)  # "valid_1" + "-auc"
    return (PARTS, tuple(merged))


def _render(parts: Any, line: str) -> str:
    out: list[str] = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
            continue
        a, b, filters = part
        got = line[a:b]
        for f in filters:
            got = f(got)
        out.append(got)
    return "".join(out)


def read(piece: Piece, line: str) -> Any:
    """The text ``piece`` reads from ``line`` (None when its group did not take part)."""
    kind = piece[0]
    if kind == SLICE:
        return line[piece[1] : piece[2]]
    if kind == CONST:
        return piece[1]
    if kind == FORMAT:
        return piece[3] % line[piece[1] : piece[2]]
    return _render(piece[1], line)


def _metric_plan(shape: _RuleShape, text: str, m: Any) -> tuple[Any, ...]:
    """(step how, epoch how, per pair, entries, no line stamp): an entry per pairs match,
    ((step piece, its conversion), (epoch piece, its conversion), values), the values as
    (value piece, key piece, numeric)."""
    rule = shape.rule
    main, pairs = rule.main_groups, shape.pairs
    if rule.pairs is None:
        found: list[tuple[Any, int]] = [(None, 0)]
    else:
        pin = rule.pairs_in
        segment = m.group(pin) if pin else text[m.end() :]
        off = (m.start(pin) if pin else m.end()) if segment else 0
        found = [(pm, off) for pm in rule.pairs(segment or "")]
    entries = []
    for pm, off in found:
        step = epoch = (CONST, None), None
        if shape.step[0] == _TEMPLATE:
            step = _converted(
                "step", _piece(shape.step[1], text, m, pm, off, main, pairs), text, to_step
            )[1:]
        if shape.epoch[0] == _TEMPLATE:
            epoch = _converted(
                "epoch", _piece(shape.epoch[1], text, m, pm, off, main, pairs), text, to_epoch
            )[1:]
        values = []
        for value_t, key_t, numeric in shape.items:
            value = _piece(value_t, text, m, pm, off, main, pairs)
            key = _piece(key_t, text, m, pm, off, main, pairs)
            if value == _NONE_PIECE or (key[0] == CONST and not key[1]):
                continue  # never a value on this shape
            values.append((value, key, numeric))
        entries.append((step, epoch, tuple(values)))
    return (shape.step[0], shape.epoch[0], shape.per_pair, tuple(entries), stampless(text))


def run_plan(
    plan: tuple[Any, ...],
    raw: str,
    offset: int,
    ts: float | None,
    ctx: dict[str, Any],
    rows: Any,
    claimed: bool,
) -> bool:
    """Read one line of a planned shape (``DeclarativeParser._apply`` for each matched
    rule, its metrics through ``MetricRows``); True when a framework-marking rule emitted."""
    mark = False
    for clear, setters, emit, claiming, marks in plan:
        for name in clear:
            ctx[name] = None
        for name, piece, conv in setters:
            got = read(piece, raw)
            value = conv(got) if got is not None else None
            if value is not None:
                ctx[name] = value
        if (
            emit is not None
            and not (claimed and claiming)
            and _emit(emit, raw, offset, ts, ctx, rows)
            and marks
        ):
            mark = True
    return mark


def _emit(
    emit: tuple[Any, ...], raw: str, offset: int, ts: float | None, ctx: dict, rows: Any
) -> bool:
    """``declarative_emit._metric_runner``'s ``run`` on a planned line (no once=, no sub)."""
    step_how, epoch_how, per_pair, entries, no_stamp = emit
    ts_pending = ts is None and not no_stamp
    emitted = fresh = False
    step = epoch = None
    add_sub, add_key, add_value, add_step, add_epoch, add_ts, add_offset = rows.appends
    for step_p, epoch_p, values in entries:
        if not fresh or per_pair:
            fresh = True
            if step_how == _TEMPLATE:
                got = read(step_p[0], raw)
                step = step_p[1](got) if got is not None else None
                if step is None:
                    step = ctx["step"]
            else:
                step = ctx["step"] if step_how == _CONTEXT else None
            if epoch_how == _TEMPLATE:
                got = read(epoch_p[0], raw)
                epoch = epoch_p[1](got) if got is not None else None
                if epoch is None:
                    epoch = ctx["epoch"]
            else:
                epoch = ctx["epoch"] if epoch_how == _CONTEXT else None
        for value_p, key_p, numeric in values:
            got = raw[value_p[1] : value_p[2]] if value_p[0] == SLICE else read(value_p, raw)
            if got is None:
                continue
            key = key_p[1] if key_p[0] == CONST else read(key_p, raw)
            if not key:
                continue
            value = float(got) if numeric else to_number(got)
            if value is None:
                continue
            if ts_pending:
                ts, ts_pending = line_ts(raw), False
            add_sub(None)
            add_key(key)
            add_value(value)
            add_step(step)
            add_epoch(epoch)
            add_ts(ts)
            add_offset(offset)
            emitted = True
    return emitted
