"""The daemon's packed checkpoint store: the same file as the plain one, read and written."""

from __future__ import annotations

import json
from pathlib import Path

from loglake.lake.checkpoint import FILE_NAME, CheckpointStore
from loglake.watch.checkpoints import PackedCheckpoints, pack, slim, unpack

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
    assert CheckpointStore(tmp_path).load() == {'k"2': {"offset": 1}, "k3": {"offset": 3}}
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
    assert [p.name.startswith(f"{FILE_NAME}.corrupt-") for p in tmp_path.iterdir()] == [True]


def test_unknown_version_is_not_trusted(tmp_path: Path) -> None:
    (tmp_path / FILE_NAME).write_text('{"version": 9, "entries": {"k": {"offset": 5}}}')
    assert PackedCheckpoints(tmp_path).load() == {}
