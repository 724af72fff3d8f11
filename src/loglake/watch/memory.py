"""Keeping a long-running daemon's resident memory close to what it uses.

glibc gives each thread its own malloc arena and keeps freed memory in them; a daemon whose
flush thread builds and drops large Arrow tables every few seconds would look, to the kernel,
as big as its largest flush ever was. Fewer arenas and a periodic ``malloc_trim`` hand that
memory back. Both are no-ops where glibc is not the allocator.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time

import pyarrow as pa

_M_ARENA_MAX = -8
TRIM_EVERY = 5.0


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    return lib if hasattr(lib, "malloc_trim") and hasattr(lib, "mallopt") else None


_LIBC = _libc()


def limit_arenas(n: int = 2) -> None:
    """Call before starting threads."""
    if _LIBC is not None:
        _LIBC.mallopt(_M_ARENA_MAX, n)


class Trimmer:
    """Hands freed memory back after work that allocated (flushes), never on a bare timer:
    on a large heap a trim costs tens of milliseconds, which an idle daemon must not spend."""

    def __init__(self, every: float = TRIM_EVERY) -> None:
        self.every = every
        self._seen: int | None = None
        self._last = 0.0

    def maybe(self, activity: int) -> bool:
        """Trim if ``activity`` (a counter of allocating work) moved since the last trim."""
        now = time.monotonic()
        if activity == self._seen or now - self._last < self.every:
            return False
        self._seen, self._last = activity, now
        trim()
        return True


def trim() -> None:
    """Return freed memory (Arrow's pool, the C heap) to the system."""
    pa.default_memory_pool().release_unused()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
