from __future__ import annotations

import io
import json
import re
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from rich.progress import Progress

from loglake.tail.cleanup import (
    FLAG_ESCAPES,
    FLAG_INVALID_UTF8,
    FLAG_REDRAWN,
    RedrawStates,
    clean_line,
    clean_lines,
    redraw_segments,
    strip_ansi,
)
from loglake.tail.reader import read_lines

CORPUS = Path(__file__).parent / "corpus"

# Real tqdm 4.70.1 output to a file (python script.py > log): a plain bar, a bar with
# tqdm.write in the middle (HF Trainer style), and a Lightning-style epoch bar that is
# reset each epoch with a nested validation bar (position=1, leave=False).
TQDM_LOG = (
    "\rtrain:   0%|          | 0/5 [00:00<?, ?it/s]\rtrain:  20%|██"
    "        | 1/5 [00:00<00:00, 199728.76it/s]\rtrain:  40%|████ "
    "     | 2/5 [00:00<00:00, 30251.66it/s] \rtrain:  60%|██████  "
    "  | 3/5 [00:00<00:00, 30721.85it/s]\rtrain:  80%|████████  | "
    "4/5 [00:00<00:00, 32361.86it/s]\rtrain: 100%|██████████| 5/5 "
    "[00:00<00:00, 34431.76it/s]\rtrain: 100%|██████████| 5/5 [00:"
    "00<00:00, 26852.14it/s]\n"
    "after bar\n"
    "\r  0%|          | 0/4 [00:00<?, ?it/s]\r 25%|██▌       | 1/4 "
    "[00:00<00:00, 466033.78it/s]\r 50%|█████     | 2/4 [00:00<00:"
    "00, 51556.88it/s] \r                                         "
    "       \r{'loss': 0.5, 'epoch': 1.0}\n"
    "\r 50%|█████     | 2/4 [00:00<00:00, 51556.88it/s]\r 75%|█████"
    "██▌  | 3/4 [00:00<00:00, 20743.72it/s]\r100%|██████████| 4/4 "
    "[00:00<00:00, 25479.65it/s]\r100%|██████████| 4/4 [00:00<00:0"
    "0, 22641.32it/s]\n"
    "\rEpoch 0:   0%|          | 0/3 [00:00<?, ?it/s]\rEpoch 0:   0"
    "%|          | 0/3 [00:00<?, ?it/s]\rEpoch 0:   0%|          |"
    " 0/3 [00:00<?, ?it/s]\rEpoch 0:  33%|███▎      | 1/3 [00:00<0"
    "0:00, 26546.23it/s]\rEpoch 0:  33%|███▎      | 1/3 [00:00<00:"
    "00, 26546.23it/s, loss=0.5, v_num=0]\rEpoch 0:  67%|██████▋  "
    " | 2/3 [00:00<00:00, 15684.81it/s, loss=0.5, v_num=0]\rEpoch "
    "0:  67%|██████▋   | 2/3 [00:00<00:00, 15684.81it/s, loss=0.4"
    "9, v_num=0]\rEpoch 0: 100%|██████████| 3/3 [00:00<00:00, 1588"
    "5.87it/s, loss=0.49, v_num=0]\rEpoch 0: 100%|██████████| 3/3 "
    "[00:00<00:00, 15885.87it/s, loss=0.48, v_num=0]\n"
    "\rValidation:   0%|          | 0/2 [00:00<?, ?it/s]\x1b[A\n"
    "\rValidation:  50%|█████     | 1/2 [00:00<00:00, 524288.00it/"
    "s]\x1b[A\n"
    "\rValidation: 100%|██████████| 2/2 [00:00<00:00, 60120.72it/s"
    "] \x1b[A\n"
    "\r                                                           "
    " \x1b[A\rEpoch 0: 100%|██████████| 3/3 [00:00<00:00, 15885.87it/"
    "s, loss=0.4, val_loss=0.3]\rEpoch 0:   0%|          | 0/3 [00"
    ":00<?, ?it/s, loss=0.4, val_loss=0.3]           \rEpoch 1:   "
    "0%|          | 0/3 [00:00<?, ?it/s, loss=0.4, val_loss=0.3]\r"
    "Epoch 1:  33%|███▎      | 1/3 [00:00<00:00, 25890.77it/s, lo"
    "ss=0.4, val_loss=0.3]\rEpoch 1:  33%|███▎      | 1/3 [00:00<0"
    "0:00, 25890.77it/s, loss=0.4, v_num=0]     \rEpoch 1:  67%|██"
    "████▋   | 2/3 [00:00<00:00, 22185.18it/s, loss=0.4, v_num=0]"
    "\rEpoch 1:  67%|██████▋   | 2/3 [00:00<00:00, 22185.18it/s, l"
    "oss=0.39, v_num=0]\rEpoch 1: 100%|██████████| 3/3 [00:00<00:0"
    "0, 21614.02it/s, loss=0.39, v_num=0]\rEpoch 1: 100%|█████████"
    "█| 3/3 [00:00<00:00, 21614.02it/s, loss=0.38, v_num=0]\n"
    "\rValidation:   0%|          | 0/2 [00:00<?, ?it/s]\x1b[A\n"
    "\rValidation:  50%|█████     | 1/2 [00:00<00:00, 262144.00it/"
    "s]\x1b[A\n"
    "\rValidation: 100%|██████████| 2/2 [00:00<00:00, 54346.93it/s"
    "] \x1b[A\n"
    "\r                                                           "
    " \x1b[A\rEpoch 1: 100%|██████████| 3/3 [00:00<00:00, 21614.02it/"
    "s, loss=0.4, val_loss=0.2]\rEpoch 1: 100%|██████████| 3/3 [00"
    ":00<00:00, 6928.92it/s, loss=0.4, val_loss=0.2] \n"
    "done\n"
).encode()


