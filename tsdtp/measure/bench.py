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

import copy
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from torch.utils.benchmark import Measurement
from torch.utils.benchmark.utils.common import TaskSpec

from tsdtp.classification.checkpoint import load_checkpoint
from tsdtp.classification.encoding import EncodedSplit, batch_indices, collate
from tsdtp.classification.evaluate import encoder_shape, predict_batch
from tsdtp.classification.model import PrunedClassifier
from tsdtp.core.config import PruningConfig
from tsdtp.core.flops import (
    FlopsReport,
    computed_flops,
    counted_flops,
    method_flops,
    method_layers,
)
from tsdtp.errors import ConfigError
from tsdtp.measure.devices import (
    DTYPES,
    device_name,
    resolve_device,
    resolve_dtype,
    synchronize,
)
from tsdtp.measure.memory import peak_activation_bytes

BENCH_COLUMNS: tuple[str, ...] = (
    "task", "model", "eval_split", "n_eval", "label", "method", "k", "gamma", "impl", "run_dir",
    "device", "device_name", "threads", "dtype", "sorted_by_length", "batch_size", "n_batches", "repeats", "warmup",
    "time_s", "time_s_min", "time_s_max", "sentences_per_s", "sentences_per_s_min", "sentences_per_s_max",
    "tokens_per_s", "latency_ms", "latency_ms_min", "latency_ms_max", "noisy",
    "speedup", "speedup_min", "speedup_max", "speedup_vs_engine",
    "accuracy", "keep_ratio", "gflops_per_sentence", "flops_ratio", "flops_speedup", "realization",
    "realization_vs_engine", "scorer_overhead", "computed_gflops_per_sentence", "padding_waste",
    "padding_token_waste", "flops_counted_ratio", "peak_memory_mb", "memory_source", "memory_batch_slots",
    "torch_version",
)
"""The columns of bench.csv, one row per method x batch size (x device, dtype, threads, ordering).

time_s: seconds for one pass over the evaluation set (median over repeats; _min/_max).
latency_ms: per forward call (one batch); at batch size 1 this is the per-sentence latency.
noisy: torch.utils.benchmark flags the repeats as high-variance.
speedup: dense (transformers) time / method time, paired per repeat; speedup_vs_engine uses
    the tsdtp engine with pruning off instead, which separates pruning from packing gains.
flops_ratio: analytic FLOPs on live tokens, scorer included, over dense; flops_speedup is
    its inverse and realization = speedup / flops_speedup.
padding_waste: share of the FLOPs actually computed that went to padding (the batch layout
    each implementation uses); padding_token_waste: share of padded token slots, summed over
    layers, that are padding (what attention computes on).
flops_counted_ratio: FlopCounterMode's count / the analytic count of the same batch, padding
    included (the cross-check; pooler and head make it slightly above 1).
peak_memory_mb: peak activation memory of one forward on the batch with the most slots.
"""

DEFAULT_BATCH_SIZES: tuple[int, ...] = (1, 8, 32, 128)


@dataclass(frozen=True)
class BenchSpec:
    """One method to measure: its weights and how it prunes.

    source: a run directory or a loaded classifier. pruning: the pruning to apply, or None
    for the library's own dense forward (`transformers`) of the same weights.
    label: the row's name (derived from the pruning when empty); run_dir: where the weights
    came from, for the table.
    """

    source: str | Path | PrunedClassifier
    pruning: PruningConfig | None
    label: str = ""
    run_dir: str = ""


@dataclass(frozen=True)
class BenchData:
    """The evaluation set every method runs on, and what to call it in the tables."""

    task: str
    model_name: str
    split_name: str
    split: EncodedSplit
    pad_id: int


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


def check_measure_settings(batch_sizes: Sequence[int], warmup: int, threads: int, dtype: str) -> None:
    """ConfigError for settings no measurement can run with (bench and profile share them)."""
    if not batch_sizes or any(b < 1 for b in batch_sizes):
        raise ConfigError(f"batch sizes must be positive integers (got {batch_sizes})")
    if warmup < 0:
        raise ConfigError(f"warmup must be >= 0 (got {warmup})")
    if threads < 1:
        raise ConfigError(f"threads must be >= 1 (got {threads})")
    if dtype not in DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}; expected one of {', '.join(DTYPES)}")


