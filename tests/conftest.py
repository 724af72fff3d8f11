"""Shared fixtures: real folders, a real lake, real DuckDB, a real S3 server on loopback."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from .s3server import DUMMY_CREDENTIALS, ENDPOINT_ENV, S3Server

CORPUS = Path(__file__).parent / "corpus"


def file_lines(path: Path) -> tuple[list[str], list[int]]:
    """A log file's clean lines (what the parsers see) and their byte offsets, for tests
    that feed parsers directly."""
    from loglake.tail.cleanup import clean_lines

    raw = path.read_bytes().split(b"\n")
    if raw and raw[-1] == b"":
        raw.pop()
    offsets, pos = [], 0
    for line in raw:
        offsets.append(pos)
        pos += len(line) + 1
    texts, _ = clean_lines(raw)
    return texts, offsets


def corpus_cases() -> list[str]:
    return sorted(p.name for p in CORPUS.iterdir() if (p / "truth.json").exists())


@pytest.fixture
def corpus_copy(tmp_path: Path) -> Path:
    """The corpus copied to a fresh folder (mtimes preserved, so the logs look finished)."""
    dest = tmp_path / "logs"
    shutil.copytree(CORPUS, dest, ignore=shutil.ignore_patterns("*.py", "*.json", "*.md"))
    return dest


# -- S3 on loopback (moto's server mode) ---------------------------------------------------


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """The shared loopback S3 server: ``.ci/run``'s (``LOGLAKE_TEST_S3_ENDPOINT``) or our own.

    ``.endpoint``, ``.storage_options`` (for loglake's config), ``.make_bucket()`` (a fresh
    bucket per test), ``.put(bucket, key, data)``, ``.client()`` (boto3). Dummy credentials
    are exported for the session, so the standard AWS chain finds them too.
    """
    saved = {k: os.environ.get(k) for k in DUMMY_CREDENTIALS}
    os.environ.update(DUMMY_CREDENTIALS)
    server = S3Server(endpoint=os.environ.get(ENDPOINT_ENV) or None).start()
    try:
        yield server
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    """A fresh, empty bucket on the shared server."""
    return s3_server.make_bucket()