def clean_file(path: Path) -> list[str]:
    texts: list[str] = []
    for batch in read_lines(path):
        texts += clean_lines(batch.lines)[0]
    return texts


# -- real logs ---------------------------------------------------------------------------


def test_keras3_corpus_final_bars_hold_the_epoch_values() -> None:
    """Keras 3 redraws each epoch's bar with \\r, backspace runs and ANSI colours."""
    texts = clean_file(CORPUS / "keras_mlp" / "stdout.log")
    assert not any(c in t for t in texts for c in "\x1b\r\x08")
    truth = json.loads((CORPUS / "keras_mlp" / "truth.json").read_text())
    expected: dict[int, dict[str, float]] = {}
    for m in truth["metrics"]:
        expected.setdefault(m["step"], {})[m["key"]] = round(m["value"], 4)
    bar = re.compile(r"^23/23 ━+ \d+s \d+ms/step((?: - \w+: [\d.]+)+)$")
    finals = [t for t in texts if "val_loss" in t]
    assert len(finals) == 8
    for epoch, text in enumerate(finals):
        match = bar.match(text)
        assert match, text
        values = dict(kv.split(": ") for kv in match.group(1).split(" - ")[1:])
        assert {k: float(v) for k, v in values.items()} == expected[epoch]
        following = texts[texts.index(text) - 1]
        assert following == f"Epoch {epoch + 1}/8"
    assert finals[0] == (
        "23/23 ━━━━━━━━━━━━━━━━━━━━ 0s 3ms/step - accuracy: 0.3577 - loss: 1.9656"
        " - val_accuracy: 0.7278 - val_loss: 1.4826"
    )


def test_corpus_logs_clean_without_control_bytes() -> None:
    for log in sorted(CORPUS.glob("*/stdout.log")):
        texts = clean_file(log)
        assert texts, log
        assert not any(c in t for t in texts for c in "\x1b\r\x08"), log


def test_tqdm_bars_show_their_final_state(tmp_path: Path) -> None:
    path = tmp_path / "tqdm.log"
    path.write_bytes(TQDM_LOG)
    texts = clean_file(path)
    assert texts[0] == "train: 100%|██████████| 5/5 [00:00<00:00, 26852.14it/s]"
    assert texts[1] == "after bar"
    # tqdm.write clears the bar, prints, then redraws it on the next line
    assert texts[2] == "{'loss': 0.5, 'epoch': 1.0}"
    assert texts[3] == "100%|██████████| 4/4 [00:00<00:00, 22641.32it/s]"
    assert texts[4].startswith("Epoch 0: 100%|")
    assert texts[4].endswith("loss=0.48, v_num=0]")
    assert texts[5:8] == [
        "Validation:   0%|          | 0/2 [00:00<?, ?it/s]",
        "Validation:  50%|█████     | 1/2 [00:00<00:00, 524288.00it/s]",
        "Validation: 100%|██████████| 2/2 [00:00<00:00, 60120.72it/s]",
    ]
    assert texts[-1] == "done"


def test_redraw_segments_recover_earlier_epochs_on_one_physical_line() -> None:
    """Lightning resets one bar per epoch: epoch 0's final postfix is an earlier segment."""
    raw = TQDM_LOG.split(b"\n")[8]
    text, flags = clean_line(raw)
    assert flags & FLAG_REDRAWN
    assert flags & FLAG_ESCAPES
    assert text.startswith("Epoch 1: 100%")
    assert text.endswith("loss=0.38, v_num=0]")
    segments = redraw_segments(raw)
    assert segments[-1] == text
    assert any(s.startswith("Epoch 0: 100%") and s.endswith("val_loss=0.3]") for s in segments)
    assert all("\x1b" not in s and s == s.rstrip() and s.strip() for s in segments)


