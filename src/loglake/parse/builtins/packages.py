"""Installed packages and versions a log lists: ``pip freeze`` blocks, ``pip list`` and
``conda list`` tables, PyTorch's ``collect_env`` (``[pip3] torch==2.1.0``), pip's install
messages, and one-off version lines (``transformers version: 4.40.0``, ``Using keras 3.1``).

A lone ``name==version`` line counts only when it reads like a requirement (a dotted
version, a name that is not a metric), so ``acc==0.9`` in a traceback or a metric line is
never a package. Lines reported here are claimed, so no metrics parser reads a version.
"""

from __future__ import annotations

import re
from typing import Any

from loglake.parse.base import BaseParser, LineBatch
from loglake.parse.prefilter import WS, any_literal, walk
from loglake.parse.records import Emitter
from loglake.parse.run_details import detail_lines
from loglake.parse.timestamps import strip_log_prefix
from loglake.parse.vocabulary import is_metric_name, step_kind

_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_VER = r"\d[\w.+!-]*"
_FREEZE_RE = re.compile(
    rf"^\s*(?:\[(?:pip\d?|conda)\]\s+)?(?P<n>{_NAME})(?:\[[\w,.-]+\])?\s*==\s*(?P<v>{_VER})\s*$"
)
_AT_URL_RE = re.compile(rf"^\s*(?P<n>{_NAME})\s+@\s+(?P<u>(?:file|https?|git\+\w+)://\S+)\s*$")
_WHEEL_VER_RE = re.compile(r"-(?P<v>\d[\w.+!]*)-(?:py|cp)\d")
_PIP_LIST_HEAD_RE = re.compile(r"^Package\s+Version(?:\s+[A-Z][\w ]*)?\s*$")
_TABLE_ROW_RE = re.compile(rf"^(?P<n>{_NAME})\s+(?P<v>{_VER})(?:\s+\S.*)?$")
_CONDA_HEAD_RE = re.compile(r"^# packages in environment at ")
_CONDA_ROW_RE = re.compile(rf"^(?:\[conda\]\s+)?(?P<n>_?{_NAME})\s+(?P<v>{_VER})\s+\S+(?:\s+\S+)?$")
_VERSION_LINE_RE = re.compile(
    r"(?:^|[\s(\[-])`?(?P<n>[A-Za-z][\w.-]*)`?[ _.](?:version|__version__)(?:\s*\([^)]*\))?"
    r"\s*[:=]?\s*['\"]?v?(?P<v>\d+\.\d+[\w.+!-]*)",
    re.IGNORECASE,
)
_USING_RE = re.compile(r"\bUsing (?P<n>[A-Za-z][\w.-]*) (?:version )?v?(?P<v>\d+\.\d+[\w.+!-]*)")
_INSTALLED_RE = re.compile(r"Successfully installed (?P<list>.+)$")
_SATISFIED_RE = re.compile(
    rf"Requirement already satisfied: (?P<n>{_NAME})(?:\[[^\]]*\])?(?:[<>=!~][^ ]*)? in .*"
    rf"\((?P<v>{_VER})\)\s*$"
)
# Version lines that name the platform, not an installed package.
_NOT_PACKAGES = frozenset(
    {
        "python", "cuda", "cudnn", "driver", "nccl", "os", "gcc", "clang", "cmake", "libc",
        "glibc", "kernel", "nvidia-smi", "nvidia", "rocm", "hip", "model", "config", "file",
        "api", "protocol", "schema", "format", "data", "dataset", "checkpoint", "the", "a",
        "backend", "device", "opset", "sm", "compute",
    }
)  # fmt: skip
_ALIASES = {"pytorch": "torch", "sklearn": "scikit-learn"}
# Packages common enough in ML logs that a lone "torch==2.1" is surely one of them.
_KNOWN_NAMES = """
    torch torchvision torchaudio tensorflow jax jaxlib flax numpy scipy pandas transformers
    datasets tokenizers accelerate keras lightning pytorch-lightning xgboost lightgbm catboost
    scikit-learn optuna ray deepspeed peft trl vllm triton timm diffusers wandb mlflow
    sentencepiece safetensors huggingface_hub huggingface-hub einops flash-attn flash_attn
    bitsandbytes protobuf onnx onnxruntime evaluate
"""
_KNOWN = frozenset(_KNOWN_NAMES.split())
_BLOCK_END_RE = re.compile(r"^\s*$")


def _name(raw: str) -> str:
    name = raw.strip("`'\"").lower()
    return _ALIASES.get(name, name)


def _plausible(name: str, version: str) -> bool:
    """A one-off ``name version`` pair that is not a metric, counter or setting."""
    n = name.lower()
    if n in _NOT_PACKAGES or len(n) < 2 or "." not in version:
        return False
    return not (is_metric_name(name) or step_kind(name))


def _requirement(name: str, version: str) -> bool:
    """A lone ``name==version`` line: ``lr==0.001`` is a setting, ``absl-py==2.1.0`` a package."""
    if not _plausible(name, version):
        return False
    return version.count(".") >= 2 or _name(name) in _KNOWN


