"""Everything in deploy/, checked the way it will be used.

- the systemd units pass ``systemd-analyze verify`` and say what the daemon's exit codes mean;
- the Kubernetes manifests parse, refer to each other consistently (volumes, ConfigMap,
  Secret, ServiceAccount, ports), and every command in them is a real loglake command line;
- the ConfigMap's config passes ``loglake validate``;
- the container's entrypoint with the DaemonSet's arguments runs as a plain process on a
  CRI pod-log layout laid out like a node's mounts, fills a lake, answers its liveness
  probe, and stops cleanly on SIGTERM; then the CronJobs' commands run on that lake;
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
import zipfile
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml

from loglake.cli import build_parser
from loglake.config import load_config
from loglake.query.connect import connect

from .conftest import CORPUS
from .s3server import S3Server
from .watch_support import wait_for as poll_for

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
SYSTEMD = DEPLOY / "systemd"
DOCKERFILE = DEPLOY / "container" / "Dockerfile"
BIN = Path(sys.executable).parent  # the venv's bin: where the `loglake` script is

KINDS = {
    ("v1", "Namespace"),
    ("v1", "ServiceAccount"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("apps/v1", "DaemonSet"),
    ("batch/v1", "CronJob"),
}
DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# lake and process checks are not free: poll them every 0.1 s
wait_for = partial(poll_for, interval=0.1)


# -- reading deploy/ ----------------------------------------------------------------------


def manifests() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append({**doc, "_file": path.name})
    return docs


def one(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in manifests() if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def pod_specs() -> list[tuple[str, dict[str, Any]]]:
    """(workload name, pod spec) of every DaemonSet and CronJob."""
    out = []
    for d in manifests():
        if d["kind"] == "DaemonSet":
            out.append((d["metadata"]["name"], d["spec"]["template"]["spec"]))
        elif d["kind"] == "CronJob":
            out.append(
                (d["metadata"]["name"], d["spec"]["jobTemplate"]["spec"]["template"]["spec"])
            )
    return out


def dockerfile() -> dict[str, Any]:
    """ENTRYPOINT, CMD, ENV and COPY sources of the image's final stage."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    info: dict[str, Any] = {"copy": [], "env": {}, "stages": 0}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            info["stages"] += 1
            info["env"] = {}
        elif word in ("ENTRYPOINT", "CMD"):
            info[word.lower()] = json.loads(rest)  # exec form only: signals reach loglake
        elif word == "ENV":
            info["env"].update(dict(p.split("=", 1) for p in shlex.split(rest)))
        elif word == "COPY" and "--from=" not in rest:
            info["copy"] += shlex.split(rest)[:-1]
    return info


def unit(path: Path) -> dict[str, list[str]]:
    """``Key`` → values of a systemd unit file (keys may repeat)."""
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


CRON_FIELDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))  # minute hour day month weekday


def valid_cron(schedule: str) -> bool:
    """A five-field cron schedule of numbers, ranges, lists, steps and ``*``."""
    fields = schedule.split()
    if len(fields) != 5:
        return False
    for text, (lo, hi) in zip(fields, CRON_FIELDS, strict=True):
        for part in text.split(","):
            base, _, step = part.partition("/")
            if step and not (step.isdigit() and int(step) > 0):
                return False
            if base == "*":
                continue
            ends = base.split("-")
            if len(ends) > 2 or not all(e.isdigit() and lo <= int(e) <= hi for e in ends):
                return False
    return True


def parses(argv: list[str]) -> Any:
    """``argv`` (starting with ``loglake``) as loglake's own parser reads it; fails on junk."""
    assert Path(argv[0]).name == "loglake", argv
    return build_parser().parse_args(argv[1:])


# -- Kubernetes manifests -----------------------------------------------------------------


def test_every_manifest_is_a_known_kind_with_a_valid_name() -> None:
    docs = manifests()
    assert {d["kind"] for d in docs} >= {"DaemonSet", "CronJob", "ConfigMap", "Secret"}
    seen = set()
    for d in docs:
        assert (d["apiVersion"], d["kind"]) in KINDS, d["_file"]
        meta = d["metadata"]
        assert DNS1123.match(meta["name"]), meta["name"]
        if d["kind"] != "Namespace":
            assert meta["namespace"] == "loglake", (d["_file"], meta["name"])
        assert (d["kind"], meta["name"]) not in seen
        seen.add((d["kind"], meta["name"]))
    # No RBAC: loglake never calls the Kubernetes API, so its pods get no token either.
    assert not [d for d in docs if d["kind"] in ("Role", "ClusterRole", "RoleBinding")]
    assert one("ServiceAccount", "loglake")["automountServiceAccountToken"] is False


