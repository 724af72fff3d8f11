"""DuckDB views over a lake built by the real writer, and result formatting."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loglake.lake.schema import SCHEMAS
from loglake.lake.tables import ensure_tables
from loglake.lake.writer import LakeWriter
from loglake.query.connect import RAW_VIEW_NAMES, connect, duck_type, refresh
from loglake.query.output import OutputError, write_result

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def rows_table(name: str, rows: list[dict[str, Any]]) -> pa.Table:
    schema = SCHEMAS[name]
    used = [f for f in schema if any(f.name in r for r in rows)]
    return pa.table({f.name: [r.get(f.name) for r in rows] for f in used}, pa.schema(used))


def fetch(conn: Any, sql: str) -> list[dict[str, Any]]:
    cur = conn.execute(sql)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


@pytest.fixture
def writer(tmp_path: Path) -> LakeWriter:
    return LakeWriter(str(tmp_path / "lake"), tmp_path / "state", "test")


# -- runs ----------------------------------------------------------------------------------


def obs(run: str, fp: str, status: str | None, seen: float, offset: int, **kw: Any) -> dict:
    return {
        "run_id": run,
        "source_fp": fp,
        "status": status,
        "observed_at": at(seen),
        "offset": offset,
        "source_path": f"/logs/{fp}.log",
        **kw,
    }


def test_runs_combine_latest_observation_of_each_source(writer: LakeWriter) -> None:
    first_flush = [
        obs("A", "a0", "running", 10, 100, rank="0", lines=40, framework="pytorch"),
        obs("B", "b0", "running", 10, 10),
        obs("C", "c0", "running", 10, 10),
    ]
    second_flush = [
        obs(
            "A",
            "a0",
            "completed",
            20,
            900,
            rank="0",
            namespace="ml-team",
            lines=100,
            bytes=1000,
            framework="pytorch",
            start_time=at(0),
            end_time=at(5),
        ),
        obs(
            "A",
            "a1",
            "failed",
            20,
            400,
            rank="1",
            status_reason="exception",
            error="RuntimeError: boom",
            command="python train.py",
            exit_code=1,
            lines=50,
            bytes=500,
            start_time=at(-1),
            end_time=at(6.5),
        ),
        # Same observed_at: the higher offset is the later observation.
        obs("B", "b0", "completed", 30, 20),
        obs("C", "c1", "killed", 30, 5, status_reason="idle past timeout"),
        obs("D", "d0", "running", 30, 5),
        obs("D", "d1", "completed", 30, 5),
        obs("E", "e0", "completed", 30, 5),
        obs("E", "e1", "pruned", 30, 5),
        obs("F", "f0", "pruned", 30, 5),
        obs("F", "f1", None, 30, 5),
        obs("G", "g0", None, 30, 5),
    ]
    writer.commit({"runs": rows_table("runs", first_flush)}, {})
    writer.commit({"runs": rows_table("runs", second_flush)}, {})
    conn = connect(writer.lake_uri)

    runs = {r["run_id"]: r for r in fetch(conn, "SELECT * FROM runs")}
    assert {k: r["status"] for k, r in runs.items()} == {
        "A": "failed",
        "B": "completed",
        "C": "killed",
        "D": "running",
        "E": "completed",
        "F": "pruned",
        "G": "unknown",
    }
    a = runs["A"]
    assert a["error"] == "RuntimeError: boom"
    assert a["status_reason"] == "exception"
    assert a["start_time"] == at(-1)
    assert a["end_time"] == at(6.5)
    assert a["duration_s"] == 7.5
    assert a["framework"] == "pytorch"  # the failing source has none: first non-null
    assert a["command"] == "python train.py"
    assert a["exit_code"] == 1
    assert a["namespace"] == "ml-team"
    assert a["sources"] == ["/logs/a0.log", "/logs/a1.log"]
    assert a["ranks"] == ["0", "1"]
    assert (a["lines"], a["bytes"]) == (150, 1500)  # latest per source only
    assert a["observed_at"] == at(20)
    assert runs["C"]["status_reason"] == "idle past timeout"
    assert runs["B"]["duration_s"] is None
    assert fetch(conn, "SELECT count(*) AS n FROM runs_log") == [{"n": 14}]


# -- params and metrics --------------------------------------------------------------------


def test_params_latest_is_last_by_offset(writer: LakeWriter) -> None:
    base = {"run_id": "r1", "source_fp": "s"}
    writer.commit(
        {"params": rows_table("params", [{**base, "key": "lr", "value": "0.01", "offset": 50}])},
        {},
    )
    writer.commit(
        {
            "params": rows_table(
                "params",
                [
                    {**base, "key": "lr", "value": "0.1", "value_num": 0.1, "offset": 10},
                    {**base, "key": "bs", "value": "32", "value_num": 32.0, "offset": 11},
                ],
            )
        },
        {},
    )
    conn = connect(writer.lake_uri)
    got = fetch(conn, "SELECT key, value FROM params_latest ORDER BY key")
    assert got == [{"key": "bs", "value": "32"}, {"key": "lr", "value": "0.01"}]
    assert fetch(conn, "SELECT count(*) AS n FROM params") == [{"n": 3}]


def expected_summary(points: list[dict[str, Any]]) -> dict[str, Any]:
    """What metric_summary must say, computed the slow obvious way."""

    def order(p: dict[str, Any]) -> tuple[int, float]:
        if p["step"] is not None:
            return (0, p["step"])
        if p["epoch"] is not None:
            return (1, p["epoch"])
        return (2, p["offset"])

    ordered = sorted(points, key=order)
    numbers = [p for p in points if not math.isnan(p["value"])]
    lo = min(numbers, key=lambda p: p["value"])
    hi = max(numbers, key=lambda p: p["value"])

    def step_of(p: dict[str, Any]) -> float | None:
        return float(p["step"]) if p["step"] is not None else p["epoch"]

    steps = [p["step"] for p in points if p["step"] is not None]
    return {
        "first": ordered[0]["value"],
        "last": ordered[-1]["value"],
        "min": lo["value"],
        "max": hi["value"],
        "step_of_min": step_of(lo),
        "step_of_max": step_of(hi),
        "count": len(points),
        "last_step": max(steps) if steps else None,
    }


def test_metric_summary_matches_python(writer: LakeWriter) -> None:
    rng = random.Random(7)
    points: list[dict[str, Any]] = []
    offset = 0
    for run in ("r1", "r2", "r3"):
        for step in range(0, 500, 10):
            offset += 100
            value = float("nan") if (run == "r2" and step == 250) else rng.uniform(0, 5)
            points.append({"run_id": run, "key": "loss", "step": step, "epoch": step / 100})
            points[-1].update(value=value, offset=offset)
        for epoch in (0.5, 1.0, 1.5, 2.0):
            offset += 100
            points.append({"run_id": run, "key": "val_acc", "step": None, "epoch": epoch})
            points[-1].update(value=rng.uniform(0, 1), offset=offset)
        for _ in range(5):
            offset += 100
            points.append({"run_id": run, "key": "lr", "step": None, "epoch": None})
            points[-1].update(value=rng.uniform(0, 1e-3), offset=offset)
    for p in points:
        p.update(namespace="ns", source_fp=f"fp-{p['run_id']}")
    # Flushes arrive in an order unrelated to steps.
    shuffled = points[:]
    rng.shuffle(shuffled)
    for i in range(0, len(shuffled), 97):
        writer.commit({"metrics": rows_table("metrics", shuffled[i : i + 97])}, {})

    conn = connect(writer.lake_uri)
    got = {(r["run_id"], r["key"]): r for r in fetch(conn, "SELECT * FROM metric_summary")}
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for p in points:
        groups.setdefault((p["run_id"], p["key"]), []).append(p)
    assert set(got) == set(groups)
    for group, pts in groups.items():
        row = {k: v for k, v in got[group].items() if k not in ("run_id", "key", "namespace")}
        assert row == expected_summary(pts), group
    # The NaN point is counted but is neither minimum nor maximum.
    assert got[("r2", "loss")]["count"] == 50
    assert not math.isnan(got[("r2", "loss")]["max"])


ODD_NAMESPACES = ["ml-team", "a b", "x=y", "a/b", "%41", "ü", "it's", "[x]*?", "", None]


def test_partition_values_with_odd_characters_come_back_exactly(writer: LakeWriter) -> None:
    rows = [
        {"run_id": f"r{i}", "namespace": ns, "key": "k", "value": float(i), "offset": i}
        for i, ns in enumerate(ODD_NAMESPACES)
    ]
    writer.commit({"metrics": rows_table("metrics", rows)}, {})
    conn = connect(writer.lake_uri)
    got = dict(conn.execute("SELECT run_id, namespace FROM metrics").fetchall())
    expected = {f"r{i}": (ns or None) for i, ns in enumerate(ODD_NAMESPACES)}  # '' is null
    assert got == expected
    for ns in ("x=y", "a b", "%41", "it's"):
        count = conn.execute("SELECT count(*) FROM metrics WHERE namespace = ?", [ns]).fetchone()
        assert count == (1,)
    assert conn.execute("SELECT count(*) FROM metric_summary").fetchone() == (len(ODD_NAMESPACES),)


def test_a_lake_whose_own_path_needs_escaping_is_read(tmp_path: Path) -> None:
    """delta-rs's ``file_uris`` percent-encodes the table's path but not its partition
    directories: a lake under "ML logs/" must be read by the paths its log holds."""
    writer = LakeWriter(str(tmp_path / "ML logs" / "lake"), tmp_path / "state", "test")
    rows = [
        {"run_id": f"r{i}", "namespace": ns, "key": "k", "value": float(i), "offset": i}
        for i, ns in enumerate(["a b", "%41", "plain"])
    ]
    writer.commit({"metrics": rows_table("metrics", rows)}, {})
    conn = connect(writer.lake_uri)
    got = sorted(conn.execute("SELECT run_id, namespace FROM metrics").fetchall())
    assert got == [("r0", "a b"), ("r1", "%41"), ("r2", "plain")]


# -- empty lakes, freshness, no extensions -------------------------------------------------


def view_types(conn: Any, view: str) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in conn.execute(f"DESCRIBE {view}").fetchall()]


@pytest.mark.parametrize("made", [True, False])
def test_empty_lake_has_typed_views(tmp_path: Path, made: bool) -> None:
    lake = tmp_path / "lake"
    if made:
        ensure_tables(str(lake))
    conn = connect(lake)
    for name, schema in SCHEMAS.items():
        view = RAW_VIEW_NAMES[name]
        assert view_types(conn, view) == [(f.name, duck_type(f.type)) for f in schema]
        assert conn.execute(f"SELECT count(*) FROM {view}").fetchone() == (0,)
    for view in ("runs", "params_latest", "metric_summary"):
        assert conn.execute(f"SELECT count(*) FROM {view}").fetchone() == (0,)


def test_views_over_files_have_the_same_types_as_empty_views(
    writer: LakeWriter, tmp_path: Path
) -> None:
    # One row per table: a source offset where the table has one, else its first column.
    full = {
        n: rows_table(n, [{"offset": 1} if "offset" in s.names else {s.names[0]: "x"}])
        for n, s in SCHEMAS.items()
    }
    writer.commit(full, {})
    with_files = connect(writer.lake_uri)
    empty = connect(tmp_path / "no-lake")
    for view in [*RAW_VIEW_NAMES.values(), "runs", "params_latest", "metric_summary"]:
        assert view_types(with_files, view) == view_types(empty, view), view
        if view in RAW_VIEW_NAMES.values():
            assert with_files.execute(f"SELECT count(*) FROM {view}").fetchone() == (1,)


def test_refresh_sees_new_commits(writer: LakeWriter) -> None:
    row = [{"run_id": "r", "key": "k", "value": 1.0, "offset": 1}]
    writer.commit({"metrics": rows_table("metrics", row)}, {})
    conn = connect(writer.lake_uri)
    writer.commit({"metrics": rows_table("metrics", row)}, {})
    assert conn.execute("SELECT count(*) FROM metrics").fetchone() == (1,)
    refresh(conn, writer.lake_uri)
    assert conn.execute("SELECT count(*) FROM metrics").fetchone() == (2,)


def test_no_extension_is_installed_or_loaded(writer: LakeWriter) -> None:
    row = [{"run_id": "r", "namespace": "n", "key": "k", "value": 1.0, "offset": 1}]
    writer.commit({"metrics": rows_table("metrics", row)}, {})
    conn = connect(writer.lake_uri)
    for view in ("runs", "metric_summary", "params_latest", "metrics"):
        conn.execute(f"SELECT * FROM {view}").fetchall()
    fetched = conn.execute(
        "SELECT extension_name FROM duckdb_extensions() "
        "WHERE (loaded OR installed) AND install_mode <> 'STATICALLY_LINKED'"
    ).fetchall()
    assert fetched == []
    settings = dict(
        conn.execute(
            "SELECT name, value FROM duckdb_settings() "
            "WHERE name IN ('autoinstall_known_extensions', 'autoload_known_extensions')"
        ).fetchall()
    )
    assert settings == {
        "autoinstall_known_extensions": "false",
        "autoload_known_extensions": "false",
    }


# -- output --------------------------------------------------------------------------------


@pytest.fixture
def result() -> pa.Table:
    return pa.table(
        {
            "run_id": ["r1", "r2,odd"],
            "value": [0.123456789012, float("nan")],
            "step": [1500, None],
            "ts": pa.array([at(0), None], pa.timestamp("us", tz="UTC")),
            "sources": [["/a.log", "/b.log"], []],
        }
    )


def test_csv_output(result: pa.Table) -> None:
    out = io.StringIO()
    write_result(result, "csv", out=out)
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert rows[0] == ["run_id", "value", "step", "ts", "sources"]
    assert rows[1] == [
        "r1",
        "0.123456789012",
        "1500",
        "2024-05-01T12:00:00+00:00",
        '["/a.log", "/b.log"]',
    ]
    assert rows[2] == ["r2,odd", "nan", "", "", "[]"]


def test_json_lines_output(result: pa.Table) -> None:
    out = io.StringIO()
    write_result(result, "json", out=out)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines == [
        {
            "run_id": "r1",
            "value": 0.123456789012,
            "step": 1500,
            "ts": "2024-05-01T12:00:00+00:00",
            "sources": ["/a.log", "/b.log"],
        },
        {"run_id": "r2,odd", "value": None, "step": None, "ts": None, "sources": []},
    ]


def test_table_output_is_aligned_text_when_not_a_terminal(result: pa.Table) -> None:
    out = io.StringIO()
    wide = result.append_column("note", pa.array(["x" * 300, "short"]))
    write_result(wide, "table", out=out)
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["run_id", "value", "step", "ts", "sources", "note"]
    assert set(lines[1]) == {"-", " "}
    assert "0.123457" in lines[2] and "1500" in lines[2]
    # Numbers are right-aligned: their last characters line up with the header's.
    header_end = lines[0].index("step") + len("step")
    assert lines[2][header_end - 4 : header_end] == "1500"
    assert "x" * 79 + "…" in lines[2] and "x" * 80 not in lines[2]


def test_parquet_output_to_file_and_to_a_pipe(result: pa.Table, tmp_path: Path) -> None:
    path = tmp_path / "out.parquet"
    write_result(result, "parquet", path=path)
    assert str(pq.read_table(path).to_pylist()) == str(result.to_pylist())

    pipe = io.TextIOWrapper(io.BytesIO())
    write_result(result, "parquet", out=pipe)
    back = pq.read_table(io.BytesIO(pipe.buffer.getvalue()))
    assert str(back.to_pylist()) == str(result.to_pylist())


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_parquet_to_a_terminal_is_refused_and_text_is_rich(result: pa.Table) -> None:
    with pytest.raises(OutputError) as info:
        write_result(result, "parquet", out=Terminal())
    assert "-o FILE" in info.value.one_line()
    term = Terminal()
    write_result(result, "table", out=term)
    assert "run_id" in term.getvalue() and "0.123457" in term.getvalue()
    with pytest.raises(OutputError) as bad:
        write_result(result, "xml", out=io.StringIO())
    assert "use one of table, csv, json, parquet" in bad.value.one_line()


def test_output_of_a_duckdb_relation(writer: LakeWriter) -> None:
    conn = connect(writer.lake_uri)
    out = io.StringIO()
    write_result(conn.sql("SELECT 1 AS a, 'x' AS b"), "csv", out=out)
    assert out.getvalue() == "a,b\n1,x\n"
    span = conn.sql("SELECT INTERVAL 90 MINUTE AS d")
    text, lines = io.StringIO(), io.StringIO()
    write_result(span, "table", out=text)
    write_result(span, "json", out=lines)
    assert text.getvalue().splitlines()[-1] == "1:30:00"
    assert json.loads(lines.getvalue()) == {"d": "P0M0DT5400S"}


def test_connect_takes_the_lake_from_a_config(writer: LakeWriter) -> None:
    from loglake.config import Config

    writer.commit({"metrics": rows_table("metrics", [{"run_id": "r", "value": 1.0}])}, {})
    conn = connect(config=Config(lake=writer.lake_uri))
    assert conn.execute("SELECT count(*) FROM metrics").fetchone() == (1,)
