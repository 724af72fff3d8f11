"""Telling a text log from a file that is not one, before parsers see garbage."""

from __future__ import annotations

_MAGIC_COMPRESSED = (b"\x1f\x8b", b"\x28\xb5\x2f\xfd")
_ALLOWED_CONTROL = set(b"\t\n\r\x1b\x08\x0c\x07")


def looks_binary(head: bytes) -> bool:
    """True for data that is not text: many NULs/control bytes or mostly invalid UTF-8.

    Compressed logs are text once decompressed, so their magic numbers pass. NUL runs
    alone (copytruncate holes) are not binary, so a file that *starts* with a NUL run is
    judged on the bytes after it.
    """
    if not head or head.startswith(_MAGIC_COMPRESSED):
        return False
    body = head.lstrip(b"\x00")
    if not body:
        return False
    control = sum(1 for b in body if b < 32 and b not in _ALLOWED_CONTROL)
    if control / len(body) > 0.10:
        return True
    text = body.decode("utf-8", errors="replace")
    bad = text.count("\ufffd")
    return bad / max(len(text), 1) > 0.30


def read_head(path: str, n: int = 8192) -> bytes:
    with open(path, "rb") as f:
        return f.read(n)