def _keras2_progbar(target: int, values: list[str], dynamic_backspace_only: bool = False) -> bytes:
    """The bytes Keras 2's Progbar (dynamic display) writes, following its update() code."""
    out = []
    total_width = 0
    for current, info in enumerate(values, start=1):
        prev = total_width
        message = "\b" * prev + ("" if dynamic_backspace_only else "\r")
        numdigits = len(str(target))
        bar = f"{current:{numdigits}d}/{target} ["
        prog_width = int(30 * current / target)
        if prog_width > 0:
            bar += "=" * (prog_width - 1) + (">" if current < target else "=")
        bar += "." * (30 - prog_width) + "]"
        total_width = len(bar) + len(info)
        if prev > total_width:
            info += " " * (prev - total_width)
        out.append(message + bar + info)
    return ("".join(out) + "\n").encode()


def test_keras2_backspace_bars() -> None:
    infos = [f" - ETA: {10 - i}s - loss: 0.{900 - i:03d}" for i in range(1, 10)]
    infos.append(" - 1s 5ms/step - loss: 0.8910 - val_loss: 0.9123")
    for backspace_only in (False, True):
        raw = _keras2_progbar(10, infos, backspace_only)[:-1]
        text, flags = clean_line(raw)
        assert text == (
            "10/10 [==============================] - 1s 5ms/step - loss: 0.8910 - val_loss: 0.9123"
        )
        assert flags & FLAG_REDRAWN
        assert (
            redraw_segments(raw)[0]
            == " 1/10 [==>...........................] - ETA: 9s - loss: 0.899"
        )


def test_shorter_final_keras2_bar_leaves_no_stale_characters() -> None:
    raw = _keras2_progbar(3, [" - ETA: 0s - loss: 0.5000 - accuracy: 0.9000", "", " - 0s"])
    assert clean_line(raw[:-1])[0] == "3/3 [==============================] - 0s"


def test_rich_progress_output() -> None:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=80)
    with Progress(console=console, auto_refresh=False) as progress:
        train = progress.add_task("Epoch 0", total=3)
        val = progress.add_task("Val", total=2)
        for i in range(3):
            progress.update(train, advance=1, description=f"Epoch 0 loss={0.5 - i * 0.1:.2f}")
            progress.refresh()
        progress.update(val, advance=2)
        progress.refresh()
    console.print("done")
    texts, _ = clean_lines([line.encode() for line in buf.getvalue().split("\n")])
    assert not any(c in t for t in texts for c in "\x1b\r\x08")
    assert any(t.startswith("Epoch 0 loss=0.30") and t.rstrip().endswith("0:00:00") for t in texts)
    assert any(t.startswith("Val") and "100%" in t for t in texts)
    assert texts[-2:] == ["done", ""]


# -- unit behaviour ----------------------------------------------------------------------


def test_plain_batch_is_untouched_and_unflagged() -> None:
    lines = [b"epoch 1 loss=0.5", b"", "tokens: ━━ caf\u00e9".encode()]
    texts, flags = clean_lines(lines)
    assert texts == ["epoch 1 loss=0.5", "", "tokens: ━━ caf\u00e9"]
    assert flags == [0, 0, 0]
    assert clean_lines([]) == ([], [])


def test_invalid_utf8_is_replaced_and_flagged() -> None:
    texts, flags = clean_lines([b"ok", b"caf\xe9 loss=0.1", b"\x1b[1mbold\xff\x1b[0m"])
    assert texts == ["ok", "caf\ufffd loss=0.1", "bold\ufffd"]
    assert flags == [0, FLAG_INVALID_UTF8, FLAG_INVALID_UTF8 | FLAG_ESCAPES]


def test_ansi_sequences_are_removed() -> None:
    cases = {
        b"\x1b[1;32mINFO\x1b[0m step 5": "INFO step 5",
        b"\x1b[38;5;196mred\x1b[39m": "red",
        b"\x1b]0;window title\x07text": "text",
        b"\x1b]8;;https://wandb.ai/run\x1b\\link\x1b]8;;\x1b\\ ok": "link ok",
        b"\x1b[?25lhidden cursor\x1b[?25h": "hidden cursor",
        b"\x1b(Bcharset": "charset",
        b"loss\x1b[K 0.5": "loss 0.5",
        b"up\x1b[A\x1b[2A": "up",
        b"trailing\x1b": "trailing",
    }
    for raw, expected in cases.items():
        assert clean_line(raw) == (expected, FLAG_ESCAPES), raw
    assert strip_ansi("no escapes") == "no escapes"


