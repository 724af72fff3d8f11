"""Glob source paths: daemons sharding one folder of pod logs by glob, and `loglake index`
resolving the same run identities (templates relative to the folder above the glob)."""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from watchdog.events import DirCreatedEvent, DirMovedEvent

from loglake.config import load_config
from loglake.index.discover import SourcePath, discover
from loglake.watch.roots import SourceRoots
from loglake.watch.scanner import Hints, _Handler
from loglake.watch.status import read_status

from .watch_support import LOGLAKE, SEQ_PARSER, env_without_crash, lake_rows, wait_for

TEMPLATE = "{namespace}_{run}_{uid}/{container}/{restart}.log"
PODS = [  # (namespace, pod, uid, file id): one CRI log per pod, container "trainer"
    ("team-a", "bert", "0a1b-2c3d", 1),
    ("team-a", "gpt", "4e5f-6a7b", 2),
    ("team-b", "resnet", "8c9d-0e1f", 3),
    ("team-b", "vit", "2a3b-4c5d", 4),
]
LINES = 30


def cri_log(path: Path, f: int, n: int = LINES) -> None:
    """A kubelet CRI log of ``f=<f> n=<k>`` lines (one split into P + F parts)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for k in range(1, n + 1):
        ts = f"2026-01-01T00:{k // 60:02d}:{k % 60:02d}.000000000Z"
        if k == 2:
            out.append(f"{ts} stdout P f={f} ")
            out.append(f"{ts} stdout F n={k}")
        else:
            out.append(f"{ts} stdout F f={f} n={k}")
    with open(path, "a") as fh:
        fh.write("\n".join(out) + "\n")


def pod_log(pods: Path, ns: str, pod: str, uid: str, f: int) -> Path:
    path = pods / f"{ns}_{pod}_{uid}" / "trainer" / "0.log"
    cri_log(path, f)
    return path


def write_config(tmp: Path, name: str, paths: list[str], **watch: str) -> Path:
    """A config with one glob source over ``paths``; lake shared, state dir per name."""
    pdir = tmp / "parsers"
    pdir.mkdir(parents=True, exist_ok=True)
    (pdir / "seq.py").write_text(SEQ_PARSER)
    settings = {"flush_interval": "0.3s", "rescan_interval": "1h", "idle_timeout": "1h", **watch}
    lines = [
        f'lake = "{tmp / "lake"}"',
        f'state_dir = "{tmp / f"state-{name}"}"',
        "[parsers]",
        f'dirs = ["{pdir}"]',
        "[watch]",
        *(f"{k} = {json.dumps(v)}" for k, v in settings.items()),
        "[[sources]]",
        'name = "pods"',
        f"paths = {json.dumps(paths)}",
        'include = ["*.log"]',
        f"template = {json.dumps(TEMPLATE)}",
        'parsers = ["seq"]',
        "auto_detect = false",
    ]
    path = tmp / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def start(config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*LOGLAKE, "watch", "-c", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env_without_crash(),
    )


def lake_lines(lake: Path) -> Counter[tuple[str, int]]:
    if not (lake / "metrics").exists():
        return Counter()
    rows = lake_rows(lake, "SELECT key, step FROM metrics")
    return Counter((r["key"], int(r["step"])) for r in rows)


def every_line(files: list[int]) -> Counter[tuple[str, int]]:
    return Counter({(f"f{f}", n): 1 for f in files for n in range(1, LINES + 1)})


def followed(state: Path) -> set[str]:
    """The paths a stopped daemon's checkpoints name."""
    doc = json.loads((state / "checkpoints.json").read_text())
    entries = doc["entries"]
    return {str(e["path"]) for e in entries.values() if isinstance(e, dict) and "path" in e}


def identities(lake: Path) -> set[tuple[str, str, str]]:
    rows = lake_rows(lake, "SELECT DISTINCT run_id, namespace, run FROM runs")
    return {(r["run_id"], r["namespace"], r["run"]) for r in rows}


