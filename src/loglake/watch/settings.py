"""The daemon's settings as numbers: durations parsed once, defaults resolved from the config."""

from __future__ import annotations

from dataclasses import dataclass

from loglake.config import Config, parse_duration


@dataclass(frozen=True, slots=True)
class WatchSettings:
    flush_interval: float
    flush_records: int
    max_buffer_bytes: int
    rescan_interval: float
    poll_interval: float
    ignore_older: float | None
    start_at_end: bool
    idle_timeout: float
    max_open_files: int
    max_line: int
    metrics_listen: str | None

    @property
    def rotate_wait(self) -> float:
        """How long a rotated or deleted file may keep growing before it is finalized.

        A writer may go on writing to a renamed file until it reopens its log (logrotate's
        postrotate signal), so its tail is read for a while; never longer than a live log's
        idle timeout.
        """
        return min(self.rescan_interval, self.idle_timeout)

    @classmethod
    def from_config(cls, config: Config) -> WatchSettings:
        w = config.watch
        return cls(
            flush_interval=parse_duration(w.flush_interval),
            flush_records=w.flush_records,
            max_buffer_bytes=w.max_buffer_bytes,
            rescan_interval=parse_duration(w.rescan_interval),
            poll_interval=parse_duration(w.poll_interval),
            ignore_older=parse_duration(w.ignore_older) if w.ignore_older else None,
            start_at_end=w.start_position == "end",
            idle_timeout=parse_duration(w.idle_timeout or config.index.job_end_timeout),
            max_open_files=w.max_open_files,
            max_line=config.index.max_line_bytes,
            metrics_listen=w.metrics_listen,
        )
