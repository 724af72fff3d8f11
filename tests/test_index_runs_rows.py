"""A long log's ``runs`` observations are committed in groups, and every one still lands."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from deltalake import DeltaTable

import loglake
from loglake.index.job import ChunkResult
from loglake.index.runner import RUNS_EVERY, IndexReport, _Batcher
from loglake.lake.writer import LakeWriter


def chunk(fp: str, k: int, final: bool = False) -> ChunkResult:
    """Chunk ``k`` of file ``fp``: ten metric points and its one run observation."""
    return ChunkResult(
        fp=fp,
        path=f"/logs/{fp}.log",
        tables={
            "metrics": pa.table(
                {
                    "run_id": [fp] * 10,
                    "key": ["loss"] * 10,
                    "value": [float(k)] * 10,
                    "source_fp": [fp] * 10,
                    "offset": [k * 100 + j for j in range(10)],
                }
            ),
            "runs": pa.table(
                {"run_id": [fp], "source_fp": [fp], "lines": [k + 1], "offset": [k * 100]}
            ),
        },
        checkpoint={"offset": k * 100 + 100},
        final=final,
    )


def runs_log(lake: Path) -> list[tuple]:
    con = loglake.connect(str(lake))
    return con.execute('SELECT source_fp, "lines" FROM runs_log ORDER BY ALL').fetchall()


def test_held_observations_all_land_in_fewer_commits(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    batcher = _Batcher(LakeWriter(str(lake), tmp_path / "state", "t"), 10, IndexReport())
    n = 2 * RUNS_EVERY + 3
    for k in range(n):
        batcher.add(chunk("a", k, final=k == n - 1))  # 10 rows: a commit per chunk
    batcher.flush(last=True)
    assert runs_log(lake) == [("a", k + 1) for k in range(n)]  # every observation
    assert DeltaTable(str(lake / "metrics")).version() == n  # created, then n appends
    # the first chunk, chunks RUNS_EVERY and 2 * RUNS_EVERY, the last: 4 appends
    assert DeltaTable(str(lake / "runs")).version() == 4
    con = loglake.connect(str(lake))
    assert con.execute("SELECT lines FROM runs").fetchall() == [(n,)]  # the latest


def test_the_last_flush_lands_what_a_failed_file_held(tmp_path: Path) -> None:
    """A file that failed before its last chunk (no final chunk ever comes) still gets its
    held observations, with the batch's last commit; other files are unaffected."""
    lake = tmp_path / "lake"
    batcher = _Batcher(LakeWriter(str(lake), tmp_path / "state", "t"), 10, IndexReport())
    for k in range(3):
        batcher.add(chunk("broken", k))
    batcher.add(chunk("fine", 0, final=True))
    assert runs_log(lake) == [("broken", 1), ("fine", 1)]
    batcher.flush(last=True)
    assert runs_log(lake) == [("broken", 1), ("broken", 2), ("broken", 3), ("fine", 1)]
    batcher.flush(last=True)  # nothing left: no empty commit
    assert DeltaTable(str(lake / "runs")).version() == 3
