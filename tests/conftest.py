"""Shared fixtures: real folders, a real lake, real DuckDB."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CORPUS = Path(__file__).parent / "corpus"


def corpus_cases() -> list[str]:
    return sorted(p.name for p in CORPUS.iterdir() if (p / "truth.json").exists())


@pytest.fixture
def corpus_copy(tmp_path: Path) -> Path:
    """The corpus copied to a fresh folder (mtimes preserved, so the logs look finished)."""
    dest = tmp_path / "logs"
    shutil.copytree(CORPUS, dest, ignore=shutil.ignore_patterns("*.py", "*.json", "*.md"))
    return dest
