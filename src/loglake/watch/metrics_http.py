"""An optional Prometheus endpoint (``watch.metrics_listen``), with the standard library only.

Serves ``GET /metrics`` in the text exposition format from the same snapshot `loglake
status` shows. Meant for loopback (``127.0.0.1:9464``) or a pod's own network namespace;
it exposes counts, never log content.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from loglake.errors import ConfigError

_COUNTERS = {
    "lines": "Lines read from log files.",
    "bytes": "Bytes read from log files.",
    "records": "Rows produced for the lake.",
    "flushes": "Commits to the lake.",
    "gaps": "Losses and repairs recorded in the gaps table.",
    "errors": "Errors (per file, flush or worker).",
    "rotations": "Files followed after a rename, copy, truncation or deletion.",
}


def render(doc: dict[str, Any]) -> str:
    """The Prometheus text format of a status snapshot."""
    out: list[str] = []

    def metric(name: str, kind: str, help_: str, samples: list[tuple[str, float]]) -> None:
        out.append(f"# HELP {name} {help_}")
        out.append(f"# TYPE {name} {kind}")
        out.extend(f"{name}{labels} {value:g}" for labels, value in samples)

    counters = doc.get("counters") or {}
    for key, help_ in _COUNTERS.items():
        metric(f"loglake_{key}_total", "counter", help_, [("", float(counters.get(key, 0)))])
    files = doc.get("files") or {}
    metric(
        "loglake_files",
        "gauge",
        "Files followed, by state.",
        [(f'{{state="{k}"}}', float(files.get(k, 0))) for k in ("live", "finished", "rotated")],
    )
    metric("loglake_open_files", "gauge", "Descriptors held open.", [("", files.get("open", 0))])
    metric(
        "loglake_lag_bytes",
        "gauge",
        "Bytes written to followed files but not yet committed to the lake.",
        [("", float(doc.get("lag_bytes") or 0))],
    )
    metric(
        "loglake_buffered_rows",
        "gauge",
        "Rows waiting for the next flush.",
        [("", float(doc.get("buffered_rows") or 0))],
    )
    last = (doc.get("last_flush") or {}).get("at") or 0
    metric(
        "loglake_last_flush_timestamp_seconds",
        "gauge",
        "When the last flush committed.",
        [("", float(last))],
    )
    workers = doc.get("workers") or {}
    metric(
        "loglake_worker_restarts_total",
        "counter",
        "Restarts of a crashed worker loop.",
        [(f'{{worker="{n}"}}', float(w.get("restarts", 0))) for n, w in sorted(workers.items())],
    )
    metric("loglake_up", "gauge", "1 while the daemon runs.", [("", 1.0)])
    return "\n".join(out) + "\n"


class MetricsServer:
    """``/metrics`` on ``host:port``, rendered from ``snapshot()`` on each scrape."""

    def __init__(self, listen: str, snapshot: Callable[[], dict[str, Any]]) -> None:
        host, _, port = listen.rpartition(":")
        host = host.strip("[]")
        snap = snapshot

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?", 1)[0] != "/metrics":
                    self.send_error(404, "only /metrics is served")
                    return
                body = render(snap()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return  # scrapes every few seconds must not fill the journal

        try:
            self.httpd = ThreadingHTTPServer((host, int(port)), Handler)
        except OSError as e:
            raise ConfigError(
                f"watch.metrics_listen: cannot listen on {listen}: {e.strerror or e}",
                fix="pick a free port, or remove metrics_listen",
            ) from e
        self.httpd.daemon_threads = True
        self.address = self.httpd.server_address
        self._lock = threading.Lock()
        self._serving = self._closed = False

    def serve(self, stop: threading.Event) -> None:
        """Serve until ``shutdown`` (called when ``stop`` is set)."""
        with self._lock:
            if self._closed or stop.is_set():
                return
            self._serving = True
        self.httpd.serve_forever(poll_interval=0.5)

    def shutdown(self) -> None:
        with self._lock:
            self._closed, serving = True, self._serving
        if serving:  # shutdown() waits for serve_forever, which must have started
            self.httpd.shutdown()
        self.httpd.server_close()
