from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from loglake.tail.fingerprint import (
    FileIdentity,
    fingerprint,
    identify,
    matches,
    offset_still_valid,
    tail_hash,
)

HEADER = b"[rank0] torch 2.5.1 cuda 12.4\n"


def test_identity_survives_rename_and_keeps_inode_hint(tmp_path: Path) -> None:
    path = tmp_path / "train.log"
    path.write_bytes(HEADER + b"epoch 1 loss=0.5\n" * 100)
    ident = identify(path)
    assert ident is not None
    assert ident.fp_len == 1024
    assert len(ident.fp) == 32
    rotated = tmp_path / "train.log.1"
    path.rename(rotated)
    assert matches(rotated, ident)
    again = identify(rotated)
    assert again == ident  # same fp, same dev/ino: logrotate's rename is the same file
    st = rotated.stat()
    assert (ident.dev, ident.ino) == (st.st_dev, st.st_ino)


def test_copy_has_same_fingerprint_but_other_inode(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(HEADER * 50)
    copy = tmp_path / "b.log"
    shutil.copyfile(path, copy)
    a, b = identify(path), identify(copy)
    assert a is not None
    assert b is not None
    assert a.fp == b.fp
    assert a.ino != b.ino


def test_same_first_line_different_content_differ_while_short(tmp_path: Path) -> None:
    one = tmp_path / "rank0.log"
    two = tmp_path / "rank1.log"
    one.write_bytes(HEADER + b"loss=0.5\n")
    two.write_bytes(HEADER + b"loss=0.7\n")
    assert fingerprint(one) != fingerprint(two)


def test_identical_first_kib_is_the_documented_collision(tmp_path: Path) -> None:
    """Only the first fp_len bytes count: equal prefixes need the path or inode to tell apart."""
    one = tmp_path / "rank0.log"
    two = tmp_path / "rank1.log"
    one.write_bytes(HEADER * 40 + b"loss=0.5\n")
    two.write_bytes(HEADER * 40 + b"loss=0.7\n")
    a, b = identify(one), identify(two)
    assert a is not None
    assert b is not None
    assert a.fp == b.fp
    assert (a.dev, a.ino) != (b.dev, b.ino)


def test_growing_small_file_keeps_its_identity(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(b"starting\n")
    ident = identify(path)
    assert ident is not None
    assert ident.fp_len == 9
    with path.open("ab") as f:
        f.write(b"x" * 5000)
    assert matches(path, ident)
    assert identify(path) != ident  # a fresh identification covers 1 KiB
    path.write_bytes(b"restarte\n" + b"x" * 5000)  # truncated and rewritten
    assert not matches(path, ident)


def test_configurable_prefix_length(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(b"abcdef" * 100)
    ident = identify(path, 16)
    assert ident is not None
    assert ident.fp_len == 16
    assert fingerprint(path, 16) == ident.fp
    assert fingerprint(path, 16) != fingerprint(path, 17)


def test_empty_file_has_no_identity(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(b"")
    assert identify(path) is None
    assert fingerprint(path) is None


def test_shrunk_file_no_longer_matches(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(b"y" * 2000)
    ident = identify(path)
    assert ident is not None
    path.write_bytes(b"y" * 100)
    assert not matches(path, ident)


def test_identity_round_trips_through_json(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(HEADER)
    ident = identify(path)
    assert ident is not None
    assert FileIdentity.from_dict(json.loads(json.dumps(ident.to_dict()))) == ident


def test_tail_hash_accepts_appends(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(b"step 1\nstep 2\n")
    offset = path.stat().st_size
    saved = tail_hash(path, offset)
    with path.open("ab") as f:
        f.write(b"step 3\n")
    assert tail_hash(path, offset) == saved
    assert offset_still_valid(path, offset, saved)


def test_tail_hash_catches_truncate_and_regrow(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(b"run A step 1\nrun A step 2\n")
    offset = path.stat().st_size
    saved = tail_hash(path, offset)
    # while the daemon was down: truncated, and a new job wrote more than before
    path.write_bytes(b"run B says hello, and more than before\n")
    assert path.stat().st_size > offset
    assert tail_hash(path, offset) != saved
    assert not offset_still_valid(path, offset, saved)


def test_tail_hash_catches_copytruncate_hole(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    with path.open("wb") as writer:
        writer.write(b"line one\nline two\n")
        writer.flush()
        offset = path.stat().st_size
        saved = tail_hash(path, offset)
        os.truncate(path, 0)
        writer.write(b"line three\n")
    assert path.read_bytes()[:offset] == b"\x00" * offset
    assert not offset_still_valid(path, offset, saved)


def test_tail_hash_of_shorter_file_is_none(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(b"0123456789")
    assert tail_hash(path, 11) is None
    assert tail_hash(path, 10) is not None
    assert tail_hash(path, 4, n=64) == tail_hash(path, 4, n=4)
    assert offset_still_valid(path, 0, None)
    assert not offset_still_valid(path, 10, None)


def test_file_object_sources_are_left_where_they_were(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(HEADER * 3)
    with path.open("rb") as fh:
        fh.seek(7)
        ident = identify(fh)
        assert fh.tell() == 7
        assert ident == identify(path)
        assert matches(fh, ident)  # type: ignore[arg-type]
        assert tail_hash(fh, 20) == tail_hash(path, 20)
        assert fh.tell() == 7