@dataclass
class BenchResult:
    """bench.csv rows and the timing Measurements behind them."""

    rows: pd.DataFrame
    measurements: list[Measurement] = field(default_factory=list)


def spec_label(pruning: PruningConfig | None) -> str:
    """A short row name: `dense`, `none`, `ts-dtp k=1 g=0.5`, `topk final=0.3`, ..."""
    if pruning is None:
        return "dense"
    if pruning.method == "none":
        return "none"
    if pruning.method in ("topk", "random"):
        schedule = ("/".join(f"{r:g}" for r in pruning.keep_schedule) if pruning.keep_schedule
                    else f"final={pruning.topk_final_keep:g}")
        return f"{pruning.method} {schedule}"
    label = f"{pruning.method} k={pruning.k:g}"
    return f"{label} g={pruning.gamma:g}" if pruning.uses_scorer else label


@dataclass
class BoundMethod:
    """A spec bound to its loaded model: call it on a batch for (logits, tokens per layer)."""

    label: str
    pruning: PruningConfig | None
    model: PrunedClassifier
    run_dir: str
    generator: torch.Generator

    @property
    def impl(self) -> str:
        """Which code path runs: the library's forward, the packed engine, or padded masking."""
        if self.pruning is None:
            return "transformers"
        if self.pruning.method == "reference-masking":
            return "tsdtp padded, 2 passes"
        return "tsdtp packed"

    @property
    def flops_pruning(self) -> PruningConfig:
        """The pruning whose FLOPs this method costs (dense is method none)."""
        return self.pruning or PruningConfig(d_task=self.model.pruning.d_task)

    def __call__(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        if self.pruning is None:
            logits = self.model.adapter.dense_logits(batch)
            tokens = batch["attention_mask"].sum(dim=-1, keepdim=True).expand(-1, self.model.adapter.num_layers)
            return logits, tokens
        self.model.pruning = self.pruning
        logits, tokens, _ = predict_batch(self.model, batch, generator=self.generator)
        return logits, tokens


@dataclass
class _Record:
    """What the untimed recording pass of one method saw."""

    correct: int
    tokens: list[torch.Tensor]


def run_benchmark(specs: Sequence[BenchSpec], data: BenchData, settings: BenchSettings) -> BenchResult:
    """Measure every spec on `data` as `settings` says; one bench.csv row per spec and batch size."""
    device = resolve_device(settings.device)
    dtype = resolve_dtype(settings.dtype, device)
    methods = bind_specs(specs, device, dtype)
    trained = {id(m.model): (m.model, m.model.pruning) for m in methods}
    frames, measurements = [], []
    try:
        with fixed_threads(settings.threads), torch.inference_mode():
            for batch_size in settings.batch_sizes:
                batches = eval_batches(data, batch_size, settings.sort_by_length, device)
                rows, measured = _bench_batch_size(methods, batches, data, settings, device, batch_size)
                frames.append(pd.DataFrame(rows, columns=list(BENCH_COLUMNS)))
                measurements.extend(measured)
    finally:
        for model, pruning in trained.values():
            model.pruning = pruning
    return BenchResult(pd.concat(frames, ignore_index=True), measurements)


@contextmanager
def fixed_threads(threads: int) -> Iterator[None]:
    """Run the block with `threads` torch CPU threads, then restore the previous number."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def bind_specs(specs: Sequence[BenchSpec], device: torch.device, dtype: torch.dtype) -> list[BoundMethod]:
    """Load each distinct source once, on the device and in the dtype, and label the specs."""
    models: dict[object, PrunedClassifier] = {}
    methods = []
    for spec in specs:
        key = id(spec.source) if isinstance(spec.source, PrunedClassifier) else str(Path(spec.source).resolve())
        if key not in models:
            model = spec.source if isinstance(spec.source, PrunedClassifier) else load_checkpoint(spec.source)[0]
            parameter = next(model.parameters())
            if parameter.device != device or parameter.dtype != dtype:
                model = copy.deepcopy(model).to(device=device, dtype=dtype)
            models[key] = model.eval()
        run_dir = spec.run_dir or ("" if isinstance(spec.source, PrunedClassifier) else str(spec.source))
        seed = spec.pruning.seed if spec.pruning is not None else 0
        methods.append(BoundMethod(spec.label or spec_label(spec.pruning), spec.pruning, models[key], run_dir,
                                   torch.Generator(device=device).manual_seed(seed)))
    labels = [m.label for m in methods]
    for method in methods:
        if labels.count(method.label) > 1:
            method.label = f"{method.label} [{Path(method.run_dir).name or id(method.model)}]"
    if len({m.label for m in methods}) != len(methods):
        raise ConfigError(f"benchmark specs repeat the same method and weights: {labels}")
    return methods


def eval_batches(data: BenchData, batch_size: int, sort_by_length: bool, device: torch.device
             ) -> list[dict[str, torch.Tensor]]:
    """The evaluation set collated into batches of `batch_size`, on `device`."""
    order = batch_indices(data.split.lengths(), batch_size, shuffle=False, sort_by_length=sort_by_length)
    return [{k: v.to(device) for k, v in collate(data.split, indices, data.pad_id).items()} for indices in order]


def _bench_batch_size(methods: list[BoundMethod], batches: list[dict[str, torch.Tensor]], data: BenchData,
                      settings: BenchSettings, device: torch.device, batch_size: int
                      ) -> tuple[list[dict[str, object]], list[Measurement]]:
    records = {m.label: _record(m, batches) for m in methods}
    for _ in range(settings.warmup):
        for method in methods:
            _timed_pass(method, batches, device)
    times: dict[str, list[float]] = {m.label: [] for m in methods}
    calls: dict[str, list[float]] = {m.label: [] for m in methods}
    for repeat in range(settings.repeats):
        shift = repeat % len(methods)
        for method in methods[shift:] + methods[:shift]:
            seconds, per_call = _timed_pass(method, batches, device)
            times[method.label].append(seconds)
            calls[method.label].extend(per_call)
            if settings.progress:
                print(f"bench: batch {batch_size} repeat {repeat + 1}/{settings.repeats} {method.label}: "
                      f"{seconds:.3f}s", file=sys.stderr)
    probe = max(batches, key=lambda b: b["input_ids"].numel())
    dense = next((m.label for m in methods if m.pruning is None), None)
    engine = next((m.label for m in methods if m.pruning is not None and m.pruning.method == "none"), None)
    rows, measurements = [], []
    for method in methods:
        measurement = _measurement(method.label, times[method.label], batch_size, settings.threads)
        measurements.append(measurement)
        row = _row(method, records[method.label], data, settings, device, batch_size, len(batches))
        row.update(_timing_columns(times, calls, method.label, dense, engine, measurement, data))
        row.update(_flops_columns(method, records[method.label], row["speedup"], row["speedup_vs_engine"]))
        row.update(_probe_columns(method, probe, settings, device))
        rows.append(row)
    return rows, measurements


def _record(method: BoundMethod, batches: list[dict[str, torch.Tensor]]) -> _Record:
    correct, tokens = 0, []
    for batch in batches:
        logits, per_layer = method(batch)
        correct += int((logits.argmax(dim=-1) == batch["labels"]).sum())
        tokens.append(per_layer.cpu())
    return _Record(correct, tokens)


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


def _row(method: BoundMethod, record: _Record, data: BenchData, settings: BenchSettings, device: torch.device,
         batch_size: int, n_batches: int) -> dict[str, object]:
    pruning = method.flops_pruning
    return {
        "task": data.task, "model": data.model_name, "eval_split": data.split_name, "n_eval": len(data.split),
        "label": method.label, "method": "dense" if method.pruning is None else pruning.method,
        "k": pruning.k if pruning.prunes else float("nan"),
        "gamma": pruning.gamma if pruning.uses_scorer else 0.0, "impl": method.impl, "run_dir": method.run_dir,
        "device": device.type, "device_name": device_name(device), "threads": settings.threads,
        "dtype": settings.dtype,
        "sorted_by_length": settings.sort_by_length, "batch_size": batch_size, "n_batches": n_batches,
        "repeats": settings.repeats, "warmup": settings.warmup, "accuracy": record.correct / len(data.split),
        "torch_version": torch.__version__,
    }


def _paired(numerator: list[float] | None, denominator: list[float]) -> list[float]:
    return [a / b for a, b in zip(numerator, denominator)] if numerator else []


def _timing_columns(times: dict[str, list[float]], calls: dict[str, list[float]], label: str, dense: str | None,
                    engine: str | None, measurement: Measurement, data: BenchData) -> dict[str, object]:
    own = times[label]
    median = measurement.median
    speedups = _paired(times[dense] if dense else None, own)
    versus_engine = _paired(times[engine] if engine else None, own)
    n, tokens = len(data.split), sum(data.split.lengths())
    latency = calls[label]
    nan = float("nan")
    return {
        "time_s": median, "time_s_min": min(own), "time_s_max": max(own),
        "sentences_per_s": n / median, "sentences_per_s_min": n / max(own), "sentences_per_s_max": n / min(own),
        "tokens_per_s": tokens / median, "latency_ms": 1e3 * statistics.median(latency),
        "latency_ms_min": 1e3 * min(latency), "latency_ms_max": 1e3 * max(latency),
        "noisy": measurement.has_warnings,
        "speedup": statistics.median(speedups) if speedups else nan,
        "speedup_min": min(speedups) if speedups else nan, "speedup_max": max(speedups) if speedups else nan,
        "speedup_vs_engine": statistics.median(versus_engine) if versus_engine else nan,
    }


def _flops_columns(method: BoundMethod, record: _Record, speedup: float, speedup_vs_engine: float
                   ) -> dict[str, object]:
    pruning = method.flops_pruning
    shape = encoder_shape(method.model)
    per_layer = torch.cat(record.tokens)
    report: FlopsReport = method_flops(per_layer, shape, pruning)
    layers, passes = method_layers(pruning, shape.num_layers)
    packed = method.impl == "tsdtp packed"
    computed = sum(computed_flops(t, shape, layers, passes, packed=packed) for t in record.tokens)
    slots = sum(int(t.max(dim=0).values.sum()) * t.shape[0] for t in record.tokens)
    layer_keep = per_layer.double().sum(0) / per_layer[:, 0].double().sum()
    flops_speedup = 1.0 / report.ratio
    n = per_layer.shape[0]
    return {
        "keep_ratio": float(layer_keep.mean()), "gflops_per_sentence": report.total / n / 1e9,
        "flops_ratio": report.ratio, "flops_speedup": flops_speedup, "realization": speedup / flops_speedup,
        "realization_vs_engine": speedup_vs_engine / flops_speedup, "scorer_overhead": report.scorer_overhead,
        "computed_gflops_per_sentence": computed / n / 1e9, "padding_waste": 1.0 - report.total / computed,
        "padding_token_waste": 1.0 - float(per_layer.sum()) / slots,
    }


def _probe_columns(method: BoundMethod, batch: dict[str, torch.Tensor], settings: BenchSettings,
                   device: torch.device) -> dict[str, object]:
    """Peak memory and the FlopCounterMode cross-check, on one batch."""
    columns: dict[str, object] = {"memory_batch_slots": int(batch["input_ids"].numel())}
    if settings.measure_memory:
        peak = peak_activation_bytes(lambda: method(batch), device)
        columns["peak_memory_mb"] = peak / 2**20
        columns["memory_source"] = "cuda.max_memory_allocated" if device.type == "cuda" else "torch.profiler"
    if settings.check_flops:
        _, tokens = method(batch)
        shape = encoder_shape(method.model)
        layers, passes = method_layers(method.flops_pruning, shape.num_layers)
        analytic = computed_flops(tokens.cpu(), shape, layers, passes, packed=method.impl == "tsdtp packed")
        columns["flops_counted_ratio"] = counted_flops(lambda: method(batch)) / analytic
    return columns
