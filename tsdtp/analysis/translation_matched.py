"""Translation systems compared at a matched encoder FLOPs ratio, over seeds, with a paired bootstrap interval.

A system's curve, per seed, is its evaluated settings (k at evaluation): each one's encoder FLOPs ratio
and its per-sentence sacreBLEU sufficient statistics on the test set. At a FLOPs ratio between two
settings, each sentence's statistics are interpolated linearly between theirs
(`tsdtp.stats.paired.interpolate_correct`), so the corpus score is read off the curve and stays paired
per sentence, as classification interpolates per-example correctness. The dense system has one setting
and is read as it is at every point. The interval resamples the test sentences (the same for both
systems) and each system's seeds with replacement, as `tsdtp.stats.paired.paired_bootstrap` does.
Scores are a seed mean of corpus scores.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sacrebleu.metrics import BLEU, CHRF

from tsdtp.analysis.stored_hypotheses import load_hypotheses
from tsdtp.core.config import DENSE_METHOD
from tsdtp.errors import DataError
from tsdtp.stats.paired import Interval, bootstrap_interval, interpolate_correct, mean_sd
from tsdtp.translation.compare import BOOTSTRAP_SEED, corpus_score, sentence_statistics

METRICS: dict[str, Callable[[], BLEU | CHRF]] = {"bleu": BLEU, "chrf": CHRF}
"""The corpus metrics compared, by results column name."""


@dataclass(frozen=True)
class Curve:
    """One seed of one system: its settings' encoder FLOPs ratios `[P]` and sentence statistics `[P, N, F]`."""

    flops: np.ndarray
    statistics: np.ndarray
    dense: bool = False

    def at(self, flops_ratio: float) -> np.ndarray | None:
        """The sentence statistics `[N, F]` at `flops_ratio`, linearly between settings; None outside the curve.
        A dense curve is its one setting at every point."""
        if self.dense:
            return self.statistics[0]
        return interpolate_correct(self.flops.tolist(), self.statistics, flops_ratio)


def system_curves(rows: pd.DataFrame, hypotheses: Callable[[pd.Series], list[str]], references: Sequence[str],
                  metric: BLEU | CHRF) -> list[Curve]:
    """One `Curve` per seed of one system's results rows (its settings on one test set); `hypotheses` reads a
    row's translations. DataError when a row's translations do not cover the test set."""
    curves = []
    for _, seed_rows in rows.sort_values("flops_ratio").groupby("seed", dropna=False, sort=True):
        statistics = []
        for _, row in seed_rows.iterrows():
            lines = hypotheses(row)
            if len(lines) != len(references):
                raise DataError(f"{row['method']} k={row['k']} ({row['run_dir']}) has {len(lines)} translations "
                                f"for {len(references)} references; evaluate every setting on the whole test set")
            statistics.append(sentence_statistics(metric, lines, references))
        dense = bool((seed_rows["method"] == DENSE_METHOD).all())
        curves.append(Curve(seed_rows["flops_ratio"].to_numpy(float), np.stack(statistics), dense))
    return curves


def seed_scores(metric: BLEU | CHRF, per_seed: np.ndarray) -> np.ndarray:
    """The corpus score of each seed's sentence statistics `[S, N, F]`."""
    return np.array([corpus_score(metric, statistics) for statistics in per_seed])


def matched_difference(metric: BLEU | CHRF, first: np.ndarray, second: np.ndarray, level: float = 0.95,
                       resamples: int = 1000, seed: int = BOOTSTRAP_SEED) -> Interval:
    """The seed-mean score of `first` minus that of `second` (sentence statistics `[S, N, F]` of each, on the
    same N sentences) with its paired bootstrap percentile interval over sentences and seeds."""
    if first.shape[1] != second.shape[1] or first.shape[1] == 0:
        raise DataError(f"a paired comparison needs the same test sentences: got {first.shape[1]} and "
                        f"{second.shape[1]}")
    low, high = bootstrap_interval(first, second, lambda per_seed: seed_scores(metric, per_seed).mean(), level,
                                   resamples, seed)
    difference = seed_scores(metric, first).mean() - seed_scores(metric, second).mean()
    return Interval(float(difference), low, high, level)


def compare_matched(curves: dict[str, list[Curve]], pairs: Sequence[tuple[str, str]], points: Sequence[float],
                    metric_name: str = "bleu", resamples: int = 1000) -> pd.DataFrame:
    """One row per matched encoder FLOPs point and pair (system, other): each system's score there (mean ± sd
    over seeds, and how many), and `system - other` with its paired 95% interval; NaN where a curve does not
    reach the point. `curves` holds each system's per-seed curves of the metric `metric_name`."""
    metric = METRICS[metric_name]()
    rows = []
    for point in points:
        for first, second in pairs:
            found = [_stacked_at(curves.get(name, []), point) for name in (first, second)]
            row = {"metric": metric_name, "point": point, "system": first, "other": second}
            for prefix, per_seed in zip(("", "other_"), found):
                scores = [] if per_seed is None else seed_scores(metric, per_seed).tolist()
                row[f"{prefix}score"], row[f"{prefix}sd"], row[f"{prefix}seeds"] = mean_sd(scores)
            interval = (matched_difference(metric, found[0], found[1], resamples=resamples)
                        if found[0] is not None and found[1] is not None else None)
            row.update({"difference": np.nan, "low": np.nan, "high": np.nan} if interval is None else
                       {"difference": interval.difference, "low": interval.low, "high": interval.high})
            rows.append(row)
    return pd.DataFrame(rows)


def _stacked_at(curves: Sequence[Curve], point: float) -> np.ndarray | None:
    """Every seed's statistics at `point`, `[S, N, F]`; None when there is no curve or one does not reach it."""
    found = [curve.at(point) for curve in curves]
    if not found or any(statistics is None for statistics in found):
        return None
    return np.stack(found)


def read_system_rows(translation: pd.DataFrame, systems: dict[str, tuple[str, str | None]], eval_split: str
                     ) -> dict[str, pd.DataFrame]:
    """Each system's rows of translation.csv on one test set (by its `eval_split` label): a system is a
    (method, variant) pair, e.g. `("ts-dtp", "exit after 1,2,3,4,5; kd 0.5")`; the dense system is `("none", "")`.
    A variant of None takes the method's only variant; DataError when it has several."""
    on_split = translation[translation["eval_split"] == eval_split]
    variants = (on_split["variant"].astype(object).fillna("") if "variant" in on_split
                else pd.Series("", index=on_split.index, dtype=object))
    found = {}
    for name, (method, wanted) in systems.items():
        rows = on_split[on_split["method"] == method]
        if wanted is None and variants[rows.index].nunique() > 1:
            raise DataError(f"system {name!r}: {method} has {variants[rows.index].nunique()} variants on "
                            f"{eval_split} ({sorted(variants[rows.index].unique())}); name the one to compare")
        found[name] = rows if wanted is None else rows[variants[rows.index] == wanted]
    return found


def hypotheses_reader(split: str, hypotheses_dir: str | Path) -> Callable[[pd.Series], list[str]]:
    """A function reading a results row's stored translations of `split` (`tsdtp.analysis.stored_hypotheses`)."""
    return lambda row: load_hypotheses(row, split, hypotheses_dir)
