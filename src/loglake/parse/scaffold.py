"""``loglake parsers new``: a declarative parser file to start from, whose test already passes.

The file is a worked example rather than a blank form: a metric rule with ``pairs``, a param
rule, a status rule, and a ``[[test]]`` that pins them down, so a team edits something that
works and sees ``loglake parsers test`` go red or green as they change it.
"""

from __future__ import annotations

import re
from pathlib import Path

from loglake.errors import ExitCode, LoglakeError, ParserLoadError

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-]*$")
#: a label, then a number: "loss=0.5", "acc: 0.9", "loss 2.31"
_LOOKS_LIKE_DATA = re.compile(r"[A-Za-z_][\w/.-]*(?:\s*[=:]\s*|\s+)-?\.?\d")
SAMPLE_LINES = 8


class ScaffoldError(LoglakeError):
    """The parser file cannot be created where asked."""

    exit_code = ExitCode.USAGE


TEMPLATE = """\
# {name}: a loglake parser (format: docs/writing-parsers.md).
#
# Try it:   loglake parsers test --embedded --parser {path}
#           loglake parsers test YOUR.log --parser {path}
# Use it:   [parsers] dirs = ["{folder}"] in loglake.toml, plus a route (see the docs).
# Changed a rule after indexing? Bump version, then: loglake reindex --parser {name}
name = "{name}"
version = "1"
# 10-60: a specific parser. The lines it extracts are claimed, and the generic fallback
# parsers (priority 90+) skip them, so no value is counted twice.
priority = 50
description = "What {name} reads, e.g. the team-a trainer's step lines"

# Without a route in the config, the parser runs on files whose first lines match this.
[detect]
first_lines = '^step \\d+'
{sample}
# "step 10 loss=0.52 acc=0.81" -> metrics loss and acc at step 10. Regexes are Python syntax
# in 'single quotes' (no escaping needed); {{NUMBER}} matches any printed number.
[[rule]]
name = "step line"
match = '^step (?P<step>\\d+)\\b'
pairs = '(?P<key>[A-Za-z_][\\w./-]*)=(?P<value>{{NUMBER}})'
key = "{{key}}"
value = "{{value}}"

# "config: lr=0.001 batch_size=32" -> params lr and batch_size
[[rule]]
name = "config line"
match = '^config: (?P<rest>.*)'
emit = "param"
pairs_in = "rest"
pairs = '(?P<key>\\w+)=(?P<value>\\S+)'
key = "{{key}}"
value = "{{value}}"

[[rule]]
name = "finished"
match = '^training finished'
emit = "status"
status = "completed"

# Sample lines and the records they must give; `loglake parsers test --embedded` checks them.
[[test]]
name = "sample lines"
lines = [
  "config: lr=0.001 batch_size=32",
  "step 10 loss=0.52 acc=0.81",
  "step 20 loss=0.41 acc=0.85",
  "training finished",
]
expect = [
  {{ kind = "param", key = "lr", value = "0.001" }},
  {{ kind = "param", key = "batch_size", value = "32" }},
  {{ kind = "metric", key = "loss", value = 0.52, step = 10 }},
  {{ kind = "metric", key = "acc", value = 0.81, step = 10 }},
  {{ kind = "metric", key = "loss", value = 0.41, step = 20 }},
  {{ kind = "metric", key = "acc", value = 0.85, step = 20 }},
  {{ kind = "status", status = "completed" }},
]
"""


def _sample_block(sample: Path) -> str:
    """Lines of the team's log that look like data, as comments to write rules against."""
    try:
        with sample.open(encoding="utf-8", errors="replace") as f:
            picked: list[str] = []
            for i, line in enumerate(f):
                text = line.rstrip("\r\n")
                if _LOOKS_LIKE_DATA.search(text):
                    picked.append(f"#   {text[:160]}")
                if len(picked) >= SAMPLE_LINES or i > 100_000:
                    break
    except OSError as e:
        raise ScaffoldError(
            f"{sample}: cannot read: {e.strerror or e}", fix="check the path"
        ) from e
    if not picked:
        return ""
    return (
        "\n# Lines of "
        + sample.name
        + " that look like data, to write rules for:\n"
        + "\n".join(picked)
        + "\n"
    )


def scaffold_parser(
    name: str, directory: str | Path = ".", *, sample: str | Path | None = None
) -> Path:
    """Write ``<directory>/<name>.toml``; refuses to overwrite. Its embedded test passes."""
    from loglake.parse.declarative import load_parser_file

    if not _NAME.match(name):
        raise ParserLoadError(
            f"{name!r} is not a parser name",
            fix="start with a letter; then letters, digits, '_', '-' or '.' (e.g. team_a)",
        )
    folder = Path(directory)
    path = folder / f"{name}.toml"
    if path.exists():
        raise ScaffoldError(f"{path} already exists", fix="pick another name or --dir")
    folder.mkdir(parents=True, exist_ok=True)
    block = _sample_block(Path(sample)) if sample else ""
    path.write_text(TEMPLATE.format(name=name, path=path, folder=folder, sample=block))
    failures = load_parser_file(path, trusted=False).run_embedded_tests()
    if failures:  # the template itself is wrong: a loglake bug, not the user's
        path.unlink()
        raise LoglakeError(
            "the parser template fails its own test: " + "; ".join(map(str, failures))
        )
    return path


def next_steps(path: Path, name: str) -> list[str]:
    """What to do after ``parsers new``, as printed by the CLI."""
    folder = path.parent
    return [
        f"created {path}",
        "next:",
        "  1. edit its [[rule]] blocks and its [[test]] lines to match your log",
        f"  2. loglake parsers test YOUR.log --parser {path}",
        f"  3. loglake parsers test --embedded --parser {path}",
        "  4. in loglake.toml:",
        "       [parsers]",
        f'       dirs = ["{folder}"]',
        "       [[parsers.route]]",
        '       match = "team-a/**"       # paths under a source folder; or namespace = "..."',
        f'       parsers = ["{name}"]',
        "  5. loglake index",
        f"  6. changed a rule later? bump version, then: loglake reindex --parser {name}",
    ]
