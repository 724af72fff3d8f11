"""Files a run wrote, as its log announces them: models, checkpoints, other outputs.

``Saved model to /scratch/xgb_model.json``, HF's ``Saving model checkpoint to
out/checkpoint-500`` and ``Model weights saved in …``, Lightning's ``saving model to
'/ckpt/epoch=4-step=500.ckpt' as top 1``, Keras' ``val_loss improved from inf to 0.3,
saving model to model.keras``, ``Checkpoint saved: ckpt.pt``, ``wrote predictions to
out/preds.csv``. The kind is ``checkpoint``, ``model`` or ``file``, from the words around
the path and the path itself.
"""

from __future__ import annotations

import re
from typing import Any

from loglake.parse.base import BaseParser, LineBatch
from loglake.parse.bounded import remember
from loglake.parse.prefilter import any_literal
from loglake.parse.records import Emitter
from loglake.parse.run_details import detail_lines, line_shape_ids
from loglake.parse.values import shape_of

_EXT = (
    r"pt|pth|bin|safetensors|ckpt|h5|hdf5|keras|json|pkl|pickle|joblib|onnx|pb|msgpack|model|"
    r"npz|npy|txt|csv|parquet|yaml|yml|tflite|engine|gguf|ubj|cbm|zip|tar|gz|png|jpg|pdf|html"
)
_PATH = (
    r"(?:s3|gs|gcs|hdfs|abfs|az|file|https?)://[^\s'\"]+|~?/[\w.@:=+,/-]+|\.{1,2}/[\w.@:=+,/-]+"
    rf"|[\w.@=+-]+/[\w.@:=+,/-]*|[\w.@=+-]+\.(?:{_EXT})\b"
)
_VERBS = (
    r"saved|saving|save|wrote|writing|written|stored|storing|exported|exporting|dumped|dumping|"
    r"serialized|serializing|persisted|uploaded|uploading"
)
_SAVED_TO_RE = re.compile(
    rf"(?i)\b(?:{_VERBS})\b(?P<what>[^'\"\n]{{0,80}}?)\b(?:to|in|at|into|as|under)\s*:?\s+"
    rf"['\"]?(?P<p>{_PATH})"
)
_SAVED_COLON_RE = re.compile(
    rf"(?i)\b(?P<what>checkpoint|ckpt|model|weights|artifact|state[ _]dict)s?\s+"
    rf"(?:saved|written|stored|exported)\s*[:=]\s*['\"]?(?P<p>{_PATH})"
)
_CHECKPOINT_RE = re.compile(r"(?i)checkpoint|ckpt|\bstep[-_=]?\d|\bepoch[-_=]?\d")
_MODEL_RE = re.compile(
    r"(?i)\bmodel|weights|state[ _]dict|\.(?:safetensors|pt|pth|bin|h5|keras|onnx|joblib|ubj|cbm|"
    r"gguf|tflite)$"
)
CANDIDATES = any_literal(  # the verbs of _SAVED_TO_RE / _SAVED_COLON_RE, in part
    (
        "ave",
        "avin",
        "rot",
        "ritin",
        "ritten",
        "tore",
        "torin",
        "xport",
        "ump",
        "erializ",
        "ersist",
        "pload",
        "AVE",
        "AVIN",
    )
)


def artifact_kind(context: str, path: str) -> str:
    """``checkpoint``, ``model`` or ``file``: what the words and the path say was written."""
    if _CHECKPOINT_RE.search(context) or _CHECKPOINT_RE.search(path):
        return "checkpoint"
    if _MODEL_RE.search(context) or _MODEL_RE.search(path):
        return "model"
    return "file"


# A message's reading (where its path is, what kind) cached per line shape (every ASCII digit
# read as 0): the patterns above see a digit only as a digit (``\w``, ``\d``, classes naming
# no digit) except in their literals ``s3``, ``h5`` and ``hdf5``. A shape where a digit follows
# a letter those literals could start with (``s``/``ſ``, ``h``, ``f``, any case) may read
# differently with other digits: its lines are read one by one.
_Reading = tuple[int, int, str]  # (path start, path end, kind) in a message
_READINGS: dict[bytes, _Reading | None] = {}
_READINGS_SIZE = 4096
_UNSEEN: _Reading = (-1, -1, "")
_EACH_LINE: _Reading = (-1, -1, "each line")
_LITERAL_DIGIT_RE = re.compile(rb"[sShHfF\xbf]0")  # \xbf: the last byte of UTF-8 "ſ"


def announced(msg: str) -> tuple[str, str] | None:
    """``(path, kind)`` of the file a log message says was written, or None."""
    got = _shape_reading(msg)
    if got is _EACH_LINE:
        got = _reading(msg)
    if got is None:
        return None
    start, end, kind = got
    return msg[start:end], kind


def _shape_reading(msg: str) -> _Reading | None:
    """``_reading`` of ``msg``'s shape (cached), or ``_EACH_LINE``."""
    shape = shape_of(msg)
    got = _READINGS.get(shape, _UNSEEN)
    if got is _UNSEEN:
        got = _EACH_LINE if _LITERAL_DIGIT_RE.search(shape) else _reading(msg)
        if len(_READINGS) >= _READINGS_SIZE:
            _READINGS.clear()
        _READINGS[shape] = got
    return got


