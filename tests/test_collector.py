"""Indexing collects cycles less often, and gives the process its thresholds back."""

from __future__ import annotations

import gc
import shutil
from pathlib import Path

from loglake.config import load_config
from loglake.index.collector import INDEX_THRESHOLD, fewer_collections
from loglake.index.runner import run_index

CORPUS = Path(__file__).parent / "corpus"


def test_thresholds_are_raised_inside_and_restored_after() -> None:
    saved = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        with fewer_collections():
            assert gc.get_threshold() == (INDEX_THRESHOLD, 10, 10)
        assert gc.get_threshold() == (700, 10, 10)
    finally:
        gc.set_threshold(*saved)


def test_a_disabled_or_rarer_collector_is_left_alone() -> None:
    saved = gc.get_threshold()
    try:
        for chosen in ((0, 10, 10), (INDEX_THRESHOLD * 2, 5, 5)):
            gc.set_threshold(*chosen)
            with fewer_collections():
                assert gc.get_threshold() == chosen
            assert gc.get_threshold() == chosen
    finally:
        gc.set_threshold(*saved)


def test_index_restores_thresholds_even_when_a_file_fails(tmp_path: Path) -> None:
    log = next(CORPUS.glob("*/stdout.log"))
    shutil.copy(log, tmp_path / "train.log")
    (tmp_path / "bin.log").write_bytes(b"\x00\x01\x02" * 1000)
    cfg = load_config(None, environ={})
    cfg.lake = str(tmp_path / "lake")
    saved = gc.get_threshold()
    report = run_index(cfg, [str(tmp_path / "train.log"), str(tmp_path / "bin.log")], jobs=1)
    assert report.files_indexed == 1 and len(report.failures) == 1
    assert gc.get_threshold() == saved
