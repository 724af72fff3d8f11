"""``loglake plot``: metric curves of several runs overlaid, one panel per key, to PNG.

matplotlib is an optional extra (``loglake[plot]``), imported only here and only when a
plot is drawn; it renders with the Agg backend, so no display is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import duckdb

from loglake.errors import ExitCode, LoglakeError
from loglake.explore.history import metric_history
from loglake.explore.sqlgen import lit

MAX_POINTS = 2000  # per curve; more cannot be told apart at this size


class PlotError(LoglakeError):
    exit_code = ExitCode.USAGE


def plot_curves(
    conn: duckdb.DuckDBPyConnection,
    run_ids: Sequence[str],
    keys: Sequence[str],
    path: str | Path,
    *,
    title: str | None = None,
    log_y: bool = False,
) -> Path:
    """Draw ``keys`` of ``run_ids`` into the PNG ``path``; returns the path written."""
    if not run_ids:
        raise PlotError("no runs to plot", fix="name runs or loosen the filters")
    if not keys:
        raise PlotError("no metric to plot", fix="add --metric KEY (see `loglake show RUN`)")
    plt = _pyplot()
    history = metric_history(conn, run_ids, keys, max_points=MAX_POINTS).to_pydict()
    if not history["run_id"]:
        raise PlotError(
            f"the runs have no points for {', '.join(keys)}",
            fix="check the metric names with `loglake show RUN`",
        )
    labels = _labels(conn, run_ids)
    curves: dict[tuple[str, str], tuple[list[float], list[float]]] = {}
    for rid, key, x, y in zip(
        history["run_id"], history["key"], history["x"], history["value"], strict=True
    ):
        xs, ys = curves.setdefault((key, rid), ([], []))
        xs.append(x)
        ys.append(y)
    fig, axes = plt.subplots(
        len(keys), 1, figsize=(9, 3.2 * len(keys)), squeeze=False, constrained_layout=True
    )
    for ax, key in zip(axes[:, 0], keys, strict=True):
        for rid in run_ids:
            if (key, rid) in curves:
                xs, ys = curves[(key, rid)]
                ax.plot(
                    xs, ys, label=labels[rid], linewidth=1.3, marker="." if len(xs) < 30 else None
                )
        ax.set_title(key, loc="left", fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if log_y:
            ax.set_yscale("log")
        if len(run_ids) <= 12:
            ax.legend(fontsize=8, loc="best")
    if title:
        fig.suptitle(title)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise PlotError("plotting needs matplotlib", fix='pip install "loglake[plot]"') from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _labels(conn: duckdb.DuckDBPyConnection, run_ids: Sequence[str]) -> dict[str, str]:
    rows = conn.execute(
        f"SELECT run_id, coalesce(run, run_id) FROM runs "
        f"WHERE run_id IN ({', '.join(lit(r) for r in run_ids)})"
    ).fetchall()
    names = dict(rows)
    counts: dict[str, int] = {}
    for name in names.values():
        counts[name] = counts.get(name, 0) + 1
    return {rid: name if counts[name] == 1 else f"{name}@{rid[:8]}" for rid, name in names.items()}
