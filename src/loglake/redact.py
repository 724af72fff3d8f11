"""Secrets out of text before it is kept: archived raw logs and parsed parameters.

Training logs print their whole environment and command line often enough that tokens,
passwords and cloud keys end up in them (``--hf_token hf_…``, ``WANDB_API_KEY=…``, an
``Authorization: Bearer …`` header in a traceback). An archive outlives the cluster's own
copy and is read by more people, so every archived line goes through ``redact_text``, and
the value of a secret-looking parameter goes through ``redact_param``.

Two kinds of rules, both line-local (no pattern crosses a newline, so text can be redacted
chunk by chunk at line boundaries):

- **key = value**: the value of a key whose last word is a secret word (``token``,
  ``password``, ``secret``, ``api_key``, ``access_key``, ``private_key``, ``credentials``…), in
  ``k=v``, ``k: v``, ``"k": "v"``, ``k='v'`` and ``--k v`` forms. Tokenizer special tokens
  (``pad_token``, ``eos_token``…) and values that cannot be secrets (``True``, ``None``, empty)
  are left alone: they are common in ML logs and useful.
- **credential shapes** anywhere: AWS key ids, GitHub, GitLab, Slack, Hugging Face, OpenAI
  and Stripe tokens, Google API keys, JWTs, bearer tokens, ``user:password@`` in URLs, and
  PEM private key blocks (``StreamRedactor`` follows those across lines).

The key is kept and the value replaced by ``[REDACTED]`` (or ``[REDACTED:<kind>]`` for a
shape), so an archive still says *that* a token was passed, never which.
"""

from __future__ import annotations

import re
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

MARK = "[REDACTED]"

# The secret word must end the key: `hf_token`, `apiKey`, `AWS_SECRET_ACCESS_KEY`, but not
# `max_tokens`, `tokenizer` or `token_count`.
_SECRET_WORDS = (
    r"token|password|passwd|passphrase|secret|api[_-]?key|apikey|access[_-]?key|secret[_-]?key"
    r"|private[_-]?key|credentials?|auth[_-]?key|session[_-]?key|client[_-]?secret"
)
# Tokenizer and model vocabulary: `pad_token: <pad>` is configuration, not a credential.
_VOCAB_PREFIXES = (
    "pad",
    "eos",
    "bos",
    "unk",
    "sep",
    "cls",
    "mask",
    "special",
    "additional_special",
    "start",
    "end",
    "image",
    "vision",
    "audio",
    "video",
    "placeholder",
    "decoder_start",
    "boi",
    "eoi",
    "num",
    "max",
    "min",
    "total",
    "bad",
    "stop",
)
_HARMLESS_VALUES = frozenset({"", "true", "false", "none", "null", "nil", "[]", "{}", "''", '""'})

_KEY = rf"(?P<key>(?<![A-Za-z0-9])[A-Za-z0-9_.\-]*?(?:{_SECRET_WORDS}))"
# An unquoted value runs to whitespace or a quote; a `,;&` or closing bracket ends it only
# where the text after it cannot be part of it: trailing punctuation (`password=x),`) or
# another `key=` / `key:` (`token=x;lr=0.1`, `?token=x&user=me`). So `p@ss;word` stays whole.
_END = r"""[,;&}\])]*(?:[\s"']|$)|[,;&}\])][ \t]*["']?[\w.\-]+["']?[ \t]*(?::|=)"""
_VALUE = rf"""(?P<val>"[^"\n]*"|'[^'\n]*'|(?:[^\s"',;&}}\])]+|(?!{_END})[,;&}}\])])+)"""
# `key = value`, `key: value`, `"key": "value"`, `key => value`; `--key value` on command lines.
_ASSIGN = re.compile(
    rf"""{_KEY}(?P<sep>["']?[ \t]*(?::|=>|=)[ \t]*){_VALUE}""",
    re.IGNORECASE,
)
_FLAG = re.compile(
    rf"""(?P<dash>(?<![\w-])--?){_KEY}(?P<sep>[ \t]+)(?P<val>(?!-)[^\s"']\S*|"[^"\n]*"|'[^'\n]*')""",
    re.IGNORECASE,
)

