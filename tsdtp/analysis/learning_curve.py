"""The learning curve of one run, from its `train_log.jsonl` (`tsdtp.runs.step_log.read_step_log`)."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

LOSS_PARTS: tuple[tuple[str, str], ...] = (
    ("loss", "total"), ("ce", "cross-entropy"), ("kl", "distillation KL"), ("rank", "ranking distillation"),
    ("aux", "keep loss"),
)
"""The loss columns a step log may hold, and their legend names."""


def learning_curve_plot(curve: pd.DataFrame, window: int = 10) -> Figure:
    """Left: each loss part against the step (thin: as logged; thick: rolling mean over `window` entries).
    Right, for pruning runs: the soft keep rate, and the keep target it is pulled toward when the log has one."""
    keeps = "soft_keep" in curve
    fig = Figure(figsize=(11 if keeps else 6, 3.6), layout="constrained")
    axes = fig.subplots(1, 2 if keeps else 1, squeeze=False)[0]
    for column, name in LOSS_PARTS:
        if column in curve:
            line, = axes[0].plot(curve["step"], curve[column], linewidth=0.6, alpha=0.35)
            axes[0].plot(curve["step"], curve[column].rolling(window, min_periods=1).mean(), color=line.get_color(),
                         linewidth=1.8, label=name)
    axes[0].set(title="training loss", xlabel="step", ylabel="loss")
    axes[0].legend(fontsize="small")
    if keeps:
        axes[1].plot(curve["step"], curve["soft_keep"].rolling(window, min_periods=1).mean(), label="soft keep rate")
        if "keep_target" in curve:
            axes[1].plot(curve["step"], curve["keep_target"], linestyle="--", color="black", label="keep target")
        axes[1].set(title="keep rate", xlabel="step", ylabel="fraction of tokens kept", ylim=(0, 1.05))
        axes[1].legend(fontsize="small")
    return fig
