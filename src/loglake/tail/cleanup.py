"""Making raw lines read like what a human saw on the terminal.

Training logs captured to a file keep the terminal control bytes their progress bars used:
ANSI colours and cursor codes, carriage returns (tqdm, rich, Lightning) and backspace runs
(Keras 2 and 3) that redraw one physical line many times. Parsers want the final picture.

The default clean text of a line is its **final visible state**: the last non-blank redraw.
Each ``\\r`` starts a fresh redraw (a redraw that prints less than the previous one would
leave stale characters on a real terminal; every progress bar pads or clears them, and a
stray ``print(..., end="\\r")`` is better read as its last message than as an overlay).
Backspaces move the cursor left and later characters overwrite, as on a terminal; a
backspace run that returns to column 0 ends a redraw too. ``ESC[K``/``ESC[2K`` erase as on a
terminal; other escape sequences are removed.

Earlier redraws can hold information the last one lacks: Lightning keeps one tqdm bar per
run and resets it each epoch, so every epoch's final ``loss=…, val_loss=…`` is an earlier
segment of one physical line; tqdm.write clears the bar, prints a message, then redraws
the bar. Lines where that can happen carry ``FLAG_REDRAWN``; ``redraw_segments`` returns
every visible state of such a line for a parser that wants them.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import accumulate

FLAG_INVALID_UTF8 = 1  # decoded with replacement characters; the caller records a gap
FLAG_ESCAPES = 2  # ANSI escape sequences were removed
FLAG_REDRAWN = 4  # the line held several visible states; the text is the final one

_CONTROL = (b"\x1b", b"\r", b"\x08")

# CSI (ESC [ params intermediates final), OSC (ESC ] … BEL or ST, or unterminated), other
# two-byte escapes (ESC ( B …), and a lone trailing ESC.
_ESC = r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[ -/]*[0-~])?"
_ANSI_RE = re.compile(_ESC)
_TOKEN_RE = re.compile(rf"(\r|\x08+|{_ESC})")
_ERASE_RE = re.compile(r"\x1b\[([012]?)K")


def strip_ansi(text: str) -> str:
    """Remove escape sequences (colours, cursor moves, OSC titles and links)."""
    return _ANSI_RE.sub("", text) if "\x1b" in text else text


def _render(text: str) -> list[str]:
    """Every visible state of one physical line, oldest first (blank states included)."""
    states: list[str] = []
    buf = ""
    cur = 0
    dirty = False
    for tok in _TOKEN_RE.split(text):
        if not tok:
            continue
        first = tok[0]
        if first == "\r":
            if dirty:
                states.append(buf)
                dirty = False
            buf, cur = "", 0
        elif first == "\x08":
            cur = max(0, cur - len(tok))
            if cur == 0 and dirty:
                states.append(buf)
                dirty = False
        elif first == "\x1b":
            erase = _ERASE_RE.fullmatch(tok)
            if erase is None:
                continue
            mode = erase.group(1)
            if mode == "1":
                buf = " " * cur + buf[cur:]
            elif mode == "2":
                buf = " " * cur
            else:
                buf = buf[:cur]
        else:
            end = cur + len(tok)
            buf = buf + tok if cur == len(buf) else buf[:cur].ljust(cur) + tok + buf[end:]
            cur = end
            dirty = True
    if dirty:
        states.append(buf)
    return states


def _needs_terminal(text: str) -> bool:
    """Backspaces and erase codes depend on the cursor; plain ``\\r`` redraws do not."""
    # "\x1b" first: a one-character search is a fast scan even in a wide (non-Latin-1) string,
    # where a two-character one costs microseconds on a long progress bar line
    return "\x08" in text or ("\x1b" in text and _ERASE_RE.search(text) is not None)


def _without_idle_backspaces(text: str) -> str:
    """``text`` without the backspace runs right before a ``\\r`` or the end of the line.

    Keras 3 backs over its whole bar before each ``\\r`` redraw. Such a run moves a cursor
    that nothing writes at again: it can only end a state that the ``\\r`` (or the line's
    end) ends anyway, so every visible state stays the same, and the line takes the plain
    ``\\r`` path instead of the terminal emulation (~10x faster). An OSC sequence's body may
    hold backspaces and ``\\r``: lines with one keep the emulation.
    """
    if "\x08" not in text or ("]" in text and "\x1b]" in text):  # "]": see _needs_terminal
        return text
    # The runs right before a "\r" or the end are the trailing backspaces of the "\r"
    # segments (a third of what the equivalent regex substitution costs).
    return "\r".join([seg.rstrip("\x08") for seg in text.split("\r")])


def redraw_segments(text: str | bytes) -> list[str]:
    """Every non-blank visible state of a raw line, oldest first, escapes removed.

    The last one is what ``clean_line`` returns for a redrawn line.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = _without_idle_backspaces(text)
    if _needs_terminal(text):
        states = _render(text)
    else:
        states = [strip_ansi(seg) for seg in text.split("\r")]
    return [s.rstrip() for s in states if s.strip()]


