"""The data a run trained on, as its log describes it: split sizes, shapes, paths,
fingerprints.

Read forms: ``train rows=426 valid rows=143 features=30``, ``x_train shape: (60000, 28,
28)``, HF datasets' ``Dataset({features: [...], num_rows: 1000})`` repr, HF Trainer's
``***** Running training *****`` / ``Num examples = 1,000``, ``Loaded 12,345 rows from
data/train.csv``, ``Loading dataset from /data/x.parquet``, ``data_path: s3://bucket/x``,
``dataset sha256: …``. The name is the log's own label (``x_train``, ``valid``); the split
is the canonical one it names (train / valid / test / eval). Lines reported here are
claimed, so the generic metrics parser never reads ``rows=426`` as a metric.
"""

from __future__ import annotations

import re
from typing import Any

from loglake.parse.base import BaseParser, LineBatch
from loglake.parse.prefilter import WS, any_literal, walk
from loglake.parse.records import Emitter
from loglake.parse.run_details import detail_lines

_SPLITS = r"train(?:ing)?|valid(?:ation)?|val|dev|test(?:ing)?|eval(?:uation)?"
_CANONICAL = {
    "training": "train",
    "validation": "valid",
    "val": "valid",
    "dev": "valid",
    "testing": "test",
    "evaluation": "eval",
}
_COUNT_WORDS = r"rows|samples|examples|instances|images|sequences|records|documents|sentences"
_N = r"(?P<n>\d[\d,]*)"
PATH = (
    r"(?:s3|gs|gcs|hdfs|abfs|az|file|https?|hf)://[^\s'\"]+|~?/[\w.@:=+,/-]+|\.{1,2}/[\w.@:=+,/-]+"
    r"|[\w.@=+-]+/[\w.@:=+,/-]*|[\w.@=+-]+\.(?:csv|tsv|parquet|jsonl?|arrow|feather|h5|hdf5|npz|"
    r"npy|pkl|pickle|tfrecords?|txt|zip|gz|bz2|xz|zst|tar|avro|orc)\b"
)

