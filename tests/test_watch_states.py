"""Checkpoint entries without the parser states that say nothing: lossless, and smaller.

Real logs from the corpus, the built-in parsers: a file read in two parts, with the entry
between them shrunk and expanded again (as the daemon stores it), gives exactly the rows and
the entry of a file read in two parts with the entry kept whole.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from loglake.config import load_config
from loglake.index.job import FileTask, index_file
from loglake.parse.registry import Registry, registry_for
from loglake.runs.identity import resolve
from loglake.tail.fingerprint import identify
from loglake.watch.states import StateShrinker

CORPUS = Path(__file__).parent / "corpus"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    tmp = tmp_path_factory.mktemp("cfg")
    (tmp / "loglake.toml").write_text(f'lake = "{tmp / "lake"}"\n')
    return registry_for(load_config(tmp / "loglake.toml"))


def read(path: Path, registry: Registry, cp: dict[str, Any] | None) -> tuple[list[Any], dict]:
    ident = identify(str(path))
    assert ident is not None
    task = FileTask(
        path=str(path),
        fp=ident.fp,
        fp_len=ident.fp_len,
        size=path.stat().st_size,
        mtime=path.stat().st_mtime,
        identity=resolve(str(path), root=str(path.parent)),  # type: ignore[arg-type]
        checkpoint=cp,
        idle=False,
    )
    rows: list[Any] = []
    entry: dict[str, Any] = {}
    for chunk in index_file(task, registry):
        for name in sorted(chunk.tables):
            if name not in ("runs", "gaps"):
                t = chunk.tables[name]
                keep = [c for c in t.column_names if c != "observed_at"]
                rows += [(name, r) for r in t.select(keep).to_pylist()]
        entry = json.loads(json.dumps(chunk.checkpoint))  # as stored: JSON
    return rows, entry


@pytest.mark.parametrize("case", sorted(p.name for p in CORPUS.iterdir() if p.is_dir()))
def test_a_shrunk_entry_resumes_exactly_like_the_whole_one(
    tmp_path: Path, registry: Registry, case: str
) -> None:
    data = (CORPUS / case / "stdout.log").read_bytes()
    cut = data.rindex(b"\n", 0, len(data) // 2) + 1
    log = tmp_path / "train.log"
    log.write_bytes(data[:cut])
    shrinker = StateShrinker(registry)
    rows1, whole = read(log, registry, None)
    shrunk = shrinker.shrink(whole)
    assert json.loads(json.dumps(shrunk)) == shrunk
    with open(log, "ab") as fh:
        fh.write(data[cut:])
    rows_whole, end_whole = read(log, registry, json.loads(json.dumps(whole)))
    rows_shrunk, end_shrunk = read(log, registry, shrinker.expand(json.loads(json.dumps(shrunk))))
    assert rows_shrunk == rows_whole
    assert rows1 or rows_whole  # the corpus logs do give rows
    assert end_shrunk == end_whole
    assert shrinker.shrink(shrunk) == shrunk


def test_states_that_never_matched_are_left_out(tmp_path: Path, registry: Registry) -> None:
    log = tmp_path / "train.log"
    log.write_text("".join(f"step={s} loss={1 / (s + 1):.4f}\n" for s in range(20)))
    _, whole = read(log, registry, None)
    shrunk = StateShrinker(registry).shrink(whole)
    assert len(json.dumps(shrunk)) < len(json.dumps(whole)) / 2
    assert "keras" in shrunk["fresh"] and "keras" not in shrunk["parsers"]
    assert "generic" in shrunk["parsers"]  # it has seen steps
    assert StateShrinker(registry).expand(json.loads(json.dumps(shrunk))) == whole


def test_a_parser_upgraded_meanwhile_starts_afresh(tmp_path: Path, registry: Registry) -> None:
    log = tmp_path / "train.log"
    log.write_text("step=1 loss=0.5\n")
    _, whole = read(log, registry, None)
    shrunk = StateShrinker(registry).shrink(whole)
    shrunk["fresh"]["keras"] = "0-old"
    expanded = StateShrinker(registry).expand(shrunk)
    assert "keras" not in expanded["parsers"]  # as a saved state of another version would be
    assert "keras" not in expanded["parsers"]["__health__"]
