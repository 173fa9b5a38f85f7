"""Measured speed, FLOPs and memory of every method on the same data, in one process.

Per batch size, every method first makes one untimed recording pass over the evaluation
batches (accuracy, live tokens per layer, hence FLOPs and padding) and `warmup` untimed
passes. Then come `repeats` timed passes, interleaved: each repeat runs every method once,
in an order that rotates between repeats, so drift in machine speed hits all methods alike.
Batches are collated and moved to the device beforehand; a pass times the forward calls
only, with the device synchronised after each call (which also gives per-call latency).
Statistics are `torch.utils.benchmark` Measurements: medians with min and max. Speedups
are paired within a repeat (dense time / method time of the same repeat).

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

DEFAULT_BATCH_SIZES: tuple[int, ...] = (1, 8, 32, 128)
DEFAULT_METHODS = "dense,none,run,general-dtp-posthoc,topk,reference-masking"
"""What `tsdtp bench` measures unless `--methods` says otherwise."""


@dataclass(frozen=True)
class BenchSettings:
    """How to measure."""

    batch_sizes: tuple[int, ...] = DEFAULT_BATCH_SIZES
    repeats: int = 5
    warmup: int = 1
    threads: int = 2
    device: str = "cpu"
    dtype: str = "fp32"
    sort_by_length: bool = False
    measure_memory: bool = True
    check_flops: bool = True
    progress: bool = False

    def __post_init__(self) -> None:
        check_measure_settings(self.batch_sizes, self.warmup, self.threads, self.dtype)
        if self.repeats < 1:
            raise ConfigError(f"need repeats >= 1 (got {self.repeats})")


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
    """Record, warm up and time every method at `batch_size`; its bench.csv rows and Measurements."""
    methods, device = session.methods, session.device
    batches = session.batches(batch_size)
    records = {m.label: _record(m, batches) for m in methods}
    for _ in range(settings.warmup):
        for method in methods:
            _timed_pass(method, batches, device)
    timings = _timed_repeats(methods, batches, settings, device, batch_size)
    probe = max(batches, key=lambda b: b["input_ids"].numel())
    dense = next((m.label for m in methods if m.pruning is None), None)
    engine = next((m.label for m in methods if m.pruning is not None and not m.pruning.spec.prunes), None)
    rows, measurements = [], []
    for method in methods:
        measurement = _measurement(method.label, timings.passes[method.label], batch_size, settings.threads)
        measurements.append(measurement)
        record = records[method.label]
        row = _row(session, method, record, settings, batch_size, len(batches))
        row.update(timing_columns(timings, method.label, dense, engine, measurement, session.data))
        row.update(flops_columns(method, record, row["speedup"], row["speedup_vs_engine"]))
        row.update(probe_columns(method, probe, device, settings.measure_memory, settings.check_flops))
        rows.append(row)
    return rows, measurements


def _timed_repeats(methods: list[BoundMethod], batches: list[dict[str, torch.Tensor]], settings: BenchSettings,
                   device: torch.device, batch_size: int) -> Timings:
    """`settings.repeats` timed passes of every method, in an order that rotates between repeats."""
    timings = Timings({m.label: [] for m in methods}, {m.label: [] for m in methods})
    for repeat in range(settings.repeats):
        shift = repeat % len(methods)
        for method in methods[shift:] + methods[:shift]:
            seconds, per_call = _timed_pass(method, batches, device)
            timings.passes[method.label].append(seconds)
            timings.calls[method.label].extend(per_call)
            if settings.progress:
                print(f"bench: batch {batch_size} repeat {repeat + 1}/{settings.repeats} {method.label}: "
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
         n_batches: int) -> dict[str, object]:
    """The columns saying what was measured, and the recorded pass's accuracy."""
    pruning = method.flops_pruning
    return {
        **session.run_columns(method, batch_size, n_batches),
        "k": pruning.k if pruning.prunes else float("nan"),
        "gamma": pruning.gamma if pruning.uses_scorer else 0.0,
        "repeats": settings.repeats, "warmup": settings.warmup,
        "accuracy": record.correct / len(session.data.split), "torch_version": torch.__version__,
    }
