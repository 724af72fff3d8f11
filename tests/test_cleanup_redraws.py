"""Backspace runs right before a ``\\r`` (Keras 3 bars) skip the terminal emulation: the
visible states must be exactly those the emulation gives."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from loglake.tail.cleanup import (
    FLAG_ESCAPES,
    FLAG_REDRAWN,
    _final_state,
    _needs_terminal,
    _render,
    _without_idle_backspaces,
    clean_lines,
    redraw_segments,
    strip_ansi,
)


def emulated_segments(text: str) -> list[str]:
    """``redraw_segments`` as it was before the fast path (no idle-backspace shortcut)."""
    if _needs_terminal(text):
        states = _render(text)
    else:
        states = [strip_ansi(seg) for seg in text.split("\r")]
    return [s.rstrip() for s in states if s.strip()]


def emulated_final(text: str) -> tuple[str, int]:
    states = emulated_segments(text)
    if not states:
        return "", 0
    return states[-1], FLAG_REDRAWN if len(states) > 1 else 0


PIECES = [
    "a",
    "loss: 0.3",
    " ",
    "  ",
    "━━",
    "\r",
    "\x08",
    "\x08" * 3,
    "\x08" * 12,
    "\x1b[1m",
    "\x1b[0m",
    "\x1b[K",
    "\x1b[1K",
    "\x1b[2K",
    "\x1b]0;title\x07",
    "\x1b]8;;x\r\x08",
    "\x1b",
    "\x1b(B",
]


@settings(max_examples=2000)
@given(st.lists(st.sampled_from(PIECES), max_size=30))
def test_fast_path_gives_the_emulated_states(pieces: list[str]) -> None:
    text = "".join(pieces)
    assert redraw_segments(text) == emulated_segments(text)
    final, flags = _final_state(text)
    assert (final, flags) == emulated_final(text)


def test_a_keras_bar_line_reads_as_its_last_redraw() -> None:
    bar = "\r\x1b[1m{n:3d}/100\x1b[0m \x1b[37m━━━━\x1b[0m - loss: 0.{n:02d}"
    raw = "".join(bar.format(n=n) + "\x08" * 40 for n in range(10, 100, 10))
    raw += "\r\x1b[1m100/100\x1b[0m - loss: 0.01 - val_loss: 0.02"
    texts, flags = clean_lines([raw.encode()])
    assert texts == ["100/100 - loss: 0.01 - val_loss: 0.02"]
    assert flags == [FLAG_REDRAWN | FLAG_ESCAPES]
    segments = redraw_segments(raw)
    assert segments[0] == " 10/100 ━━━━ - loss: 0.10"
    assert segments == emulated_segments(raw)


def test_backspaces_that_overwrite_keep_the_emulation() -> None:
    # Keras 2 style: back up over the numbers and print new ones in place.
    raw = "epoch 1 loss 0.50\x08\x08\x08\x080.40\x08\x08\x08\x080.30"
    assert redraw_segments(raw) == ["epoch 1 loss 0.30"]
    assert _final_state(raw) == ("epoch 1 loss 0.30", 0)


@settings(max_examples=2000)
@given(st.lists(st.sampled_from([*PIECES, "]", "\x1b[", "K", "\r\x08", "\x08\r"]), max_size=30))
def test_shortcut_checks_agree_with_their_regexes(pieces: list[str]) -> None:
    r"""The idle backspaces cut per ``\r`` segment are the regex's ``\x08+(?=\r|\Z)``, and
    the one-character pre-checks before the two-character searches change no answer."""
    text = "".join(pieces)
    osc = "\x1b]" in text
    want = text if osc else re.sub(r"\x08+(?=\r|\Z)", "", text)
    assert _without_idle_backspaces(text) == want
    erase = re.search(r"\x1b\[([012]?)K", text) is not None
    assert _needs_terminal(text) == ("\x08" in text or ("\x1b[" in text and erase))


_raw_line = st.lists(
    st.sampled_from(
        ["a", "7", " ", "100%|", "\r", "\x08", "\x1b[1m", "\x1b[K", "━", "\udcff", "\n"]
    ),
    max_size=16,
).map(lambda parts: "".join(parts).encode("utf-8", "surrogateescape").replace(b"\n", b""))


@settings(max_examples=300, deadline=None)
@given(st.lists(_raw_line, max_size=8), st.lists(st.sampled_from(["a", "7", "100%|", "━"])))
def test_redraw_states_from_cleanup_texts_match_decoding_again(
    lines: list[bytes], literals: list[str]
) -> None:
    """``clean_lines(raws=)`` hands ``RedrawStates`` each cleaned line's text before
    cleaning: states and ``may_hold`` answers are those of decoding the raw line again."""
    from loglake.tail.cleanup import RedrawStates

    raws: dict[int, str] = {}
    texts, flags = clean_lines(lines, None, raws)
    assert (texts, flags) == clean_lines(lines)
    for i, text in raws.items():
        assert text == lines[i].decode()  # only lines of a valid batch, as they were
    redrawn = [i for i, f in enumerate(flags) if f & FLAG_REDRAWN]
    fast = RedrawStates(lines, redrawn, raws)
    plain = RedrawStates(lines, redrawn)
    for i in redrawn:
        for lit in [*literals, *(s[:3] for s in plain[i])]:
            assert fast.may_hold(i, texts[i], (lit,)) == plain.may_hold(i, texts[i], (lit,))
        assert fast[i] == plain[i] == redraw_segments(lines[i])
