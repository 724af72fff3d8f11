"""plot and report: a real PNG, and the HTML page opened in headless Chromium.

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``: JSON
messages separated by NUL bytes on fds 3 and 4), so the test needs no driver package and
sees every console message, exception and network request the page makes.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Self

import pytest

from loglake.cli import main
from loglake.config import Config
from loglake.explore.report import build_report
from loglake.explore.selection import Selection
from loglake.explore.session import open_lake
from loglake.explore.synthetic import SweepRun, make_sweep, write_sweep

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-pipe",
]


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[SweepRun], Path]:
    runs = make_sweep(120, n_steps=15, nan_every=30, seed=11)
    lake = tmp_path_factory.mktemp("report") / "lake"
    write_sweep(lake, runs, per_commit=60)
    return runs, lake


def test_plot_writes_a_png_with_curves(sweep, tmp_path: Path, capsys) -> None:
    pytest.importorskip("matplotlib")
    runs, lake = sweep
    out = tmp_path / "curves.png"
    code = main(
        [
            "plot",
            "--lake",
            str(lake),
            "-m",
            "val_accuracy",
            "-m",
            "val_loss",
            "-e",
            "sweep-a",
            "--limit",
            "5",
            "-o",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr().err
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 500 and height > 500
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(out, ARTIFACTS / "plot.png")
    # The image is not blank: many distinct colours were drawn.
    from matplotlib import image

    pixels = image.imread(out)
    colours = {tuple(p) for p in pixels.reshape(-1, pixels.shape[-1])[::97].tolist()}
    assert len(colours) > 20
    named = main(
        [
            "plot",
            "--lake",
            str(lake),
            runs[0].run,
            runs[1].run_id,
            "-m",
            "train_loss",
            "-o",
            str(tmp_path / "two.png"),
        ]
    )
    assert named == 0 and (tmp_path / "two.png").stat().st_size > 10_000
    assert (
        main(
            ["plot", "--lake", str(lake), runs[0].run, "-m", "nope", "-o", str(tmp_path / "x.png")]
        )
        == 2
    )


def test_report_is_self_contained(sweep, tmp_path: Path) -> None:
    runs, lake = sweep
    conn = open_lake(Config(lake=str(lake)))
    out = tmp_path / "report.html"
    data = build_report(conn, out, Selection(experiments=("sweep-b",)), title="Sweep <b>")
    page = out.read_text()
    assert "<script src" not in page and "<link" not in page
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", page)
    assert "Sweep &lt;b&gt;" in page
    assert len(data["runs"]) == 60 and data["total"] == 60
    assert data["primary"] == "max(val_accuracy)"
    assert set(data["curves"]) == {"val_accuracy", "val_loss", "latency_ms"}
    assert all(len(c) <= 20 for c in data["curves"].values())
    assert "lr" in data["numeric_params"] and "optimizer" not in data["numeric_params"]
    best = max(data["runs"], key=lambda r: r["metrics"]["max(val_accuracy)"])
    want = max(
        (r for r in runs if r.experiment == "sweep-b"),
        key=lambda r: max(v for _, v in r.curves["val_accuracy"]),
    )
    assert best["run_id"] == want.run_id


@pytest.mark.skipif(chromium_binary() is None, reason="no chromium binary on PATH")
def test_report_renders_in_headless_chromium(sweep, tmp_path: Path) -> None:
    _, lake = sweep
    out = tmp_path / "report.html"
    assert main(["report", "--lake", str(lake), "-o", str(out), "--title", "sweep"]) == 0
    with DevTools(chromium_binary(), tmp_path / "profile") as dt:  # type: ignore[arg-type]
        dt.open(out.as_uri())
        state = dt.evaluate(
            """(() => {
                const count = s => document.querySelectorAll(s).length;
                const sections = {};
                for (const id of ["table", "curves", "scatter", "bars", "parallel"]) {
                  const el = document.getElementById(id);
                  sections[id] = el.querySelectorAll("svg path, svg circle, svg rect, td").length;
                }
                const box = document.querySelector("#curves svg").getBoundingClientRect();
                return {rendered: document.body.dataset.rendered, svgs: count("svg"),
                        sections, curveBox: [box.width, box.height],
                        rows: count("table.runs tbody tr")};
            })()"""
        )
        png = dt.screenshot()
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "report.png").write_bytes(png)
    assert dt.errors == [], dt.errors
    assert all(u.startswith(("file:", "data:")) for u in dt.requests), dt.requests
    assert int(state["rendered"]) > 200
    assert state["svgs"] >= 8
    assert state["rows"] == 120
    assert all(n > 0 for n in state["sections"].values()), state["sections"]
    assert state["curveBox"][0] > 100 and state["curveBox"][1] > 100
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000


@pytest.mark.skipif(chromium_binary() is None, reason="no chromium binary on PATH")
def test_devtools_harness_sees_errors_and_requests(tmp_path: Path) -> None:
    """The check above means something: a broken page is caught."""
    page = tmp_path / "broken.html"
    page.write_text(
        "<html><body><img src='http://127.0.0.1:9/x.png'><script>"
        "console.error('boom'); undefinedFunction();</script></body></html>"
    )
    with DevTools(chromium_binary(), tmp_path / "profile") as dt:  # type: ignore[arg-type]
        dt.open(page.as_uri())
        assert dt.evaluate("1 + 1") == 2
    assert any("boom" in e for e in dt.errors)
    assert any("undefinedFunction" in e for e in dt.errors)
    assert "http://127.0.0.1:9/x.png" in dt.requests


class DevTools:
    """A headless Chromium on a DevTools pipe: navigate, evaluate, screenshot, collect errors."""

    def __init__(self, binary: str, profile: Path, timeout: float = 60.0) -> None:
        self.binary = binary
        self.profile = profile
        self.timeout = timeout
        self.errors: list[str] = []
        self.requests: list[str] = []
        self._id = 0
        self._buf = b""
        self._session: str | None = None

    def __enter__(self) -> Self:
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def fds() -> None:  # in the child: the protocol wants exactly fds 3 and 4
            a = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, 100)
            b = fcntl.fcntl(from_child_w, fcntl.F_DUPFD, 100)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [
                self.binary,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={self.profile}",
                "--window-size=1400,3000",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=False,
            preexec_fn=fds,  # noqa: PLW1509 - only os calls, no locks
        )
        os.close(to_child_r)
        os.close(from_child_w)
        targets = self.call("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        self._session = self.call("Target.attachToTarget", targetId=page["targetId"], flatten=True)[
            "sessionId"
        ]
        for domain in ("Runtime", "Log", "Page", "Network"):
            self.call(f"{domain}.enable")
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=1400,
            height=2400,
            deviceScaleFactor=1,
            mobile=False,
        )
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._session = None
            self.call("Browser.close")
        except (OSError, TimeoutError, RuntimeError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_child)
        os.close(self._from_child)

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)
        self._wait_event("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        res = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in res:
            raise RuntimeError(res["exceptionDetails"])
        return res["result"]["value"]

    def screenshot(self) -> bytes:
        res = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        return base64.b64decode(res["data"])

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params}
        if self._session and not method.startswith(("Target.", "Browser.")):
            msg["sessionId"] = self._session
        os.write(self._to_child, json.dumps(msg).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def _wait_event(self, name: str) -> None:
        while self._read().get("method") != name:
            pass

    def _read(self) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_child], [], [], left)[0]:
                raise TimeoutError("chromium did not answer")
            chunk = os.read(self._from_child, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the pipe")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        msg = json.loads(raw)
        self._note(msg)
        return msg

    def _note(self, msg: dict[str, Any]) -> None:
        method, params = msg.get("method"), msg.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.errors.append(details.get("exception", {}).get("description") or details["text"])
        elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            self.errors.append(json.dumps(params["args"])[:500])
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            self.errors.append(params["entry"]["text"])
        elif method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])
