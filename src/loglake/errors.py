"""One root error so the CLI can turn any failure into a one-line message and an exit code."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes mean something (pytest's ExitCode, sysexits.h for config)."""

    OK = 0
    PARTIAL = 1  # the job ran, but some inputs failed (named on stderr)
    USAGE = 2
    NO_INPUT = 66  # EX_NOINPUT: nothing matched the given paths
    SOFTWARE = 70  # EX_SOFTWARE: a bug; please report it
    CONFIG = 78  # EX_CONFIG, as Vector's `validate`: systemd must not restart-loop on it


class LoglakeError(Exception):
    """Root of every error loglake raises on purpose.

    ``fix`` is the next step for the user; the CLI prints ``message (fix)`` on one line.
    """

    exit_code: ExitCode = ExitCode.SOFTWARE

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def one_line(self) -> str:
        text = self.message if not self.fix else f"{self.message} — {self.fix}"
        return " ".join(text.split())


class ConfigError(LoglakeError):
    """A bad config file or environment override."""

    exit_code = ExitCode.CONFIG


class ParserLoadError(LoglakeError):
    """A parser definition or plugin that cannot be loaded."""

    exit_code = ExitCode.CONFIG


class SourceError(LoglakeError):
    """An input path or URL that cannot be read."""

    exit_code = ExitCode.PARTIAL


class LakeError(LoglakeError):
    """The lake cannot be read or written."""

    exit_code = ExitCode.SOFTWARE
