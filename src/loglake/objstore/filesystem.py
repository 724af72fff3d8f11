"""Opening an object store through fsspec, and talking to it through outages.

Listings are never cached (``use_listings_cache=False``): a poller that sees yesterday's
listing never sees a new object. Every call goes through ``call``, which retries errors that
a restart or a network blip causes with exponential backoff, and turns the rest (no such
bucket, bad credentials, unreachable endpoint after the retries) into one ``SourceError``
line that names the URL and the fix.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlparse

from loglake.errors import SourceError
from loglake.objstore.options import S3_PROTOCOLS, endpoint_of, fsspec_options

if TYPE_CHECKING:
    import fsspec

log = logging.getLogger(__name__)

T = TypeVar("T")

# Total time one operation keeps retrying before it gives up (the daemon tries again on its
# next poll; the batch indexer reports the URL as failed).
RETRY_FOR = 60.0
BACKOFF_FIRST = 0.25
BACKOFF_MAX = 8.0

_TRANSIENT_WORDS = (
    "connect",
    "connection",
    "timeout",
    "timed out",
    "temporarily",
    "slow down",
    "slowdown",
    "internalerror",
    "service unavailable",
    "503",
    "500",
    "502",
    "504",
    "reset by peer",
    "broken pipe",
    "incomplete",
    "eof",
)


def open_fs(url: str, storage_options: dict[str, Any] | None) -> fsspec.AbstractFileSystem:
    """The fsspec filesystem for ``url``, listings cache off, retries left to ``call``.

    fsspec (~40 ms to import, asyncio and gzip with it) is imported here, on the first
    remote URL, not with the module: a local index never needs it.
    """
    import fsspec

    protocol = urlparse(url).scheme
    kwargs = fsspec_options(protocol, storage_options)
    if protocol in S3_PROTOCOLS:
        # One quick attempt per call inside botocore; ``call`` does the patient retrying,
        # so an outage is waited out with backoff we control (and can stop).
        config = {"retries": {"max_attempts": 1, "mode": "standard"}, "connect_timeout": 5}
        kwargs.setdefault("config_kwargs", {})
        kwargs["config_kwargs"] = {**config, **kwargs["config_kwargs"]}
    kwargs["use_listings_cache"] = False
    kwargs["skip_instance_cache"] = True
    try:
        return fsspec.filesystem(protocol, **kwargs)
    except ImportError as exc:
        raise SourceError(
            f"{url}: no filesystem for {protocol}:// ({exc})",
            fix=f"install the fsspec package for {protocol}:// (s3fs for s3://, gcsfs for gs://)",
        ) from exc
    except (TypeError, ValueError) as exc:
        raise SourceError(
            f"{url}: bad storage options for {protocol}:// ({exc})",
            fix="fix storage_options in the config (see docs/object-storage.md)",
        ) from exc


def transient(exc: BaseException) -> bool:
    """Whether ``exc`` is worth retrying: the store may answer the same call later."""
    if isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError):
        return False
    if isinstance(exc, TimeoutError | ConnectionError):
        return True
    text = f"{type(exc).__name__} {exc}".lower()
    if "nosuchbucket" in text or "accessdenied" in text or "invalidaccesskeyid" in text:
        return False
    return any(word in text for word in _TRANSIENT_WORDS)


def describe(
    url: str,
    exc: BaseException,
    storage_options: dict[str, Any] | None,
    *,
    setting: str = "sources.paths",
) -> SourceError:
    """One line naming the URL, what went wrong and what to do (``setting``: where the URL
    is configured, for the missing-bucket fix)."""
    text = (str(exc).strip().splitlines() or [repr(exc)])[0]
    endpoint = endpoint_of(storage_options) if urlparse(url).scheme in S3_PROTOCOLS else None
    where = f" at {endpoint}" if endpoint else ""
    low = f"{type(exc).__name__} {text}".lower()
    if "nosuchbucket" in low or ("bucket" in low and "not exist" in low):
        return SourceError(
            f"{url}: the bucket does not exist{where}",
            fix=f"create it or fix the bucket name in {setting}",
        )
    if isinstance(exc, PermissionError) or "accessdenied" in low or "credential" in low:
        return SourceError(
            f"{url}: access denied{where} ({text})",
            fix="check the credentials (AWS_ACCESS_KEY_ID/AWS_PROFILE or storage_options)",
        )
    if transient(exc):
        return SourceError(
            f"{url}: cannot reach the object store{where or ''} ({text})",
            fix="check the endpoint (storage_options AWS_ENDPOINT_URL or the AWS_ENDPOINT_URL "
            "variable) and the network, then run again: nothing was lost",
        )
    return SourceError(f"{url}: {type(exc).__name__}: {text}", fix="check the URL and access")


def call(
    fn: Callable[[], T],
    url: str,
    storage_options: dict[str, Any] | None,
    *,
    retry_for: float = RETRY_FOR,
    stop: threading.Event | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``fn()``, retried with backoff while its errors look transient, for ``retry_for`` s."""
    deadline = time.monotonic() + retry_for
    delay = BACKOFF_FIRST
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except FileNotFoundError:
            raise
        except Exception as exc:
            if not transient(exc) or time.monotonic() + delay > deadline:
                raise describe(url, exc, storage_options) from exc
            if attempt == 1 or attempt % 5 == 0:
                log.warning(
                    "%s; retrying (attempt %d)",
                    describe(url, exc, storage_options).message,
                    attempt,
                )
            if stop is not None:
                if stop.wait(delay):
                    raise describe(url, exc, storage_options) from exc
            else:
                sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX)