# (kind, pattern): the whole match is replaced, except in `url` and `bearer` (see _SHAPE_SUB).
_SHAPES: tuple[tuple[str, str], ...] = (
    ("aws-access-key-id", r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b"),
    ("github", r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,})\b"),
    ("gitlab", r"\bglpat-[A-Za-z0-9_\-]{20,}"),
    ("slack", r"\bxox[abposr]-[A-Za-z0-9\-]{10,}"),
    ("huggingface", r"\bhf_[A-Za-z0-9]{30,}\b"),
    ("openai", r"\bsk-(?:proj-|svcacct-|admin-|ant-)?[A-Za-z0-9_\-]{20,}"),
    ("stripe", r"\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}"),
    ("google-api-key", r"\bAIza[0-9A-Za-z_\-]{35}"),
    ("jwt", r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*"),
)
_SHAPE = re.compile("|".join(f"(?P<s{i}>{p})" for i, (_, p) in enumerate(_SHAPES)))
_BEARER = re.compile(
    r"(?P<pre>\b(?:Bearer|Authorization:[ \t]*Basic|Authorization:[ \t]*Token)[ \t]+)"
    r"(?P<val>[A-Za-z0-9._~+/\-]{8,}=*)",
    re.IGNORECASE,
)
_URL_PASSWORD = re.compile(
    r"(?P<pre>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s:/@]+:)(?P<val>[^\s@/]+)(?P<at>@)"
)
_PEM_BEGIN = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
_PEM_END = re.compile(r"-----END [A-Z ]*PRIVATE KEY-----")
# The gate: a line that no rule can match fails it. Run as one RE2 scan over a whole chunk
# (pyarrow's kernel: ~40 MB/s against ~5 MB/s for Python's `re` on case-insensitive
# alternations), so only the rare lines that pass it meet the precise rules below.
_GATE_RE2 = "|".join(
    [
        rf"""(?i:{_SECRET_WORDS})["']?[ \t]*(?::|=)""",
        rf"-[A-Za-z0-9_.\-]*(?i:{_SECRET_WORDS})[ \t]",
        *(p for _, p in _SHAPES),
        r"(?i:bearer|authorization)",
        r"://[^\s:/@]+:[^\s@/]+@",
        r"PRIVATE KEY-----",
    ]
)
_GATE = re.compile(_GATE_RE2)
SMALL = 4096  # below this many bytes the Python gate is cheaper than an Arrow round trip


def _gate_lines(lines: list[bytes], data: bytes) -> list[int]:
    """Indices of the lines that may hold a secret."""
    if len(data) < SMALL:
        text = data.decode("utf-8", "surrogateescape")
        if not _GATE.search(text):
            return []
        return [i for i, line in enumerate(lines) if _GATE.search(line.decode("utf-8", "replace"))]
    arr = pa.array(lines, pa.binary())
    return pc.indices_nonzero(pc.match_substring_regex(arr, _GATE_RE2)).to_pylist()


def is_secret_key(key: str) -> bool:
    """Whether a parameter or setting named ``key`` holds a secret."""
    m = re.fullmatch(_KEY, key.strip(), re.IGNORECASE)
    return m is not None and not _is_vocab(key.strip())


def _is_vocab(key: str) -> bool:
    low = key.lower().replace("-", "_")
    base = low.rsplit(".", 1)[-1]
    if not base.endswith("token"):
        return False
    head = base[: -len("token")].rstrip("_")
    return any(head == p or head.endswith("_" + p) for p in _VOCAB_PREFIXES)


def _harmless(value: str) -> bool:
    v = value.strip().strip("\"'").strip()
    if v.lower() in _HARMLESS_VALUES or v.startswith(("[REDACTED", "<")):
        return True
    return bool(v) and set(v) <= {"*", "x", "X", "•"}


def _quoted(value: str, mark: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return f"{value[0]}{mark}{value[0]}"
    return mark


class _Counter:
    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0


def _assign_sub(counter: _Counter):  # type: ignore[no-untyped-def]
    def sub(m: re.Match[str]) -> str:
        key, val = m.group("key"), m.group("val")
        if _is_vocab(key) or _harmless(val):
            return m.group(0)
        counter.n += 1
        return m.group(0)[: m.start("val") - m.start()] + _quoted(val, MARK)

    return sub


def _shape_sub(counter: _Counter):  # type: ignore[no-untyped-def]
    def sub(m: re.Match[str]) -> str:
        counter.n += 1
        kind = _SHAPES[int(str(m.lastgroup)[1:])][0]
        return f"[REDACTED:{kind}]"

    return sub


def _keep_pre(counter: _Counter, kind: str):  # type: ignore[no-untyped-def]
    def sub(m: re.Match[str]) -> str:
        counter.n += 1
        return f"{m.group('pre')}[REDACTED:{kind}]{m.groupdict().get('at') or ''}"

    return sub


def _redact_lines(text: str, counter: _Counter) -> str:
    text = _URL_PASSWORD.sub(_keep_pre(counter, "password"), text)
    text = _BEARER.sub(_keep_pre(counter, "bearer"), text)
    text = _SHAPE.sub(_shape_sub(counter), text)
    text = _FLAG.sub(_assign_sub(counter), text)
    return _ASSIGN.sub(_assign_sub(counter), text)


def redact_text(text: str) -> tuple[str, int]:
    """``text`` with secrets replaced, and how many were replaced (PEM blocks included)."""
    redactor = StreamRedactor()
    out = redactor.feed_text(text) + redactor.flush_text()
    return out, redactor.count


def redact_param(key: str, value: Any) -> Any:
    """A parameter's value as it may be stored: ``[REDACTED]`` for a secret key, a string
    value with credential shapes replaced, anything else unchanged."""
    if value is None:
        return value
    if is_secret_key(key) and not _harmless(str(value)):
        return MARK
    if isinstance(value, str) and _GATE.search(value):
        return redact_text(value)[0]
    return value


class StreamRedactor:
    """Redacts a byte stream chunk by chunk, cutting only at newlines.

    Bytes that are not UTF-8 pass through unchanged (``surrogateescape``), so an archived
    log differs from its source only where a secret was. A line longer than ``max_line``
    is redacted in pieces (a secret straddling a piece boundary may then survive).
    """

    def __init__(self, max_line: int = 1 << 20) -> None:
        self.count = 0
        self.max_line = max_line
        self._rest = b""
        self._in_pem = False
        self._counter = _Counter()

    def feed(self, data: bytes) -> bytes:
        buf = self._rest + data
        cut = buf.rfind(b"\n") + 1
        if cut == 0 and len(buf) > self.max_line:
            cut = len(buf)
        self._rest = buf[cut:]
        if cut == 0:
            return b""
        return self._bytes(buf[:cut])

    def flush(self) -> bytes:
        rest, self._rest = self._rest, b""
        return self._bytes(rest) if rest else b""

    def feed_text(self, text: str) -> str:
        return self.feed(text.encode("utf-8", "surrogateescape")).decode("utf-8", "surrogateescape")

    def flush_text(self) -> str:
        return self.flush().decode("utf-8", "surrogateescape")

    def _bytes(self, data: bytes) -> bytes:
        lines = data.split(b"\n")
        hits = _gate_lines(lines, data)
        if not hits and not self._in_pem:
            return data
        changed = False
        k = 0
        i: int | None = 0 if self._in_pem else hits[0]
        while i is not None and i < len(lines):
            line = lines[i].decode("utf-8", "surrogateescape")
            new = self._pem_line(line)
            if new != line:
                lines[i] = new.encode("utf-8", "surrogateescape")
                changed = True
            if self._in_pem:
                i += 1
                continue
            while k < len(hits) and hits[k] <= i:
                k += 1
            i = hits[k] if k < len(hits) else None
        self.count = self._counter.n
        return b"\n".join(lines) if changed else data

    def _pem_line(self, line: str) -> str:
        if self._in_pem:
            if _PEM_END.search(line):
                self._in_pem = False
                return line
            body = line.rstrip("\r\n")
            return ("[REDACTED:private-key]" if body else "") + line[len(body) :]
        begin = _PEM_BEGIN.search(line)
        if begin and not _PEM_END.search(line, begin.end()):
            self._in_pem = True
            self._counter.n += 1
            return line
        if begin:
            self._counter.n += 1
            end = _PEM_END.search(line, begin.end())
            assert end is not None
            return line[: begin.end()] + "[REDACTED:private-key]" + line[end.start() :]
        return _redact_lines(line, self._counter)