# -- matching --------------------------------------------------------------------------------


def test_a_glob_covers_what_it_matches_and_what_matched_folders_hold() -> None:
    sp = SourcePath.parse("/x/pods/team-a_*")
    assert (sp.root, sp.parts) == ("/x/pods", ("team-a_*",))
    assert sp.holds("/x/pods/team-a_bert_1/trainer/0.log")
    assert sp.holds("/x/pods/team-a_bert_1")  # gone since: matching is by text
    assert not sp.holds("/x/pods/team-b_vit_2/trainer/0.log")
    assert not sp.holds("/x/pods/team-a_bert_1/.cache/0.log")  # hidden: never walked
    assert not sp.holds("/x/pods")
    assert sp.may_lead_to("/x/pods") and not sp.may_lead_to("/x/pods/team-b_vit_2")
    assert SourcePath.parse("/x/pods/team-a_*").root_for("/x/pods/team-a_b/c/0.log") == "/x/pods"
    named = SourcePath.parse("/x/train.log")
    assert named.holds("/x/train.log") and named.root_for("/x/train.log") == "/x"


@pytest.mark.parametrize(
    "pattern",
    ["*", "team-a_*", "*/trainer", "**", "**/*.log", "team-?_*/**/0.log", "[a-z]*/*", ".hid*"],
)
def test_holds_agrees_with_glob_and_the_walk(tmp_path: Path, pattern: str) -> None:
    """Every file under ``tmp`` is held exactly when `glob` (then the walk of matched
    folders) reaches it."""
    for rel in [
        "team-a_bert_1/trainer/0.log",
        "team-a_bert_1/.cache/x.log",
        "team-b_vit_2/trainer/1.log",
        "team-b_vit_2/side/deep/er/2.log",
        ".hidden_3/trainer/0.log",
        "top.log",
        "abc/def.log",
    ]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x\n")
    reached: set[str] = set()
    for m in glob.glob(str(tmp_path / pattern), recursive=True):
        if os.path.isfile(m):
            reached.add(os.path.abspath(m))
        for dirpath, dirnames, files in os.walk(m):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            reached.update(os.path.join(dirpath, f) for f in files if not f.startswith("."))
    sp = SourcePath.parse(str(tmp_path / pattern))
    every = {os.path.join(d, f) for d, _, files in os.walk(tmp_path) for f in files}
    assert {p for p in every if sp.holds(p)} == reached


def test_index_templates_are_relative_to_the_folder_above_the_glob(tmp_path: Path) -> None:
    pods = tmp_path / "pods"
    for ns, pod, uid, f in PODS:
        pod_log(pods, ns, pod, uid, f)
    (pods / "team-a_bert_0a1b-2c3d" / "trainer" / "notes.md").write_text("not a log\n")
    cfg = load_config(write_config(tmp_path, "a", [str(pods / "team-a_*")]))
    found, missing = discover([], cfg)
    assert missing == []
    assert sorted(Path(f.path).parent.parent.name for f in found) == [
        "team-a_bert_0a1b-2c3d",
        "team-a_gpt_4e5f-6a7b",
    ]
    assert {f.root for f in found} == {str(pods)}
    # A file named on the command line gets its source's template root too.
    named, _ = discover([str(pods / "team-a_gpt_4e5f-6a7b" / "trainer" / "0.log")], cfg)
    assert [(f.root, f.source.name) for f in named] == [(str(pods), "pods")]
    # ... and one outside every source glob is a plain file.
    other, _ = discover([str(pods / "team-b_vit_2a3b-4c5d" / "trainer" / "0.log")], cfg)
    assert [f.source.name for f in other] == ["command-line"]


