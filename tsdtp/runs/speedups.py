"""Speedup against the fastest dense baseline: the rule bench.csv and results.csv share.

A dense baseline is an unpruned forward of the same weights, timed in one batch order:
    hf              transformers' padded forward, batches in dataset order
    hf_sorted       the same forward on length-sorted batches (sort the eval set by length, then
                    batch, as Trainer's `group_by_length` does)
    engine          the packed tsdtp engine with pruning off (method `none`), dataset order
    engine_sorted   the same engine on length-sorted batches

The rule: `speedup` is a method's throughput in the batch order of the FASTEST baseline (the one
with the smallest median pass time) divided by that baseline's throughput. It is paired per
repeat (baseline seconds / method seconds of the same repeat, the median over repeats; `_min`
and `_max` are the extremes). `speedup_vs_<name>` is the same ratio against each baseline, the
method timed in that baseline's order; `speedup_baseline` names the fastest. Rows written before
the rule have no `speedup_baseline`: their `speedup` is against `hf` (the padded forward).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence

DATASET_ORDER, SORTED_ORDER = "dataset", "length-sorted"
ORDERS: tuple[str, ...] = (DATASET_ORDER, SORTED_ORDER)
"""The batch orders every method is timed in: the eval set as it comes, and sorted by length."""

HF, ENGINE = "transformers", "engine"
BASELINES: dict[str, tuple[str, str]] = {
    "hf": (HF, DATASET_ORDER), "hf_sorted": (HF, SORTED_ORDER),
    "engine": (ENGINE, DATASET_ORDER), "engine_sorted": (ENGINE, SORTED_ORDER),
}
"""Each dense baseline's name -> (which forward, which batch order)."""

RATIO_COLUMNS: tuple[str, ...] = tuple(f"speedup_vs_{name}" for name in BASELINES)
"""One speedup column per baseline."""

SPEEDUP_COLUMNS: tuple[str, ...] = ("speedup", "speedup_min", "speedup_max", *RATIO_COLUMNS, "speedup_baseline")
"""What `speedup_columns` returns."""


def paired_ratios(baseline: Sequence[float], method: Sequence[float]) -> list[float]:
    """Baseline seconds / method seconds, repeat by repeat."""
    return [b / m for b, m in zip(baseline, method)]


def fastest_baseline(baselines: Mapping[str, Sequence[float]]) -> str | None:
    """The name of the baseline with the smallest median pass time (None when none was timed)."""
    timed = {name: times for name, times in baselines.items() if times}
    return min(timed, key=lambda name: statistics.median(timed[name])) if timed else None


def speedup_columns(method: Mapping[str, Sequence[float]], baselines: Mapping[str, Sequence[float]]
                    ) -> dict[str, object]:
    """`SPEEDUP_COLUMNS` of one method by the module's rule.

    `method`: batch order -> the method's pass seconds per repeat; `baselines`: baseline name
    (`BASELINES`) -> its pass seconds in the same repeats. A baseline or order not timed gives NaN.
    """
    nan = float("nan")
    columns: dict[str, object] = {}
    ratios: dict[str, list[float]] = {}
    for name, (_, order) in BASELINES.items():
        ratios[name] = paired_ratios(baselines.get(name, ()), method.get(order, ()))
        columns[f"speedup_vs_{name}"] = statistics.median(ratios[name]) if ratios[name] else nan
    fastest = fastest_baseline({name: baselines.get(name, ()) for name in BASELINES})
    best = ratios[fastest] if fastest is not None else []
    columns.update(speedup=statistics.median(best) if best else nan, speedup_min=min(best) if best else nan,
                   speedup_max=max(best) if best else nan, speedup_baseline=fastest if best else None)
    return columns


def interleaved_times(passes: dict[str, Callable[[], None]], repeats: int, warmup: int) -> dict[str, list[float]]:
    """Seconds of each pass per repeat, the passes run in turn within every repeat (after `warmup` rounds)."""
    times: dict[str, list[float]] = {name: [] for name in passes}
    for round_ in range(warmup + repeats):
        for name, run in passes.items():
            started = time.perf_counter()
            run()
            if round_ >= warmup:
                times[name].append(time.perf_counter() - started)
    return times
