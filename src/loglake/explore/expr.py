"""The filter language of ``--where``, ``--sort`` and ``--metric``: text → a small syntax tree.

Examples::

    params.lr < 0.01 and max(val_accuracy) > 0.9
    best(val_accuracy after step 1000) > 0.8 or status = 'failed'
    last("eval/loss") - min("eval/loss") > 0.2
    tags.owner = 'ana' and experiment like 'bert%'

Metric aggregates (``last first min max mean avg count best last_step``) may carry a step
window: ``after|from|before|until [step|epoch] N``, ``between [step|epoch] A and B`` or
``, step >= N``. Keys that are not plain identifiers are quoted: ``"eval/loss"``.
The tree is compiled to SQL by ``loglake.explore.sqlgen``; nothing here touches a database.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from loglake.errors import ExitCode, LoglakeError

AGGREGATES = ("last", "first", "min", "max", "mean", "avg", "count", "best", "last_step")

# Run fields a filter may name directly; aliases map a friendly word to the column.
RUN_FIELDS = {
    "run_id": "run_id",
    "namespace": "namespace",
    "experiment": "experiment",
    "run": "run",
    "parent_run_id": "parent_run_id",
    "status": "status",
    "status_reason": "status_reason",
    "error": "error",
    "start_time": "start_time",
    "start": "start_time",
    "end_time": "end_time",
    "end": "end_time",
    "duration_s": "duration_s",
    "duration": "duration_s",
    "framework": "framework",
    "command": "command",
    "git_commit": "git_commit",
    "git_branch": "git_branch",
    "host": "host",
    "user": "user",
    "exit_code": "exit_code",
    "lines": "lines",
    "bytes": "bytes",
    "observed_at": "observed_at",
}
NUMERIC_RUN_FIELDS = {"duration_s", "exit_code", "lines", "bytes"}
_WINDOW_WORDS = {"after": ">", "from": ">=", "before": "<", "until": "<="}


class FilterError(LoglakeError):
    """A filter expression that cannot be read; the message points at the spot."""

    exit_code = ExitCode.USAGE


# -- syntax tree ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Literal:
    value: float | int | str | bool | None


@dataclass(frozen=True, slots=True)
class RunField:
    column: str


@dataclass(frozen=True, slots=True)
class Param:
    key: str


@dataclass(frozen=True, slots=True)
class Tag:
    key: str


@dataclass(frozen=True, slots=True)
class Notes:
    pass


@dataclass(frozen=True, slots=True)
class Window:
    """Points kept for an aggregate: ``axis op value`` terms, all of which must hold."""

    terms: tuple[tuple[str, str, float], ...] = ()  # (axis: step|epoch|any, op, value)


@dataclass(frozen=True, slots=True)
class Metric:
    func: str
    key: str
    window: Window = field(default_factory=Window)


@dataclass(frozen=True, slots=True)
class Unary:
    op: str  # "-" or "not"
    operand: Node


@dataclass(frozen=True, slots=True)
class Binary:
    op: str  # arithmetic, comparison, "and", "or"
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class InList:
    operand: Node
    items: tuple[Literal, ...]
    negated: bool = False


@dataclass(frozen=True, slots=True)
class IsNull:
    operand: Node
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Match:
    operand: Node
    pattern: str
    kind: str  # like, ilike, ~
    negated: bool = False


Node = Literal | RunField | Param | Tag | Notes | Metric | Unary | Binary | InList | IsNull | Match


# -- tokens --------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<str>'(?:[^']|'')*')
  | (?P<qid>"(?:[^"]|"")*"|`[^`]*`)
  | (?P<id>[A-Za-z_][\w]*(?:\.(?:[A-Za-z_0-9][\w]*|"(?:[^"]|"")*"|`[^`]*`))*)
  | (?P<op><=|>=|!=|<>|==|!~|[<>=~+\-*/(),])
    """,
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # num, str, qid, id, op, end
    text: str
    pos: int


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise _error(text, pos, f"unexpected character {text[pos]!r}")
        kind = m.lastgroup or ""
        if kind != "ws":
            tokens.append(Token(kind, m.group(), pos))
        pos = m.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


def _unquote_ident(text: str) -> str:
    if text.startswith('"'):
        return text[1:-1].replace('""', '"')
    if text.startswith("`"):
        return text[1:-1]
    return text