def test_carriage_return_keeps_last_non_blank_state() -> None:
    assert clean_line(b"a 10%\rb 50%\rc 100%") == ("c 100%", FLAG_REDRAWN)
    assert clean_line(b"c 100%\r") == ("c 100%", 0)
    assert clean_line(b"final bar   \r      \r") == ("final bar", 0)
    assert clean_line(b"\r    \r") == ("", 0)
    assert clean_line(b"\rEpoch 1") == ("Epoch 1", 0)
    # a shorter redraw is not overlaid on the longer one (see module docstring)
    assert clean_line(b"loss 0.123456\rdone") == ("done", FLAG_REDRAWN)


def test_backspaces_overwrite_like_a_terminal() -> None:
    assert clean_line(b"abc\x08\x08XY") == ("aXY", 0)
    assert clean_line(b"spin |\x08/\x08-\x08\\") == ("spin \\", 0)
    assert clean_line(b"ab\x08\x08\x08\x08\x08cd") == ("cd", FLAG_REDRAWN)
    assert clean_line(b"abcdef\x08\x08\x08\x1b[K!") == ("abc!", FLAG_ESCAPES)
    assert clean_line(b"abcdef\x08\x08\x08\x1b[2K!") == ("   !", FLAG_ESCAPES)


def test_redraw_segments_of_plain_text() -> None:
    assert redraw_segments("plain") == ["plain"]
    assert redraw_segments(b"") == []
    assert redraw_segments("a\r\rb  \r \r") == ["a", "b"]


_interesting = st.lists(
    st.sampled_from(
        [b"a", b"7", b" ", b"\r", b"\x08", b"\x1b[1m", b"\x1b[K", b"\xe2\x94\x81", b"\xff"]
    ),
    max_size=20,
).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(st.lists(_interesting, max_size=10))
def test_batch_and_single_line_agree(lines: list[bytes]) -> None:
    texts, flags = clean_lines(lines)
    assert list(zip(texts, flags, strict=True)) == [clean_line(raw) for raw in lines]
    for text in texts:
        assert not any(c in text for c in "\x1b\r\x08")


def test_redraw_states_are_rendered_only_when_asked() -> None:
    raw: list[str | bytes] = [b"epoch 1 loss=0.5\repoch 2 loss=0.4", b"plain", "x\ry"]
    states = RedrawStates(raw, [0, 2])
    assert list(states) == [0, 2] and len(states) == 2
    assert 1 not in states and states.get(1) is None
    assert states[0] == ["epoch 1 loss=0.5", "epoch 2 loss=0.4"] == redraw_segments(raw[0])
    assert states[2] == ["x", "y"]
    assert states[0] is states[0]  # rendered once


@settings(max_examples=400, deadline=None)
@given(_interesting)
def test_may_hold_never_rules_out_what_rendering_shows(raw: bytes) -> None:
    """A line ruled out from its raw text holds none of the literals in any earlier state."""
    (text,), _ = clean_lines([raw])
    states = RedrawStates([raw], [0])
    rendered = states[0]
    earlier = rendered[:-1] if rendered and rendered[-1] == text else rendered
    for state in earlier:
        for n in range(1, 5):
            for k in range(len(state) - n + 1):
                assert states.may_hold(0, text, ("zz", state[k : k + n]))


def test_may_hold_reads_plain_redraws_as_written() -> None:
    raw = ["a 100%|\rb 50%|  \r  ", "x\x1b[1m1\ry", "p\x08q\rr", "a\rb", "ab\x08\x08cd\rz"]
    states = RedrawStates(raw, range(len(raw)))
    assert states.may_hold(0, "b 50%|", ("100%|",))
    assert not states.may_hold(0, "b 50%|", ("50%|",))  # only in the last state
    assert states.may_hold(1, "y", ("x1",))  # an escape code joins the text across it
    assert not states.may_hold(1, "y", ("100%|",))
    assert states.may_hold(2, "r", ("q",)) and not states.may_hold(2, "r", ("|",))
    assert states.may_hold(3, "c", ("b",))  # not the line's final state: any state counts
    assert not states.may_hold(3, "b", ("b",)) and states.may_hold(3, "b", ("a",))
    # with a backspace, any literal of the line's characters may be drawn
    assert states.may_hold(4, "z", ("acd",)) and not states.may_hold(4, "z", ("cd%",))
    assert redraw_segments(raw[4]) == ["ab", "cd", "z"]
