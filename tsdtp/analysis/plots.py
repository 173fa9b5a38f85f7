"""Figure functions: each takes tidy frames (see `tsdtp.analysis.frames`) and returns a matplotlib Figure.

Figures are built with `matplotlib.figure.Figure`, not pyplot, so they hold no global state;
a notebook shows one with `display(fig)`. `save_figure` writes PNG and PDF atomically.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from tsdtp.analysis.frames import DECODER_ROW_TASKS, PADDED_BASIS, method_order, panels, speedup_basis
from tsdtp.analysis.token_kinds import KINDS
from tsdtp.core.config import DENSE_METHOD, METHOD_TABLE, METHODS
from tsdtp.core.regions import COMPONENTS
from tsdtp.runs.io import atomic_write_bytes

KEPT_COLOUR = "#1f5fa8"
PRUNED_COLOUR = "#e8e8e8"
PALETTE = {**dict(zip(METHODS, sns.color_palette("colorblind", len(METHODS)))), "dense": (0.35, 0.35, 0.35)}
"""One colour per method, the same in every figure."""


def _colour(method: str) -> tuple[float, float, float]:
    return PALETTE.get(method, (0.4, 0.4, 0.4))


def save_figure(fig: Figure, stem: str, out_dir: str | Path) -> list[Path]:
    """Write `<stem>.png` (150 dpi) and `<stem>.pdf` into `out_dir`, each via a temporary file and a rename."""
    paths = []
    for fmt, metadata in (("png", {"Software": None}), ("pdf", {"CreationDate": None, "Producer": None})):
        buffer = io.BytesIO()
        fig.savefig(buffer, format=fmt, dpi=150, bbox_inches="tight", metadata=metadata)
        path = Path(out_dir) / f"{stem}.{fmt}"
        atomic_write_bytes(path, buffer.getvalue())
        paths.append(path)
    return paths


def _empty(message: str) -> Figure:
    fig = Figure(figsize=(6, 1.5))
    ax = fig.add_subplot()
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    return fig


def _panel_grid(rows: int, count: int, width: float, height: float, sharey: bool = False
                ) -> tuple[Figure, np.ndarray]:
    """A constrained-layout figure of `rows` x `count` panels, each `width` inches wide, `height` tall in all.

    Returns the figure and its axes as a [rows, count] array.
    """
    fig = Figure(figsize=(width * count, height), layout="constrained")
    return fig, fig.subplots(rows, count, squeeze=False, sharey=sharey)


def _panel_row(count: int, width: float, height: float, sharey: bool = False) -> tuple[Figure, np.ndarray]:
    """`_panel_grid` with one row: the figure and its `count` axes."""
    fig, axes = _panel_grid(1, count, width, height, sharey)
    return fig, axes[0]


def keep_heatmaps(traces: pd.DataFrame, examples: Sequence[int], methods: Sequence[str]) -> Figure:
    """For each example a row of layer × token grids, one per method, kept tokens coloured.

    `traces` holds one task and one setting per method. A cell is coloured when the token is
    alive at the input of that layer; token strings label the x axis. Translation traces
    (`DECODER_ROW_TASKS`) end with one more row: the source tokens the decoder cross-attends to.
    """
    if not len(examples):
        return _empty("no example is long enough and correctly classified by every method")
    widths = [int(traces[(traces["example"] == e) & (traces["layer"] == 0)]["position"].max()) + 1 for e in examples]
    layers = int(traces["layer"].max()) + 1
    fig = Figure(figsize=(max(6.0, 0.32 * max(widths) * len(methods) + 1.5), (0.22 * layers + 1.3) * len(examples)),
                 layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(examples), len(methods), squeeze=False))
    cmap = ListedColormap([PRUNED_COLOUR, KEPT_COLOUR])
    for row, example in enumerate(examples):
        for column, method in enumerate(methods):
            ax = axes[row, column]
            one = traces[(traces["example"] == example) & (traces["method"] == method)]
            if one.empty:
                ax.axis("off")
                ax.set_title(f"{method}: no trace for example {example}", fontsize=8)
                continue
            grid = one.pivot(index="layer", columns="position", values="kept").astype(float).to_numpy()
            tokens = one[one["layer"] == 0].sort_values("position")["token"].tolist()
            ax.imshow(grid, cmap=cmap, vmin=0, vmax=1, aspect="auto", interpolation="nearest")
            ax.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=7)
            rows = [str(layer + 1) for layer in range(grid.shape[0])]
            if one["task"].iloc[0] in DECODER_ROW_TASKS:
                rows[-1] = "decoder"
            ax.set_yticks(range(grid.shape[0]), rows, fontsize=7)
            ax.set_ylabel("layer", fontsize=8)
            k = float(one["k"].iloc[0])
            verdict = ""
            if "correct" in one.columns and pd.notna(one["correct"].iloc[0]):
                verdict = " · correct" if bool(one["correct"].iloc[0]) else " · wrong"
            kept = grid[-1].sum() / grid[0].sum()
            last = "decoder reads" if one["task"].iloc[0] in DECODER_ROW_TASKS else "last layer keeps"
            ax.set_title(f"{method} (k={k:g}) · example {example}{verdict} · {last} {kept:.0%}", fontsize=8)
    fig.legend(handles=[Patch(color=KEPT_COLOUR, label="kept"), Patch(color=PRUNED_COLOUR, label="pruned")],
               loc="outside upper right", ncols=2, fontsize=8)
    return fig


def layer_keep_plot(layer_keep: pd.DataFrame) -> Figure:
    """Keep ratio at each layer's input, one line per method, one panel per task."""
    tasks = sorted(layer_keep["task"].unique())
    if not tasks:
        return _empty("no keep traces")
    fig, axes = _panel_row(len(tasks), 4.2, 3.4, sharey=True)
    for ax, task in zip(axes, tasks):
        one = layer_keep[layer_keep["task"] == task]
        for method in method_order(one["method"].tolist()):
            line = one[one["method"] == method].sort_values("layer")
            k = float(line["k"].iloc[0])
            note = ", masked, not removed" if method in METHOD_TABLE and METHOD_TABLE[method].masks else ""
            ax.plot(line["layer"] + 1, line["keep_ratio"], marker="o", color=_colour(method),
                    label=f"{method} (k={k:g}{note})")
        ax.set_title(task)
        ax.set_xlabel("layer")
        ax.set_ylim(0, 1.05)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("fraction of tokens kept")
    axes[-1].legend(fontsize=7, loc="lower left")
    return fig


