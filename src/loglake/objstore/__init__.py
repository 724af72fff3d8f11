"""Object storage (S3, or any fsspec URL) as a log source: listing, chunked streams, staging.

Objects cannot be appended to or read through a descriptor, so the local tail pipeline is
fed through a small adapter: the listing says what changed, ``chunks`` groups the objects
one shipper split a stream into, and ``staging`` copies exactly the bytes to read into a
local file at their own offsets. From there the batch indexer's ``index_file`` reads it like
any local log, so checkpoints, envelopes and parsers behave the same for both.
"""

from __future__ import annotations

from urllib.parse import urlparse


def is_object_url(path: str) -> bool:
    """True for ``s3://…``, ``gs://…``, ``memory://…``; False for local paths and ``file://``."""
    return "://" in path and urlparse(path).scheme not in ("", "file")
