"""Writing one raw log to the archive: redacted, compressed, read back and checked.

An archive object is written once per (source, version) at a name derived from both, so a
retention run killed midway finds its finished work again instead of redoing it:

1. the source's first ``bytes`` bytes are streamed through the redactor and the compressor
   into the object (a local archive writes ``<name>.tmp`` and renames it; an object store
   publishes the object only when the upload completes);
2. the object is read back whole: the sha256 of its bytes and of its decompressed text must
   equal what was computed while writing, or the object is deleted and the error reported;
3. a small manifest (``<name>.json``) records both hashes; its presence is what "this
   version is archived" means to a later run, before the lake's ``logs`` row lands.

zstd is the default codec (pyarrow's, already a dependency): about 3x faster than gzip at a
better ratio on logs, and ``zstd -d``, ``zstdcat`` and DuckDB's ``read_csv`` read it. gzip
is there for consumers that only know ``zcat``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import posixpath
import re
import signal
import time
import uuid
import zlib
from dataclasses import asdict, dataclass
from typing import IO, Any

import fsspec
import pyarrow as pa

from loglake.errors import LoglakeError
from loglake.objstore.filesystem import open_fs, transient
from loglake.objstore.options import endpoint_of
from loglake.redact import StreamRedactor
from loglake.retain.sources import SourceAccess, SourceReadError, decompressed

CHUNK = 1 << 20
MANIFEST_VERSION = 1
CRASH_ENV = "LOGLAKE_CRASH_AT"
CRASH_AFTER_ENV = "LOGLAKE_CRASH_AFTER"  # die at the N-th time the point is reached (default 1)
_EXT = {"zstd": ".zst", "gzip": ".gz"}
_MAGIC_GZIP = b"\x1f\x8b"
_UNSAFE = re.compile(r"[^A-Za-z0-9._\-]+")
_hits: dict[str, int] = {}


class ArchiveError(LoglakeError):
    """An archive object could not be written or did not read back identical."""


class ArchiveUnavailable(ArchiveError):
    """The archive location itself cannot be used now (unreachable, no such bucket, denied,
    not writable): every other log of the run would fail the same way, so the run stops
    archiving and says so once."""


def crash_point(name: str) -> None:
    """Die like ``kill -9`` at the N-th pass here when ``LOGLAKE_CRASH_AT`` names it (tests)."""
    if os.environ.get(CRASH_ENV) != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] >= int(os.environ.get(CRASH_AFTER_ENV) or 1):
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True, slots=True)
class Archived:
    """One verified archive object (what its manifest says)."""

    uri: str
    source_fp: str
    version: int
    bytes: int  # source bytes covered
    archive_bytes: int
    sha256: str
    content_sha256: str
    compression: str
    redactions: int
    archived_at: float
    write_id: str

    def to_dict(self) -> dict[str, Any]:
        return {"version_of_manifest": MANIFEST_VERSION, **asdict(self)}


class _Hashing(io.RawIOBase):
    """A write-through wrapper that hashes and counts what passes (the object's bytes)."""

    def __init__(self, sink: IO[bytes]) -> None:
        self.sink = sink
        self.sha = hashlib.sha256()
        self.count = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = bytes(data)
        self.sha.update(view)
        self.count += len(view)
        self.sink.write(view)
        return len(view)


class _HashingReader(io.RawIOBase):
    """A read-through wrapper hashing what the decompressor pulls (then the rest, if any)."""

    def __init__(self, source: IO[bytes], sha: Any) -> None:
        self.source = source
        self.sha = sha

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        data = self.source.read(len(buf))
        self.sha.update(data)
        buf[: len(data)] = data
        return len(data)

    def drain(self) -> None:
        while chunk := self.source.read(CHUNK):
            self.sha.update(chunk)


def _compressor(sink: _Hashing, codec: str) -> Any:
    if codec == "zstd":
        return pa.CompressedOutputStream(pa.PythonFile(sink, mode="w"), "zstd")
    return gzip.GzipFile(fileobj=sink, mode="wb", mtime=0, compresslevel=6)


def codec_for(preferred: str) -> str:
    """``preferred`` if this install can write it; gzip is always there."""
    if preferred == "zstd" and not pa.Codec.is_available("zstd"):
        return "gzip"
    return preferred


class ArchiveStore:
    """The archive location (a folder or fsspec URL) and how objects are named there."""

    def __init__(
        self,
        base: str,
        storage_options: dict[str, Any] | None = None,
        *,
        compression: str = "zstd",
        redact: bool = True,
    ) -> None:
        self.base = base.rstrip("/")
        self.storage_options = storage_options or {}
        protocol = self.base.split("://", 1)[0] if "://" in self.base else "file"
        if protocol == "file":
            self.fs, self.root = fsspec.core.url_to_fs(self.base, **self.storage_options)
        else:
            # One quick attempt per call inside botocore: an unreachable archive fails the
            # run in seconds (the next run tries again), not after minutes of retries.
            self.fs = open_fs(self.base, self.storage_options)
            self.root = self.fs._strip_protocol(self.base)
        self.local = "file" in _protocols(self.fs)
        self.codec = codec_for(compression)
        self.redact = redact
        self.writes = 0  # objects written by this store (tests count double work with it)

    def uri_for(self, namespace: str, run_id: str, path: str, fp: str, version: int) -> str:
        """Where a source's ``version`` goes: readable, and unique per (source, version)."""
        name = _UNSAFE.sub("_", posixpath.basename(path.rstrip("/"))) or "log"
        parts = [_UNSAFE.sub("_", namespace or "default"), run_id or "unknown"]
        leaf = f"{name}.{fp[:16]}.v{version}{_EXT[self.codec]}"
        return "/".join([self.base, *parts, leaf])

    def _path(self, uri: str) -> str:
        return self.root + uri[len(self.base) :]

    def existing(self, uri: str, source_fp: str, nbytes: int) -> Archived | None:
        """The verified archive at ``uri`` if a finished earlier run left it for these bytes."""
        try:
            with self.fs.open(self._path(uri) + ".json", "rb") as fh:
                doc = json.loads(fh.read())
            size = self.fs.size(self._path(uri))
        except (FileNotFoundError, ValueError):
            return None
        except OSError as exc:
            if self.local:
                return None  # written again; a write that fails says why
            raise self.unavailable(exc) from exc
        except Exception as exc:  # botocore/aiohttp errors from an object store
            raise self.unavailable(exc) from exc
        if doc.get("version_of_manifest") != MANIFEST_VERSION:
            return None
        doc.pop("version_of_manifest")
        try:
            found = Archived(**doc)
        except TypeError:
            return None
        if found.source_fp != source_fp or found.bytes != nbytes or found.archive_bytes != size:
            return None
        return found

    def write(
        self,
        access: SourceAccess,
        path: str,
        uri: str,
        *,
        source_fp: str,
        version: int,
        nbytes: int,
        now: float | None = None,
    ) -> Archived:
        """Archive the first ``nbytes`` of ``path`` at ``uri``; verified, with its manifest."""
        target = self._path(uri)
        temp = f"{target}.tmp-{os.getpid()}" if self.local else target
        content = hashlib.sha256()
        redactor = StreamRedactor() if self.redact else None
        try:
            if self.local:  # object stores have no folders (and s3fs would create a bucket)
                self.fs.makedirs(posixpath.dirname(target), exist_ok=True)
            with self.fs.open(temp, "wb") as fh:
                sink = _Hashing(fh)
                with _compressor(sink, self.codec) as out:
                    for chunk in access.text(path, nbytes):
                        data = redactor.feed(chunk) if redactor else chunk
                        content.update(data)
                        out.write(data)
                    if redactor:
                        tail = redactor.flush()
                        content.update(tail)
                        out.write(tail)
                if self.local:
                    fh.flush()
                    os.fsync(fh.fileno())
            if self.local:
                os.replace(temp, target)
        except SourceReadError:
            self._remove(temp)
            raise
        except LoglakeError:
            self._remove(temp)
            raise
        except Exception as exc:  # OSError locally; botocore/aiohttp errors on a store
            self._remove(temp)
            raise self.unavailable(exc) from exc
        self.writes += 1
        crash_point("retain:after_write")
        done = Archived(
            uri=uri,
            source_fp=source_fp,
            version=version,
            bytes=nbytes,
            archive_bytes=sink.count,
            sha256=sink.sha.hexdigest(),
            content_sha256=content.hexdigest(),
            compression=self.codec,
            redactions=redactor.count if redactor else 0,
            archived_at=time.time() if now is None else now,
            write_id=uuid.uuid4().hex,
        )
        self.verify(done)
        manifest = json.dumps(done.to_dict(), sort_keys=True).encode()
        try:
            with self.fs.open(target + ".json", "wb") as fh:
                fh.write(manifest)
        except Exception as exc:  # OSError locally; botocore/aiohttp errors on a store
            raise self.unavailable(exc) from exc
        crash_point("retain:after_manifest")
        return done

    def unavailable(self, exc: BaseException) -> ArchiveUnavailable:
        """One line naming the archive location, what is wrong with it and the fix."""
        text = (str(getattr(exc, "strerror", None) or exc).strip().splitlines() or [""])[0]
        text = text or type(exc).__name__
        low = f"{type(exc).__name__} {exc}".lower()
        endpoint = None if self.local else endpoint_of(self._delta_style_options())
        where = f" at {endpoint}" if endpoint else ""
        later = "nothing was lost: the logs are archived on the next retention run"
        if not self.local and (
            isinstance(exc, FileNotFoundError)
            or "nosuchbucket" in low
            or "bucket does not exist" in low
        ):
            bucket = self.base.split("://", 1)[-1].split("/", 1)[0]
            return ArchiveUnavailable(
                f"archive {self.base}: the bucket {bucket!r} does not exist{where} ({text})",
                fix=f"create it, or fix [retention] archive in the config; {later}",
            )
        if isinstance(exc, PermissionError) or "accessdenied" in low or "forbidden" in low:
            return ArchiveUnavailable(
                f"archive {self.base}: access denied{where} ({text})",
                fix="grant write access or fix [retention] storage_options (credentials); " + later,
            )
        if not self.local and transient(exc):
            return ArchiveUnavailable(
                f"archive {self.base}: cannot reach the object store{where} ({text})",
                fix="check the endpoint ([retention] storage_options AWS_ENDPOINT_URL, else the "
                f"lake's) and the network; {later}",
            )
        return ArchiveUnavailable(
            f"archive {self.base}: cannot write there ({text})",
            fix=f"make it writable or point [retention] archive at a writable location; {later}",
        )

    def _delta_style_options(self) -> dict[str, Any]:
        client = self.storage_options.get("client_kwargs") or {}
        url = client.get("endpoint_url") if isinstance(client, dict) else None
        return {"AWS_ENDPOINT_URL": url} if url else dict(self.storage_options)

    def verify(self, archived: Archived) -> None:
        """Read the object back; both hashes must match what was written, else it is removed."""
        target = self._path(archived.uri)
        raw = hashlib.sha256()
        content = hashlib.sha256()
        try:
            with self.fs.open(target, "rb") as fh:
                reader = _HashingReader(fh, raw)
                for chunk in decompressed(reader, archived.compression):
                    content.update(chunk)
                reader.drain()
        except (OSError, ValueError, EOFError, pa.ArrowInvalid, zlib.error) as exc:
            if not self.local and transient(exc):
                raise self.unavailable(exc) from exc
            self._remove(target)
            raise ArchiveError(
                f"archive {archived.uri} cannot be read back: {exc}",
                fix="check the archive storage; the log is archived again on the next run",
            ) from exc
        except Exception as exc:  # botocore/aiohttp errors on a store: the object may be fine
            raise self.unavailable(exc) from exc
        if raw.hexdigest() != archived.sha256 or content.hexdigest() != archived.content_sha256:
            self._remove(target)
            raise ArchiveError(
                f"archive {archived.uri} did not read back identical (sha256 mismatch)",
                fix="check the archive storage for corruption; the log is archived again on "
                "the next retention run",
            )

    def read_text(self, uri: str) -> bytes:
        """The archived (decompressed) bytes of ``uri`` — for checks and restores."""
        with self.fs.open(self._path(uri), "rb") as fh:
            data = fh.read()
        codec = "gzip" if data[:2] == _MAGIC_GZIP else "zstd"
        return b"".join(decompressed(io.BytesIO(data), codec))

    def _remove(self, path: str) -> None:
        try:
            self.fs.rm(path)
        except (OSError, ValueError):
            pass


def _protocols(fs: Any) -> tuple[str, ...]:
    proto = fs.protocol
    return (proto,) if isinstance(proto, str) else tuple(proto)
