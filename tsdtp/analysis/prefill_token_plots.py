"""Two prefill figures drawn from the tables `tsdtp prefill` and notebook 07 write: which prompt tokens survive
each layer (with the few-shot prompt's parts marked) next to the per-layer cache sizes, and time to first token
against quality, one point per setting.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from tsdtp.analysis.prefill_plots import FEW_SHOT, PASSAGES, setting_colours


def alive_matrix(rows: pd.DataFrame) -> np.ndarray:
    """Boolean [layers, prompt tokens] of one setting's survival rows: whether the layer computed the token."""
    alive = np.zeros((len(rows), int(rows["prompt_tokens"].iloc[0])), dtype=bool)
    for row, positions in enumerate(rows.sort_values("layer")["positions"]):
        alive[row, np.asarray(positions, dtype=int)] = True
    return alive


def _heatmap(ax: Axes, rows: pd.DataFrame, name: str) -> None:
    """One setting's survival: a dark cell per token a layer computed, the query's start as a red line and
    the label words' positions as ticks above."""
    alive = alive_matrix(rows)
    ax.imshow(alive, aspect="auto", cmap="Greys", interpolation="nearest", vmin=0, vmax=1)
    ax.axvline(int(rows["query_start"].iloc[0]), color="tab:red", linewidth=1.2)
    labels = np.asarray(rows["label_positions"].iloc[0], dtype=int)
    ax.plot(labels, np.full(len(labels), -0.9), linestyle="", marker="v", markersize=3, color="tab:blue",
            clip_on=False)
    kept = alive.sum(axis=1)[-1] / alive.shape[1]
    ax.set(title=f"{name}\n(last layer keeps {kept:.0%})", xlabel="prompt token", ylabel="layer")
    ax.title.set_fontsize("small")


def survival_figure(survival: pd.DataFrame, model: str) -> Figure:
    """For `model`'s rows of the survival table: one heatmap per pruned setting (red line: the query review
    starts; blue ticks: label words, the demonstrations' answers) and the cached tokens of every layer per
    setting."""
    rows = survival[survival["model"] == model]
    names = [name for name in dict.fromkeys(rows["setting"]) if rows[rows["setting"] == name]["cached"].nunique() > 1]
    fig = Figure(figsize=(4.2 * (len(names) + 1), 4.0), layout="constrained")
    axes = fig.subplots(1, len(names) + 1, squeeze=False)[0]
    for ax, name in zip(axes, names):
        _heatmap(ax, rows[rows["setting"] == name], name)
    colours = setting_colours(list(dict.fromkeys(rows["setting"])))
    for name, points in rows.groupby("setting", sort=False):
        axes[-1].step(points["layer"], points["cached"], where="post", label=name, color=colours[name])
    axes[-1].set(title="tokens each layer computes and caches", xlabel="layer", ylabel="cached prompt tokens",
                 ylim=(0, None))
    axes[-1].legend(fontsize="x-small")
    fig.suptitle(f"{model}: one few-shot SST-2 prompt of {int(rows['prompt_tokens'].iloc[0])} tokens")
    return fig


def ttft_quality_figure(quality: pd.DataFrame, speed: pd.DataFrame, length: int) -> Figure:
    """At `length` prompt tokens, each setting's TTFT speedup over transformers' generate() against the share of
    few-shot answers equal to dense's (left) and the greedy agreement on news passages, free-running (filled)
    and teacher-forced (open; right), with issue 15's targets dotted (1.5x; 90% agreement). A colour per
    setting, as in the prefill figure; only models with speed rows are drawn."""
    timed = speed[speed["length"] == length].rename(columns={"engine": "setting"})
    joined = quality[quality["length"] == length].merge(timed[["model", "setting", "ttft_speedup_vs_hf"]],
                                                        on=["model", "setting"])
    colours = setting_colours(list(dict.fromkeys(joined["setting"])))
    fig = Figure(figsize=(11, 4.6), layout="constrained")
    left, right = fig.subplots(1, 2)
    panels = [(left, FEW_SHOT, ["answer_agreement"], "few-shot answers equal to dense's"),
              (right, PASSAGES, ["agreement", "agreement_teacher_forced"],
               "next tokens equal to dense's (open: teacher-forced)")]
    for ax, kind, columns, ylabel in panels:
        for name, point in joined[joined["kind"] == kind].groupby("setting", sort=False):
            for column in columns:
                filled = column != "agreement_teacher_forced"
                ax.scatter(point["ttft_speedup_vs_hf"], point[column], s=45, edgecolors=colours[name],
                           facecolors=colours[name] if filled else "none", label=name if filled else None)
        ax.axvline(1.5, color="black", linewidth=0.8, linestyle=":")
        ax.set(title=f"{kind}, {length} tokens", xlabel="TTFT speedup over transformers' generate()",
               ylabel=ylabel, ylim=(0, 1.05))
    right.axhline(0.9, color="black", linewidth=0.8, linestyle=":")
    handles, labels = left.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=2, fontsize="small")
    return fig
