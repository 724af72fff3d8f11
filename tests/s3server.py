"""A loopback S3 server for tests: moto's server mode in a real, separate process.

Tests talk to it over HTTP exactly as loglake talks to AWS, MinIO or Ceph. It runs as its own
process so an outage test can stop it and start it again. moto keeps objects in memory only;
run with ``--state FILE`` and a SIGTERM saves every bucket and object to FILE before exiting,
and the next start loads them before it listens: a server restart that loses nothing, like a
real object store's. (A SIGKILL still loses everything since the last start.)

    python tests/s3server.py --port 5123 [--state /tmp/s3.pickle]

From tests, use ``S3Server`` (or the ``s3_server`` fixture in ``conftest.py``).
"""

from __future__ import annotations

import argparse
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
REGION = "us-east-1"
ACCOUNT = "123456789012"
# moto accepts any credentials; botocore and object_store refuse to sign without some.
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "loglake-test", "AWS_SECRET_ACCESS_KEY": "loglake-test"}
ENDPOINT_ENV = "LOGLAKE_TEST_S3_ENDPOINT"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"the test S3 server did not listen on {HOST}:{port} within {timeout}s")


class S3Server:
    """A moto S3 server process on loopback (or one already running at ``endpoint``)."""

    def __init__(
        self, port: int | None = None, state: Path | None = None, endpoint: str | None = None
    ) -> None:
        self.external = endpoint is not None
        self.endpoint = endpoint or f"http://{HOST}:{port or free_port()}"
        self.port = int(self.endpoint.rsplit(":", 1)[1].split("/")[0])
        self.state = state
        self.proc: subprocess.Popen[bytes] | None = None

    # -- life ---------------------------------------------------------------------------------

    def start(self) -> S3Server:
        if self.external:
            return self
        args = [sys.executable, __file__, "--port", str(self.port)]
        if self.state is not None:
            args += ["--state", str(self.state)]
        self.proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        wait_listening(self.port)
        return self

    def stop(self) -> None:
        """SIGTERM: the server saves its state (with ``state``) and exits."""
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    # -- clients ------------------------------------------------------------------------------

    @property
    def storage_options(self) -> dict[str, str]:
        """For loglake's config (deltalake's spelling; loglake translates it for s3fs)."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": REGION,
            "AWS_ALLOW_HTTP": "true",
            **DUMMY_CREDENTIALS,
        }

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    def make_bucket(self, prefix: str = "test") -> str:
        """A fresh, empty bucket with a unique name."""
        name = f"{prefix}-{uuid.uuid4().hex[:12]}".lower()
        self.client().create_bucket(Bucket=name)
        return name

    def put(self, bucket: str, key: str, data: bytes) -> None:
        self.client().put_object(Bucket=bucket, Key=key, Body=data)


# -- the server process ---------------------------------------------------------------------


def _backend() -> Any:
    from moto.s3.models import s3_backends

    return s3_backends[ACCOUNT]["aws"]


def _save(path: Path) -> None:
    backend = _backend()
    data: dict[str, dict[str, bytes]] = {}
    for name, bucket in backend.buckets.items():
        data[name] = {key: obj.value for key, obj in bucket.keys.items() if obj is not None}
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(pickle.dumps(data))
    os.replace(tmp, path)


def _load(path: Path) -> None:
    if not path.exists():
        return
    backend = _backend()
    for name, objects in pickle.loads(path.read_bytes()).items():
        backend.create_bucket(name, REGION)
        for key, value in objects.items():
            backend.put_object(name, key, value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state", type=Path)
    args = parser.parse_args(argv)
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer

    if args.state is not None:
        _load(args.state)
    server = ThreadedMotoServer(ip_address=HOST, port=args.port, verbose=False)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    server.start()
    while not stopping:
        time.sleep(0.05)
    server.stop()
    if args.state is not None:
        _save(args.state)
    return 0


if __name__ == "__main__":
    sys.exit(main())
