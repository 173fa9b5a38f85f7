"""The translation comparison's figure: each system's BLEU over its settings and seeds, and the matched differences.

It takes a `tsdtp.stats.paired.seed_summary` frame with a `system` column (one row per system and
setting: `metric_mean`, `metric_sd`, `flops_ratio_mean`, ...) and a `tsdtp.analysis.translation_matched.compare_matched`
table.
"""

from __future__ import annotations

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from tsdtp.core.config import DENSE_METHOD


def matched_plot(summary: pd.DataFrame, comparison: pd.DataFrame) -> Figure:
    """Left: BLEU (mean ± sd over seeds) against the encoder FLOPs ratio, a line through each system's settings
    and the dense system as a band. Right: each pair's BLEU difference at each matched FLOPs point with its
    paired 95% interval."""
    systems = list(dict.fromkeys(summary["system"]))
    colours = dict(zip(systems, sns.color_palette("colorblind", len(systems))))
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    curves, differences = fig.subplots(1, 2)
    for system in systems:
        points = summary[summary["system"] == system].sort_values("flops_ratio_mean")
        seeds = int(points["seeds"].max())
        if (points["method"] == DENSE_METHOD).all():
            mean, sd = points["metric_mean"].iloc[0], points["metric_sd"].fillna(0).iloc[0]
            curves.axhspan(mean - sd, mean + sd, color=colours[system], alpha=0.15)
            curves.axhline(mean, color=colours[system], linestyle=":", label=f"{system} ({seeds} seed(s))")
            continue
        curves.errorbar(points["flops_ratio_mean"], points["metric_mean"], yerr=points["metric_sd"].fillna(0),
                        xerr=points["flops_ratio_sd"].fillna(0), marker="o", markersize=4, capsize=2,
                        color=colours[system], label=f"{system} ({seeds} seed(s))")
    curves.set_xlabel("encoder FLOPs ratio (pruned / dense, scorer included)")
    curves.set_ylabel("BLEU, mean ± sd over seeds")
    curves.grid(alpha=0.3)
    curves.legend(fontsize=7)
    shown = comparison[(comparison["metric"] == "bleu") & comparison["difference"].notna()]
    for offset, ((first, second), pair) in enumerate(shown.groupby(["system", "other"], sort=False)):
        differences.errorbar(pair["point"] + 0.004 * offset, pair["difference"],
                             yerr=[pair["difference"] - pair["low"], pair["high"] - pair["difference"]], fmt="o",
                             capsize=3, color=colours.get(first, (0.4, 0.4, 0.4)), label=f"{first} − {second}")
    differences.axhline(0.0, color="black", linewidth=1)
    differences.set_xlabel("matched encoder FLOPs ratio")
    differences.set_ylabel("BLEU difference, paired 95% interval")
    differences.grid(alpha=0.3)
    if not shown.empty:
        differences.legend(fontsize=7)
    return fig
