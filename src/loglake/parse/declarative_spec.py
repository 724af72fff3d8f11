"""The shape of a declarative parser file, checked at the edge so mistakes name file, rule and fix.

A parser is one TOML file::

    name = "xgboost"
    priority = 20
    framework = "xgboost"            # fact framework=xgboost once a rule emits something

    [detect]                         # omit: the parser looks at every file
    path_glob = ["*.log"]
    first_lines = '^\\[\\d+\\]\\t'  # searched in the first `head_lines` lines
    anywhere = false                 # true: the marker may come late; do not reject on the head

    [[section]]                      # a few lines after `start` where `section=` rules apply
    name = "best"
    start = '^Early stopping, best iteration is:'
    max_lines = 1                    # lines skipped by the prefilter count too
    # bind = "done"                  # the first section-rule match fixes group `done`; a
                                     # match with another value closes the section first

    [[table]]                        # header row names the columns of the numeric rows below it
    name = "gb"
    header = '^\\s*Iter\\s+Train Loss'
    step = "Iter"
    skip = ["Remaining Time"]

    [[rule]]
    name = "eval line"
    match = '^\\[(?P<step>\\d+)\\]\\t'
    pairs = '(?P<key>[\\w.-]+):(?P<value>{NUMBER})'   # finditer over the rest of the line
    emit = "metric"

Rules are tried in file order; the first that matches a line ends the search unless it says
``stop = false``. A rule with ``redraws = true`` also reads the earlier states of a line that
was redrawn with carriage returns (a tqdm bar kept for the whole run holds each epoch's final
values only there); of consecutive matching states with the same step/epoch only the last
counts, and ``once = true`` keeps a state repeated across lines from counting twice.

Templates (``key``, ``value``, ``step`` …) are text with ``{group}`` fields
taken from the match (or the current ``pairs`` match), ``{0}`` for the whole line, and
filters: ``{label|snake}`` (``Train Loss`` → ``train_loss``), ``|norm`` (values.normalize_key),
``|lower``, ``|int`` (drops ``,`` thousands separators), ``|hash`` (short stable digest).
``{NUMBER}`` and ``{INT}`` inside patterns expand to values.NUMBER and ``\\d+``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from loglake.errors import ParserLoadError
from loglake.parse.records import STATUSES

EmitKind = Literal[
    "metric",
    "param",
    "status",
    "fact",
    "dataset",
    "artifact",
    "package",
    "subrun",
    "context",
    "skip",
]
StatusName = Literal["running", "completed", "failed", "killed", "pruned", "unknown"]
assert set(StatusName.__args__) == set(STATUSES)  # type: ignore[attr-defined]

RECORD_FIELDS: dict[str, tuple[str, ...]] = {
    "metric": ("key", "value", "step", "epoch", "sub", "line"),
    "param": ("key", "value", "sub", "line"),
    "status": ("status", "reason", "error", "sub", "line"),
    "fact": ("key", "value", "sub", "line"),
    "dataset": ("name", "path", "split", "rows", "cols", "fingerprint", "sub", "line"),
    "artifact": ("path", "artifact_kind", "sub", "line"),
    "package": ("name", "version", "sub", "line"),
    "subrun": ("sub", "name", "experiment", "line"),
    "error": ("message", "line"),
}


def _as_list(v: Any) -> Any:
    return [v] if isinstance(v, str) else v


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DetectSpec(_Strict):
    path_glob: list[str] = []
    first_lines: str | None = None
    head_lines: int = Field(200, ge=1, le=1_000_000)
    anywhere: bool = False

    _list = field_validator("path_glob", mode="before")(_as_list)


class ItemSpec(_Strict):
    """One key/value output of a rule; skipped when a group it names did not take part."""

    key: str
    value: str


class DatasetOut(_Strict):
    name: str | None = None
    path: str | None = None
    split: str | None = None
    rows: str | None = None
    cols: str | None = None
    fingerprint: str | None = None


class ArtifactOut(_Strict):
    path: str = "{path}"
    kind: str | None = None


class PackageOut(_Strict):
    name: str = "{name}"
    version: str = "{version}"


class RuleSpec(_Strict):
    name: str | None = None
    match: str
    contains: list[str] | None = None  # literal prefilter: the line must contain one of these
    section: str | None = None  # only while this [[section]] is open
    emit: EmitKind = "metric"
    pairs: str | None = None
    pairs_in: str | None = None  # run `pairs` over this group instead of the rest of the line
    key: str | None = None
    value: str | None = None
    items: list[ItemSpec] = []
    step: str | None = (
        None  # template, "context" or "none"; default {step} if matched, else context
    )
    epoch: str | None = None
    sub: str | None = None  # sub-run template (a trial or CV candidate inside the log)
    sub_name: str | None = None
    once: bool = False  # emit each (sub, key, step, epoch) once per file
    redraws: bool = False  # also match every earlier redraw state of a \r-redrawn line
    stop: bool = True
    set_context: bool = True  # groups named step/epoch become the context for later lines
    clear: list[Literal["step", "epoch"]] = []
    framework: bool | None = None  # does a match reveal the framework (default: it emits)
    status: StatusName | None = None
    reason: str | None = None
    error: str | None = None
    fact: str | None = None
    dataset: DatasetOut | None = None
    artifact: ArtifactOut | None = None
    package: PackageOut | None = None
    experiment: str | None = None

    _list = field_validator("contains", mode="before")(_as_list)

    @model_validator(mode="after")
    def _fields_fit_kind(self) -> RuleSpec:
        kind = self.emit
        if kind == "status" and self.status is None:
            raise ValueError('emit="status" needs status = "completed" (or failed, killed …)')
        if kind != "status" and (self.status or self.reason or self.error):
            raise ValueError(f'status/reason/error only apply to emit="status", not {kind!r}')
        if kind == "fact" and (self.fact is None or self.value is None):
            raise ValueError('emit="fact" needs fact = "<fact key>" and value = "<template>"')
        if self.fact is not None and kind != "fact":
            raise ValueError(f'fact= only applies to emit="fact", not {kind!r}')
        if (
            kind in ("metric", "param")
            and not self.items
            and (self.key is None) != (self.value is None)
        ):
            raise ValueError(f'emit="{kind}" needs both key= and value= (or items = [...])')
        if kind in ("metric", "param") and not self.items and self.key is None:
            raise ValueError(
                f'emit="{kind}" needs key= and value= templates (e.g. key = "{{key}}", '
                'value = "{value}") or items = [{key=..., value=...}]'
            )
        if self.items and (self.key is not None or self.value is not None):
            raise ValueError("give either key=/value= or items=[...], not both")
        if self.items and kind not in ("metric", "param"):
            raise ValueError(f'items= only applies to emit="metric" or "param", not {kind!r}')
        for attr, want in (
            ("dataset", "dataset"),
            ("artifact", "artifact"),
            ("package", "package"),
        ):
            if getattr(self, attr) is not None and kind != want:
                raise ValueError(f'[rule.{attr}] only applies to emit="{want}", not {kind!r}')
        if self.redraws and self.section is not None:
            raise ValueError(
                "redraws = true reads the earlier states of a redrawn line, outside any "
                "section; drop section= or redraws="
            )
        if self.pairs_in and not self.pairs:
            raise ValueError("pairs_in= names the group `pairs` runs over; add pairs= or drop it")
        return self


class SectionSpec(_Strict):
    name: str
    start: str
    end: str | None = None  # a line matching this closes the section (and is parsed normally)
    max_lines: int = Field(50, ge=1, le=100_000_000)
    contains: list[str] | None = None
    bind: str | None = None  # group fixed by the section's first rule match (see module doc)

    _list = field_validator("contains", mode="before")(_as_list)


class TableSpec(_Strict):
    name: str
    header: str
    contains: list[str] | None = None
    columns: str = r"\s{2,}"  # how header cells are separated
    cells: str = r"\s+"  # how row cells are separated
    step: str | None = None  # the column holding the step (as printed)
    epoch: str | None = None
    skip: list[str] = []  # columns never emitted (times, ETAs)
    key: str = "{column|snake}"
    max_gap: int = Field(20, ge=0, le=100_000)  # non-row lines tolerated inside the table

    _list = field_validator("contains", mode="before")(_as_list)


class TestSpec(_Strict):
    name: str | None = None
    path: str | None = None  # when given, detect() must accept this path with these lines
    lines: list[str]
    expect: list[dict[str, Any]] = []
    exact: bool = True  # every record of the checked kinds must be expected

    @field_validator("expect")
    @classmethod
    def _known_fields(cls, expect: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for i, e in enumerate(expect):
            kind = e.get("kind")
            if kind not in RECORD_FIELDS:
                raise ValueError(
                    f"expect[{i}]: kind={kind!r}; use one of {', '.join(RECORD_FIELDS)}"
                )
            unknown = set(e) - {"kind", *RECORD_FIELDS[kind]}
            if unknown:
                raise ValueError(
                    f"expect[{i}] ({kind}): unknown field(s) {', '.join(sorted(unknown))}; "
                    f"known: {', '.join(RECORD_FIELDS[kind])}"
                )
        return expect


class ParserSpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    version: str = "1"
    priority: int = Field(50, ge=0, le=1000)
    description: str = ""
    framework: str | None = None
    skip_claimed: bool = True  # leave lines an earlier specific parser already extracted
    strip_prefix: bool = True  # match the message after a logging timestamp/level prefix
    detect: DetectSpec | None = None
    section: list[SectionSpec] = []
    table: list[TableSpec] = []
    rule: list[RuleSpec] = []
    test: list[TestSpec] = []

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int | float) else v

    @model_validator(mode="after")
    def _consistent(self) -> ParserSpec:
        if not self.rule and not self.table:
            raise ValueError("a parser needs at least one [[rule]] or [[table]]")
        names = [s.name for s in self.section]
        if len(set(names)) != len(names):
            raise ValueError("two [[section]] tables share a name; names must be unique")
        for i, r in enumerate(self.rule):
            if r.section is not None and r.section not in names:
                label = f"rule {r.name!r}" if r.name else f"rule #{i + 1}"
                raise ValueError(
                    f"{label}: section={r.section!r} is not defined; add a [[section]] with "
                    f"name = {r.section!r} (defined: {', '.join(names) or 'none'})"
                )
        return self


_MODELS: dict[str, type[BaseModel]] = {
    "": ParserSpec,
    "detect": DetectSpec,
    "rule": RuleSpec,
    "section": SectionSpec,
    "table": TableSpec,
    "test": TestSpec,
    "items": ItemSpec,
    "dataset": DatasetOut,
    "artifact": ArtifactOut,
    "package": PackageOut,
}


def describe_loc(loc: tuple[Any, ...], data: dict[str, Any]) -> str:
    """``('rule', 2, 'emit')`` → ``rule 'eval line' (#3): emit`` using the file's own names."""
    parts: list[str] = []
    node: Any = data
    i = 0
    while i < len(loc):
        part = loc[i]
        nxt = loc[i + 1] if i + 1 < len(loc) else None
        if isinstance(part, str) and isinstance(nxt, int):
            item = node.get(part, [])[nxt] if isinstance(node, dict) else None
            named = item.get("name") if isinstance(item, dict) else None
            parts.append(f"{part} {named!r} (#{nxt + 1})" if named else f"{part} #{nxt + 1}")
            node = item
            i += 2
            continue
        parts.append(str(part))
        node = node.get(part) if isinstance(node, dict) else None
        i += 1
    return ": ".join(parts) if parts else "file"


def _fix_for(err: Mapping[str, Any]) -> str:
    loc = err["loc"]
    if err["type"] == "extra_forbidden":
        owner = next((p for p in reversed(loc[:-1]) if isinstance(p, str)), "")
        model = _MODELS.get(owner, ParserSpec)
        return f"remove {loc[-1]!r} or use one of: {', '.join(model.model_fields)}"
    if err["type"] == "missing":
        return f"add {loc[-1]} = ..."
    return "see the format described in loglake.parse.declarative_spec"


def read_spec(path: Path) -> ParserSpec:
    """Load and validate one parser file; every problem becomes a ParserLoadError with a fix."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ParserLoadError(f"{path}: cannot read: {e}", fix="check the path") from None
    except tomllib.TOMLDecodeError as e:
        raise ParserLoadError(
            f"{path}: not valid TOML: {e}",
            fix="fix the syntax (regexes are easiest in 'single quotes': no escaping)",
        ) from None
    try:
        return ParserSpec.model_validate(data)
    except ValidationError as e:
        errors = e.errors(include_url=False)
        first = errors[0]
        where = describe_loc(tuple(first["loc"]), data)
        msg = first["msg"].removeprefix("Value error, ")
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise ParserLoadError(f"{path}: {where}: {msg}{more}", fix=_fix_for(first)) from None
