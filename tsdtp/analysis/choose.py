"""Choosing settings without peeking, and the Pareto points of a curve.

A setting is a trained configuration and how it is evaluated (`SETTING_COLUMNS`), over its seeds. For
each task, method and keep budget, `choose_settings` takes the setting with the best mean accuracy on
the held-out selection split (`tsdtp.runs.selection`) among those whose mean keep ratio
there is at most the budget; the reports then show only that setting's evaluation-split rows, or, for the
headline comparison, the whole curve its trained configurations trace at evaluation, over k (at the chosen
per-layer k offsets) or over top-k's keep schedule (`chosen_curves`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from tsdtp.core.config import method_spec
from tsdtp.runs.selection import is_selection_label
from tsdtp.runs.tables import row_keys
from tsdtp.stats.paired import seed_summary

SETTING_COLUMNS: tuple[str, ...] = ("task", "model", "method", "keep_target", "k", "gamma", "schedule", "removal",
                                    "variant")
"""What makes a setting, whatever the seed (results.csv columns)."""


def split_rows(results: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(evaluation-split rows, selection-split rows) of a results table."""
    selection = results["eval_split"].map(is_selection_label).astype(bool)
    return results[~selection].reset_index(drop=True), results[selection].reset_index(drop=True)


def _with_setting(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with every setting column (missing ones empty) and a `setting` key per row."""
    frame = frame.reindex(columns=list(dict.fromkeys([*frame.columns, *SETTING_COLUMNS])))
    return frame.assign(setting=row_keys(frame, SETTING_COLUMNS))


def choose_settings(results: pd.DataFrame, budgets: Sequence[float], x: str = "keep_ratio") -> pd.DataFrame:
    """The evaluation-split rows (one per seed) of the setting chosen on the selection split for each task,
    method and budget, with `budget`, `selection_metric` and `selection_<x>` (means over seeds) added.

    A setting qualifies for a budget when its mean `x` on the selection split is at most the budget; the
    best mean selection accuracy wins (ties: the smaller `x`). Empty without selection rows.
    """
    evaluation, selection = (_with_setting(frame) for frame in split_rows(results))
    summary = seed_summary(selection, ["setting", "task", "method"]) if not selection.empty else pd.DataFrame()
    chosen = []
    for (task, method), group in (summary.groupby(["task", "method"]) if not summary.empty else []):
        for budget in budgets:
            fit = group[group[f"{x}_mean"] <= budget]
            if fit.empty:
                continue
            best = fit.sort_values(["metric_mean", f"{x}_mean"], ascending=[False, True], kind="stable").iloc[0]
            chosen.append({"setting": best["setting"], "budget": budget, "selection_metric": best["metric_mean"],
                           f"selection_{x}": best[f"{x}_mean"]})
    if not chosen:
        return evaluation.iloc[0:0].assign(budget=pd.Series(dtype=float))
    return pd.DataFrame(chosen).merge(evaluation, on="setting").drop(columns="setting")


CURVE_COLUMNS: tuple[str, ...] = ("run_dir", "method", "pattern")
"""What identifies one curve (`chosen_curves`): a seed's trained configuration, the method it is read under, and,
for a thresholded method, its per-layer k offsets (`pattern`: the `schedule` cell; empty for the default)."""


def _with_pattern(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with a `pattern` column: the `schedule` of thresholded methods' rows (their k offsets), empty for
    scheduled methods, whose keep schedules are points along one curve."""
    schedule = frame.reindex(columns=["schedule"])["schedule"]
    thresholded = frame["method"].map(lambda name: method_spec(name).thresholded).astype(bool)
    return frame.assign(pattern=schedule.where(thresholded, None))


def chosen_curves(results: pd.DataFrame, budgets: Sequence[float], x: str = "keep_ratio") -> pd.DataFrame:
    """The whole evaluation-split curve (every seed) of each trained configuration that `choose_settings` chose
    at some budget: every row of its run folders under its method (`CURVE_COLUMNS`), whatever evaluation-time
    knob traced it (k, or a top-k keep schedule), which is never chosen on the evaluation split. Empty without
    selection rows.

    Each task and method keeps one curve per seed: that of the setting chosen at the tightest budget any
    setting meets. Its points are never mixed across trained configurations or, for a thresholded method
    evaluated at several k-offset patterns, across patterns (each pattern is its own curve over k).
    """
    chosen = choose_settings(results, budgets, x)
    if chosen.empty:
        return chosen.drop(columns=["budget"])
    chosen = _with_pattern(chosen)
    tightest = chosen.groupby(["task", "method"])["budget"].transform("min")
    chosen = chosen[chosen["budget"] == tightest]
    evaluation = _with_pattern(split_rows(results)[0])
    trained = set(row_keys(chosen, CURVE_COLUMNS))
    keep = [key in trained for key in row_keys(evaluation, CURVE_COLUMNS)]
    return evaluation[keep].drop(columns="pattern")


def pareto_front(xs: Sequence[float], ys: Sequence[float], higher_x_is_better: bool = False) -> np.ndarray:
    """Indices of the Pareto-optimal points (no other point has a better or equal x and a higher y), by x."""
    xs, ys = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    cost = -xs if higher_x_is_better else xs
    order = np.lexsort((-ys, cost))
    front, best = [], -np.inf
    for index in order:
        if ys[index] > best:
            front.append(index)
            best = ys[index]
    return np.asarray(front, dtype=int)


def runs_shown(results: pd.DataFrame, seed: int | None = 0, variants: dict[str, str] | None = None) -> pd.DataFrame:
    """The rows of one `seed` (None: every seed; a row without a seed counts as seed 0) and, for each task named in
    `variants`, of that results variant only (a row without one has the empty variant), e.g.
    `{"wmt16": "exit after 1,2,3,4,5; kd 0.5"}` so that other exit modes and gates of the same method are not shown."""
    shown = pd.Series(True, index=results.index)
    if seed is not None and "seed" in results.columns:
        shown &= results["seed"].fillna(0).astype(int) == seed
    column = results["variant"].astype(object).fillna("") if "variant" in results.columns else pd.Series(
        "", index=results.index, dtype=object)
    for task, variant in (variants or {}).items():
        shown &= (results["task"] != task) | (column == variant)
    return results[shown]
