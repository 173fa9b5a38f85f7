"""Figures over seeds: every setting as its mean with ± sd error bars, each method's Pareto front as a line.

They take `tsdtp.stats.paired.seed_summary` frames (one row per setting: `<value>_mean`, `<value>_sd`,
`seeds`) and the comparison table of `tsdtp.analysis.comparison.compare_at`.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from tsdtp.analysis.choose import pareto_front
from tsdtp.analysis.frames import method_order
from tsdtp.analysis.plots import PALETTE, SPEED_AXIS
from tsdtp.core.config import DENSE_METHOD

AXES: tuple[tuple[str, str, bool], ...] = (
    ("flops_ratio", "FLOPs ratio (pruned / dense, scorer included)", False),
    ("speedup", SPEED_AXIS, True),
)
"""The x axes of the trade-off: column, label, and whether a larger value is better."""


def _method_points(ax: Axes, points: pd.DataFrame, x: str, higher_is_better: bool, method: str) -> None:
    """One method's settings with error bars, and the line through its Pareto-optimal ones."""
    colour = PALETTE.get(method, (0.4, 0.4, 0.4))
    ax.errorbar(points[f"{x}_mean"], points["metric_mean"], xerr=points[f"{x}_sd"].fillna(0),
                yerr=points["metric_sd"].fillna(0), fmt="o", color=colour, alpha=0.45, markersize=4, capsize=2)
    front = points.iloc[pareto_front(points[f"{x}_mean"], points["metric_mean"], higher_is_better)]
    front = front.sort_values(f"{x}_mean")
    ax.plot(front[f"{x}_mean"], front["metric_mean"], marker="o", color=colour, label=method)


def seed_tradeoff_plot(summary: pd.DataFrame) -> Figure:
    """Accuracy (mean ± sd over seeds) against the FLOPs ratio (top) and the measured speedup (bottom).

    One column per task; the dense method is a horizontal band (mean ± sd). Settings without a measured
    speedup are left out of the bottom row.
    """
    tasks = sorted(summary["task"].unique())
    fig = Figure(figsize=(4.8 * max(1, len(tasks)), 7.5), layout="constrained")
    axes = fig.subplots(2, max(1, len(tasks)), squeeze=False)
    for column, task in enumerate(tasks):
        one = summary[summary["task"] == task]
        dense = one[one["method"] == DENSE_METHOD]
        for row, (x, label, higher_is_better) in enumerate(AXES):
            ax = axes[row, column]
            for method in method_order(one["method"].tolist()):
                points = one[(one["method"] == method) & one[f"{x}_mean"].notna()]
                if method != DENSE_METHOD and not points.empty:
                    _method_points(ax, points, x, higher_is_better, method)
            for _, reference in dense.iterrows():
                mean, sd = reference["metric_mean"], reference["metric_sd"] if pd.notna(reference["metric_sd"]) else 0
                ax.axhspan(mean - sd, mean + sd, color=PALETTE["dense"], alpha=0.15)
                ax.axhline(mean, color=PALETTE["dense"], linestyle=":", linewidth=1,
                           label=f"{DENSE_METHOD} ({int(reference['seeds'])} seed(s))")
            ax.set_xlabel(label)
            ax.set_ylabel("accuracy (%), mean ± sd over seeds")
            ax.set_title(str(task), fontsize=9)
            ax.grid(alpha=0.3)
    handles = {line.get_label(): line for ax in axes.flat for line in ax.get_lines()
               if not line.get_label().startswith("_")}
    fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncols=min(4, max(1, len(handles))),
               fontsize=8)
    return fig


def difference_plot(comparison: pd.DataFrame) -> Figure:
    """Each pair's accuracy difference at each matched point, with its paired 95% interval; one panel per task."""
    tasks = sorted(comparison["task"].unique())
    fig = Figure(figsize=(4.8 * max(1, len(tasks)), 3.6), layout="constrained")
    axes = fig.subplots(1, max(1, len(tasks)), squeeze=False)[0]
    for ax, task in zip(axes, tasks):
        one = comparison[(comparison["task"] == task) & comparison["difference"].notna()]
        for offset, ((first, second), pair) in enumerate(one.groupby(["method", "other"], sort=False)):
            shift = 0.006 * (offset - 1)
            ax.errorbar(pair["point"] + shift, pair["difference"], fmt="o",
                        yerr=[pair["difference"] - pair["low"], pair["high"] - pair["difference"]], capsize=3,
                        color=PALETTE.get(first, (0.4, 0.4, 0.4)), label=f"{first} − {second}")
        ax.axhline(0.0, color="black", linewidth=1)
        ax.set_xlabel(f"matched {one['x'].iloc[0] if not one.empty else 'keep_ratio'}")
        ax.set_ylabel("accuracy difference (points), 95% CI")
        ax.set_title(str(task), fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return fig