_SPLIT_COUNT_RES = (
    # "train rows=426", "valid_size: 143", "n_train=426", "test set size: 50"
    re.compile(
        rf"(?i)(?<![\w.])(?:n_|num_)?(?P<s>{_SPLITS})(?:[ _](?:set|split|data(?:set)?))?"
        rf"[ _](?:{_COUNT_WORDS}|size|len|length|count|num_rows)\s*[:=]\s*{_N}\b(?![.\d])"
    ),
    re.compile(rf"(?i)(?<![\w.])(?:n|num)_(?P<s>{_SPLITS})\s*[:=]\s*{_N}\b(?![.\d])"),
    # "426 train samples", "Loaded 1,000 training examples"
    re.compile(rf"(?i)\b{_N} (?P<s>{_SPLITS}) (?:{_COUNT_WORDS})\b"),
    # "train: 426 rows"
    re.compile(
        rf"(?i)(?<![\w.])(?P<s>{_SPLITS})(?: set| split| data)?\s*:\s*{_N} (?:{_COUNT_WORDS})\b"
    ),
)
# "Train: 426, Val: 143, Test: 50" - but not timm's "Train: 3 [ 100/1251 ( 8%)]  Loss: ..."
_BARE_COUNT_RE = re.compile(
    rf"(?i)(?<![\w.])(?P<s>{_SPLITS})(?: set| split| data)?\s*[:=]\s*{_N}(?![.\d])(?!\s*[\[(/%])"
)
_PROGRESS_WORDS_RE = re.compile(r"(?i)loss|acc|epoch|step|iter|\d%|\[")
_COLS_RE = re.compile(
    r"(?i)\b(?:n_features|num_features|features|n_cols|num_cols|cols|columns|num_columns)\s*"
    r"[:=]\s*(?P<c>\d+)\b"
    r"|\b\d[\d,]* rows?(?: x |, | and | by )(?P<c2>\d+) (?:columns|cols|features)"
)
_SHAPE_RE = re.compile(
    r"(?P<label>[A-Za-z_][\w]*(?:[ _](?:data|set|split|features|labels|images|inputs))?)"
    r"(?:\.shape|\s+shape)\s*[:=]?\s*(?:torch\.Size\(\[|\()(?P<dims>\d+(?:,\s*\d+)*),?(?:\]\)|\))"
)
_LOADED_RE = re.compile(
    rf"(?i)\b(?:loaded|read|found|got)\s+{_N}\s+(?:(?P<s>{_SPLITS})\s+)?(?:{_COUNT_WORDS}|lines)\b"
    rf"(?:.*?\b(?:from|in)\s+['\"]?(?P<p>{PATH}))?"
)
_LOAD_PATH_RE = re.compile(
    rf"(?i)\b(?:load(?:ing|ed)?|read(?:ing)?|open(?:ing)?|fetch(?:ing)?|download(?:ing)?)\s+"
    rf"(?:the\s+)?(?:(?P<s>{_SPLITS})\s+)?(?:data(?:set)?|split|file|csv|parquet|corpus)\s+"
    rf"(?:from|at)\s+['\"]?(?P<p>{PATH})"
)
_PATH_KEY_RE = re.compile(
    r"(?i)(?<![\w.])(?P<k>[\w.]*(?:data|dataset|train|valid|val|test|eval|corpus)[\w.]*?"
    r"(?:_path|_file|_files|_dir|_uri|_url|_root|path|file|dir|root))\s*[:=]\s*['\"]?"
    rf"(?P<p>{PATH})"
)
_PREPARE_RE = re.compile(r"Downloading and preparing dataset (?P<name>[\w/.-]+)")
_FINGERPRINT_RE = re.compile(
    r"(?i)\b(?:dataset|data)[ _](?:sha256|sha1|md5|hash|fingerprint|checksum)\s*[:=]\s*"
    r"['\"]?(?P<f>[0-9a-f]{8,128})\b"
)
_HF_REPR_RE = re.compile(r"^\s*(?:(?P<s>[\w-]+):\s*)?Dataset\(\{\s*$")
_HF_FEATURES_RE = re.compile(r"^\s*features:\s*(?P<f>\[.*\]|\{.*\})\s*,?\s*$")
_HF_ROWS_RE = re.compile(r"^\s*num_rows:\s*(?P<n>\d+)\s*,?\s*$")
_HF_PHASE_RE = re.compile(r"\*{5} Running (?P<p>training|Evaluation|Prediction) \*{5}")
_HF_PHASES = {"training": "train", "Evaluation": "eval", "Prediction": "test"}
_HF_NUM_RE = re.compile(r"^\s*Num examples\s*=\s*(?P<n>\d[\d,]*)")
_SPLIT_WORD_RE = re.compile(rf"(?i)(?:^|[^a-z])(?P<s>{_SPLITS})(?:$|[^a-z])")
_QUOTED_RE = re.compile(r"'[^']*'|\"[^\"]*\"")

