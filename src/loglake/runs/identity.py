"""Stable run identity for a log file.

``run_id`` is a hash of (namespace, experiment, run name) only, so re-indexing, re-reading from the archive,
or reading a second file of the same run (stderr, another rank, a container restart) always lands
on the same id.
"""

from __future__ import annotations

import hashlib
import posixpath
from dataclasses import dataclass

from loglake.runs.template import match_template

# Suffixes stripped to turn a file name into a run name (`train.log.gz` → `train`).
_EXTS = (".gz", ".zst", ".log", ".out", ".err", ".txt", ".jsonl", ".json")


@dataclass(frozen=True, slots=True)
class RunIdentity:
    namespace: str
    experiment: str | None
    run: str
    rank: str | None = None

    @property
    def run_id(self) -> str:
        return run_id_for(self.namespace, self.experiment, self.run)

    def child(self, sub: str, experiment: str | None = None) -> RunIdentity:
        """A run inside this log (a trial of a search), grouped under one experiment."""
        return RunIdentity(
            namespace=self.namespace,
            experiment=experiment or self.experiment or self.run,
            run=f"{self.run}/{sub}",
            rank=None,
        )


def run_id_for(namespace: str, experiment: str | None, run: str) -> str:
    key = f"{namespace}\x00{experiment or ''}\x00{run}"
    return hashlib.blake2b(key.encode(), digest_size=8).hexdigest()


def _stem(name: str) -> str:
    changed = True
    while changed:
        changed = False
        for ext in _EXTS:
            if name.endswith(ext) and len(name) > len(ext):
                name = name[: -len(ext)]
                changed = True
    return name


def resolve(
    path: str,
    *,
    root: str | None = None,
    template: str | None = None,
    namespace: str = "default",
) -> RunIdentity | None:
    """The run a file belongs to; ``None`` when a template is given and does not match.

    Without a template a file is its own run: ``<parent dir>/<file stem>`` (e.g.
    ``keras_mlp/stdout``), which stays the same however the file was named on the command line.
    """
    posix = path.replace("\\", "/")
    if template:
        target = posix
        if root and not (template.startswith("/") or "://" in template):
            r = root.replace("\\", "/").rstrip("/")
            if posix.startswith(r + "/"):
                target = posix[len(r) + 1 :]
        fields = match_template(template, target)
        if fields is None:
            return None
        ns = fields.get("namespace") or fields.get("team") or namespace
        run = fields.get("run")
        if not run:
            parts = [fields[k] for k in ("experiment", "container") if fields.get(k)]
            run = "/".join(parts) or _stem(posixpath.basename(posix))
        return RunIdentity(
            namespace=ns,
            experiment=fields.get("experiment"),
            run=run,
            rank=fields.get("rank"),
        )
    parent = posixpath.basename(posixpath.dirname(posix)) or None
    stem = _stem(posixpath.basename(posix))
    run = f"{parent}/{stem}" if parent else stem
    return RunIdentity(namespace=namespace, experiment=parent, run=run)
