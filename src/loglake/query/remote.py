"""Reading an object-store lake from DuckDB through fsspec instead of the httpfs extension.

deltalake takes ``storage_options`` in object_store's spelling (``AWS_ENDPOINT_URL``...);
fsspec's s3fs wants ``key``/``secret``/``client_kwargs``. One set of options configures both
(``objstore.options`` translates), and the endpoint falls back to ``AWS_ENDPOINT_URL``.
"""

from __future__ import annotations

from urllib.parse import urlparse

import duckdb
import fsspec

from loglake.errors import LakeError
from loglake.objstore.options import fsspec_options

__all__ = ["fsspec_options", "register_filesystem"]


def register_filesystem(
    conn: duckdb.DuckDBPyConnection, lake_uri: str, storage_options: dict[str, str] | None
) -> None:
    """Let DuckDB read ``s3://…`` (or any fsspec protocol) files of the lake through fsspec."""
    protocol = urlparse(lake_uri).scheme
    try:
        fs = fsspec.filesystem(protocol, **fsspec_options(protocol, storage_options))
    except (ImportError, ValueError) as exc:
        raise LakeError(
            f"cannot read the lake at {lake_uri}: no filesystem for {protocol}:// ({exc})",
            fix=f"install the fsspec package for {protocol}:// (s3fs for s3://, gcsfs for gs://)",
        ) from exc
    conn.register_filesystem(fs)