def token_kind_plot(kinds: pd.DataFrame) -> Figure:
    """Fraction of each kind of token still alive at the last layer, bars per method, one panel per task."""
    tasks = sorted(kinds["task"].unique())
    if not tasks:
        return _empty("no keep traces")
    fig, axes = _panel_row(len(tasks), 5.0, 3.6, sharey=True)
    for ax, task in zip(axes, tasks):
        one = kinds[kinds["task"] == task].copy()
        one["kind"] = one["kind"].astype(str)
        methods = method_order(one["method"].tolist())
        order = [kind for kind in KINDS if kind in set(one["kind"])]
        sns.barplot(data=one, x="kind", y="survival", hue="method", order=order, hue_order=methods,
                    palette={m: _colour(m) for m in methods}, ax=ax)
        ax.set_title(task)
        ax.set_xlabel("")
        ax.set_ylim(0, 1.05)
        ax.tick_params(axis="x", rotation=20)
        ax.legend(fontsize=7, title=None)
    axes[0].set_ylabel("kept at the last layer")
    return fig


SPEED_AXIS = "measured speedup (× fastest dense baseline)"
"""The speedup axis label: results.csv's `speedup` by the fastest-baseline rule (`tsdtp.runs.speedups`)."""

OLDER_ROWS_NOTE = "hatched/dashed: older rows, × padded forward"
"""Added to a speedup axis label when some rows predate the rule (`frames.speedup_basis`)."""


def _speed_label(base: str, basis: pd.Series) -> str:
    return f"{base}\n({OLDER_ROWS_NOTE})" if (basis == PADDED_BASIS).any() else base


def _curve(ax: Axes, points: pd.DataFrame, x: str, method: str, older: bool) -> None:
    """One method's metric over `x`, sorted; rows older than the speedup rule dashed with hollow markers."""
    if points.empty:
        return
    points = points.sort_values(x)
    ax.plot(points[x], points["metric"], marker="o", color=_colour(method), label=method,
            linestyle="--" if older else "-", markerfacecolor="none" if older else _colour(method))


def headline_panels(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """`panels` without the news test set: a caption translator scores noise there (the tables keep its rows)."""
    if "eval_split" in frame.columns:
        frame = frame[~frame["eval_split"].astype(str).str.endswith("(news)")]
    return panels(frame)


def tradeoff_plot(results: pd.DataFrame) -> Figure:
    """Metric against FLOPs ratio (top) and against measured speedup (bottom), a curve over k per method.

    The speedup is against the fastest dense baseline; rows measured before that rule (against the
    padded forward) are drawn dashed and hollow. One column per task, or per task and test set
    when a task has several (`analysis.panels`).
    """
    columns = headline_panels(results)
    if not columns:
        return _empty("results.csv has no rows")
    fig, axes = _panel_grid(2, len(columns), 4.6, 7.0)
    for column, (title, one) in enumerate(columns):
        dense = one[one["method"] == DENSE_METHOD]
        older = speedup_basis(one) == PADDED_BASIS
        for row, x in enumerate(("flops_ratio", "speedup")):
            ax = axes[row, column]
            for method in method_order(one["method"].tolist()):
                mine = (one["method"] == method) & one[x].notna()
                if x == "flops_ratio":
                    _curve(ax, one[mine], x, method, older=False)
                else:
                    _curve(ax, one[mine & ~older], x, method, older=False)
                    _curve(ax, one[mine & older], x, method, older=True)
            if not dense.empty:
                ax.axhline(float(dense["metric"].iloc[0]), color=_colour(DENSE_METHOD), linestyle=":", linewidth=1)
            ax.axvline(1.0, color="grey", linestyle=":", linewidth=1)
            ax.set_xlabel("FLOPs ratio (pruned / dense, scorer included)" if x == "flops_ratio"
                          else _speed_label(SPEED_AXIS, speedup_basis(one[one[x].notna()])))
            ax.set_ylabel(str(one["metric_name"].iloc[0]))
            ax.set_title(title, fontsize=9)
            ax.grid(alpha=0.3)
    handles = {line.get_label(): line for ax in axes.flat for line in ax.get_lines()
               if not line.get_label().startswith("_")}
    fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncols=min(4, len(handles)),
               fontsize=8)
    return fig


