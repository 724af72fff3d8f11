"""The daemon's packed checkpoint store: the same file as the plain one, plus a journal of
the entries each update changed (folded into the file when it grows, or on ``save``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loglake.lake.checkpoint import FILE_NAME, CheckpointStore
from loglake.watch.checkpoints import FOLD_MIN_BYTES, PackedCheckpoints, pack, slim, unpack
from loglake.watch.journal import JOURNAL_NAME

ENTRY = {
    "path": "/logs/a.log",
    "offset": 120,
    "tail": "ab" * 16,
    "parsers": {"generic": {"__version__": "1", "state": {"step": 7}}},
    "run": {"namespace": "ns", "experiment": None, "run": "a", "rank": None},
}


def test_plain_and_packed_stores_read_each_others_files(tmp_path: Path) -> None:
    CheckpointStore(tmp_path).update({"k1": ENTRY, 'k"2': {"offset": 1}})
    packed = PackedCheckpoints(tmp_path)
    assert packed.get("k1") == ENTRY
    assert sorted(packed.fingerprints()) == ['k"2', "k1"]
    packed.update({"k3": {"offset": 3}, "k1": None})
    assert PackedCheckpoints(tmp_path).entries() == {'k"2': {"offset": 1}, "k3": {"offset": 3}}
    packed.save()  # folds the journal: the plain store (``loglake index``) sees it all
    assert CheckpointStore(tmp_path).load() == {'k"2': {"offset": 1}, "k3": {"offset": 3}}
    assert (tmp_path / JOURNAL_NAME).stat().st_size == 0
    doc = json.loads((tmp_path / FILE_NAME).read_text())
    assert doc["version"] == 1


def test_load_gives_slim_entries_and_get_the_full_one(tmp_path: Path) -> None:
    PackedCheckpoints(tmp_path).update({"k": ENTRY})
    store = PackedCheckpoints(tmp_path)
    (entry,) = store.load().values()
    assert entry == {**{k: ENTRY[k] for k in ("path", "offset", "tail", "run")}, "slim": True}
    assert store.get("k") == ENTRY
    assert slim(ENTRY)["slim"] and "parsers" not in slim(ENTRY)
    assert unpack(pack(ENTRY)) == ENTRY


def test_a_torn_file_is_set_aside_and_means_no_entries(tmp_path: Path) -> None:
    (tmp_path / FILE_NAME).write_text('{"version": 1, "entries": {"k": {"offset": ')
    assert PackedCheckpoints(tmp_path).load() == {}
    aside = [p.name for p in tmp_path.iterdir() if p.name != FILE_NAME]
    assert len(aside) == 1 and aside[0].startswith(f"{FILE_NAME}.corrupt-")
    assert CheckpointStore(tmp_path).load() == {}  # a good, empty file in its place


def test_unknown_version_is_not_trusted(tmp_path: Path) -> None:
    (tmp_path / FILE_NAME).write_text('{"version": 9, "entries": {"k": {"offset": 5}}}')
    assert PackedCheckpoints(tmp_path).load() == {}


def test_an_update_appends_only_what_it_changes(tmp_path: Path) -> None:
    written: list[int] = []
    store = PackedCheckpoints(tmp_path, on_write=written.append)
    store.update({f"k{i}": {**ENTRY, "offset": i} for i in range(200)})
    store.save()
    base = (tmp_path / FILE_NAME).stat().st_size
    written.clear()
    for i in range(5):
        store.update({"k7": {**ENTRY, "offset": 1000 + i}})
    assert (tmp_path / FILE_NAME).stat().st_size == base  # not rewritten
    assert 0 < sum(written) < 5 * 600 and sum(written) == (tmp_path / JOURNAL_NAME).stat().st_size
    again = PackedCheckpoints(tmp_path)
    assert again.get("k7") == {**ENTRY, "offset": 1004}
    assert len(again.fingerprints()) == 200
    assert again.journal.size == 0  # opening folds it


def test_the_journal_is_folded_once_as_large_as_the_file(tmp_path: Path) -> None:
    store = PackedCheckpoints(tmp_path)
    big = {**ENTRY, "note": "x" * 4000}
    for i in range(FOLD_MIN_BYTES // 4000 + 10):
        store.update({"k": {**big, "offset": i}})
    assert (tmp_path / JOURNAL_NAME).stat().st_size < FOLD_MIN_BYTES
    assert CheckpointStore(tmp_path).get("k")["offset"] > 0  # folded at least once


def test_a_torn_last_journal_line_is_cut_off(tmp_path: Path) -> None:
    store = PackedCheckpoints(tmp_path)
    store.update({"k": {"offset": 1}})
    store.update({"k": {"offset": 2}})
    journal = tmp_path / JOURNAL_NAME
    data = journal.read_bytes()
    journal.write_bytes(data[:-7])  # a crash while appending the second update
    assert PackedCheckpoints(tmp_path).get("k") == {"offset": 1}
    assert not any(".corrupt-" in p.name for p in tmp_path.iterdir())


def test_a_damaged_journal_keeps_the_lines_before_the_damage(tmp_path: Path) -> None:
    store = PackedCheckpoints(tmp_path)
    for i in range(1, 4):
        store.update({"k": {"offset": i}, f"new{i}": {"offset": 0}})
    journal = tmp_path / JOURNAL_NAME
    lines = journal.read_bytes().split(b"\n")
    lines[1] = lines[1].replace(b'"offset":2', b'"offset":9')  # the checksum no longer matches
    journal.write_bytes(b"\n".join(lines))
    again = PackedCheckpoints(tmp_path)
    # Older offsets (read again), never newer ones (skipped).
    assert again.get("k") == {"offset": 1}
    assert sorted(again.fingerprints()) == ["k", "new1"]
    assert [p.name for p in tmp_path.iterdir() if ".corrupt-" in p.name] != []


def test_journal_lines_of_an_older_file_are_ignored(tmp_path: Path) -> None:
    """A file rewritten since (by ``loglake index``, or a fold that crashed before emptying
    the journal) already holds everything the journal could bring."""
    store = PackedCheckpoints(tmp_path)
    store.update({"k": {"offset": 5}})
    CheckpointStore(tmp_path).update({"k": {"offset": 7}})
    assert PackedCheckpoints(tmp_path).get("k") == {"offset": 7}


def test_register_never_replaces_an_entry(tmp_path: Path) -> None:
    store = PackedCheckpoints(tmp_path)
    store.update({"k": {"offset": 5}})
    store.register({"k": {"offset": 0}, "j": {"offset": 0, "path": "/logs/j.log"}})
    again = PackedCheckpoints(tmp_path)
    assert again.get("k") == {"offset": 5}
    assert again.get("j") == {"offset": 0, "path": "/logs/j.log"}


def test_a_batch_reader_after_a_daemon_crash_sees_the_journal(tmp_path: Path) -> None:
    """``loglake index`` run before the daemon restarts must not re-read committed lines."""
    store = PackedCheckpoints(tmp_path)
    store.update({"k1": ENTRY})
    store.save()
    store.update({"k1": {**ENTRY, "offset": 999}})  # only in the journal (daemon SIGKILLed)
    assert (tmp_path / JOURNAL_NAME).stat().st_size > 0
    assert CheckpointStore(tmp_path).load()["k1"]["offset"] == 999
    assert (tmp_path / JOURNAL_NAME).stat().st_size == 0


def test_an_update_with_the_callers_texts_journals_them_as_given(tmp_path: Path) -> None:
    # The lake writer hands over the JSON it spooled (keys in its own order): the journal
    # and the packed entry take it as is, and every reader gets the same entry back.
    text = json.dumps({"parsers": ENTRY["parsers"], "offset": 120, "path": "/logs/a.log"})
    store = PackedCheckpoints(tmp_path)
    entries = {"k": json.loads(text), "gone": None}
    store.update(entries, {"k": text.encode(), "gone": None})
    assert text.encode() in (tmp_path / JOURNAL_NAME).read_bytes()
    assert store.get("k") == json.loads(text)
    assert PackedCheckpoints(tmp_path).entries() == {"k": json.loads(text)}
    store.save()
    assert CheckpointStore(tmp_path).load() == {"k": json.loads(text)}


def test_only_the_latest_updates_entries_are_held_uncompressed(tmp_path: Path) -> None:
    """An entry rewritten flush after flush stays plain text between its updates; once an
    update leaves it out it is compressed, and either form reads and folds alike."""
    store = PackedCheckpoints(tmp_path)
    store.update({"a": ENTRY, "b": {"offset": 1}})
    held = store._packed_entries()
    assert json.loads(held["a"]) == ENTRY  # plain JSON text, no zlib
    store.update({"a": {**ENTRY, "offset": 240}})
    assert store.get("a") == {**ENTRY, "offset": 240}
    with pytest.raises(ValueError):
        json.loads(held["b"])  # left out of the latest update: compressed
    assert unpack(held["b"]) == {"offset": 1}
    store.save()
    expected = {"a": {**ENTRY, "offset": 240}, "b": {"offset": 1}}
    assert CheckpointStore(tmp_path).load() == expected
    assert PackedCheckpoints(tmp_path).entries() == expected
