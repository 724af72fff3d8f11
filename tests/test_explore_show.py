"""show, tag and note on a real lake: facts of one run, user annotations stored and searchable."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import pytest

from loglake.cli import main
from loglake.config import Config
from loglake.explore.annotate import TagError, note_runs, parse_tags, tag_runs
from loglake.explore.render import show_text
from loglake.explore.selection import Selection, selected_ids
from loglake.explore.session import open_lake
from loglake.explore.show import show_run
from loglake.explore.synthetic import SweepRun, make_sweep, write_sweep
from loglake.query.connect import refresh


@pytest.fixture
def sweep(tmp_path: Path) -> tuple[list[SweepRun], Path]:
    runs = make_sweep(40, n_steps=8, namespaces=("vision", "nlp", "audio"))
    lake = tmp_path / "lake"
    write_sweep(lake, runs, per_commit=40)
    return runs, lake


def test_show_has_everything(sweep) -> None:
    runs, lake = sweep
    conn = open_lake(Config(lake=str(lake)))
    r = next(x for x in runs if x.status == "failed")
    d = show_run(conn, r.run)
    assert d.run["run_id"] == r.run_id and d.run["status"] == "failed"
    assert d.run["error"] == "RuntimeError: CUDA out of memory"
    assert dict(d.params) == r.params
    assert d.metrics is not None
    summary = {row["key"]: row for row in d.metrics.to_pylist()}
    assert set(summary) == set(r.curves)
    for key, pts in r.curves.items():
        assert summary[key]["count"] == len(pts)
        assert summary[key]["last"] == pts[-1][1]
        assert summary[key]["last_step"] == pts[-1][0]
    assert dict(d.packages) == r.packages
    assert d.datasets[0]["path"] == r.dataset[0] and d.datasets[0]["rows"] == r.dataset[1]
    assert d.run["sources"] == [f"/logs/{r.namespace}/{r.run}/stdout.log"]
    out = io.StringIO()
    show_text(d, out)
    text = out.getvalue()
    for needle in (
        "CUDA out of memory",
        "params (10)",
        "val_accuracy",
        "torch",
        r.run_id,
        "/data/cifar10/train",
        "not archived",
    ):
        assert needle in text


def test_tags_and_notes_are_stored_searchable_and_shown(sweep, capsys) -> None:
    runs, lake = sweep
    conn = open_lake(Config(lake=str(lake)))
    a, b, c = runs[0], runs[1], runs[2]  # three namespaces
    t0 = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)
    tag_runs(
        conn,
        str(lake),
        [a.run, b.run_id],
        {"owner": "ana", "stage": "baseline"},
        now=t0,
        author="ana",
    )
    note_runs(conn, str(lake), [b.run], "Seed 3 diverged; rerun with warmup", now=t0, author="bo")
    # Later edits win; an empty value removes the tag.
    later = t0 + dt.timedelta(minutes=5)
    tag_runs(conn, str(lake), [a.run], parse_tags(["owner=bo", "stage="]), now=later, author="bo")
    refresh(conn, lake)

    assert set(selected_ids(conn, Selection(tags=("owner=ana",)))) == {b.run_id}
    assert set(selected_ids(conn, Selection(tags=("owner",)))) == {a.run_id, b.run_id}
    assert set(selected_ids(conn, Selection(tags=("stage",)))) == {b.run_id}
    assert set(selected_ids(conn, Selection(note="RERUN"))) == {b.run_id}
    assert set(selected_ids(conn, Selection(where="tags.owner = 'bo'"))) == {a.run_id}
    assert set(selected_ids(conn, Selection(where="notes ~ 'Seed \\d'"))) == {b.run_id}
    assert c.run_id not in selected_ids(conn, Selection(tags=("owner",)))

    d = show_run(conn, b.run_id)
    assert d.tags == {"owner": "ana", "stage": "baseline"}
    assert [n["text"] for n in d.notes] == ["Seed 3 diverged; rerun with warmup"]
    assert d.notes[0]["author"] == "bo"
    assert show_run(conn, a.run).tags == {"owner": "bo"}

    # The CLI writes through the same path and reads it back in a new process state.
    assert main(["tag", "--lake", str(lake), c.run, "owner=cy"]) == 0
    assert main(["note", "--lake", str(lake), c.run, a.run, "compare these two"]) == 0
    capsys.readouterr()
    assert main(["show", "--lake", str(lake), c.run, "-f", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["tags"] == {"owner": "cy"}
    assert [n["text"] for n in shown["notes"]] == ["compare these two"]
    assert shown["run"]["namespace"] == c.namespace
    assert main(["runs", "--lake", str(lake), "--note", "compare these", "-f", "csv"]) == 0
    listed = capsys.readouterr().out.strip().splitlines()[1:]
    assert {line.split(",")[0] for line in listed} == {a.run_id, c.run_id}


def test_bad_tag_specs() -> None:
    with pytest.raises(TagError):
        parse_tags(["owner"])
    with pytest.raises(TagError):
        parse_tags(["=x"])
    assert main(["tag", "RUN-only"]) == 2


def test_runs_cli_hints_other_namespaces(sweep, capsys) -> None:
    runs, lake = sweep
    target = runs[4]
    code = main(["runs", "--lake", str(lake), "-n", "nowhere", "-w", f"run = '{target.run}'"])
    err = capsys.readouterr().err
    assert code == 0
    assert f"they match in: {target.namespace} (1)" in err
    code = main(["show", "--lake", str(lake), target.run])
    assert code == 0 and target.run_id in capsys.readouterr().out
    assert main(["show", "--lake", str(lake), "no-such-run"]) == 2
    assert "no run matches 'no-such-run' in any namespace" in capsys.readouterr().err