def test_events_ask_for_a_rescan_only_for_folders_on_the_way_to_a_match(tmp_path: Path) -> None:
    pods = tmp_path / "pods"
    pods.mkdir()
    roots = SourceRoots(load_config(write_config(tmp_path, "a", [str(pods / "team-a_*")])))
    hints = Hints()
    handler = _Handler(hints, roots)
    handler.on_any_event(DirCreatedEvent(str(pods / "team-b_vit_2a3b-4c5d")))
    handler.on_any_event(DirCreatedEvent(str(pods / "team-b_vit_2a3b-4c5d" / "trainer")))
    assert hints.take() == (set(), False)
    handler.on_any_event(DirCreatedEvent(str(pods / "team-a_bert_0a1b-2c3d")))
    assert hints.take() == (set(), True)
    handler.on_any_event(DirMovedEvent(str(tmp_path / "tmp-x"), str(pods / "team-a_x_1")))
    assert hints.take() == (set(), True)
    assert roots.wanted(str(pods / "team-a_x_1" / "trainer" / "0.log"))
    assert not roots.wanted(str(pods / "team-b_x_1" / "trainer" / "0.log"))
    assert not roots.wanted(str(pods / "team-a_x_1" / "trainer" / "0.txt"))


# -- real daemons ------------------------------------------------------------------------------


def test_two_daemons_with_disjoint_globs_each_follow_only_their_pods(tmp_path: Path) -> None:
    pods = tmp_path / "pods"
    for ns, pod, uid, f in PODS:
        pod_log(pods, ns, pod, uid, f)
    config_a = write_config(tmp_path, "a", [str(pods / "team-a_*")])
    config_b = write_config(tmp_path, "b", [str(pods / "team-b_*")])
    procs = [start(config_a), start(config_b)]
    try:
        wait_for(
            lambda: lake_lines(tmp_path / "lake") == every_line([1, 2, 3, 4]),
            what="both daemons to commit their pods",
        )
        # Pods scheduled after the start (rescans are an hour apart: events find them).
        pod_log(pods, "team-a", "llama", "6e7f-8a9b", 5)
        pod_log(pods, "team-b", "clip", "0c1d-2e3f", 6)
        pod_log(pods, "team-c", "t5", "4a5b-6c7d", 7)  # nobody's
        wait_for(
            lambda: lake_lines(tmp_path / "lake") == every_line([1, 2, 3, 4, 5, 6]),
            what="the new pods",
        )
        time.sleep(1.0)  # a late, wrong pickup of team-c would show now
        for name, p in zip("ab", procs, strict=True):
            doc = read_status(tmp_path / f"state-{name}")
            assert doc is not None and [s["files"] for s in doc["sources"]] == [3]
            p.send_signal(signal.SIGTERM)
        # Rescans are an hour apart here: SIGTERM itself must wake the sleeping tail loop.
        for p in procs:
            assert p.wait(30) == 0, p.stderr.read() if p.stderr else ""
    finally:
        for p in procs:
            p.kill()
    assert lake_lines(tmp_path / "lake") == every_line([1, 2, 3, 4, 5, 6])  # none twice
    for name in "ab":
        paths = followed(tmp_path / f"state-{name}")
        assert len(paths) == 3
        assert {Path(p).parts[-3].split("_")[0] for p in paths} == {f"team-{name}"}
    runs = lake_rows(tmp_path / "lake", "SELECT namespace, run FROM runs ORDER BY run")
    assert sorted((r["namespace"], r["run"]) for r in runs) == sorted(
        [
            ("team-a", "bert"),
            ("team-a", "gpt"),
            ("team-a", "llama"),
            ("team-b", "clip"),
            ("team-b", "resnet"),
            ("team-b", "vit"),
        ]
    )

    # `loglake index` over the same globs, into another lake: the same run identities.
    index_cfg = write_config(
        tmp_path / "ix", "ix", [str(pods / "team-a_*"), str(pods / "team-b_*")]
    )
    r = subprocess.run(
        [*LOGLAKE, "index", "--finished", "-c", str(index_cfg)],
        capture_output=True,
        text=True,
        env=env_without_crash(),
        timeout=120,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert identities(tmp_path / "ix" / "lake") == identities(tmp_path / "lake")