def _reading(msg: str) -> _Reading | None:
    """Where ``announced``'s path lies in ``msg`` (start, end) and its kind."""
    m = _SAVED_TO_RE.search(msg) or _SAVED_COLON_RE.search(msg)
    if m is None:
        return None
    start = m.start("p")
    path = m.group("p").rstrip(".,;:)'\"")
    if not path or path in ("/", ".", "./"):
        return None
    return start, start + len(path), artifact_kind(msg[:start], path)


class ArtifactsParser(BaseParser):
    """``out.artifact(path, kind=...)`` for every output file the log announces."""

    name = "artifacts"
    version = "1"
    priority = 85

    def new_state(self) -> dict[str, Any]:
        return {"seen": {}}  # path -> kind already reported

    def parse(self, batch: LineBatch, state: dict[str, Any], out: Emitter) -> None:
        texts = batch.texts
        lines = detail_lines(batch, CANDIDATES)
        if not lines:
            return
        shapes = line_shape_ids(batch, lines)
        starts = batch.message_starts(lines, shapes)  # each message is text[start:]
        if shapes is None:
            self._each_line(batch, lines, starts, state["seen"], out)
            return
        # Where a line's path lies, in the line, by the line's shape and where its message
        # starts there (the log prefix's length depends on more than the shape): the two
        # fix the message's shape, which fixes announced()'s reading (_EACH_LINE aside).
        # A stack frame's shape says it is one, too. Read once per key, spread to the lines.
        n = max(shapes) + 1
        keys = [shape + n * at for shape, at in zip(shapes, starts, strict=True)]
        first = dict(zip(reversed(keys), reversed(lines), strict=True))  # key -> its 1st line
        spans = {key: _span_or_error(texts[i], key // n) for key, i in first.items()}
        readings = map(spans.__getitem__, keys)
        if not all(s is None or (type(s) is tuple and s is not _EACH_LINE) for s in spans.values()):
            self._each_line(batch, lines, starts, state["seen"], out, list(readings))
            return
        seen = state["seen"]
        offsets = batch.offsets
        paths: list[str] = []
        found: list[int] = []
        kinds: list[str] = []
        for i, span in zip(lines, readings):
            if span is None:
                continue
            path, kind = texts[i][span[0] : span[1]], span[2]
            if seen.get(path) == kind:
                continue
            remember(seen, path, kind)
            paths.append(path)
            found.append(offsets[i])
            kinds.append(kind)
        out.artifact_rows(paths, found, kinds)

    @staticmethod
    def _each_line(
        batch: LineBatch,
        lines: list[int],
        starts: list[int],
        seen: dict[str, str],
        out: Emitter,
        readings: list[Any] | None = None,
    ) -> None:
        """The lines one by one: through ``announced`` (no shapes, or a key read so), or by
        their key's reading (``readings``: a span, None, or the exception it raised); an
        error row for each line that raised."""
        texts, offsets = batch.texts, batch.offsets
        if readings is None:
            readings = [_EACH_LINE] * len(lines)
        for i, at, span in zip(lines, starts, readings, strict=True):
            text = texts[i]
            if span is _EACH_LINE:
                try:
                    got = None if _is_frame(text) else announced(text[at:].strip())
                except Exception as e:  # noqa: BLE001 - one odd line must not stop the file
                    got = e
            elif type(span) is tuple:
                got = text[span[0] : span[1]], span[2]
            else:
                got = span
            if isinstance(got, Exception):
                out.error(offsets[i], f"artifacts: {type(got).__name__}: {got}", text)
                continue
            if got is None:
                continue
            path, kind = got
            if seen.get(path) == kind:
                continue
            remember(seen, path, kind)
            out.artifact(path, offsets[i], kind=kind)


def _is_frame(text: str) -> bool:
    """A stack frame quoting code, not a message (its shape says so too: no digit in it)."""
    return text.startswith((" ", "\t")) and text.lstrip().startswith(("File ", "raise ", "at "))


def _span_or_error(text: str, at: int) -> _Reading | Exception | None:
    """``_span_in_line`` for every line of ``text``'s key, or the exception reading it
    raised (each line of the key would raise it: each gets its error row)."""
    try:
        return None if _is_frame(text) else _span_in_line(text, text[at:])
    except Exception as e:  # noqa: BLE001 - one odd line must not stop the file
        return e


def _span_in_line(text: str, msg: str) -> _Reading | None:
    """``announced``'s reading of the line's message, its span moved into the line (so it
    serves every line of the shape whose message starts at the same place), or
    ``_EACH_LINE`` when its lines must be read one by one."""
    stripped = msg.strip()
    got = _shape_reading(stripped)
    if got is None or got is _EACH_LINE:
        return got
    at = len(text) - len(msg.lstrip())  # where ``stripped`` starts in the line
    return got[0] + at, got[1] + at, got[2]


PARSERS = [ArtifactsParser()]
