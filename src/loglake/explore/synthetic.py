"""A reproducible hyper-parameter sweep, as lake rows: for tests, demos and ``bench/query.py``.

The sweep is also returned as plain Python (params and curves per run), so a test can work
out the right answer to a question without SQL and check loglake's answer against it.
Values come from a seeded ``random.Random``: the same arguments give the same sweep.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

T0 = dt.datetime(2024, 5, 1, 8, 0, tzinfo=dt.UTC)
METRIC_KEYS = ("train_loss", "val_loss", "val_accuracy", "train_accuracy", "latency_ms")
_EXTRA_PARAMS = ("warmup_steps", "layers", "hidden", "label_smoothing", "grad_clip", "seed")


@dataclass
class SweepRun:
    run_id: str
    namespace: str
    experiment: str
    run: str
    status: str
    start_time: dt.datetime
    end_time: dt.datetime
    params: dict[str, str] = field(default_factory=dict)
    # key -> [(step, value)], steps ascending
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    packages: dict[str, str] = field(default_factory=dict)
    dataset: tuple[str, int, int, str] | None = None  # path, rows, cols, fingerprint


def run_id_for(i: int, seed: int = 0) -> str:
    return hashlib.sha256(f"sweep:{seed}:{i}".encode()).hexdigest()[:16]


def make_sweep(
    n_runs: int,
    *,
    n_params: int = 10,
    n_metrics: int = 5,
    n_steps: int = 20,
    seed: int = 0,
    namespaces: tuple[str, ...] = ("vision", "nlp"),
    nan_every: int = 0,
) -> list[SweepRun]:
    """``n_runs`` runs of a learning-rate/batch-size/optimizer sweep with metric curves.

    ``nan_every`` > 0 puts a NaN (a diverged step) into ``val_loss`` of every n-th run.
    """
    rng = random.Random(seed)
    keys = METRIC_KEYS[:n_metrics]
    out = []
    for i in range(n_runs):
        lr = 10 ** rng.uniform(-5, -1)
        batch = rng.choice((16, 32, 64, 128))
        opt = rng.choice(("adam", "adamw", "sgd"))
        dropout = round(rng.uniform(0.0, 0.5), 2)
        wd = rng.choice((0.0, 1e-4, 1e-2))
        params = {
            "lr": f"{lr:.3g}",
            "batch_size": str(batch),
            "optimizer": opt,
            "dropout": str(dropout),
            "weight_decay": str(wd),
        }
        extra = {
            "warmup_steps": str(rng.choice((0, 100, 500))),
            "layers": str(rng.randint(2, 12)),
            "hidden": str(rng.choice((128, 256, 512))),
            "label_smoothing": str(rng.choice((0.0, 0.1))),
            "grad_clip": str(rng.choice((0.5, 1.0))),
            "seed": str(i),
        }
        for k in _EXTRA_PARAMS[: max(0, n_params - len(params))]:
            params[k] = extra[k]
        quality = math.exp(-((math.log10(float(params["lr"])) + 3.0) ** 2) / 2)
        quality *= {"adam": 1.0, "adamw": 1.02, "sgd": 0.9}[opt] * (1 - dropout / 4)
        final_acc = 0.5 + 0.45 * quality + rng.gauss(0, 0.01)
        latency = round(2.0 + batch / 16 + rng.uniform(0, 3), 3)
        status = "failed" if i % 17 == 5 else "killed" if i % 29 == 7 else "completed"
        steps = n_steps if status == "completed" else max(2, n_steps // 2)
        curves: dict[str, list[tuple[int, float]]] = {k: [] for k in keys}
        for s in range(1, steps + 1):
            step = s * 10
            frac = 1 - math.exp(-3 * s / n_steps)
            acc = final_acc * frac + 0.1 * (1 - frac)
            values = {
                "train_loss": round(2.3 * (1 - frac) + (1 - final_acc) + rng.gauss(0, 0.01), 5),
                "val_loss": round(2.3 * (1 - frac) + 1.1 * (1 - final_acc) + rng.gauss(0, 0.01), 5),
                "val_accuracy": round(acc + rng.gauss(0, 0.003), 5),
                "train_accuracy": round(min(1.0, acc + 0.03 + rng.gauss(0, 0.003)), 5),
                "latency_ms": round(latency + rng.gauss(0, 0.05), 4),
            }
            if nan_every and i % nan_every == 3 and s == steps // 2 + 1:
                values["val_loss"] = float("nan")
            for k in keys:
                curves[k].append((step, values[k]))
        start = T0 + dt.timedelta(minutes=7 * i)
        torch = "2.3.0" if i < n_runs * 2 // 3 else "2.4.1"
        rows = 50_000 if i < n_runs // 2 else 48_000
        fp = "sha256:a1b2" if i < n_runs // 2 else "sha256:c3d4"
        out.append(
            SweepRun(
                run_id=run_id_for(i, seed),
                namespace=namespaces[i % len(namespaces)],
                experiment=f"sweep-{'ab'[i % 2]}",
                run=f"trial-{i:05d}",
                status=status,
                start_time=start,
                end_time=start + dt.timedelta(seconds=60 * steps + i % 13),
                params=params,
                curves=curves,
                packages={"torch": torch, "numpy": "1.26.4"},
                dataset=("/data/cifar10/train", rows, 3072, fp),
            )
        )
    return out


def sweep_tables(runs: list[SweepRun]) -> dict[str, pa.Table]:
    """The lake rows of ``runs``: runs, params, metrics, packages, datasets."""
    r_cols: dict[str, list] = {
        k: []
        for k in (
            "run_id",
            "namespace",
            "experiment",
            "run",
            "status",
            "start_time",
            "end_time",
            "framework",
            "host",
            "source_path",
            "source_fp",
            "observed_at",
            "offset",
            "error",
        )
    }
    p_cols: dict[str, list] = {k: [] for k in ("run_id", "namespace", "key", "value", "value_num")}
    m_cols: dict[str, list] = {k: [] for k in ("run_id", "namespace", "key", "value", "step")}
    pk_cols: dict[str, list] = {k: [] for k in ("run_id", "namespace", "name", "version")}
    d_cols: dict[str, list] = {
        k: []
        for k in (
            "run_id",
            "namespace",
            "name",
            "path",
            "split",
            "rows",
            "cols",
            "fingerprint",
        )
    }
    for r in runs:
        for k, v in (
            ("run_id", r.run_id),
            ("namespace", r.namespace),
            ("experiment", r.experiment),
            ("run", r.run),
            ("status", r.status),
            ("start_time", r.start_time),
            ("end_time", r.end_time),
            ("framework", "pytorch"),
            ("host", "gpu-node-1"),
            ("source_path", f"/logs/{r.namespace}/{r.run}/stdout.log"),
            ("source_fp", r.run_id),
            ("observed_at", r.end_time),
            ("offset", 0),
            ("error", "RuntimeError: CUDA out of memory" if r.status == "failed" else None),
        ):
            r_cols[k].append(v)
        for key, value in r.params.items():
            p_cols["run_id"].append(r.run_id)
            p_cols["namespace"].append(r.namespace)
            p_cols["key"].append(key)
            p_cols["value"].append(value)
            p_cols["value_num"].append(_num(value))
        for key, points in r.curves.items():
            n = len(points)
            m_cols["run_id"] += [r.run_id] * n
            m_cols["namespace"] += [r.namespace] * n
            m_cols["key"] += [key] * n
            m_cols["step"] += [s for s, _ in points]
            m_cols["value"] += [v for _, v in points]
        for name, version in r.packages.items():
            for k, v in (
                ("run_id", r.run_id),
                ("namespace", r.namespace),
                ("name", name),
                ("version", version),
            ):
                pk_cols[k].append(v)
        if r.dataset:
            path, rows, cols, fp = r.dataset
            for k, v in (
                ("run_id", r.run_id),
                ("namespace", r.namespace),
                ("name", "cifar10"),
                ("path", path),
                ("split", "train"),
                ("rows", rows),
                ("cols", cols),
                ("fingerprint", fp),
            ):
                d_cols[k].append(v)
    return {
        "runs": pa.table(r_cols),
        "params": pa.table(p_cols),
        "metrics": pa.table(m_cols),
        "packages": pa.table(pk_cols),
        "datasets": pa.table(d_cols),
    }


def chunks(runs: list[SweepRun], size: int) -> Iterator[list[SweepRun]]:
    for i in range(0, len(runs), size):
        yield runs[i : i + size]


def write_sweep(lake: str | Path, runs: list[SweepRun], *, per_commit: int = 1000) -> None:
    """Write ``runs`` into ``lake`` through the real writer, ``per_commit`` runs per flush."""
    from loglake.lake.writer import LakeWriter

    state = Path(lake) / "_loglake"
    writer = LakeWriter(str(lake), state, "synthetic")
    for part in chunks(runs, per_commit):
        writer.commit(sweep_tables(part), {})


def _num(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None