_HINT_WORDS = (
    "Dataset(|num_rows|features:|*****|Num examples|shape|Size([|rows|samples|examples|"
    "instances|images|sequences|records|documents|sentences|size|n_train|n_val|n_test|"
    "n_eval|n_dev|m_train|m_val|m_test|m_eval|m_dev|rain:|rain =|rain=|al:|al=|id:|id=|"
    "est:|est=|ev:|ev=|from |at |path|file|dir|root|_uri|_url|sha|hash|fingerprint|ata md|ata_md|"
    "checksum|preparing dataset"
)
# Prefilter (loglake.parse.prefilter), outside a Dataset({...}) repr: a line holding a hint
# (the fingerprint hints "sha"/"hash"... replaced by the fingerprint wording, since they pass
# every "shard" line) and reading as one of the forms above: a split count names a split
# as a word, then ":"/"=" or a space/"_" and the word its count regexes read next ("train
# rows", "val_size", "test set"; not the metric names "val_loss", "Validation score");
# "Loaded N rows" has a verb then a number; a path a "data from"/"file at" or a
# "*path:"/"*_dir=" key; the rest are literals.
_FINGERPRINT_HINTS = ("sha", "hash", "fingerprint", "ata md", "ata_md", "checksum")
_FINGERPRINT = r"(?i:data(?:set)?[ _](?:sha|md5|hash|fingerprint|checksum))"
_HINTED = "|".join(
    (any_literal(h for h in _HINT_WORDS.split("|") if h not in _FINGERPRINT_HINTS), _FINGERPRINT)
)
_FORMS = "|".join(
    (
        any_literal(
            ("Dataset(", "num_rows", "features:", "*****", "Num examples", "shape", "Size([")
        ),
        (
            rf"(?:^|[^A-Za-z0-9])(?i:{_SPLITS})"
            rf"(?:{WS}*[:=]|[ _](?i:set|split|data|{_COUNT_WORDS}|size|len|count|num_rows))"
        ),
        rf"(?i:loaded|read|found|got){WS}+\pN",
        rf"(?i:data|dataset|split|file|csv|parquet|corpus){WS}+(?i:from|at){WS}",
        rf"(?i:path|file|files|dir|uri|url|root){WS}*[:=]",
        _FINGERPRINT,
        "Downloading and preparing dataset",
    )
)


def split_of(label: str) -> str | None:
    """The canonical split a label names: ``x_train`` → ``train``, ``val`` → ``valid``."""
    m = _SPLIT_WORD_RE.search(label.replace("_", " "))
    if m is None:
        return None
    s = m.group("s").lower()
    return _CANONICAL.get(s, s)


def _int(text: str) -> int:
    return int(text.replace(",", ""))


def _clean_path(p: str) -> str:
    return p.rstrip(".,;:)'\"")