class PackagesParser(BaseParser):
    """``out.package(name, version)`` for every installed package the log lists."""

    name = "packages"
    version = "1"
    priority = 85

    def new_state(self) -> dict[str, Any]:
        # block: None, "freeze", "pip", "conda"; seen: name -> version already reported;
        # maybe: [name, version, offset] of a lone "x==1.2" line a next one may confirm
        return {"block": None, "seen": {}, "maybe": None}

    def parse(self, batch: LineBatch, state: dict[str, Any], out: Emitter) -> None:
        texts, offsets = batch.texts, batch.offsets
        candidates = detail_lines(batch, CANDIDATES)

        def picks() -> list[int] | None:
            idle = state["block"] is None and state["maybe"] is None
            return candidates if idle else None

        for i in walk(len(texts), picks):
            try:
                self._line(texts[i], offsets[i], state, out)
            except Exception as e:  # noqa: BLE001 - one odd line must not stop the file
                state["block"] = None
                out.error(offsets[i], f"packages: {type(e).__name__}: {e}", texts[i])

    @staticmethod
    def _emit(name: str, version: str, offset: int, state: dict[str, Any], out: Emitter) -> None:
        key = _name(name)
        if state["seen"].get(key) == version:
            return
        state["seen"][key] = version
        out.package(key, version, offset)
        if out.claim_lines:
            out.claimed.add(offset)

    def _line(self, text: str, offset: int, state: dict[str, Any], out: Emitter) -> None:
        block = state["block"]
        s = text.strip()
        if block == "pip":
            m = _TABLE_ROW_RE.match(s)
            if m:
                self._emit(m.group("n"), m.group("v"), offset, state, out)
                return
            if s.startswith("---"):
                return
            state["block"] = None
        elif block == "conda":
            if s.startswith("#"):
                return
            m = _CONDA_ROW_RE.match(s)
            if m:
                self._emit(m.group("n"), m.group("v"), offset, state, out)
                return
            state["block"] = None
        if _PIP_LIST_HEAD_RE.match(s):
            state["block"] = "pip"
            return
        if _CONDA_HEAD_RE.match(s):
            state["block"] = "conda"
            return
        m = _FREEZE_RE.match(text)
        maybe, state["maybe"] = state.get("maybe"), None
        if m:
            name, version = m.group("n"), m.group("v")
            if block == "freeze" or _requirement(name, version):
                state["block"] = "freeze"
                if maybe:  # two requirement lines in a row: a freeze block began one line ago
                    self._emit(maybe[0], maybe[1], maybe[2], state, out)
                self._emit(name, version, offset, state, out)
            elif _plausible(name, version):
                state["maybe"] = [name, version, offset]
            return
        m = _AT_URL_RE.match(text)
        if m and block == "freeze":
            w = _WHEEL_VER_RE.search(m.group("u"))
            self._emit(m.group("n"), w.group("v") if w else m.group("u"), offset, state, out)
            return
        if block == "freeze" and not _BLOCK_END_RE.match(text):
            state["block"] = None
        if s.startswith("[conda]"):
            m = _CONDA_ROW_RE.match(s)
            if m:
                self._emit(m.group("n"), m.group("v"), offset, state, out)
            return
        self._one_off(s, offset, state, out)

    def _one_off(self, s: str, offset: int, state: dict[str, Any], out: Emitter) -> None:
        msg = strip_log_prefix(s)
        if "Successfully installed" in msg:
            m = _INSTALLED_RE.search(msg)
            if m:
                for item in m.group("list").split():
                    name, _, version = item.rpartition("-")
                    if name and version[:1].isdigit():
                        self._emit(name, version, offset, state, out)
            return
        if "Requirement already satisfied" in msg:
            m = _SATISFIED_RE.search(msg)
            if m:
                self._emit(m.group("n"), m.group("v"), offset, state, out)
            return
        for rx in (_VERSION_LINE_RE, _USING_RE):
            m = rx.search(msg)
            if m and _plausible(m.group("n").strip("`"), m.group("v")):
                self._emit(m.group("n"), m.group("v").rstrip(".,;"), offset, state, out)
                return


# Prefilter (loglake.parse.prefilter): outside a package block (inside one, or after a lone
# requirement line, every line is read), a line matching none of these lists no package and
# changes no state. Each regex read outside a block stands for its own wording: a
# requirement's "==" between a name (or its "[extras]") and a number (not a "|====|" table
# rule), a version line's "version" then a number (not "removed in a future version"),
# "Using " with a name and a version after it (not "Using 4 GPUs"). " @ " URL lines count
# only inside a freeze block.
CANDIDATES = "|".join(
    (
        any_literal(
            ("Package", "# packages", "[conda]", "Successfully installed", "Requirement already")
        ),
        rf"[A-Za-z0-9._\]\-]{WS}*=={WS}*\pN",  # _FREEZE_RE
        # _VERSION_LINE_RE
        rf"(?i:version)(?:__)?(?:{WS}*\([^)]*\))?{WS}*[:=]?{WS}*['\"]?(?i:v)?\pN",
        r"Using [A-Za-z][^ ]* (?:version )?v?\pN",  # _USING_RE
    )
)


PARSERS = [PackagesParser()]