def test_kustomization_lists_every_manifest() -> None:
    kust = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kust["kind"] == "Kustomization"
    listed = set(kust["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk - {"secret.example.yaml"}, "the example Secret is applied by hand"
    assert [i["name"] for i in kust["images"]] == ["loglake"]


def test_pod_specs_refer_to_what_exists() -> None:
    configmaps = {d["metadata"]["name"]: d for d in manifests() if d["kind"] == "ConfigMap"}
    secrets = {d["metadata"]["name"] for d in manifests() if d["kind"] == "Secret"}
    accounts = {d["metadata"]["name"] for d in manifests() if d["kind"] == "ServiceAccount"}
    assert pod_specs()
    for name, spec in pod_specs():
        assert spec["serviceAccountName"] in accounts, name
        assert spec["automountServiceAccountToken"] is False, name
        volumes = {v["name"]: v for v in spec["volumes"]}
        for v in volumes.values():
            if "configMap" in v:
                assert v["configMap"]["name"] in configmaps, (name, v)
        for c in spec["containers"]:
            assert c["image"].split(":")[0] == "loglake", (name, c["image"])
            mounts = {m["name"]: m for m in c.get("volumeMounts", [])}
            assert set(mounts) <= set(volumes), (name, set(mounts) - set(volumes))
            for ref in c.get("envFrom", []):
                assert ref["secretRef"]["name"] in secrets, name
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"]
            assert sc["capabilities"]["drop"] == ["ALL"], name
            assert "memory" in c["resources"]["limits"], name
            if sc["readOnlyRootFilesystem"] and "workingDir" in c:
                writable = [m["mountPath"] for m in mounts.values() if not m.get("readOnly")]
                assert c["workingDir"] in writable, (name, c["workingDir"])


def test_daemonset_reads_pod_logs_read_only_and_keeps_state_on_the_node(tmp_path: Path) -> None:
    ds = one("DaemonSet")
    assert ds["spec"]["selector"]["matchLabels"].items() <= (
        ds["spec"]["template"]["metadata"]["labels"].items()
    )
    spec = ds["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    pods = mounts["/var/log/pods"]
    assert pods["readOnly"] is True
    assert volumes[pods["name"]]["hostPath"] == {"path": "/var/log/pods", "type": "Directory"}
    config = load_config(_configmap_toml(tmp_path), environ={})
    state = next(m for p, m in mounts.items() if config.state_path().is_relative_to(p))
    assert "hostPath" in volumes[state["name"]] and not state.get("readOnly")
    for src in config.sources:
        assert all(Path(p).is_relative_to("/var/log/pods") for p in src.paths), src.paths
    assert config.lake.startswith("s3://"), "one shared lake for every node"
    # Every node, including tainted GPU nodes.
    assert {"operator": "Exists"} in spec["tolerations"]
    # SIGTERM flushes: the grace period covers the daemon's own shutdown budget.
    assert spec["terminationGracePeriodSeconds"] >= 60
    # Prometheus scrapes the port the config listens on.
    port = int((config.watch.metrics_listen or "").rpartition(":")[2])
    assert {"name": "metrics", "containerPort": port} in c["ports"]
    annotations = ds["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port)
    assert c["securityContext"]["capabilities"]["add"] == ["DAC_READ_SEARCH"]


def test_every_command_in_deploy_is_a_loglake_command_line() -> None:
    image = dockerfile()
    ds = one("DaemonSet")
    (c,) = ds["spec"]["template"]["spec"]["containers"]
    args = parses(image["entrypoint"] + c["args"])
    assert args.command == "watch" and args.config == "/etc/loglake/loglake.toml"
    for probe in ("startupProbe", "livenessProbe"):
        check = parses(c[probe]["exec"]["command"])
        assert check.command == "status" and check.check and check.config == args.config
    assert c["livenessProbe"]["timeoutSeconds"] >= 5
    cron = [d for d in manifests() if d["kind"] == "CronJob"]
    assert cron
    for job in cron:
        (jc,) = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
        jargs = parses(image["entrypoint"] + jc["args"])
        assert jargs.config == args.config, job["metadata"]["name"]
        assert valid_cron(job["spec"]["schedule"]), job["spec"]["schedule"]
        assert job["spec"]["concurrencyPolicy"] == "Forbid"
        assert job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] in (
            "OnFailure",
            "Never",
        )
    # The daemons leave compaction to the CronJobs: one of them must do it.
    config = tomllib.loads(one("ConfigMap", "loglake-config")["data"]["loglake.toml"])
    if not config.get("housekeeping", {}).get("enabled", True):
        jobs = [parses(image["entrypoint"] + j) for j in _cron_args()]
        assert any(j.command == "housekeep" and j.optimize for j in jobs)
        assert any(j.command == "housekeep" and j.vacuum for j in jobs)
    assert valid_cron("*/15 0-6,22 * * 1-5") and not valid_cron("61 * * * *")
    for path in SYSTEMD.glob("*.service"):
        (exec_start,) = unit(path)["ExecStart"]
        assert parses(shlex.split(exec_start.replace("%i", "shard"))).command == "watch"


def _cron_args() -> list[list[str]]:
    out = []
    for job in [d for d in manifests() if d["kind"] == "CronJob"]:
        (jc,) = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
        out.append(jc["args"])
    return out


def _configmap_toml(dest: Path) -> Path:
    """The ConfigMap's loglake.toml, written to ``dest`` as Kubernetes mounts it."""
    text = one("ConfigMap", "loglake-config")["data"]["loglake.toml"]
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / "loglake.toml"
    path.write_text(text)
    return path


def test_configmap_config_passes_loglake_validate(tmp_path: Path) -> None:
    path = _configmap_toml(tmp_path)
    r = subprocess.run(
        [str(BIN / "loglake"), "validate", str(path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("LOGLAKE_")},
    )
    assert r.returncode == 0, r.stderr
    assert "ok — lake s3://" in r.stdout and "1 source(s)" in r.stdout


# -- systemd ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["loglake.service", "loglake@.service"])
def test_systemd_unit_restarts_on_failure_but_not_on_a_config_error(name: str) -> None:
    u = unit(SYSTEMD / name)
    assert u["Restart"] == ["on-failure"]
    assert "78" in u["RestartPreventExitStatus"][0].split()
    assert u["KillSignal"] == ["SIGTERM"]
    assert int(u["TimeoutStopSec"][0]) >= 60
    for key in ("NoNewPrivileges", "ProtectSystem", "PrivateTmp", "ProtectKernelModules"):
        assert key in u, key
    assert u["CapabilityBoundingSet"] == ["CAP_DAC_READ_SEARCH"]
    assert u["User"] == ["loglake"]


def test_the_exit_code_the_unit_relies_on_for_a_bad_config(tmp_path: Path) -> None:
    (exec_start,) = unit(SYSTEMD / "loglake.service")["ExecStart"]
    argv = shlex.split(exec_start)
    bad = tmp_path / "loglake.toml"
    bad.write_text('lake = "/tmp/x"\n[watch]\nflush_intervall = "5s"\n')
    argv = [str(BIN / "loglake"), *[str(bad) if a.endswith(".toml") else a for a in argv[1:]]]
    r = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=60)
    assert r.returncode == 78, r.stderr
    assert "watch.flush_intervall" in r.stderr


@pytest.mark.parametrize("name", ["loglake.service", "loglake@.service"])
def test_systemd_analyze_verify(tmp_path: Path, name: str) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed: only the unit's settings were checked")
    # verify insists that ExecStart's binary exists: point it at this venv's loglake.
    text = (SYSTEMD / name).read_text().replace("/usr/local/bin/loglake", str(BIN / "loglake"))
    (tmp_path / name).write_text(text)
    target = tmp_path / name.replace("@.", "@shard-a.")
    r = subprocess.run(
        ["systemd-analyze", "verify", str(target)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    mine = [line for line in (r.stdout + r.stderr).splitlines() if name.split("@")[0] in line]
    assert r.returncode == 0 and not mine, r.stdout + r.stderr


# -- the container image ------------------------------------------------------------------


def test_dockerfile_builds_from_files_that_exist_and_runs_loglake() -> None:
    image = dockerfile()
    assert image["stages"] == 2, "build stage + runtime stage"
    assert image["entrypoint"] == ["loglake"] and image["cmd"] == ["watch"]
    for src in image["copy"]:
        assert (ROOT / src).exists(), f"COPY {src}: not in the build context (the repo root)"
    assert image["env"]["LOGLAKE_CONFIG"] == "/etc/loglake/loglake.toml"
    ignore = (DOCKERFILE.parent / "Dockerfile.dockerignore").read_text().split()
    for src in image["copy"]:
        assert f"!{src.rstrip('/')}/" in ignore or f"!{src}" in ignore, src


def test_the_build_stage_makes_a_wheel_with_the_loglake_command(tmp_path: Path) -> None:
    """What the image's build stage does, from only what it COPYs (no network: the build
    backend from this venv)."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    for src in dockerfile()["copy"]:
        if (ROOT / src).is_dir():
            shutil.copytree(ROOT / src, ctx / src, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / src, ctx / src)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(tmp_path / "wheels"),
            str(ctx),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    (wheel,) = (tmp_path / "wheels").glob("loglake-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        assert "loglake = loglake.cli:main" in z.read(entry_points).decode()
    assert "loglake/watch/status.py" in names
    assert any(n.startswith("loglake/builtin_parsers/") for n in names)


# -- the entrypoint as a plain process on a node-shaped folder ---------------------------


def cri(lines: list[str], t0: float = 1714550400.0) -> str:
    """``lines`` in the kubelet's CRI format, one second apart."""
    out = []
    for i, text in enumerate(lines):
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t0 + i))
        out.append(f"{ts}.{i % 1000:03d}000000Z stdout F {text}\n")
    return "".join(out)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Node:
    """A node's filesystem under ``root``: every mountPath of the pod maps to root/<path>."""

    def __init__(self, root: Path, mounts: list[str]) -> None:
        self.root = root
        self.mounts = sorted(mounts, key=len, reverse=True)
        for m in mounts:
            self.path(m).mkdir(parents=True, exist_ok=True)

    def path(self, p: str) -> Path:
        return self.root / p.lstrip("/")

    def remap(self, text: str) -> str:
        """Every absolute path under a mount in ``text``, moved under the node's root."""
        alternatives = "|".join(re.escape(m) for m in self.mounts)
        pattern = rf"(?<![\w/.])({alternatives})(?=/|\"|$|\s)"
        return re.sub(pattern, lambda m: str(self.path(m.group(1))), text)


def test_container_entrypoint_runs_the_daemon_on_a_cri_pod_layout(
    tmp_path: Path, s3_server: S3Server
) -> None:
    image = dockerfile()
    ds = one("DaemonSet")
    spec = ds["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    node = Node(tmp_path / "node", [m["mountPath"] for m in c["volumeMounts"]])
    # What Kubernetes mounts: the ConfigMap's file, the node's pod logs.
    config_text = one("ConfigMap", "loglake-config")["data"]["loglake.toml"]
    node.path("/etc/loglake/loglake.toml").write_text(node.remap(config_text))
    pods = node.path("/var/log/pods")
    logs = {
        "team-a_gpt2-ft-0_0b1c2d3e-1111-2222-3333-444455556666/trainer/0.log": CORPUS
        / "hf_trainer_gpt2_notqdm"
        / "stdout.log",
        "team-a_gpt2-ft-1_9f8e7d6c-1111-2222-3333-444455556666/trainer/0.log": CORPUS
        / "crash_torch"
        / "stdout.log",
    }
    texts = {rel: src.read_text().splitlines() for rel, src in logs.items()}
    half = {rel: len(lines) // 2 for rel, lines in texts.items()}
    for rel, lines in texts.items():
        (pods / rel).parent.mkdir(parents=True)
        (pods / rel).write_text(cri(lines[: half[rel]]))
    # The image's ENV, the pod's env, and the Secret's keys as environment variables (with
    # the loopback S3 server's credentials): the lake is on S3, only the bucket differs.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOGLAKE_", "AWS_"))}
    env.update({k: node.remap(v) for k, v in image["env"].items()})
    env.update({e["name"]: e["value"] for e in c.get("env", []) if "value" in e})
    secret = one("Secret", c["envFrom"][0]["secretRef"]["name"])["stringData"]
    creds = s3_server.storage_options
    env.update({key: creds[key] for key in secret})  # KeyError: a key no S3 client reads
    lake = f"s3://{s3_server.make_bucket('ml-logs')}/lake"
    options = {k: creds[k] for k in ("AWS_ENDPOINT_URL", "AWS_ALLOW_HTTP")}
    port = free_port()
    env.update(
        options,
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        LOGLAKE_LAKE=lake,
        LOGLAKE_WATCH__FLUSH_INTERVAL="0.5s",
        LOGLAKE_WATCH__RESCAN_INTERVAL="1s",
        LOGLAKE_WATCH__METRICS_LISTEN=f"127.0.0.1:{port}",
    )
    argv = [node.remap(a) for a in image["entrypoint"] + c["args"]]
    probe = [node.remap(a) for a in c["livenessProbe"]["exec"]["command"]]

    def run_probe() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            probe, check=False, capture_output=True, text=True, env=env, timeout=60
        )

    def query(sql: str) -> list[tuple[Any, ...]]:
        return connect(lake, storage_options=creds).execute(sql).fetchall()

    def metric_rows() -> int:
        return query("SELECT count(*) FROM metrics")[0][0]

    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for(lambda: run_probe().returncode == 0, 30, "a healthy daemon")
        first = wait_for(metric_rows, 30, "the first metrics")
        # The jobs go on writing: the daemon follows them.
        for rel, lines in texts.items():
            with open(pods / rel, "a") as fh:
                fh.write(cri(lines[half[rel] :], t0=1714550400.0 + half[rel]))
        wait_for(lambda: metric_rows() > first, 30, "the appended metrics")
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
        assert b"loglake_up 1" in body
        time.sleep(1.5)  # let a last flush land
        check = run_probe()
        assert (check.returncode, check.stdout.strip()) == (0, "loglake watch: healthy")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    stopped = run_probe()
    assert stopped.returncode == 1 and stopped.stdout.strip() == "loglake watch: daemon is stopped"

    # Same rows as indexing the plain logs: the CRI envelope and live tailing lose nothing.
    (run,) = query("SELECT namespace, run, status, ranks FROM runs WHERE parent_run_id IS NULL")
    # Both ranks' pods are one run; it stays "running" until its logs idle past the timeout.
    assert run[:3] == ("team-a", "gpt2-ft", "running") and sorted(run[3]) == ["0", "1"]
    plain = tmp_path / "plain"
    for i, src in enumerate(logs.values()):
        (plain / str(i)).mkdir(parents=True)
        shutil.copy2(src, plain / str(i) / "stdout.log")
    r = subprocess.run(
        [
            str(BIN / "loglake"),
            "index",
            "-q",
            "--finished",
            "--lake",
            str(tmp_path / "lake2"),
            str(plain),
        ],
        check=False,
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("LOGLAKE_")},
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    q = "SELECT key, count(*), sum(value) FROM metrics GROUP BY key ORDER BY key"
    want = connect(tmp_path / "lake2").execute(q).fetchall()
    got = query(q)
    assert [(k, n) for k, n, _ in got] == [(k, n) for k, n, _ in want]
    assert [s for _, _, s in got] == pytest.approx([s for _, _, s in want], nan_ok=True)

    # The maintenance CronJobs run on that lake with the same image and config.
    for job in [d for d in manifests() if d["kind"] == "CronJob"]:
        (jc,) = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
        jargv = [node.remap(a) for a in image["entrypoint"] + jc["args"]]
        cwd = node.path(jc.get("workingDir", "/tmp"))
        cwd.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(
            jargv, check=False, capture_output=True, text=True, env=env, timeout=120, cwd=cwd
        )
        assert r.returncode == 0, (job["metadata"]["name"], r.stderr)
    after = query(q)
    assert [(k, n) for k, n, _ in after] == [(k, n) for k, n, _ in got]
    assert [s for _, _, s in after] == pytest.approx([s for _, _, s in got], nan_ok=True)


# -- `loglake status --check` -------------------------------------------------------------