class DatasetsParser(BaseParser):
    """``out.dataset(...)`` for every split, shape, path or fingerprint the log states."""

    name = "datasets"
    version = "1"
    priority = 85

    def new_state(self) -> dict[str, Any]:
        # hf: an open Dataset({...}) repr; phase: the HF Trainer loop being announced;
        # seen: keys of datasets already reported
        return {"hf": None, "phase": None, "seen": {}}

    def parse(self, batch: LineBatch, state: dict[str, Any], out: Emitter) -> None:
        texts, offsets = batch.texts, batch.offsets
        candidates = detail_lines(batch, _FORMS, _HINTED)

        def picks() -> list[int] | None:
            return candidates if state["hf"] is None else None

        for i in walk(len(texts), picks):
            try:
                self._line(batch, i, state, out)
            except Exception as e:  # noqa: BLE001 - one odd line must not stop the file
                state["hf"] = None
                out.error(offsets[i], f"datasets: {type(e).__name__}: {e}", texts[i])

    @staticmethod
    def _emit(state: dict[str, Any], out: Emitter, offset: int, **ds: Any) -> None:
        key = repr(sorted((k, v) for k, v in ds.items() if v is not None))
        if key in state["seen"]:
            return
        state["seen"][key] = True
        out.dataset(offset, **ds)
        if out.claim_lines:
            out.claimed.add(offset)

    def _line(self, batch: LineBatch, i: int, state: dict[str, Any], out: Emitter) -> None:
        text, offset = batch.texts[i], batch.offsets[i]
        in_repr = state["hf"] is not None or "Dataset(" in text
        if in_repr and self._hf_repr(text, offset, state, out):
            return
        msg = batch.message(i).strip()
        if "*****" in msg or "Num examples" in msg:
            m = _HF_PHASE_RE.search(msg)
            if m:
                state["phase"] = _HF_PHASES[m.group("p")]
                return
            m = _HF_NUM_RE.match(msg)
            if m:
                split = state["phase"]
                self._emit(state, out, offset, name=split, split=split, rows=_int(m.group("n")))
                return
        if self._counts(msg, offset, state, out):
            return
        if "shape" in msg or "Size([" in msg:
            m = _SHAPE_RE.search(msg)
            if m and (split := split_of(m.group("label"))):
                dims = [int(d) for d in m.group("dims").split(",")]
                cols = dims[1] if len(dims) == 2 else None
                label = m.group("label").strip()
                self._emit(state, out, offset, name=label, split=split, rows=dims[0], cols=cols)
                return
        self._paths(msg, offset, state, out)

    def _counts(self, msg: str, offset: int, state: dict[str, Any], out: Emitter) -> bool:
        """Split sizes; a ``features=30`` on the same line gives every split its columns."""
        if not any(c.isdigit() for c in msg):
            return False
        found: dict[str, tuple[str, int]] = {}
        bare = _QUOTED_RE.sub("''", msg)
        for rx in _SPLIT_COUNT_RES:
            for m in rx.finditer(bare):
                label = m.group("s")
                found.setdefault(label.lower(), (label, _int(m.group("n"))))
        if not found and not _PROGRESS_WORDS_RE.search(bare):
            for m in _BARE_COUNT_RE.finditer(bare):
                found.setdefault(m.group("s").lower(), (m.group("s"), _int(m.group("n"))))
        m = _LOADED_RE.search(msg)
        if m and not found:
            path = _clean_path(m.group("p")) if m.group("p") else None
            label = m.group("s") or (split_of(path) if path else None) or split_of(msg)
            split = split_of(label) if label else None
            self._emit(state, out, offset, name=label, split=split, rows=_int(m.group("n")),
                       path=path)  # fmt: skip
            return True
        if not found:
            return False
        cm = _COLS_RE.search(bare)
        cols = int(cm.group("c") or cm.group("c2")) if cm else None
        for label, rows in found.values():
            self._emit(state, out, offset, name=label, split=split_of(label), rows=rows, cols=cols)
        return True

    def _paths(self, msg: str, offset: int, state: dict[str, Any], out: Emitter) -> None:
        m = _FINGERPRINT_RE.search(msg)
        if m:
            split = split_of(msg)
            self._emit(
                state, out, offset, name=split, split=split, fingerprint=m.group("f").lower()
            )
            return
        m = _LOAD_PATH_RE.search(msg)
        if m:
            path = _clean_path(m.group("p"))
            label = m.group("s")
            split = split_of(label) if label else split_of(path)
            self._emit(state, out, offset, name=label, split=split, path=path)
            return
        m = _PATH_KEY_RE.search(msg)
        if m:
            path = _clean_path(m.group("p"))
            self._emit(
                state, out, offset, name=m.group("k"), split=split_of(m.group("k")), path=path
            )
            return
        m = _PREPARE_RE.search(msg)
        if m:
            self._emit(state, out, offset, name=m.group("name").rstrip("."))

    def _hf_repr(self, text: str, offset: int, state: dict[str, Any], out: Emitter) -> bool:
        """``Dataset({`` / ``features: [...]`` / ``num_rows: N`` / ``})``, alone or per split
        inside a ``DatasetDict({...})``."""
        m = _HF_REPR_RE.match(text)
        if m:
            label = m.group("s")
            state["hf"] = {"label": label, "cols": None}
            return True
        hf = state["hf"]
        if hf is None:
            return False
        m = _HF_FEATURES_RE.match(text)
        if m:
            feats = m.group("f")
            hf["cols"] = len(_QUOTED_RE.findall(feats)) if feats.startswith("[") else None
            return True
        m = _HF_ROWS_RE.match(text)
        if m:
            label = hf["label"]
            split = split_of(label) if label else None
            self._emit(state, out, offset, name=label, split=split, rows=int(m.group("n")),
                       cols=hf["cols"])  # fmt: skip
            return True
        state["hf"] = None
        return text.strip() in ("})", "}),", "})})")


PARSERS = [DatasetsParser()]
