"""Reading an object-store lake from DuckDB through fsspec instead of the httpfs extension.

deltalake takes ``storage_options`` in object_store's spelling (``AWS_ENDPOINT_URL``...);
fsspec's s3fs wants ``key``/``secret``/``client_kwargs``. One set of options configures both.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import duckdb
import fsspec

from loglake.errors import LakeError

_S3_KEYS = {
    "aws_access_key_id": "key",
    "access_key_id": "key",
    "aws_secret_access_key": "secret",
    "secret_access_key": "secret",
    "aws_session_token": "token",
    "session_token": "token",
    "aws_token": "token",
}
_S3_CLIENT_KEYS = {
    "aws_endpoint_url": "endpoint_url",
    "aws_endpoint": "endpoint_url",
    "endpoint_url": "endpoint_url",
    "endpoint": "endpoint_url",
    "aws_region": "region_name",
    "region": "region_name",
    "aws_default_region": "region_name",
}


def fsspec_options(protocol: str, storage_options: dict[str, str] | None) -> dict[str, Any]:
    """Translate deltalake storage options into fsspec filesystem arguments."""
    options = dict(storage_options or {})
    if protocol not in ("s3", "s3a"):
        return options
    kwargs: dict[str, Any] = {}
    client: dict[str, Any] = {}
    for key, value in options.items():
        low = key.lower()
        if low in _S3_KEYS:
            kwargs[_S3_KEYS[low]] = value
        elif low in _S3_CLIENT_KEYS:
            client[_S3_CLIENT_KEYS[low]] = value
        elif low in ("aws_skip_signature", "skip_signature") and str(value).lower() == "true":
            kwargs["anon"] = True
    if client:
        kwargs["client_kwargs"] = client
    return kwargs


def register_filesystem(
    conn: duckdb.DuckDBPyConnection, lake_uri: str, storage_options: dict[str, str] | None
) -> None:
    protocol = urlparse(lake_uri).scheme
    try:
        fs = fsspec.filesystem(protocol, **fsspec_options(protocol, storage_options))
    except (ImportError, ValueError) as exc:
        raise LakeError(
            f"cannot read the lake at {lake_uri}: no filesystem for {protocol}:// ({exc})",
            fix=f"install the fsspec package for {protocol}:// (s3fs for s3://, gcsfs for gs://)",
        ) from exc
    conn.register_filesystem(fs)
