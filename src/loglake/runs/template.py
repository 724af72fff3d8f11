"""Path templates: ``{namespace}/{experiment}/{run}/rank-{rank}.log`` → identity fields.

A template is matched against a file's path (relative to the source root, or absolute when
the template starts with ``/`` or a URL scheme). ``{name}`` matches one path segment (or part
of one); ``{**}`` matches any number of directories; ``*`` is a wildcard inside a segment.
"""

from __future__ import annotations

import re
from functools import lru_cache

KNOWN_FIELDS = ("namespace", "experiment", "run", "rank", "container", "restart", "uid", "team")
_FIELD = re.compile(r"\{(\*\*|\*|[A-Za-z_][A-Za-z0-9_]*)\}")
_NARROW = {"rank": r"\d+", "restart": r"\d+", "uid": r"[0-9a-fA-F-]+"}


@lru_cache(maxsize=256)
def compile_template(template: str) -> re.Pattern[str]:
    """Compile a template to an anchored regex; ``ValueError`` (with the fix) if malformed."""
    out: list[str] = []
    pos = 0
    seen: set[str] = set()
    for m in _FIELD.finditer(template):
        literal = template[pos : m.start()]
        if "{" in literal or "}" in literal:
            raise ValueError(
                f"template {template!r}: stray brace near {literal!r}; "
                "write fields as {name}, e.g. {experiment}/{run}.log"
            )
        out.append(re.escape(literal).replace(r"\*", "[^/]*"))
        name = m.group(1)
        if name == "**":
            out.append(".*?")
        elif name == "*":
            out.append("[^/]*?")
        else:
            if name in seen:
                out.append(f"(?P={name})")
            else:
                seen.add(name)
                out.append(f"(?P<{name}>{_NARROW.get(name, '[^/]+?')})")
        pos = m.end()
    tail = template[pos:]
    if "{" in tail or "}" in tail:
        raise ValueError(
            f"template {template!r}: stray brace in {tail!r}; write fields as {{name}}"
        )
    out.append(re.escape(tail).replace(r"\*", "[^/]*"))
    if not seen and "**" not in template:
        raise ValueError(
            f"template {template!r} names no field; use e.g. {{experiment}}/{{run}}.log"
        )
    try:
        return re.compile("^" + "".join(out) + "$")
    except re.error as e:  # pragma: no cover - escaped literals cannot fail
        raise ValueError(f"template {template!r}: {e}") from None


def match_template(template: str, path: str) -> dict[str, str] | None:
    """Fields of ``path`` under ``template``, or ``None`` when it does not match."""
    m = compile_template(template).match(path)
    return None if m is None else {k: v for k, v in m.groupdict().items() if v is not None}
