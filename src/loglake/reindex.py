"""Re-parsing history with a fixed or upgraded parser, replacing its rows atomically.

Every row records ``parser = "name@version"`` and ``source_fp``, so a parser's rows in a file
can be found and swapped. For each file the parser applies to (its checkpoint lists it, or
its route/detection picks it now), the file is read again from its source, exactly up to the
committed checkpoint offset, through the same code as ``loglake index`` (all of the file's
parsers run, because which lines a parser sees depends on the lines earlier parsers claim).
Then, per table, one Delta commit (``write_deltalake(mode="overwrite", predicate=...)``, a
replaceWhere) deletes that parser's old rows of those files and adds the new ones: readers see
the old rows or the new ones, never both and never neither.

Fallback parsers that run after it skip the lines it claims, so their output can change when
it changes; those of their rows that differ are replaced in the same commits (and reported),
which keeps a line from being counted twice. Rows of every other parser are never touched.
"""

from __future__ import annotations

import logging
import os
import socket
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import write_deltalake
from deltalake.exceptions import DeltaError

from loglake.config import Config
from loglake.errors import LakeError, LoglakeError
from loglake.index.discover import discover
from loglake.index.job import FileTask, index_file
from loglake.index.runner import state_tag
from loglake.index.sniff import read_head
from loglake.lake.checkpoint import CheckpointStore, StateLock
from loglake.lake.schema import PARTITIONS, SCHEMAS
from loglake.lake.tables import open_table, sort_rows, writer_properties
from loglake.lake.writer import LakeWriter, conform
from loglake.parse.base import Parser
from loglake.parse.pipeline import GENERIC_PRIORITY, probe
from loglake.parse.registry import Registry, registry_for, route_file
from loglake.runs.identity import RunIdentity
from loglake.tail.fingerprint import fingerprint, tail_hash

log = logging.getLogger(__name__)

#: tables whose rows belong to one parser (``runs`` rows speak for a whole file)
PARSER_TABLES = tuple(
    n for n, s in SCHEMAS.items() if n != "runs" and {"parser", "source_fp"} <= set(s.names)
)
ARCHIVE_NOTE = (
    "their rows stay as they are (the raw-log archive holds redacted text, whose byte offsets "
    "differ from the source's after a redacted secret, so it is not re-parsed); restore a "
    "source file to its path to re-parse it"
)
_MAX_GROUP_FILES = 100
_COMPRESSED = (b"\x1f\x8b", b"\x28\xb5\x2f\xfd")


def label_name(label: str) -> str:
    return label.partition("@")[0]


@dataclass
class ReindexReport:
    parsers: list[str]
    dry_run: bool = False
    files: list[str] = field(default_factory=list)  # re-parsed
    missing: list[str] = field(default_factory=list)  # no longer at their source
    failures: list[str] = field(default_factory=list)
    #: parser name -> table -> [rows before, rows after]
    counts: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    #: parser name -> labels (name@version) before / after, in the files re-parsed
    before: dict[str, set[str]] = field(default_factory=dict)
    after: dict[str, set[str]] = field(default_factory=dict)

    def count(self, name: str, table: str, rows_before: int, rows_after: int) -> None:
        c = self.counts.setdefault(name, {}).setdefault(table, [0, 0])
        c[0] += rows_before
        c[1] += rows_after

    def lines(self) -> list[str]:
        verb = "would replace" if self.dry_run else "replaced"
        out = [f"re-parsed {len(self.files)} file(s) for {', '.join(self.parsers)}"]
        if not self.files and not self.missing and not self.failures:
            out.append(
                "no indexed file is read by it: check its routes and [detect] "
                "(`loglake parsers test LOG` shows which parsers a log gets)"
            )
        for name in sorted(self.counts):
            old = ", ".join(sorted(self.before.get(name, ()))) or "none"
            new = ", ".join(sorted(self.after.get(name, ()))) or "none"
            extra = "" if name in self.parsers else " (fallback: skips the lines it claims)"
            out.append(f"{name}{extra}: {verb} rows of {old} with {new}")
            for table, (b, a) in sorted(self.counts[name].items()):
                if b or a:
                    out.append(f"  {table:<13} {b:>10,} -> {a:,}")
        if self.missing:
            out.append(f"{len(self.missing)} file(s) are no longer at their source: {ARCHIVE_NOTE}")
            out += [f"  missing: {p}" for p in self.missing]
        return out


