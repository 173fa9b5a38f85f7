"""Measured speed, FLOPs and memory of every method on the same data, in one process.

Every method is measured in each batch order of `BenchSettings.orders`: the eval set batched
as it comes (`dataset`) and sorted by length, then batched (`length-sorted`). A (method, order)
pair is a unit. Per batch size, every unit first makes one untimed recording pass over its
batches (accuracy, live tokens per layer, hence FLOPs and padding) and `warmup` untimed passes.
Then come `repeats` timed passes, interleaved: each repeat runs every unit once, in an order
that rotates between repeats, so drift in machine speed hits all alike. Batches are collated
and moved to the device beforehand; a pass times the forward calls only, with the device
synchronised after each call (which also gives per-call latency). Statistics are
`torch.utils.benchmark` Measurements: medians with min and max.

The dense baselines are units too: transformers' forward (`dense`) and the packed engine with
pruning off (`none`), each in both orders (`tsdtp.runs.speedups.BASELINES`). `speedup` is by
the fastest-baseline rule: the method's throughput in the batch order of the fastest dense
baseline over that baseline's throughput, paired within a repeat (baseline time / method time
of the same repeat, median over repeats); `speedup_vs_<baseline>` holds the ratio against each.

Peak memory (`tsdtp.measure.memory`) and the `FlopCounterMode` cross-check (`tsdtp.core.flops`) run
once per method and batch size, on the batch with the most padded token slots.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd
import torch
from torch.utils.benchmark import Measurement
from torch.utils.benchmark.utils.common import TaskSpec

from tsdtp.errors import ConfigError
from tsdtp.measure.bench_columns import (
    BENCH_COLUMNS,
    Record,
    Timings,
    flops_columns,
    probe_columns,
    timing_columns,
)
from tsdtp.measure.devices import synchronize
from tsdtp.measure.methods import BenchSpec, BoundMethod
from tsdtp.measure.session import BenchData, Session, check_measure_settings, measuring
from tsdtp.runs.speedups import BASELINES, ENGINE, HF, ORDERS, SORTED_ORDER

DEFAULT_BATCH_SIZES: tuple[int, ...] = (1, 8, 32, 128)
DEFAULT_METHODS = "dense,none,run,general-dtp-posthoc,topk,reference-masking"
"""What `tsdtp bench` measures unless `--methods` says otherwise."""

BASELINE_METHODS: tuple[str, ...] = ("dense", "none")
"""The dense forwards every `tsdtp bench` run measures (`with_baselines`): transformers' and the engine's."""


def with_baselines(methods: str) -> str:
    """The `--methods` list with `dense` and `none` (on the default run) put in front where it lacks them."""
    named = {part.strip() for part in methods.split(",")}
    return ",".join([*(m for m in BASELINE_METHODS if m not in named), methods])


@dataclass(frozen=True)
class BenchSettings:
    """How to measure (`cls_only_last_layer`: every method, dense included, runs its last layer for [CLS] alone)."""

    batch_sizes: tuple[int, ...] = DEFAULT_BATCH_SIZES
    repeats: int = 5
    warmup: int = 1
    threads: int = 2
    device: str = "cpu"
    dtype: str = "fp32"
    orders: tuple[str, ...] = ORDERS
    measure_memory: bool = True
    check_flops: bool = True
    progress: bool = False
    cls_only_last_layer: bool = False

    def __post_init__(self) -> None:
        check_measure_settings(self.batch_sizes, self.warmup, self.threads, self.dtype)
        if self.repeats < 1:
            raise ConfigError(f"need repeats >= 1 (got {self.repeats})")
        if not self.orders or any(order not in ORDERS for order in self.orders) or len(set(self.orders)) != len(
                self.orders):
            raise ConfigError(f"batch orders must be distinct, from {', '.join(ORDERS)} (got {self.orders})")


@dataclass
class BenchResult:
    """bench.csv rows and the timing Measurements behind them."""

    rows: pd.DataFrame
    measurements: list[Measurement] = field(default_factory=list)


def run_benchmark(specs: Sequence[BenchSpec], data: BenchData, settings: BenchSettings) -> BenchResult:
    """Measure every spec on `data` as `settings` says; one bench.csv row per spec and batch size."""
    frames, measurements = [], []
    with measuring(specs, data, settings) as session:
        for batch_size in settings.batch_sizes:
            rows, measured = _bench_batch_size(session, settings, batch_size)
            frames.append(pd.DataFrame(rows, columns=list(BENCH_COLUMNS)))
            measurements.extend(measured)
    return BenchResult(pd.concat(frames, ignore_index=True), measurements)


def _bench_batch_size(session: Session, settings: BenchSettings, batch_size: int
                      ) -> tuple[list[dict[str, object]], list[Measurement]]:
    """Record, warm up and time every method in every order at `batch_size`; its bench.csv rows and Measurements.

    Rows come order by order, the methods in spec order within each.
    """
    methods, device = session.methods, session.device
    batches = {order: session.batches(batch_size, order == SORTED_ORDER) for order in settings.orders}
    units = [(m, order) for order in settings.orders for m in methods]
    records = {(m.label, order): _record(m, batches[order]) for m, order in units}
    for _ in range(settings.warmup):
        for method, order in units:
            _timed_pass(method, batches[order], device)
    timings = _timed_repeats(units, batches, settings, device, batch_size)
    baselines = baseline_units(methods, settings.orders)
    rows, measurements = [], []
    for method, order in units:
        unit = (method.label, order)
        measurement = _measurement(f"{method.label} ({order})", timings.passes[unit], batch_size, settings.threads)
        measurements.append(measurement)
        row = _row(session, method, records[unit], settings, batch_size, batches[order], order)
        row.update(timing_columns(timings, unit, baselines, measurement, session.data))
        row.update(flops_columns(method, records[unit], row["speedup"], row["speedup_vs_engine"]))
        probe = max(batches[order], key=lambda b: b["input_ids"].numel())
        row.update(probe_columns(method, probe, device, settings.measure_memory, settings.check_flops))
        rows.append(row)
    return rows, measurements


def baseline_units(methods: Sequence[BoundMethod], orders: Sequence[str]) -> dict[str, tuple[str, str]]:
    """Each dense baseline (`tsdtp.runs.speedups.BASELINES`) measured here -> its (method label, order) unit.

    transformers' forward is the method without pruning; the engine is the first that does not prune.
    """
    forwards = {HF: next((m.label for m in methods if m.pruning is None), None),
                ENGINE: next((m.label for m in methods if m.pruning is not None and not m.pruning.spec.prunes), None)}
    return {name: (forwards[forward], order) for name, (forward, order) in BASELINES.items()
            if forwards[forward] is not None and order in orders}


def _timed_repeats(units: list[tuple[BoundMethod, str]], batches: dict[str, list[dict[str, torch.Tensor]]],
                   settings: BenchSettings, device: torch.device, batch_size: int) -> Timings:
    """`settings.repeats` timed passes of every (method, order), in an order that rotates between repeats."""
    timings = Timings({(m.label, o): [] for m, o in units}, {(m.label, o): [] for m, o in units})
    for repeat in range(settings.repeats):
        shift = repeat % len(units)
        for method, order in units[shift:] + units[:shift]:
            seconds, per_call = _timed_pass(method, batches[order], device)
            timings.passes[(method.label, order)].append(seconds)
            timings.calls[(method.label, order)].extend(per_call)
            if settings.progress:
                print(f"bench: batch {batch_size} repeat {repeat + 1}/{settings.repeats} {method.label} ({order}): "
                      f"{seconds:.3f}s", file=sys.stderr)
    return timings


def _record(method: BoundMethod, batches: list[dict[str, torch.Tensor]]) -> Record:
    correct, tokens = 0, []
    for batch in batches:
        logits, per_layer = method(batch)
        correct += int((logits.argmax(dim=-1) == batch["labels"]).sum())
        tokens.append(per_layer.cpu())
    return Record(correct, tokens)


def _timed_pass(method: BoundMethod, batches: list[dict[str, torch.Tensor]], device: torch.device
                ) -> tuple[float, list[float]]:
    """Seconds for the forward calls of one pass, and each call's seconds."""
    synchronize(device)
    per_call = []
    for batch in batches:
        started = time.perf_counter()
        method(batch)
        synchronize(device)
        per_call.append(time.perf_counter() - started)
    return sum(per_call), per_call


def _measurement(label: str, times: list[float], batch_size: int, threads: int) -> Measurement:
    task = TaskSpec(stmt=label, setup="", label="tsdtp bench: one pass over the eval set", sub_label=label,
                    description=f"batch {batch_size}", num_threads=threads)
    return Measurement(number_per_run=1, raw_times=times, task_spec=task)


def _row(session: Session, method: BoundMethod, record: Record, settings: BenchSettings, batch_size: int,
         batches: list[dict[str, torch.Tensor]], order: str) -> dict[str, object]:
    """The columns saying what was measured, and the recorded pass's accuracy."""
    pruning = method.flops_pruning
    return {
        **session.run_columns(method, batch_size, len(batches), order == SORTED_ORDER), "order": order,
        "k": pruning.k if pruning.prunes else float("nan"),
        "gamma": pruning.gamma if pruning.uses_scorer else 0.0,
        "repeats": settings.repeats, "warmup": settings.warmup,
        "accuracy": record.correct / len(session.data.split), "torch_version": torch.__version__,
    }
