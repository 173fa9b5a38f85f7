"""The headline comparison: two methods at a matched keep (or FLOPs) ratio, over seeds, with a paired interval.

Each method's curve, per seed, is its evaluation-split rows (the settings chosen on the selection split,
`tsdtp.analysis.choose`, where there are any). Its per-example correctness comes from the stored keep
traces (`tsdtp.analysis.stored_traces`: every evaluation keeps whether each example was classified
correctly), is interpolated to the matched point along the curve (`tsdtp.stats.paired`), and the
difference between two methods gets a paired bootstrap interval over examples and seeds. The dense
method has one point (keep 1): it is matched as it is at every point.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from tsdtp.analysis.stored_traces import stored_trace_path
from tsdtp.core.config import DENSE_METHOD
from tsdtp.stats.paired import interpolate_correct, mean_sd, paired_bootstrap


def example_correct(row: pd.Series, traces_dir: str | Path) -> pd.Series:
    """Whether each example (by index) was classified correctly in the evaluation of one results row, as 0/1."""
    table = pd.read_parquet(stored_trace_path(row, traces_dir), columns=["example", "correct"])
    return table.groupby("example")["correct"].first().astype(float)


def matched_correct(rows: pd.DataFrame, traces_dir: str | Path, x: str, point: float
                    ) -> tuple[np.ndarray, pd.Index] | None:
    """One method's per-example correctness at `point` of `x`, `[seeds, examples]`, and the example index;
    None when a seed's curve does not reach the point."""
    per_seed, index = [], None
    for _, curve in rows.groupby("seed", dropna=False, sort=True):
        columns = [example_correct(row, traces_dir) for _, row in curve.iterrows()]
        index = columns[0].index if index is None else index
        if any(not column.index.equals(index) for column in columns):
            raise ValueError(f"{rows['method'].iloc[0]} was evaluated on other examples in some settings; "
                             "evaluate every setting on the same split")
        stacked = np.stack([column.to_numpy() for column in columns])
        found = stacked[0] if rows["method"].iloc[0] == DENSE_METHOD else interpolate_correct(
            curve[x].astype(float).tolist(), stacked, point)
        if found is None:
            return None
        per_seed.append(found)
    return (np.stack(per_seed), index) if per_seed else None


def compare_at(rows: pd.DataFrame, traces_dir: str | Path, pairs: Sequence[tuple[str, str]],
               points: Sequence[float], x: str = "keep_ratio") -> pd.DataFrame:
    """One row per task, point and pair (first, second): each method's accuracy at the point (mean ± sd over
    seeds, and how many), and `first - second` with its paired 95% bootstrap interval (NaN where a curve does
    not reach the point)."""
    out = []
    for task, one in rows.groupby("task", sort=True):
        for point in points:
            for first, second in pairs:
                found = [matched_correct(one[one["method"] == method], traces_dir, x, point)
                         if (one["method"] == method).any() else None for method in (first, second)]
                record = {"task": task, "x": x, "point": point, "method": first, "other": second}
                for prefix, matched in zip(("", "other_"), found):
                    per_seed = [100 * float(seed.mean()) for seed in matched[0]] if matched is not None else []
                    record[f"{prefix}accuracy"], record[f"{prefix}sd"], record[f"{prefix}seeds"] = mean_sd(per_seed)
                record.update(_difference(found))
                out.append(record)
    return pd.DataFrame(out)


def _difference(found: list[tuple[np.ndarray, pd.Index] | None]) -> dict[str, float]:
    """The paired difference of two matched methods and its interval (NaN when either is missing)."""
    if found[0] is None or found[1] is None:
        return {"difference": float("nan"), "low": float("nan"), "high": float("nan")}
    if not found[0][1].equals(found[1][1]):
        raise ValueError("the two methods were evaluated on different examples; compare them on the same split")
    interval = paired_bootstrap(found[0][0], found[1][0])
    return {"difference": interval.difference, "low": interval.low, "high": interval.high}