def _error(text: str, pos: int, message: str) -> FilterError:
    return FilterError(
        f"{message} at position {pos + 1} of {text!r}",
        fix="see `loglake runs --help` or docs/exploring.md for the filter language",
    )


# -- parser --------------------------------------------------------------------------------


def parse(text: str) -> Node:
    """Parse a whole filter or sort expression."""
    if not text or not text.strip():
        raise FilterError("empty expression", fix='write e.g. "params.lr < 0.01"')
    p = _Parser(text)
    node = p.expr()
    p.expect_end()
    return node


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    # token helpers
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def word(self) -> str:
        return self.tok.text.lower() if self.tok.kind == "id" else ""

    def take(self) -> Token:
        t = self.tokens[self.i]
        self.i += 1
        return t

    def accept_op(self, *ops: str) -> str | None:
        if self.tok.kind == "op" and self.tok.text in ops:
            return self.take().text
        return None

    def accept_word(self, *words: str) -> str | None:
        if self.word() in words:
            return self.take().text.lower()
        return None

    def expect_op(self, op: str) -> None:
        if not self.accept_op(op):
            raise self.fail(f"expected {op!r}")

    def expect_end(self) -> None:
        if self.tok.kind != "end":
            raise self.fail(f"unexpected {self.tok.text!r}")

    def fail(self, message: str) -> FilterError:
        found = self.tok.text or "end of text"
        return _error(self.text, self.tok.pos, f"{message} (found {found!r})")

    # grammar: or < and < not < comparison < additive < multiplicative < unary < primary
    def expr(self) -> Node:
        node = self.conj()
        while self.accept_word("or"):
            node = Binary("or", node, self.conj())
        return node

    def conj(self) -> Node:
        node = self.neg()
        while self.accept_word("and"):
            node = Binary("and", node, self.neg())
        return node

    def neg(self) -> Node:
        if self.accept_word("not"):
            return Unary("not", self.neg())
        return self.comparison()

    def comparison(self) -> Node:
        left = self.additive()
        op = self.accept_op("<", "<=", ">", ">=", "=", "==", "!=", "<>")
        if op:
            op = {"==": "=", "<>": "!="}.get(op, op)
            return Binary(op, left, self.additive())
        if self.accept_word("is"):
            negated = bool(self.accept_word("not"))
            if not self.accept_word("null"):
                raise self.fail("expected null after is")
            return IsNull(left, negated)
        negated = bool(self.accept_word("not"))
        if self.accept_word("in"):
            return InList(left, self.literal_list(), negated)
        kind = self.accept_word("like", "ilike") or self.accept_op("~", "!~")
        if kind:
            if kind == "!~":
                kind, negated = "~", not negated
            if self.tok.kind != "str":
                raise self.fail(f"{kind} needs a quoted pattern")
            return Match(left, _unquote_str(self.take().text), kind, negated)
        if negated:
            raise self.fail("expected in, like or ilike after not")
        return left

    def literal_list(self) -> tuple[Literal, ...]:
        self.expect_op("(")
        items = [self.literal()]
        while self.accept_op(","):
            items.append(self.literal())
        self.expect_op(")")
        return tuple(items)

    def literal(self) -> Literal:
        sign = -1 if self.accept_op("-") else 1
        t = self.tok
        if t.kind == "num":
            self.take()
            return Literal(sign * _number(t.text))
        if sign == 1 and t.kind == "str":
            self.take()
            return Literal(_unquote_str(t.text))
        if sign == 1 and self.word() in ("true", "false"):
            return Literal(self.take().text.lower() == "true")
        raise self.fail("expected a number or a quoted string")

    def additive(self) -> Node:
        node = self.multiplicative()
        while op := self.accept_op("+", "-"):
            node = Binary(op, node, self.multiplicative())
        return node

    def multiplicative(self) -> Node:
        node = self.unary()
        while op := self.accept_op("*", "/"):
            node = Binary(op, node, self.unary())
        return node

    def unary(self) -> Node:
        if self.accept_op("-"):
            operand = self.unary()
            if isinstance(operand, Literal) and isinstance(operand.value, int | float):
                return Literal(-operand.value)
            return Unary("-", operand)
        return self.primary()

    def primary(self) -> Node:
        t = self.tok
        if t.kind == "op" and t.text == "(":
            self.take()
            node = self.expr()
            self.expect_op(")")
            return node
        if t.kind in ("num", "str"):
            return self.literal()
        if t.kind == "qid":
            raise self.fail(
                'a quoted name must be inside an aggregate, e.g. max("eval/loss"), '
                "or follow params./tags./metrics."
            )
        if t.kind != "id":
            raise self.fail("expected a value, a field, params.KEY or an aggregate")
        word = t.text.lower()
        if word in ("true", "false"):
            return self.literal()
        if word == "null":
            self.take()
            return Literal(None)
        self.take()
        if self.tok.kind == "op" and self.tok.text == "(":
            return self.aggregate(t)
        return self.reference(t)

    def reference(self, t: Token) -> Node:
        head, _, rest = t.text.partition(".")
        lower = head.lower()
        if rest:
            key = _join_key(rest)
            if lower in ("params", "param", "p"):
                return Param(key)
            if lower in ("tags", "tag"):
                return Tag(key)
            if lower in ("metrics", "metric", "m"):
                return Metric("last", key)
            if lower in ("run", "runs") and key in RUN_FIELDS:
                return RunField(RUN_FIELDS[key])
        elif lower in RUN_FIELDS:
            return RunField(RUN_FIELDS[lower])
        elif lower in ("notes", "note"):
            return Notes()
        raise _error(
            self.text,
            t.pos,
            f"{t.text!r} is not a run field; write params.{t.text} for a parameter, "
            f"tags.{t.text} for a tag or last({t.text}) / max({t.text}) for a metric",
        )

    def aggregate(self, t: Token) -> Node:
        func = t.text.lower()
        if func not in AGGREGATES:
            raise _error(
                self.text,
                t.pos,
                f"unknown aggregate {t.text!r}; use one of {', '.join(AGGREGATES)}",
            )
        self.expect_op("(")
        k = self.tok
        if k.kind == "qid":
            key = _unquote_ident(self.take().text)
        elif k.kind == "id":
            key = self.take().text
            head, _, rest = key.partition(".")
            if rest and head.lower() in ("metrics", "metric", "m"):
                key = rest
            key = _join_key(key)
        else:
            raise self.fail("expected a metric key")
        window = self.window()
        self.expect_op(")")
        return Metric(func, key, window)

    def window(self) -> Window:
        terms: list[tuple[str, str, float]] = []
        while True:
            if self.accept_op(","):
                axis = self.accept_word("step", "epoch")
                if not axis:
                    raise self.fail("expected step or epoch")
                op = self.accept_op("<", "<=", ">", ">=", "=", "==")
                if not op:
                    raise self.fail("expected a comparison")
                terms.append((axis, "=" if op == "==" else op, self.number()))
                continue
            word = self.accept_word(*_WINDOW_WORDS, "between")
            if not word:
                return Window(tuple(terms))
            axis = self.accept_word("step", "epoch") or "any"
            if word == "between":
                low = self.number()
                if not self.accept_word("and"):
                    raise self.fail("expected and")
                terms += [(axis, ">=", low), (axis, "<=", self.number())]
            else:
                terms.append((axis, _WINDOW_WORDS[word], self.number()))

    def number(self) -> float:
        sign = -1 if self.accept_op("-") else 1
        if self.tok.kind != "num":
            raise self.fail("expected a number")
        return sign * _number(self.take().text)


def _number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


def _unquote_str(text: str) -> str:
    return text[1:-1].replace("''", "'")


def _join_key(text: str) -> str:
    """``search_space."a/b"`` → ``search_space.a/b``: quoted parts lose their quotes."""
    parts = re.findall(r'"(?:[^"]|"")*"|`[^`]*`|[^.]+', text)
    return ".".join(_unquote_ident(p) for p in parts)


def metric_refs(node: Node) -> list[Metric]:
    """Every metric aggregate in ``node``, in order of appearance."""
    found: list[Metric] = []

    def walk(n: Node) -> None:
        if isinstance(n, Metric):
            found.append(n)
        elif isinstance(n, Unary):
            walk(n.operand)
        elif isinstance(n, Binary):
            walk(n.left)
            walk(n.right)
        elif isinstance(n, InList | IsNull | Match):
            walk(n.operand)

    walk(node)
    return found