def realization_plot(realized: pd.DataFrame) -> Figure:
    """Measured over FLOPs-implied speedup per method and k (1 is the FLOPs ceiling).

    The measured speedup is against the fastest dense baseline; bars of rows measured before that
    rule (`speedup_basis`: against the padded forward) are hatched. One panel per task, or per
    task and test set when a task has several (`analysis.panels`).
    """
    columns = headline_panels(realized)
    if not columns:
        return _empty("no measured speedups in results.csv (evaluate with speed_repeats > 0)")
    fig, axes = _panel_row(len(columns), 5.0, 3.8, sharey=True)
    for ax, (title, one) in zip(axes, columns):
        ordered = pd.concat([one[one["method"] == m].sort_values("k") for m in method_order(one["method"].tolist())])
        labels = [f"{m}\nk={k:g}" for m, k in zip(ordered["method"], ordered["k"])]
        bars = ax.bar(range(len(ordered)), ordered["realization"], color=[_colour(m) for m in ordered["method"]])
        for bar, basis in zip(bars, speedup_basis(ordered)):
            bar.set_hatch("//" if basis == PADDED_BASIS else None)
        ax.axhline(1.0, color="black", linestyle="--", linewidth=1, label="FLOPs-implied ceiling")
        ax.set_xticks(range(len(ordered)), labels, rotation=90, fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    axes[0].set_ylabel(_speed_label(f"{SPEED_AXIS}\n/ FLOPs-implied speedup",
                                    speedup_basis(realized)))
    axes[0].legend(fontsize=7)
    return fig


def memory_plot(memory: pd.DataFrame) -> Figure:
    """Peak memory (MiB, `frames.bench_memory`) per method and k, bars per batch size, one panel per task."""
    tasks = sorted(memory["task"].unique())
    if not tasks:
        return _empty("bench.csv has no memory measurements")
    fig, axes = _panel_row(len(tasks), 5.5, 4.0, sharey=True)
    keys = [key for key in ("method", "k", "batch_size") if key in memory.columns]
    for ax, task in zip(axes, tasks):
        one = memory[memory["task"] == task].groupby(keys, as_index=False)["memory_mb"].median()
        one = pd.concat([one[one["method"] == m] for m in method_order(one["method"].tolist())])
        one["setting"] = [f"{row.method}\nk={row.k:g}" if "k" in keys else row.method for row in one.itertuples()]
        if "batch_size" in keys:
            sns.barplot(data=one, x="setting", y="memory_mb", hue="batch_size", palette="crest", ax=ax)
        else:
            sns.barplot(data=one, x="setting", y="memory_mb", color=KEPT_COLOUR, ax=ax)
        ax.tick_params(axis="x", rotation=90, labelsize=7)
        ax.set_xlabel("")
        ax.set_title(task)
        ax.grid(alpha=0.3, axis="y")
    axes[0].set_ylabel("peak memory (MiB)")
    return fig


def time_breakdown_plot(profile: pd.DataFrame, clock: str = "cpu") -> Figure:
    """Stacked bars of ms per batch by component (profile.csv rows), one bar per method, one panel per batch size."""
    rows = profile[profile["clock"] == clock]
    sizes = sorted(rows["batch_size"].unique())
    if not sizes:
        return _empty(f"no {clock} rows in the profile")
    colours = dict(zip(COMPONENTS, sns.color_palette("tab20", len(COMPONENTS))))
    fig, axes = _panel_row(len(sizes), 6.0, 1.2 + 0.5 * rows["label"].nunique())
    for ax, size in zip(axes, sizes):
        table = rows[rows["batch_size"] == size].pivot_table(index="label", columns="component",
                                                              values="ms_per_batch", sort=False, aggfunc="sum")
        left = np.zeros(len(table))
        for component in [c for c in COMPONENTS if c in table.columns]:
            ax.barh(table.index, table[component], left=left, color=colours[component], label=component)
            left += table[component].to_numpy()
        ax.invert_yaxis()
        ax.set_xlabel(f"ms per batch ({clock}, profiled)")
        ax.set_title(f"batch size {size}")
        ax.grid(alpha=0.3, axis="x")
    axes[-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return fig