@dataclass
class _FileWork:
    fp: str
    path: str  # where the bytes are now (a rotated file may have moved within its folder)
    cp: dict[str, Any]
    targets: list[str]


def reindex(
    config: Config,
    names: Iterable[str],
    *,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ReindexReport:
    """Re-parse the files ``names`` apply to and replace their rows; see the module doc."""
    names = list(dict.fromkeys(names))
    report = ReindexReport(parsers=names, dry_run=dry_run)
    state = config.state_path()
    state.mkdir(parents=True, exist_ok=True)
    with StateLock(state):
        store = CheckpointStore(state)
        writer = LakeWriter(
            config.lake,
            state,
            writer_id=f"reindex-{socket.gethostname()}-{state_tag(state)}",
            storage_options=config.storage_options or None,
            checkpoints=store,
        )
        # A spooled flush landing after the replace would bring old rows back.
        writer.recover()
        registry = registry_for(config)
        for n in names:
            registry.get(n)
        work = _plan(config, registry, store.load(), names, report)
        group: list[tuple[_FileWork, dict[str, Any]]] = []
        rows = 0
        for i, fw in enumerate(work):
            try:
                result = _reparse(config, registry, fw)
            except LoglakeError as e:
                report.failures.append(f"{fw.path}: {e.one_line()}")
                continue
            except (OSError, ValueError) as e:
                report.failures.append(f"{fw.path}: {type(e).__name__}: {e}")
                continue
            group.append((fw, result))
            rows += sum(t.num_rows for t in result["tables"].values())
            if rows >= config.index.flush_records or len(group) >= _MAX_GROUP_FILES:
                _replace(config, store, group, report)
                group, rows = [], 0
            if progress:
                progress(i + 1, len(work))
        if group:
            _replace(config, store, group, report)
    return report


# -- which files ------------------------------------------------------------------------------


def _plan(
    config: Config,
    registry: Registry,
    checkpoints: dict[str, dict[str, Any]],
    names: list[str],
    report: ReindexReport,
) -> list[_FileWork]:
    work: list[_FileWork] = []
    for fp, cp in sorted(checkpoints.items(), key=lambda kv: str(kv[1].get("path"))):
        listed = set(cp.get("parser_names") or ())
        path = locate(fp, cp)
        targets = [n for n in names if n in listed]
        if path is None:
            if targets:
                report.missing.append(str(cp.get("path")))
            continue
        unlisted = [n for n in names if n not in listed]
        if unlisted:
            targets += [n for n in unlisted if n in _selected_now(config, registry, path, cp)]
        if targets:
            work.append(_FileWork(fp, path, cp, targets))
    return work


def _selected_now(config: Config, registry: Registry, path: str, cp: dict[str, Any]) -> set[str]:
    """The parsers ``loglake index`` would choose for this file today (routes, detection)."""
    found, _ = discover([path], config)
    if not found:
        return set()
    f = found[0]
    namespace = (cp.get("run") or {}).get("namespace")
    routed, auto = route_file(config, f.source, path, f.root, namespace)
    info, _ = probe(path, max_line=config.index.max_line_bytes)
    return {p.name for p in registry.select(info, routed, auto_detect=auto)}


def locate(fp: str, cp: dict[str, Any]) -> str | None:
    """Where the indexed bytes of ``fp`` are now: its path, or a file renamed beside it."""
    path = str(cp.get("path") or "")
    if path and _holds(path, fp, cp):
        return path
    folder = os.path.dirname(path)
    try:
        siblings = sorted(e.path for e in os.scandir(folder) if e.is_file() and e.path != path)
    except OSError:
        return None
    return next((s for s in siblings if _holds(s, fp, cp)), None)


def _holds(path: str, fp: str, cp: dict[str, Any]) -> bool:
    try:
        size = os.path.getsize(path)
    except OSError:
        return False
    fp_len = int(cp.get("fp_len") or 0)
    if size < fp_len or fingerprint(path, fp_len) != fp:
        return False
    if read_head(path, 4).startswith(_COMPRESSED):
        return size == cp.get("size")  # offsets are in the decompressed stream
    off = int(cp.get("offset") or 0)
    return off <= size and (not off or not cp.get("tail") or tail_hash(path, off) == cp["tail"])


# -- re-parsing one file ------------------------------------------------------------------------


def _chain(registry: Registry, fw: _FileWork) -> list[Parser]:
    names = [n for n in fw.cp.get("parser_names") or () if n in registry.entries]
    names += [n for n in fw.targets if n not in names]
    return sorted((registry.get(n) for n in names), key=lambda p: (p.priority, p.name))


def _dependents(chain: list[Parser], targets: list[str]) -> list[str]:
    """Parsers after a claiming target: their rows depend on what the target claims."""
    order = [p.name for p in chain]
    firsts = [
        order.index(p.name) for p in chain if p.name in targets and p.priority < GENERIC_PRIORITY
    ]
    if not firsts:
        return []
    return [n for n in order[min(firsts) + 1 :] if n not in targets]


def _reparse(config: Config, registry: Registry, fw: _FileWork) -> dict[str, Any]:
    """All of the file's rows, re-derived up to its checkpoint, and the checkpoint entry."""
    chain = _chain(registry, fw)
    cp = fw.cp
    task = FileTask(
        path=fw.path,
        fp=fw.fp,
        fp_len=int(cp["fp_len"]),
        size=int(cp.get("size") or 0),
        mtime=float(cp.get("mtime") or 0.0),
        identity=RunIdentity(**cp["run"]),
        routed=tuple(p.name for p in chain),
        auto_detect=False,
        checkpoint=None,
        idle=bool(cp.get("idle_final")),
        max_line=config.index.max_line_bytes,
        flush_records=config.index.flush_records,
        compressed=read_head(fw.path, 4).startswith(_COMPRESSED),
        stop_at=int(cp.get("offset") or 0),
    )
    parts: dict[str, list[pa.Table]] = {}
    runs: pa.Table | None = None
    entry: dict[str, Any] = {}
    for chunk in index_file(task, registry.subset(task.routed)):
        for name, t in chunk.tables.items():
            if name in PARSER_TABLES:
                parts.setdefault(name, []).append(t)
        if chunk.final:
            runs, entry = chunk.tables.get("runs"), chunk.checkpoint
    tables = {n: pa.concat_tables(ts) for n, ts in parts.items()}
    return {
        "tables": tables,
        "runs": runs,
        "checkpoint": entry,
        "dependents": _dependents(chain, fw.targets),
    }


# -- replacing rows -----------------------------------------------------------------------------


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _old_rows(config: Config, table: str, fps: list[str]) -> pa.Table:
    dt = open_table(config.lake, table, config.storage_options or None)
    if dt is None:
        return SCHEMAS[table].empty_table()
    return dt.to_pyarrow_dataset().to_table(filter=pc.field("source_fp").isin(fps))


def _rows_key(t: pa.Table) -> Counter[tuple[str, ...]]:
    cols = [c for c in t.column_names if c != "observed_at"]
    return Counter(tuple(map(repr, row.values())) for row in t.select(cols).to_pylist())


def _labels(t: pa.Table) -> set[str]:
    return {x for x in t.column("parser").to_pylist() if x is not None}


def _of_file(t: pa.Table, fp: str, names: set[str]) -> pa.Table:
    if t.num_rows == 0:
        return t
    labels = [x for x in _labels(t) if label_name(x) in names]
    mask = pc.and_(
        pc.equal(t.column("source_fp"), fp),
        pc.is_in(t.column("parser"), pa.array(labels, pa.string())),
    )
    return t.filter(mask)


def _replace(
    config: Config,
    store: CheckpointStore,
    group: list[tuple[_FileWork, dict[str, Any]]],
    report: ReindexReport,
) -> None:
    fps = [fw.fp for fw, _ in group]
    olds = {t: _old_rows(config, t, fps) for t in PARSER_TABLES}
    # Per file: which parsers' rows are swapped (targets, plus fallbacks whose rows changed).
    swap: dict[str, set[str]] = {}
    for fw, res in group:
        names = set(fw.targets)
        for dep in res["dependents"]:
            for t in PARSER_TABLES:
                new = _of_file(res["tables"].get(t, SCHEMAS[t].empty_table()), fw.fp, {dep})
                old = _of_file(olds[t], fw.fp, {dep})
                if _rows_key(conform(t, new)) != _rows_key(conform(t, old)):
                    names.add(dep)
                    break
        swap[fw.fp] = names
        report.files.append(fw.path)
    for t in PARSER_TABLES:
        clauses: list[str] = []
        adds: list[pa.Table] = []
        for fw, res in group:
            names = swap[fw.fp]
            old = _of_file(olds[t], fw.fp, names)
            new = _of_file(res["tables"].get(t, SCHEMAS[t].empty_table()), fw.fp, names)
            labels = _labels(old) | _labels(new)
            for n in names:
                o = _of_file(old, fw.fp, {n})
                w = _of_file(new, fw.fp, {n})
                report.count(n, t, o.num_rows, w.num_rows)
                report.before.setdefault(n, set()).update(_labels(o))
                report.after.setdefault(n, set()).update(_labels(w))
            if labels:
                quoted = ", ".join(_sql_str(x) for x in sorted(labels))
                clauses.append(f"(source_fp = {_sql_str(fw.fp)} AND parser IN ({quoted}))")
                adds.append(conform(t, new))
        if clauses and not report.dry_run:
            _commit(config, t, pa.concat_tables(adds), " OR ".join(clauses))
    runs = [res["runs"] for _, res in group if res["runs"] is not None]
    if runs and not report.dry_run:
        predicate = f"source_fp IN ({', '.join(_sql_str(fp) for fp in fps)})"
        _commit(config, "runs", pa.concat_tables([conform("runs", r) for r in runs]), predicate)
    if not report.dry_run:
        store.update({fw.fp: res["checkpoint"] for fw, res in group if res["checkpoint"]})


def _commit(config: Config, table: str, data: pa.Table, predicate: str) -> None:
    """One atomic Delta commit: delete the rows ``predicate`` selects, add ``data``."""
    dt = open_table(config.lake, table, config.storage_options or None)
    if dt is None:
        raise LakeError(f"lake table {table} is missing", fix="run `loglake index` first")
    try:
        write_deltalake(
            dt,
            sort_rows(table, data),  # the layout appends keep, so row groups still prune
            mode="overwrite",
            predicate=predicate,
            partition_by=PARTITIONS.get(table),
            writer_properties=writer_properties(table),
        )
    except (DeltaError, OSError) as exc:
        first = (str(exc).strip().splitlines() or [repr(exc)])[0]
        raise LakeError(
            f"cannot replace rows in lake table {table}: {first}",
            fix="tables already replaced keep their new rows; run the same reindex again",
        ) from exc


# -- what the lake holds, per parser ------------------------------------------------------------


def parser_file_counts(config: Config) -> dict[str, dict[str, int]]:
    """name -> version -> files whose latest indexing ran that parser version (from ``runs``)."""
    from loglake.query.connect import connect

    con = connect(config.lake, storage_options=config.storage_options or None)
    rows = con.sql(
        """
        WITH latest AS (
            SELECT source_fp, parser FROM runs_log
            QUALIFY row_number() OVER (
                PARTITION BY source_fp ORDER BY observed_at DESC NULLS LAST, "offset" DESC
            ) = 1
        ), labels AS (
            SELECT source_fp, unnest(string_split(parser, ',')) AS label FROM latest
        )
        SELECT substr(label, 1, strpos(label, '@') - 1) AS name,
               substr(label, strpos(label, '@') + 1) AS version,
               count(DISTINCT source_fp) AS files
        FROM labels WHERE strpos(label, '@') > 0
        GROUP BY ALL
        """
    ).fetchall()
    counts: dict[str, dict[str, int]] = {}
    for name, version, files in rows:
        counts.setdefault(name, {})[version] = int(files)
    return counts


def outdated_parsers(config: Config, registry: Registry) -> list[str]:
    """Installed parsers whose rows in the lake come (partly) from another version."""
    counts = parser_file_counts(config)
    return sorted(
        name
        for name, versions in counts.items()
        if name in registry.entries
        and any(v != registry.entries[name].parser.version for v in versions)
    )
