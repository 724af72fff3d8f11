"""The ingest benchmark runs end to end at a tiny size and prints its figures (not its speed)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import mixlog

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def test_generator_is_deterministic_and_knows_its_truth(tmp_path: Path) -> None:
    a, stats = mixlog.write_logs(tmp_path / "a", 300_000, 1, seed=3, truth_path=tmp_path / "t.pq")
    b, _ = mixlog.write_logs(tmp_path / "b", 300_000, 1, seed=3)
    data = a[0].read_bytes()
    assert data == b[0].read_bytes()
    assert stats.bytes == len(data) >= 300_000
    assert stats.lines == data.count(b"\n")
    assert stats.loss_lines == sum(b"loss" in line for line in data.split(b"\n"))
    truth = pq.read_table(tmp_path / "t.pq").to_pylist()
    assert len(truth) == stats.metric_values > 0
    assert {r["format"] for r in truth} >= {"keras", "hf_dict", "xgboost", "step_kv", "json"}
    # Every truth row points at the start of a line that prints that key and value.
    for row in truth[:: max(1, len(truth) // 200)]:
        line = data[row["offset"] : data.index(b"\n", row["offset"])].decode()
        assert row["offset"] == 0 or data[row["offset"] - 1 : row["offset"]] == b"\n"
        label = {"validation_score": "Validation score"}.get(row["key"], row["key"])
        assert label.replace("valid_0-", "valid_0's ") in line
        assert row["value"] in {float(x) for x in _NUMBER.findall(line)}
    # Mostly noise, as real logs are.
    assert stats.metric_lines < stats.lines / 2


def test_ingest_benchmark_prints_its_table(tmp_path: Path) -> None:
    out_json = tmp_path / "figures.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCH / "ingest.py"),
            "--size-mb",
            "2",
            "--files",
            "3",
            "--jobs",
            "2",
            "--dir",
            str(tmp_path / "work"),
            "--json",
            str(out_json),
        ],
        capture_output=True,
        check=False,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    for tool in ("wc -l", "grep -c loss", "loglake index", "loglake index -j2"):
        assert re.search(rf"^{re.escape(tool)}\s+\d+\.\d+\s+\d", out, re.MULTILINE), (tool, out)
    assert re.search(r"^recall: \d+\.\d+% \(", out, re.MULTILINE), out
    figures = json.loads(out_json.read_text())
    assert [f["scenario"] for f in figures] == ["single", "many"]
    for f in figures:
        assert f["rows"] > 0 and f["mb_s"] > 0 and 0 < f["recall"] <= 1
        assert f["max_rss_mb"] is None or f["max_rss_mb"] > 0


def test_vectorized_metric_columns_match_row_by_row_conversion() -> None:
    """The fast Arrow path of index/assemble.py, tuned with this benchmark, changes no value."""
    import math

    import pyarrow as pa

    from loglake.index import assemble
    from loglake.runs.identity import RunIdentity

    stamps = [None, math.nan, math.inf, 1e300, -1e20, 0.0, 1.5, -1.5, -0.5, 1795000000.749]
    stamps += [1795000000.0000005, 1795000000.0000015, 253402300799.9999, -62135596800.0]
    want = pa.array([assemble._ts(v) for v in stamps], type=assemble.TS)
    assert assemble._timestamps(stamps).equals(want)
    assert assemble._timestamps(["1795000000.5", None]).to_pylist() == [
        assemble._ts(1795000000.5),
        None,
    ]
    values = assemble._floats([1, 2.5, math.nan, True, None]).to_pylist()
    assert values[:2] == [1.0, 2.5] and math.isnan(values[2]) and values[3:] == [1.0, None]
    assert assemble._floats(["0.25", 3]).to_pylist() == [0.25, 3.0]
    resolver = assemble.RunResolver(RunIdentity("ns", None, "run"), {})
    subs = [None, "trial-1", None, "trial-2", "trial-1"]
    assert assemble._run_ids(resolver, subs).to_pylist() == [resolver.run_id(s) for s in subs]
    assert assemble._run_ids(resolver, [None] * 3).to_pylist() == [resolver.run_id(None)] * 3
