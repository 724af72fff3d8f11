"""Many daemons, one lake: `loglake watch` on several "nodes" appending to one S3 lake at once.

Each node is a real ``loglake watch`` process with its own log folder, state dir and host
name (its own UTS namespace, as on separate machines), all committing to one Delta lake on
the loopback S3 server every fraction of a second, while jobs write and one node is killed
with SIGKILL and restarted midway. Afterwards every line of every node is in the lake
exactly once, every node's checkpoints reached the end of its files, and its liveness probe
said healthy throughout.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from functools import partial
from pathlib import Path

import pytest
from deltalake import DeltaTable

from loglake.query.connect import connect

from .s3server import S3Server
from .watch_support import LOGLAKE, SEQ_PARSER, env_without_crash, expected
from .watch_support import wait_for as poll_for

# lake and process checks are not free: poll them every 0.25 s
wait_for = partial(poll_for, interval=0.25)

NODES = 3
FILES_PER_NODE = 3
LINES_PER_FILE = 400


def can_unshare() -> bool:
    if shutil.which("unshare") is None or shutil.which("hostname") is None:
        return False
    r = subprocess.run(
        ["unshare", "--uts", "hostname", "probe-node"], check=False, capture_output=True, timeout=10
    )
    return r.returncode == 0


class Node:
    """One machine's worth of loglake: logs, state, config, and its daemon process."""

    def __init__(
        self, root: Path, index: int, lake: str, options: dict[str, str], own_host: bool
    ) -> None:
        self.index = index
        self.name = f"node-{index}"
        self.own_host = own_host
        self.dir = root / self.name
        self.logs = self.dir / "logs"
        self.state = self.dir / "state"
        self.logs.mkdir(parents=True)
        parsers = self.dir / "parsers"
        parsers.mkdir()
        (parsers / "seq.py").write_text(SEQ_PARSER)
        options_toml = "\n".join(f"{k} = {json.dumps(v)}" for k, v in options.items())
        self.config = self.dir / "loglake.toml"
        self.config.write_text(
            f"""lake = "{lake}"
state_dir = "{self.state}"

[storage_options]
{options_toml}

[parsers]
dirs = ["{parsers}"]

[watch]
flush_interval = "0.3s"
rescan_interval = "0.5s"
idle_timeout = "1h"

[retention]
enabled = false

[housekeeping]
enabled = false

[[sources]]
name = "logs"
paths = ["{self.logs}"]
include = ["*.log"]
parsers = ["seq"]
auto_detect = false
"""
        )
        self.proc: subprocess.Popen[str] | None = None
        self.written: dict[int, int] = {}

    def file_ids(self) -> list[int]:
        return [self.index * 100 + j for j in range(FILES_PER_NODE)]

    def start(self) -> None:
        argv = [*LOGLAKE, "watch", "-c", str(self.config)]
        if self.own_host:
            # A UTS namespace of its own: this process's host name is the node's.
            argv = ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', self.name, *argv]
        self.proc = subprocess.Popen(
            argv,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env_without_crash(),
        )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(30)

    def stop(self) -> tuple[int, str]:
        """SIGTERM (if still running) and wait: (exit code, stderr)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=120)
        return self.proc.returncode, err

    def lag(self) -> tuple[int, int]:
        """(bytes written but not committed, rows buffered), from `loglake status --json`."""
        r = subprocess.run(
            [*LOGLAKE, "status", "--json", "-c", str(self.config)],
            check=False,
            capture_output=True,
            text=True,
            env=env_without_crash(),
            timeout=60,
        )
        doc = json.loads(r.stdout)
        return doc["lag_bytes"], doc["buffered_rows"]

    def check(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*LOGLAKE, "status", "--check", "-c", str(self.config)],
            check=False,
            capture_output=True,
            text=True,
            env=env_without_crash(),
            timeout=60,
        )


def write_lines(node: Node, stop_at: float) -> None:
    """Append ``f=<file> n=<n>`` lines to the node's files in small bursts."""
    n = 0
    while n < LINES_PER_FILE:
        burst = min(LINES_PER_FILE - n, 25)
        for f in node.file_ids():
            with open(node.logs / f"job-{f}.log", "a") as fh:
                fh.write("".join(f"f={f} n={k}\n" for k in range(n + 1, n + burst + 1)))
            node.written[f] = n + burst
        n += burst
        time.sleep(max(0.0, min(0.1, stop_at - time.monotonic())))


def lake_counts(lake: str, options: dict[str, str]) -> Counter[tuple[str, int]]:
    rows = connect(lake, storage_options=options).execute("SELECT key, step FROM metrics")
    return Counter((k, int(s)) for k, s in rows.fetchall())


def run_nodes(
    tmp_path: Path, server: S3Server, *, own_host: bool, count: int = NODES, crash: bool = True
) -> None:
    bucket = server.make_bucket("shared-lake")
    lake = f"s3://{bucket}/lake"
    options = server.storage_options
    nodes = [Node(tmp_path, i, lake, options, own_host) for i in range(count)]
    for node in nodes:
        node.start()
    try:
        wait_for(lambda: all(n.check().returncode == 0 for n in nodes), 60, "healthy daemons")
        stop_at = time.monotonic() + 6
        writers = [threading.Thread(target=write_lines, args=(n, stop_at)) for n in nodes]
        for w in writers:
            w.start()
        if crash:
            # A node dies mid-stream (kill -9, between any two instructions) and comes back.
            time.sleep(1.5)
            nodes[1].kill()
            time.sleep(0.5)
            nodes[1].start()
        for w in writers:
            w.join()
        want: Counter[tuple[str, int]] = Counter()
        for n in nodes:
            want += expected(n.written)
        for n in nodes:
            # Every byte of every file committed, by the daemon's own account.
            wait_for(lambda n=n: n.lag() == (0, 0), 60, f"{n.name} to have no lag")
            r = n.check()
            assert (r.returncode, r.stdout.strip()) == (0, "loglake watch: healthy"), n.name
        got = lake_counts(lake, options)
    finally:
        # Stop every daemon; one that had already exited on its own is a failure too.
        results = [(n, *n.stop()) for n in nodes if n.proc is not None]
    for n, code, err in results:
        assert code == 0, (n.name, code, err[-2000:])

    # Exactly once: nothing missing, nothing doubled, nothing else.
    missing = sum((want - got).values())
    doubled = sum(v - 1 for v in got.values() if v > 1)
    assert (missing, doubled) == (0, 0), f"{missing} line(s) missing, {doubled} doubled"
    assert got == want
    final = lake_counts(lake, options)
    assert final == want, "a later commit must not have added anything"
    for n in nodes:
        # No flush left waiting: every spooled commit landed.
        assert not any((n.state / "spool").iterdir()), n.name
    # Each node committed its own rows to the shared table (at least one append each).
    history = DeltaTable(f"{lake}/metrics", storage_options=options).history()
    writes = [h for h in history if h.get("operation") == "WRITE"]
    assert len(writes) >= count, len(writes)


@pytest.mark.skipif(
    not can_unshare(), reason="needs `unshare --uts` (root) to give each node its host name"
)
def test_daemons_on_separate_nodes_share_one_s3_lake(tmp_path: Path, s3_server: S3Server) -> None:
    run_nodes(tmp_path, s3_server, own_host=True)


def test_several_daemons_on_one_host_share_one_s3_lake(tmp_path: Path, s3_server: S3Server) -> None:
    """Shards on one machine (one daemon per folder, `loglake@.service`) share a host name:
    their writer ids differ by state dir, or each would skip the others' flushes."""
    run_nodes(tmp_path, s3_server, own_host=False, count=2, crash=False)
