"""One set of storage options for deltalake and fsspec, and where the endpoint comes from.

Users write deltalake's spelling (object_store's ``AWS_ENDPOINT_URL``, ``AWS_REGION``,
``AWS_ACCESS_KEY_ID``...), as for the lake; s3fs wants ``key``/``secret``/``client_kwargs``.
Without an endpoint in the options the standard ``AWS_ENDPOINT_URL`` variable applies
(MinIO, Ceph, moto), and credentials come from the standard AWS chain.
"""

from __future__ import annotations

import os
from typing import Any

_S3_KEYS = {
    "aws_access_key_id": "key",
    "access_key_id": "key",
    "aws_secret_access_key": "secret",
    "secret_access_key": "secret",
    "aws_session_token": "token",
    "session_token": "token",
    "aws_token": "token",
    "aws_profile": "profile",
    "profile": "profile",
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
# s3fs's own arguments, passed through as written.
_S3FS_NATIVE = {
    "anon",
    "key",
    "secret",
    "token",
    "client_kwargs",
    "config_kwargs",
    "requester_pays",
}
# Options that only mean something to deltalake (object_store).
_DELTA_ONLY = {"aws_allow_http", "allow_http", "aws_conditional_put", "conditional_put"}

S3_PROTOCOLS = ("s3", "s3a")


def endpoint_of(storage_options: dict[str, Any] | None) -> str | None:
    """The S3 endpoint the options name, else ``AWS_ENDPOINT_URL`` (None: AWS itself)."""
    for key, value in (storage_options or {}).items():
        if key.lower() in ("aws_endpoint_url", "aws_endpoint", "endpoint_url", "endpoint"):
            return str(value)
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def fsspec_options(protocol: str, storage_options: dict[str, Any] | None) -> dict[str, Any]:
    """Translate deltalake-style storage options into fsspec filesystem arguments."""
    options = dict(storage_options or {})
    if protocol not in S3_PROTOCOLS:
        return options
    kwargs: dict[str, Any] = {}
    client: dict[str, Any] = {}
    for key, value in options.items():
        low = key.lower()
        if key in _S3FS_NATIVE:
            kwargs[key] = value
        elif low in _S3_KEYS:
            kwargs[_S3_KEYS[low]] = value
        elif low in _S3_CLIENT_KEYS:
            client[_S3_CLIENT_KEYS[low]] = value
        elif low in ("aws_skip_signature", "skip_signature") and str(value).lower() == "true":
            kwargs["anon"] = True
        elif low in _DELTA_ONLY:
            continue
    endpoint = endpoint_of(options)
    if endpoint and "endpoint_url" not in client:
        client["endpoint_url"] = endpoint
    if client:
        kwargs["client_kwargs"] = {**client, **kwargs.get("client_kwargs", {})}
    return kwargs


def merged(*layers: dict[str, Any] | None) -> dict[str, Any]:
    """Later layers win: the config's ``storage_options``, then a source's own."""
    out: dict[str, Any] = {}
    for layer in layers:
        out.update(layer or {})
    return out
