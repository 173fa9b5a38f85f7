"""The columns of bench.csv, and how the measured ones are computed from what a method's passes saw."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import torch
from torch.utils.benchmark import Measurement

from tsdtp.core.flops import FlopsReport, computed_flops, counted_flops, encoder_shape, method_flops, method_layers
from tsdtp.measure.memory import peak_activation_bytes
from tsdtp.measure.methods import BoundMethod
from tsdtp.measure.session import BenchData
from tsdtp.runs.speedups import SPEEDUP_COLUMNS, speedup_columns

BENCH_COLUMNS: tuple[str, ...] = (
    "task", "model", "eval_split", "n_eval", "label", "method", "k", "gamma", "impl", "run_dir",
    "device", "device_name", "threads", "dtype", "sorted_by_length", "order", "cls_only_last_layer", "batch_size",
    "n_batches", "repeats",
    "warmup",
    "time_s", "time_s_min", "time_s_max", "sentences_per_s", "sentences_per_s_min", "sentences_per_s_max",
    "tokens_per_s", "latency_ms", "latency_ms_min", "latency_ms_max", "noisy",
    *SPEEDUP_COLUMNS,
    "accuracy", "keep_ratio", "gflops_per_sentence", "flops_ratio", "flops_speedup", "realization",
    "realization_vs_engine", "scorer_overhead", "computed_gflops_per_sentence", "padding_waste",
    "padding_token_waste", "flops_counted_ratio", "peak_memory_mb", "memory_source", "memory_batch_slots",
    "torch_version",
)
"""The columns of bench.csv, one row per method x batch order x batch size (x device, dtype, threads).

order: the batch order of the row's timing (`dataset` or `length-sorted`; sorted_by_length says
    the same as a flag).
cls_only_last_layer: every method of the run, dense baselines included, ran its last layer for
    [CLS] alone (labels end in ` +cls-only`); FLOPs count that last layer, dense's too.

time_s: seconds for one pass over the evaluation set (median over repeats; _min/_max).
latency_ms: per forward call (one batch); at batch size 1 this is the per-sentence latency.
noisy: torch.utils.benchmark flags the repeats as high-variance.
speedup: the method's throughput in the batch order of the fastest dense baseline over that
    baseline's throughput, paired per repeat (`tsdtp.runs.speedups`: baselines hf, hf_sorted,
    engine, engine_sorted; speedup_baseline names the fastest). speedup_vs_<baseline> is the
    ratio against each, the method timed in the baseline's order. The speedup columns belong to
    the method, so its rows in both orders carry the same values.
flops_ratio: analytic FLOPs on live tokens, scorer included, over dense; flops_speedup is
    its inverse and realization = speedup / flops_speedup (against the fastest dense baseline);
    realization_vs_engine = speedup_vs_engine / flops_speedup.
padding_waste: share of the FLOPs actually computed that went to padding (the batch layout
    each implementation uses); padding_token_waste: share of padded token slots, summed over
    layers, that are padding (what attention computes on).
flops_counted_ratio: FlopCounterMode's count / the analytic count of the same batch, padding
    included (the cross-check; pooler and head make it slightly above 1).
peak_memory_mb: peak activation memory of one forward on the batch with the most slots.
"""


@dataclass
class Record:
    """What the untimed recording pass of one method saw: correct predictions, live tokens per layer per batch."""

    correct: int
    tokens: list[torch.Tensor]


@dataclass
class Timings:
    """Per (method label, batch order), the seconds of each timed pass and of each forward call in them."""

    passes: dict[tuple[str, str], list[float]]
    calls: dict[tuple[str, str], list[float]]


def timing_columns(timings: Timings, unit: tuple[str, str], baselines: dict[str, tuple[str, str]],
                   measurement: Measurement, data: BenchData) -> dict[str, object]:
    """Time, throughput, latency and speedup columns of `unit` = (method label, batch order).

    `baselines`: baseline name (`tsdtp.runs.speedups.BASELINES`) -> the unit timed as it; the
    speedups are paired per repeat against them, by the fastest-baseline rule.
    """
    own = timings.passes[unit]
    median = measurement.median
    label = unit[0]
    method = {order: times for (name, order), times in timings.passes.items() if name == label}
    speedups = speedup_columns(method, {name: timings.passes[key] for name, key in baselines.items()})
    n, tokens = len(data.split), sum(data.split.lengths())
    latency = timings.calls[unit]
    return {
        "time_s": median, "time_s_min": min(own), "time_s_max": max(own),
        "sentences_per_s": n / median, "sentences_per_s_min": n / max(own), "sentences_per_s_max": n / min(own),
        "tokens_per_s": tokens / median, "latency_ms": 1e3 * statistics.median(latency),
        "latency_ms_min": 1e3 * min(latency), "latency_ms_max": 1e3 * max(latency),
        "noisy": measurement.has_warnings, **speedups,
    }


def flops_columns(method: BoundMethod, record: Record, speedup: float, speedup_vs_engine: float
                  ) -> dict[str, object]:
    """Keep ratio, analytic and computed FLOPs, realization and padding waste of the recorded pass."""
    pruning = method.flops_pruning
    shape = encoder_shape(method.model)
    per_layer = torch.cat(record.tokens)
    cls_only = method.cls_only_last_layer
    report: FlopsReport = method_flops(per_layer, shape, pruning, cls_only)
    layers, passes = method_layers(pruning, shape.num_layers)
    packed = method.impl == "tsdtp packed"
    computed = sum(computed_flops(t, shape, layers, passes, packed, cls_only) for t in record.tokens)
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


def probe_columns(method: BoundMethod, batch: dict[str, torch.Tensor], device: torch.device, measure_memory: bool,
                  check_flops: bool) -> dict[str, object]:
    """Peak memory and the FlopCounterMode cross-check, on one batch."""
    columns: dict[str, object] = {"memory_batch_slots": int(batch["input_ids"].numel())}
    if measure_memory:
        peak = peak_activation_bytes(lambda: method(batch), device)
        columns["peak_memory_mb"] = peak / 2**20
        columns["memory_source"] = "cuda.max_memory_allocated" if device.type == "cuda" else "torch.profiler"
    if check_flops:
        _, tokens = method(batch)
        shape = encoder_shape(method.model)
        layers, passes = method_layers(method.flops_pruning, shape.num_layers)
        analytic = computed_flops(tokens.cpu(), shape, layers, passes, method.impl == "tsdtp packed",
                                  method.cls_only_last_layer)
        columns["flops_counted_ratio"] = counted_flops(lambda: method(batch)) / analytic
    return columns