class RedrawStates(Mapping[int, list[str]]):
    """``redraw_segments`` of a batch's redrawn lines, by line index, computed only for the
    lines a parser asks about: few parsers read earlier redraw states, and rendering every
    ``\r`` line of a tqdm-heavy log costs more than cleaning it did."""

    def __init__(
        self,
        raw: Sequence[str | bytes],
        indices: Iterable[int],
        decoded: Mapping[int, str] | None = None,
    ) -> None:
        self._raw = raw
        self._decoded = decoded or {}  # raw lines already decoded (``clean_lines(raws=)``)
        self._done: dict[int, list[str] | None] = dict.fromkeys(indices)

    def _text(self, i: int) -> str:
        text = self._decoded.get(i)
        if text is None:
            raw = self._raw[i]
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        return text

    def __getitem__(self, i: int) -> list[str]:
        states = self._done[i]
        if states is None:
            states = self._done[i] = redraw_segments(self._text(i))
        return states

    def may_hold(self, i: int, final: str, literals: tuple[str, ...]) -> bool:
        """Whether a redraw state of line ``i`` before its last (``final``) may hold one of
        ``literals``, told from the raw line without rendering it. Plain ``\\r`` redraws hold
        their states as written; with escape codes or backspaces a state can join text the
        raw line holds apart, but holds no character but the raw line's and spaces."""
        raw = self._text(i)
        if "\x1b" not in raw and "\x08" not in raw:
            body = raw.rstrip()
            cut = body.rfind("\r")
            if body[cut + 1 :] == final:
                earlier = body[: max(cut, 0)]
                return any(lit in earlier for lit in literals)
        return any(all(c == " " or c in raw for c in lit) for lit in literals)

    def __iter__(self) -> Iterator[int]:
        return iter(self._done)

    def __len__(self) -> int:
        return len(self._done)

    def __contains__(self, i: object) -> bool:
        return i in self._done


def _final_state(text: str) -> tuple[str, int]:
    """The last non-blank visible state and FLAG_REDRAWN if an earlier one exists."""
    text = _without_idle_backspaces(text)
    if _needs_terminal(text):
        states = [s for s in _render(text) if s.strip()]
        if not states:
            return "", 0
        return states[-1].rstrip(), FLAG_REDRAWN if len(states) > 1 else 0
    # The segments between carriage returns, last first, cut off one at a time: a progress
    # bar line holds hundreds of redraws and only its last two non-blank ones matter.
    final = None
    end = len(text)
    while end >= 0:
        cut = text.rfind("\r", 0, end)
        seg = strip_ansi(text[cut + 1 : end])
        end = cut
        if not seg.strip():
            continue
        if final is not None:
            return final, FLAG_REDRAWN
        final = seg.rstrip()
    return final or "", 0


def _clean_text(text: str) -> tuple[str, int]:
    """Clean decoded text that holds at least one control byte."""
    flags = FLAG_ESCAPES if "\x1b" in text else 0
    if "\r" not in text and "\x08" not in text:
        return _ANSI_RE.sub("", text), flags
    final, redrawn = _final_state(text)
    return final, flags | redrawn


def _has_control(text: str) -> bool:
    return "\x1b" in text or "\r" in text or "\x08" in text


def clean_line(raw: bytes) -> tuple[str, int]:
    """Decode one raw line to its final visible text, with ``FLAG_*`` bits."""
    try:
        text = raw.decode("utf-8")
        flags = 0
    except UnicodeDecodeError:
        text = raw.decode("utf-8", "replace")
        flags = FLAG_INVALID_UTF8
    if not _has_control(text):
        return text, flags
    text, more = _clean_text(text)
    return text, flags | more


def clean_lines(
    lines: list[bytes],
    controls: Sequence[int] | None = None,
    raws: dict[int, str] | None = None,
) -> tuple[list[str], list[int]]:
    """Batch ``clean_line``: C-level decoding, and one scan of the batch for control bytes.

    Only lines holding a control byte (or every line of a batch with invalid UTF-8) take
    the per-line path. ``controls``, when known (the reader's ``ReadBatch.controls``), lists
    every line that may hold one, and saves the scan. ``raws`` receives the decoded text of
    each valid line it cleaned, before cleaning, for ``RedrawStates`` (a long progress bar
    line costs more to decode again than to look at).
    """
    try:
        texts = list(map(bytes.decode, lines))
    except UnicodeDecodeError:
        pairs = [clean_line(raw) for raw in lines]
        return [t for t, _ in pairs], [f for _, f in pairs]
    flags = [0] * len(lines)
    if controls is None:
        blob = b"".join(lines)
        if not any(c in blob for c in _CONTROL):
            return texts, flags
        controls = _lines_with_control(lines, blob)
    for i in controls:
        text = texts[i]
        if _has_control(text):
            texts[i], flags[i] = _clean_text(text)
            if raws is not None:
                raws[i] = text
    return texts, flags


def _lines_with_control(lines: list[bytes], blob: bytes) -> list[int]:
    """Indices of the lines holding a control byte: C-level searches in the joined batch,
    one per dirty line and control byte, instead of three substring tests per line."""
    ends = list(accumulate(map(len, lines)))  # blob offset where each line ends
    dirty: set[int] = set()
    for c in _CONTROL:
        j = blob.find(c)
        while j != -1:
            i = bisect_right(ends, j)
            dirty.add(i)
            j = blob.find(c, ends[i])
    return sorted(dirty)
