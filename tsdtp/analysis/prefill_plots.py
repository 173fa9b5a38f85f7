"""The prefill figure: time to first token and quality of pruned prefill against the prompt length.

It reads the two tables `tsdtp prefill` writes (`tsdtp.measure.prefill_report`): `llm_prefill_speed.csv`
(one row per length and engine) and `llm_prefill_quality.csv` (one row per length, kind and setting).
"""

from __future__ import annotations

import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from tsdtp.measure.prefill_report import HF_ENGINE

FEW_SHOT, PASSAGES = "few-shot sst2", "passages newstest2016"
MARKERS = ("o", "s", "^", "D")
"""The marker of each model in the quality panels, in the order the tables first name them."""


def setting_colours(settings: list[str]) -> dict[str, tuple[float, float, float]]:
    """Dense in grey, every pruned setting its own colour, the same in every panel."""
    pruned = [name for name in settings if name != "dense"]
    return {"dense": (0.35, 0.35, 0.35), **dict(zip(pruned, sns.color_palette("colorblind", len(pruned))))}


def _speed_panel(ax: Axes, speed: pd.DataFrame, colours: dict[str, tuple[float, float, float]]) -> None:
    """Measured TTFT speedup over transformers' generate() (solid) and the FLOPs-implied one (dashed)."""
    for name, rows in speed[speed["engine"] != HF_ENGINE].groupby("engine", sort=False):
        rows = rows.sort_values("length")
        colour = colours.get(name, (0.6, 0.6, 0.6))
        ax.plot(rows["length"], rows["ttft_speedup_vs_hf"], marker="o", color=colour, label=name)
        ax.plot(rows["length"], rows["flops_implied_speedup"], linestyle="--", color=colour, alpha=0.7)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set(title="time to first token (dashed: FLOPs-implied)", xlabel="prompt tokens",
           ylabel="speedup over transformers' generate()")


def _quality_panel(ax: Axes, quality: pd.DataFrame, kind: str, column: str, ylabel: str,
                   colours: dict[str, tuple[float, float, float]], dashed: str | None = None) -> None:
    """One quality column of one kind of prompt against the prompt length, a line per model and setting (a
    marker shape per model, named in the panel's legend when there are several), and the `dashed` column,
    when given, as a dashed line of the same colour."""
    rows = quality[quality["kind"] == kind]
    models = list(dict.fromkeys(rows["model"]))
    for (model, name), points in rows.groupby(["model", "setting"], sort=False):
        points = points.sort_values("length")
        colour, marker = colours.get(name, (0.6, 0.6, 0.6)), MARKERS[models.index(model) % len(MARKERS)]
        ax.plot(points["length"], points[column], marker=marker, color=colour, label=name)
        if dashed is not None and dashed in points:
            ax.plot(points["length"], points[dashed], linestyle="--", color=colour, alpha=0.7)
    if len(models) > 1:
        ax.legend(handles=[Line2D([], [], color="black", linestyle="", marker=MARKERS[i % len(MARKERS)], label=model)
                           for i, model in enumerate(models)], fontsize="small")
    ax.set(title=f"{kind} ({_examples_text(rows['examples'])})", xlabel="prompt tokens", ylabel=ylabel)


def _examples_text(examples: pd.Series) -> str:
    """How many prompts each point averages: one count, or the range when the rows differ."""
    low, high = (int(examples.min()), int(examples.max())) if not examples.empty else (0, 0)
    return f"{high} per length" if low == high else f"{low}-{high} per point"


def prefill_plot(quality: pd.DataFrame, speed: pd.DataFrame) -> Figure:
    """Three panels against the prompt length: TTFT speedup, few-shot SST-2 accuracy (dotted: chance), and the
    agreement of the greedy continuation with dense generation on news passages, free-running and teacher-forced.
    One colour per setting, dense in grey, every setting of either table in the legend (a setting only some
    models measured, such as trained scorers, included)."""
    settings = list(dict.fromkeys([*quality.get("setting", pd.Series(dtype=str)),
                                   *speed.get("engine", pd.Series(dtype=str))]))
    colours = setting_colours([name for name in settings if name != HF_ENGINE])
    fig = Figure(figsize=(15, 4.2), layout="constrained")
    axes = fig.subplots(1, 3)
    _speed_panel(axes[0], speed, colours)
    _quality_panel(axes[1], quality, FEW_SHOT, "accuracy", "accuracy of the answer", colours)
    axes[1].axhline(0.5, color="black", linewidth=0.8, linestyle=":")
    _quality_panel(axes[2], quality, PASSAGES, "agreement", "greedy tokens equal to dense (dashed: teacher-forced)",
                   colours, dashed="agreement_teacher_forced")
    handles = [Line2D([], [], color=colour, marker="o", label=name) for name, colour in colours.items()]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(3, max(1, len(handles))), fontsize="small")
    return fig
