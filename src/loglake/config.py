"""Configuration: one TOML file validated by pydantic, embedded defaults, LOGLAKE_* overrides.

Every error names the key and the fix (Vector's `validate`), and exits 78 so systemd does not
restart-loop on a typo.
"""

from __future__ import annotations

import hashlib
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from loglake.errors import ConfigError

ENV_PREFIX = "LOGLAKE_"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}


def parse_duration(value: str | float) -> float:
    """Seconds from ``90``, ``"90s"``, ``"5m"``, ``"21d"``."""
    if isinstance(value, int | float):
        return float(value)
    m = _DURATION.match(str(value))
    if not m:
        raise ValueError(f"{value!r} is not a duration; write e.g. 30s, 5m, 2h, 21d")
    return float(m.group(1)) * _UNITS[m.group(2)]


_SCHEME_TYPO = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]+)(:/(?!/)|//)")


def check_location(value: str) -> str:
    """A folder or fsspec URL, with its protocol known: ``s3//b/x`` is not a local folder."""
    v = value.strip()
    if not v:
        raise ValueError("is empty; write a folder or a URL such as s3://bucket/prefix")
    typo = _SCHEME_TYPO.match(v)
    if not typo and "://" not in v:
        return v  # a plain folder: no fsspec import on every command's config load
    import fsspec

    if typo and "://" not in v and typo.group(1).lower() in fsspec.available_protocols():
        rest = v[typo.end() :].lstrip("/")
        raise ValueError(f"{v!r} looks like a mistyped URL; write {typo.group(1)}://{rest}")
    if "://" in v:
        protocol = v.split("://", 1)[0].lower()
        if protocol not in fsspec.available_protocols():
            raise ValueError(
                f"{v!r}: unknown protocol {protocol}://; use a folder or an fsspec URL "
                "(s3://, gs://, az://, file://…)"
            )
    return v


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SourceConfig(_Model):
    """A place logs come from, and how its paths map to runs."""

    name: str = "logs"
    paths: list[str] = Field(default_factory=lambda: ["./logs"])
    include: list[str] = Field(
        default_factory=lambda: ["*.log", "*.out", "*.err", "*.txt", "*.jsonl", "*.gz"]
    )
    exclude: list[str] = Field(default_factory=list)
    #: e.g. "{namespace}_{run}-{rank}_{uid}/{container}/{restart}.log", relative to a path root
    template: str | None = None
    namespace: str = "default"
    #: parsers this source always uses (by name), on top of auto-detection
    parsers: list[str] = Field(default_factory=list)
    auto_detect: bool = True
    observer: Literal["native", "polling"] = "native"
    #: object-store sources only: credentials/endpoint in deltalake's spelling, on top of the
    #: top-level storage_options (see docs/object-storage.md)
    storage_options: dict[str, Any] = Field(default_factory=dict)
    #: object-store sources only: which objects are chunks of one stream — "auto" (shipper
    #: layouts: time partitions, -objectNNN, UUIDs, epochs), "none", or a regex whose
    #: (?P<stream>...) group names the stream (docs/object-storage.md)
    chunks: str = "auto"
    #: object-store sources only: how often `loglake watch` lists them (no events on S3)
    poll_interval: str = "30s"

    @field_validator("chunks")
    @classmethod
    def _check_chunks(cls, v: str) -> str:
        if v.strip().lower() in ("auto", "none"):
            return v.strip().lower()
        import re

        try:
            pattern = re.compile(v)
        except re.error as e:
            raise ValueError(f"chunks {v!r} is not a valid regex ({e}); or use auto/none") from None
        if "stream" not in pattern.groupindex:
            raise ValueError(
                f"chunks {v!r} needs a (?P<stream>...) group naming the stream, "
                'e.g. "(?P<stream>[^/]+)/\\d{4}/.*"; or use "auto" or "none"'
            )
        return v

    @field_validator("poll_interval")
    @classmethod
    def _dur(cls, v: str) -> str:
        if parse_duration(v) <= 0:
            raise ValueError(f"{v!r}: an object store is listed at most this often; write e.g. 30s")
        return v

    @field_validator("template")
    @classmethod
    def _check_template(cls, v: str | None) -> str | None:
        if v is None:
            return v
        from loglake.runs.template import compile_template

        compile_template(v)  # raises ValueError with the fix
        return v


class IndexConfig(_Model):
    jobs: int = Field(0, ge=0, description="worker processes; 0 = one per core")
    max_line_bytes: int = Field(1 << 20, ge=1024)
    #: a log not modified for this long is finished (its job ended)
    job_end_timeout: str = "5m"
    #: flush to the lake when this many records are buffered
    flush_records: int = Field(100_000, ge=1)
    #: an object store that does not answer is retried (with backoff) this long, then the
    #: URL is reported as failed; `loglake watch` retries on its next poll instead
    object_retry: str = "60s"

    @field_validator("job_end_timeout", "object_retry")
    @classmethod
    def _dur(cls, v: str) -> str:
        parse_duration(v)
        return v


class WatchConfig(_Model):
    """The daemon (`loglake watch`): how often it looks, flushes and gives up on a quiet log."""

    #: a buffered record is committed to the lake within about this long
    flush_interval: str = "5s"
    #: ... or as soon as this many rows are buffered
    flush_records: int = Field(100_000, ge=1)
    #: rows held in memory before reading pauses (backpressure from a slow lake)
    max_buffer_bytes: int = Field(64 << 20, ge=1 << 20)
    #: full listing of every source: the authority behind filesystem events
    rescan_interval: str = "10s"
    #: how often a `observer = "polling"` source is polled
    poll_interval: str = "1s"
    #: files not modified for this long when first seen are not read (e.g. "7d"); off by default
    ignore_older: str | None = None
    #: where to start in files already there at the first start (no checkpoint yet)
    start_position: Literal["beginning", "end"] = "beginning"
    #: a live log idle this long is finalized (killed/completed); default: index.job_end_timeout
    idle_timeout: str | None = None
    max_open_files: int = Field(4096, ge=16)
    #: Prometheus endpoint, e.g. "127.0.0.1:9464"; off by default
    metrics_listen: str | None = None

    @field_validator(
        "flush_interval", "rescan_interval", "poll_interval", "ignore_older", "idle_timeout"
    )
    @classmethod
    def _dur(cls, v: str | None) -> str | None:
        if v is not None:
            parse_duration(v)
        return v

    @field_validator("metrics_listen")
    @classmethod
    def _listen(cls, v: str | None) -> str | None:
        if v is None:
            return v
        host, sep, port = v.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{v!r} is not host:port; write e.g. 127.0.0.1:9464")
        return v


class RetentionConfig(_Model):
    """Raw logs archived before the cluster deletes them (docs/retention.md)."""

    #: run the retention job on the daemon's scheduler
    enabled: bool = True
    #: where archives go: a folder or any fsspec URL; default: <lake>/archive
    archive: str | None = None
    #: the cluster deletes a log this long after its last modification (mtime); "0" = never
    expire_after: str = "21d"
    #: archive at the latest this long before expiry, even if the job still runs
    safety_margin: str = "2d"
    #: a log idle this long is finished and archived; default: watch.idle_timeout, else
    #: index.job_end_timeout
    idle_after: str | None = None
    #: how often the daemon runs the retention job
    interval: str = "10m"
    #: "zstd" (default, needs pyarrow's zstd codec) or "gzip"
    compression: Literal["zstd", "gzip"] = "zstd"
    #: replace tokens, passwords and cloud keys in archived text (see loglake/redact.py)
    redact: bool = True
    #: fsspec options for the archive URL; default: the lake's storage_options
    storage_options: dict[str, Any] | None = None
    #: archived logs recorded per lake commit
    commit_every: int = Field(32, ge=1)

    @field_validator("expire_after", "safety_margin", "idle_after", "interval")
    @classmethod
    def _dur(cls, v: str | None) -> str | None:
        if v is not None:
            parse_duration(v)
        return v

    @field_validator("archive")
    @classmethod
    def _check_archive(cls, v: str | None) -> str | None:
        return None if v is None else check_location(v)

    @model_validator(mode="after")
    def _margin_inside_expiry(self) -> RetentionConfig:
        expire, margin = parse_duration(self.expire_after), parse_duration(self.safety_margin)
        if expire > 0 and margin >= expire:
            # The deadline would fall before the last write: every log archived while written.
            raise ValueError(
                f"safety_margin ({self.safety_margin}) must be shorter than expire_after "
                f'({self.expire_after}); e.g. expire_after = "21d", safety_margin = "2d"'
            )
        return self


class HousekeepingConfig(_Model):
    """Lake upkeep on the daemon's scheduler: compaction, vacuum, optional index retention."""

    enabled: bool = True
    #: compact small Parquet files this often ("0" = never)
    optimize_interval: str = "6h"
    #: delete files no longer referenced this often ("0" = never)
    vacuum_interval: str = "1d"
    #: ... once no table version younger than this needs them (open readers keep working)
    vacuum_retention: str = "7d"
    #: drop rows of runs whose last observation is older than this (e.g. "365d"); off if unset
    index_retention: str | None = None
    #: the tables index retention applies to (runs, tags, notes and logs are always kept)
    index_retention_tables: list[str] = Field(default_factory=lambda: ["metrics"])

    @field_validator("optimize_interval", "vacuum_interval", "vacuum_retention", "index_retention")
    @classmethod
    def _dur(cls, v: str | None) -> str | None:
        if v is not None:
            parse_duration(v)
        return v

    @field_validator("index_retention_tables")
    @classmethod
    def _tables(cls, v: list[str]) -> list[str]:
        kept = {"runs", "tags", "notes", "logs"}
        allowed = {"metrics", "params", "packages", "datasets", "artifacts", "parse_errors", "gaps"}
        bad = [t for t in v if t not in allowed]
        if bad:
            why = "are always kept" if set(bad) <= kept else "are not lake tables"
            raise ValueError(f"{bad} {why}; choose among {sorted(allowed)}")
        return v


class RouteConfig(_Model):
    """Which parsers a group of logs uses, chosen by path pattern, source and/or namespace.

    Every condition given must hold; a file matched by several routes gets all their parsers.
    """

    #: globs over the path relative to its source folder (or absolute), e.g. "team-a/**"
    match: list[str] = Field(default_factory=list)
    source: str | None = None  # a [[sources]] name
    namespace: str | None = None  # a glob over the run's namespace
    parsers: list[str] = Field(min_length=1)
    #: false: matching files get only the routed parsers (and their source's), no auto-detection
    auto_detect: bool = True

    @field_validator("match", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @model_validator(mode="after")
    def _has_condition(self) -> RouteConfig:
        if not (self.match or self.source or self.namespace):
            raise ValueError(
                'a route needs match = "team-a/**", source = "..." or namespace = "..."; '
                "to use a parser everywhere, list it in [[sources]] parsers"
            )
        return self


class ParsersConfig(_Model):
    dirs: list[str] = Field(default_factory=list)
    disable: list[str] = Field(default_factory=list)
    regex_timeout: float = Field(0.05, gt=0)
    route: list[RouteConfig] = Field(default_factory=list)


class Config(_Model):
    lake: str = "./lake"
    #: checkpoints and spool; default: <lake>/_loglake for a local lake, else a user cache dir
    state_dir: str | None = None
    storage_options: dict[str, Any] = Field(default_factory=dict)
    sources: list[SourceConfig] = Field(default_factory=lambda: [SourceConfig()])
    index: IndexConfig = Field(default_factory=IndexConfig)
    parsers: ParsersConfig = Field(default_factory=ParsersConfig)
    watch: WatchConfig = Field(default_factory=WatchConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    housekeeping: HousekeepingConfig = Field(default_factory=HousekeepingConfig)
    #: metrics defined after the fact: name → SQL expression over metric keys at one step,
    #: e.g. gap = "train_accuracy - val_accuracy"
    derived: dict[str, str] = Field(default_factory=dict)

    @field_validator("lake")
    @classmethod
    def _check_lake(cls, v: str) -> str:
        return check_location(v)

    @field_validator("derived")
    @classmethod
    def _check_derived(cls, v: dict[str, str]) -> dict[str, str]:
        for name, expr in v.items():
            if not name.strip() or not expr.strip():
                raise ValueError(f"derived metric {name!r} needs a name and an SQL expression")
        return v

    def state_path(self) -> Path:
        if self.state_dir:
            return Path(self.state_dir).expanduser()
        if "://" not in self.lake or self.lake.startswith("file://"):
            return Path(self.lake.removeprefix("file://")).expanduser() / "_loglake"
        digest = hashlib.sha256(self.lake.encode()).hexdigest()[:12]
        base = Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state"))
        return base / "loglake" / digest


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    """``LOGLAKE_LAKE=s3://x`` → lake; ``LOGLAKE_INDEX__JOBS=4`` → index.jobs."""
    out: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name == "LOGLAKE_CONFIG":
            continue
        if name.startswith(("LOGLAKE_CRASH", "LOGLAKE_TEST")):
            continue
        path = name[len(ENV_PREFIX) :].lower().split("__")
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(merged.get(k), dict):
            merged[k] = _merge(merged[k], v)
        else:
            merged[k] = v
    return merged


def _format_error(origin: str, err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        kind = e["type"]
        if kind == "extra_forbidden":
            fix = "remove it or check the spelling (see config/loglake.example.toml)"
        elif kind == "missing":
            fix = "add it"
        else:
            fix = "fix the value"
        msg = e["msg"].removeprefix("Value error, ")
        lines.append(f"{origin}: {key}: {msg} — {fix}")
    return "\n".join(lines)


def load_config(path: str | Path | None = None, environ: dict[str, str] | None = None) -> Config:
    """Load the config: defaults, then the file (if any), then LOGLAKE_* variables."""
    environ = dict(os.environ if environ is None else environ)
    path = path or environ.get("LOGLAKE_CONFIG")
    data: dict[str, Any] = {}
    origin = "defaults"
    if path:
        p = Path(path)
        origin = str(p)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(
                f"{p}: config file not found", fix="check the path or omit --config"
            ) from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{p}: not valid TOML: {e}", fix="fix the syntax") from None
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"{p}: cannot read config: {e}", fix="check permissions") from None
    overrides = _env_overrides(environ)
    if overrides:
        data = _merge(data, overrides)
        origin = f"{origin} + LOGLAKE_* environment"
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_error(origin, e)) from None
