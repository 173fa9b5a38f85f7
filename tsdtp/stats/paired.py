"""Statistics of a comparison that survives review: means over seeds, paired bootstrap intervals, matched points.

Pure functions over arrays and frames, no files. Accuracy is in percent. A method's per-example
correctness is a `[S, N]` array: one row per seed, one column per evaluation example (the same
examples, in the same order, for every method compared).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

BOOTSTRAP_RESAMPLES = 10_000
"""Resamples of a paired bootstrap interval."""


@dataclass(frozen=True)
class Interval:
    """A difference of accuracies (percent points) and its bootstrap confidence interval."""

    difference: float
    low: float
    high: float
    level: float

    def excludes_zero(self) -> bool:
        """Whether the interval lies entirely on one side of 0."""
        return self.low > 0 or self.high < 0


def _per_seed(correct: np.ndarray | Sequence[float]) -> np.ndarray:
    """`correct` as a float `[S, N]` array (a single run's `[N]` vector becomes one seed)."""
    array = np.asarray(correct, dtype=float)
    return array[None, :] if array.ndim == 1 else array


def paired_bootstrap(first: np.ndarray, second: np.ndarray, level: float = 0.95,
                     resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> Interval:
    """The accuracy difference `first - second` (percent points) with its paired bootstrap percentile interval.

    `first` and `second` hold per-example correctness (0/1, or interpolated values in [0, 1]), `[N]` or
    `[S, N]` (seeds of each method, not paired between the methods). Each resample draws N examples with
    replacement, the same for both methods (the pairing), and, with several seeds, the seeds of each
    method with replacement, so the interval carries the seed-to-seed spread as well as the examples'.
    """
    first, second = _per_seed(first), _per_seed(second)
    if first.shape[1] != second.shape[1] or first.shape[1] == 0:
        raise ValueError(f"paired correctness needs the same examples: got {first.shape[1]} and "
                         f"{second.shape[1]} example(s)")
    low, high = bootstrap_interval(first, second, lambda rows: rows.mean(), level, resamples, seed)
    return Interval(100 * (first.mean() - second.mean()), 100 * low, 100 * high, level)


def bootstrap_interval(first: np.ndarray, second: np.ndarray, score: Callable[[np.ndarray], float],
                       level: float, resamples: int, seed: int) -> tuple[float, float]:
    """The percentile interval of `score(first) - score(second)` over paired resamples: per resample, the
    examples (axis 1, the same for both) and each side's seeds (axis 0) are drawn with replacement."""
    rng = np.random.default_rng(seed)
    examples = first.shape[1]
    differences = np.empty(resamples)
    for index in range(resamples):
        chosen = rng.integers(0, examples, examples)
        mine = score(first[rng.integers(0, len(first), len(first))][:, chosen])
        theirs = score(second[rng.integers(0, len(second), len(second))][:, chosen])
        differences[index] = mine - theirs
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(differences, [tail, 100 - tail])
    return float(low), float(high)


def interpolate_correct(xs: Sequence[float], correct: np.ndarray, x: float) -> np.ndarray | None:
    """Per-example correctness at `x` along a curve of settings at `xs` (their `[P, N]` correctness rows).

    Linear between the two settings around `x` (so the accuracy is the curve's linear interpolation and
    stays paired per example); None outside the curve (no extrapolation).
    """
    order = np.argsort(np.asarray(xs, dtype=float), kind="stable")
    points, rows = np.asarray(xs, dtype=float)[order], np.asarray(correct, dtype=float)[order]
    if len(points) == 0 or not points[0] <= x <= points[-1]:
        return None
    upper = int(np.searchsorted(points, x, side="left"))
    if points[upper] == x:
        return rows[upper]
    weight = (x - points[upper - 1]) / (points[upper] - points[upper - 1])
    return (1 - weight) * rows[upper - 1] + weight * rows[upper]


def interpolate(xs: Sequence[float], ys: Sequence[float], x: float) -> float:
    """The value at `x` of the piecewise-linear curve through (`xs`, `ys`); NaN outside it."""
    found = interpolate_correct(xs, np.asarray(ys, dtype=float)[:, None], x)
    return float("nan") if found is None else float(found[0])


def mean_sd(values: Sequence[float]) -> tuple[float, float, int]:
    """Mean, sample standard deviation (NaN for one value) and count of the finite `values`."""
    finite = np.asarray([v for v in values if np.isfinite(v)], dtype=float)
    if len(finite) == 0:
        return float("nan"), float("nan"), 0
    return float(finite.mean()), float(finite.std(ddof=1)) if len(finite) > 1 else float("nan"), len(finite)


SUMMARY_VALUES: tuple[str, ...] = ("metric", "keep_ratio", "flops_ratio", "speedup")
"""The results columns `seed_summary` averages over seeds."""


def seed_summary(results: pd.DataFrame, by: Sequence[str], values: Sequence[str] = SUMMARY_VALUES) -> pd.DataFrame:
    """One row per group of `by` (a setting): `<value>_mean`, `<value>_sd` of each of `values` over its seeds,
    and `seeds`, how many rows (seeds) it has."""
    rows = []
    for key, group in results.groupby(list(by), dropna=False, sort=True):
        row = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        for value in values:
            mean, sd, _ = mean_sd(group[value].astype(float).tolist()) if value in group else (np.nan, np.nan, 0)
            row[f"{value}_mean"], row[f"{value}_sd"] = mean, sd
        row["seeds"] = len(group)
        rows.append(row)
    return pd.DataFrame(rows)
