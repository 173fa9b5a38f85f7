"""Two prefill figures drawn from the tables `tsdtp prefill` and notebook 07 write: which prompt tokens survive
each layer (with the few-shot prompt's parts marked) next to the per-layer cache sizes, and time to first token
against quality, one point per setting.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

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


MODEL_MARKERS: tuple[str, ...] = ("o", "s", "^", "D", "v", "P")
"""Marker per model in the TTFT-against-quality figure, in the quality table's order."""


def speedups_at(quality: pd.DataFrame, speed: pd.DataFrame, length: int) -> pd.DataFrame:
    """The quality rows at `length` with each setting's TTFT speedup over generate() (`ttft_speedup_vs_hf`) and
    the model it was timed on (`timed_on`): the row's own model, or, for a model with no speed rows (a
    classifier run: the same decoder, so the same prefill compute), the first timed model's timing of that
    setting. Rows whose setting was never timed are dropped."""
    timed = speed[speed["length"] == length].rename(columns={"engine": "setting"})
    timed = timed[["model", "setting", "ttft_speedup_vs_hf"]].assign(timed_on=timed["model"])
    rows = quality[quality["length"] == length]
    own = rows.merge(timed, on=["model", "setting"])
    untimed = rows[~rows["model"].isin(timed["model"])]
    if timed.empty or untimed.empty:
        return own
    reference = timed[timed["model"] == timed["model"].iloc[0]].drop(columns="model")
    return pd.concat([own, untimed.merge(reference, on="setting")], ignore_index=True)


def ttft_quality_figure(quality: pd.DataFrame, speed: pd.DataFrame, length: int) -> Figure:
    """At `length` prompt tokens, each setting's TTFT speedup over transformers' generate() against the share of
    few-shot answers equal to dense's (left) and the greedy agreement on news passages, free-running (filled)
    and teacher-forced (open; right), with issue 15's targets dotted (1.5x; 90% agreement). A colour per
    setting, as in the prefill figure, and a marker per model; a model never timed takes its setting's timing
    on the timed model (`speedups_at`), as its legend entry says."""
    joined = speedups_at(quality, speed, length)
    colours = setting_colours(list(dict.fromkeys(joined["setting"])))
    markers = dict(zip(dict.fromkeys(joined["model"]), MODEL_MARKERS * len(joined)))
    fig = Figure(figsize=(11, 4.6), layout="constrained")
    left, right = fig.subplots(1, 2)
    panels = [(left, FEW_SHOT, ["answer_agreement"], "few-shot answers equal to dense's"),
              (right, PASSAGES, ["agreement", "agreement_teacher_forced"],
               "next tokens equal to dense's (open: teacher-forced)")]
    for ax, kind, columns, ylabel in panels:
        for (model, name), point in joined[joined["kind"] == kind].groupby(["model", "setting"], sort=False):
            for column in columns:
                filled = column != "agreement_teacher_forced"
                ax.scatter(point["ttft_speedup_vs_hf"], point[column], s=45, marker=markers[model],
                           edgecolors=colours[name], facecolors=colours[name] if filled else "none")
        ax.axvline(1.5, color="black", linewidth=0.8, linestyle=":")
        ax.set(title=f"{kind}, {length} tokens", xlabel="TTFT speedup over transformers' generate()",
               ylabel=ylabel, ylim=(0, 1.05))
    right.axhline(0.9, color="black", linewidth=0.8, linestyle=":")
    handles = [Line2D([], [], linestyle="", marker="o", color=colour, label=name) for name, colour in colours.items()]
    for model, timed_on in joined.groupby("model", sort=False)["timed_on"].first().items():
        label = model if timed_on == model else f"{model} (timed as {timed_on})"
        handles.append(Line2D([], [], linestyle="", marker=markers[model], color="grey", label=label))
    fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize="small")
    return fig
