"""A retention run SIGKILLed at every step of its work is finished by the next, once.

Real ``loglake retain`` processes kill themselves at named points (``LOGLAKE_CRASH_AT``:
after an archive object is written, after it is verified and its manifest written, and at
each step of the lake commit), one after the other on the same lake; a last clean run
completes the work. No archive object that was finished is ever written again, each log has
exactly one archive and one ``logs`` row, and every archive reads back as its source.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from loglake.config import load_config
from loglake.index.runner import run_index
from loglake.query.connect import connect
from loglake.retain.job import archive_store, run_retention

LOGLAKE = [sys.executable, "-m", "loglake.cli"]
N_LOGS = 12
# (crash point, on which pass): each run gets a little further before it dies.
CRASHES = [
    ("retain:after_write", 2),  # object in place, not yet verified: written again
    ("retain:after_manifest", 2),  # verified, not in the lake: found again, not rewritten
    ("after_spool", 1),  # the lake writer's points: rows spooled, not committed
    ("after_table:logs", 1),  # committed, retention store not moved: replayed, not doubled
]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGLAKE_")}
    return {**env, **extra}


def _objects(archive: Path) -> dict[str, tuple[int, int]]:
    """Finished archive objects (those with a manifest): name -> (inode, mtime_ns)."""
    out = {}
    for manifest in archive.rglob("*.json"):
        obj = manifest.with_suffix("")
        st = obj.stat()
        out[str(obj.relative_to(archive))] = (st.st_ino, st.st_mtime_ns)
    return out


def test_sigkill_inside_retention_then_restart_archives_everything_once(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    cfg_path = tmp_path / "loglake.toml"
    cfg_path.write_text(
        f'lake = "{tmp_path / "lake"}"\nstate_dir = "{tmp_path / "state"}"\n'
        f'[[sources]]\npaths = ["{logs}"]\ninclude = ["*.log"]\n'
        '[retention]\nidle_after = "1h"\ncommit_every = 2\n'
    )
    old = time.time() - 2 * 86400
    for i in range(N_LOGS):
        path = logs / f"run{i:02d}.log"
        body = "".join(f"rank {i} step {s} loss={1 / (s + 1):.4f}\n" for s in range(200))
        path.write_text(f"run {i} password=pw-{i}-secret\n{body}")
        os.utime(path, (old, old))
    cfg = load_config(cfg_path)
    run_index(cfg, [], jobs=1, finished=True)
    archive = tmp_path / "lake" / "archive"

    written = 0
    for point, nth in CRASHES:
        before = _objects(archive) if archive.exists() else {}
        env = _env(LOGLAKE_CRASH_AT=point, LOGLAKE_CRASH_AFTER=str(nth))
        proc = subprocess.run(
            [*LOGLAKE, "retain", "-c", str(cfg_path)],
            check=False,
            env=env,
            capture_output=True,
            timeout=60,
        )
        assert proc.returncode == -9, (point, proc.stderr.decode())
        after = _objects(archive)
        # A finished object is never written again by a later run.
        assert all(after[name] == ident for name, ident in before.items()), point
        written += len(set(after) - set(before))

    before = _objects(archive)
    report = run_retention(cfg)  # the restart, in-process
    assert report.failures == [] and report.lost == []
    after = _objects(archive)
    assert all(after[name] == before[name] for name in before)
    assert report.written == N_LOGS - len(before)  # only what was missing was written
    assert written + report.written == N_LOGS

    # Exactly one archive object and one `logs` row per log; no leftovers.
    assert len(after) == N_LOGS
    assert not [p for p in archive.rglob("*") if ".tmp" in p.name]
    con = connect(tmp_path / "lake")
    try:
        rows = con.execute(
            "SELECT source_path, count(*), min(version), any_value(archive_uri) FROM logs "
            "WHERE state = 'archived' GROUP BY source_path ORDER BY source_path"
        ).fetchall()
    finally:
        con.close()
    assert [(Path(r[0]).name, r[1], r[2]) for r in rows] == [
        (f"run{i:02d}.log", 1, 1) for i in range(N_LOGS)
    ]
    store = archive_store(cfg)
    for path, _, _, uri in rows:
        source = Path(path).read_bytes()
        text = store.read_text(uri)
        assert text == re.sub(rb"password=\S+", b"password=[REDACTED]", source)

    # Nothing left to do: a further run archives nothing.
    again = run_retention(cfg)
    assert (again.archived, again.written, again.reused) == ([], 0, 0)
