"""`tsdtp bench`: parse the method list, load runs and data, run the benchmark, write the tables.

A method is written `METHOD[:key=value...][@RUN_DIR]`:
    dense                  transformers' own forward of the run's weights (the reference)
    none                   the tsdtp engine with pruning off (packed batches, no pruning)
    run                    the run's own trained pruning settings; `run:k=0.5` changes k
    ts-dtp:k=0.5           any method of `tsdtp.core.config.METHODS`, from the run's settings
    general-dtp@runs/x     the weights of another run directory
Options: k, gamma, prune_layers and keep_schedule (values separated by '/'), task_features,
topk_final_keep, seed. Task-agnostic methods get gamma 0 unless it is given.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from torch.utils.benchmark import Compare

from tsdtp.classification.checkpoint import load_checkpoint
from tsdtp.classification.config import TrainConfig
from tsdtp.classification.evaluate import EvalResult
from tsdtp.classification.model import PrunedClassifier
from tsdtp.classification.report import result_row
from tsdtp.classification.train import load_tokenizer, prepare_data
from tsdtp.core.config import METHODS, TASK_AGNOSTIC_METHODS, PruningConfig
from tsdtp.errors import ConfigError
from tsdtp.measure.bench import (
    DEFAULT_BATCH_SIZES,
    BenchData,
    BenchResult,
    BenchSettings,
    BenchSpec,
    run_benchmark,
)
from tsdtp.measure.devices import DEVICES, DTYPES
from tsdtp.runs.results import upsert_results
from tsdtp.runs.tables import upsert_csv

DENSE, RUN = "dense", "run"
DEFAULT_METHODS = "dense,none,run,general-dtp-posthoc,topk,reference-masking"
RESULTS_BATCH_SIZE = 32
BENCH_KEY_COLUMNS = ("task", "model", "eval_split", "label", "run_dir", "device", "device_name", "threads", "dtype",
                     "sorted_by_length", "batch_size")
"""A bench.csv row is replaced, not duplicated, when these match."""


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split("/") if x)


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split("/") if x)


OPTION_PARSERS: dict[str, Callable[[str], Any]] = {
    "k": float, "gamma": float, "prune_layers": _ints, "keep_schedule": _floats, "task_features": str,
    "topk_final_keep": float, "seed": int,
}


@dataclass(frozen=True)
class MethodRequest:
    """One parsed entry of `--methods`."""

    method: str
    options: tuple[tuple[str, Any], ...]
    run_dir: str | None


@dataclass(frozen=True)
class LoadedRun:
    """A run directory's classifier and its training config."""

    run_dir: str
    model: PrunedClassifier
    config: TrainConfig


def parse_method(text: str) -> MethodRequest:
    """`METHOD[:key=value...][@RUN_DIR]` -> MethodRequest; unknown methods or options fail clearly."""
    head, _, run_dir = text.strip().partition("@")
    method, *options = head.split(":")
    if method not in (DENSE, RUN, *METHODS):
        raise ConfigError(f"unknown method {method!r} in {text!r}; expected dense, run or one of "
                          f"{', '.join(METHODS)}")
    parsed = []
    for option in options:
        key, sep, value = option.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in OPTION_PARSERS:
            raise ConfigError(f"bad option {option!r} in {text!r}; expected key=value with a key from "
                              f"{', '.join(OPTION_PARSERS)}")
        try:
            parsed.append((key, OPTION_PARSERS[key](value)))
        except ValueError:
            raise ConfigError(f"bad value {value!r} for {key} in {text!r}") from None
    if method == DENSE and parsed:
        raise ConfigError(f"{text!r}: dense takes no options")
    return MethodRequest(method, tuple(parsed), run_dir.strip() or None)


def parse_methods(text: str) -> list[MethodRequest]:
    """A comma-separated `--methods` list."""
    requests = [parse_method(part) for part in text.split(",") if part.strip()]
    if not requests:
        raise ConfigError("no methods to benchmark")
    return requests


def resolve_pruning(request: MethodRequest, trained: PruningConfig) -> PruningConfig | None:
    """The pruning a request means for a run trained with `trained` (None for dense)."""
    if request.method == DENSE:
        return None
    changes = dict(request.options)
    if request.method != RUN:
        changes["method"] = request.method
        if "gamma" not in changes and request.method in TASK_AGNOSTIC_METHODS:
            changes["gamma"] = 0.0
    return trained.replace(**changes)


def load_runs(requests: list[MethodRequest], default_run_dir: str) -> dict[str, LoadedRun]:
    """Each run directory the requests name, loaded once; all must share one task and model."""
    runs: dict[str, LoadedRun] = {}
    for run_dir in [default_run_dir, *(r.run_dir for r in requests if r.run_dir)]:
        if run_dir not in runs:
            model, config = load_checkpoint(run_dir)
            runs[run_dir] = LoadedRun(run_dir, model, config)
    first = runs[default_run_dir].config
    for run in runs.values():
        if (run.config.task, run.config.model) != (first.task, first.model):
            raise ConfigError(f"{run.run_dir} is a {run.config.task}/{run.config.model} run; the benchmark "
                              f"compares methods on one task and encoder ({first.task}/{first.model})")
    return runs


def build_specs(requests: list[MethodRequest], runs: dict[str, LoadedRun], default_run_dir: str) -> list[BenchSpec]:
    """BenchSpecs for the requests, each on its run's loaded model; repeats are measured once.

    (`run` on a densely trained run is `none`, so the default list names it twice.)
    """
    specs: list[BenchSpec] = []
    for request in requests:
        run = runs[request.run_dir or default_run_dir]
        spec = BenchSpec(run.model, resolve_pruning(request, run.config.pruning), run_dir=run.run_dir)
        if spec not in specs:
            specs.append(spec)
    return specs


def load_bench_data(run: LoadedRun, data_dir: str | None = None, max_eval_samples: int | None = None) -> BenchData:
    """The run's evaluation split (optionally its first `max_eval_samples` examples), encoded."""
    tokenizer = load_tokenizer(run.config.model)
    config = dataclasses.replace(run.config, max_eval_samples=max_eval_samples or run.config.max_eval_samples)
    _, split, split_name = prepare_data(config, tokenizer, data_dir, include_train=False)
    return BenchData(run.config.task, run.config.model, split_name, split, tokenizer.pad_token_id)


def device_label(row: pd.Series) -> str:
    """results.csv's device column: `cpu x2`, `cuda NVIDIA H100`, with the dtype unless fp32."""
    base = f"cpu x{row['threads']}" if row["device"] == "cpu" else f"cuda {row['device_name']}"
    return base if row["dtype"] == "fp32" else f"{base} {row['dtype']}"


def results_rows(result: BenchResult, specs: list[BenchSpec], runs: dict[str, LoadedRun],
                 batch_size: int = RESULTS_BATCH_SIZE) -> list[dict[str, Any]]:
    """results.csv rows for the specs at `batch_size`.

    Dense becomes method `none` when its weights are a densely trained run (otherwise it has
    no results row); the engine's `none` is bench.csv only, being the same model as dense.
    """
    table = result.rows[result.rows["batch_size"] == batch_size]
    rows = []
    for spec, (_, row) in zip(specs, table.iterrows()):
        run = runs[spec.run_dir]
        pruning = spec.pruning
        if pruning is None and run.config.pruning.method == "none":
            pruning = run.config.pruning
        elif pruning is None or pruning.method == "none":
            continue
        split = row["eval_split"] + (", length-sorted" if row["sorted_by_length"] else "")
        evaluation = EvalResult(row["accuracy"], int(row["n_eval"]), row["keep_ratio"], (), row["flops_ratio"],
                                row["scorer_overhead"])
        record = result_row(row["task"], row["model"], pruning, evaluation, split, row["speedup"], batch_size,
                            spec.run_dir)
        record["device"] = device_label(row)
        rows.append(record)
    return rows


def upsert_bench(path: str | Path, rows: pd.DataFrame) -> pd.DataFrame:
    """Add rows to bench.csv, replacing rows with the same BENCH_KEY_COLUMNS, atomically."""
    return upsert_csv(path, rows, BENCH_KEY_COLUMNS)


def _sizes(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x)


def add_bench_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `tsdtp bench` to the CLI's subparsers; the handler is `run_bench_command`."""
    bench = subparsers.add_parser("bench", help="measure speed, FLOPs and memory of methods side by side")
    bench.add_argument("--run-dir", required=True, help="the run whose weights, task and eval split are used")
    bench.add_argument("--methods", default=DEFAULT_METHODS,
                       help="comma-separated METHOD[:key=value...][@RUN_DIR] (default: %(default)s)")
    bench.add_argument("--batch-sizes", type=_sizes, default=DEFAULT_BATCH_SIZES, help="comma-separated")
    bench.add_argument("--threads", dest="bench_threads", type=int, default=2, help="torch CPU threads (default 2)")
    bench.add_argument("--sort-by-length", action="store_true", help="order the eval set by length before batching")
    bench.add_argument("--device", choices=DEVICES, default="cpu")
    bench.add_argument("--dtype", default="fp32", help=f"comma-separated, from {', '.join(DTYPES)}")
    bench.add_argument("--repeats", type=int, default=5)
    bench.add_argument("--warmup", type=int, default=1)
    bench.add_argument("--max-eval-samples", type=int, default=None)
    bench.add_argument("--data-dir", default=None)
    bench.add_argument("--tables-dir", default="reports/tables", help="where bench.csv and results.csv go")
    bench.add_argument("--results-batch-size", type=int, default=RESULTS_BATCH_SIZE,
                       help="batch size whose speedup goes into results.csv")
    bench.add_argument("--no-results", action="store_true", help="write bench.csv only")
    bench.add_argument("--no-memory", action="store_true", help="skip the profiled peak-memory pass")
    bench.add_argument("--no-flops-check", action="store_true", help="skip the FlopCounterMode cross-check")
    bench.set_defaults(handler=run_bench_command)
    return bench


SUMMARY_COLUMNS = ["label", "batch_size", "sentences_per_s", "latency_ms", "speedup", "flops_speedup", "realization",
                   "speedup_vs_engine", "scorer_overhead", "padding_waste", "peak_memory_mb", "accuracy"]


def run_bench_command(args: argparse.Namespace) -> int:
    """Run `tsdtp bench` from parsed arguments; prints a summary, writes the tables."""
    requests = parse_methods(args.methods)
    runs = load_runs(requests, args.run_dir)
    specs = build_specs(requests, runs, args.run_dir)
    data = load_bench_data(runs[args.run_dir], args.data_dir, args.max_eval_samples)
    tables = Path(args.tables_dir)
    for dtype in [d.strip() for d in args.dtype.split(",") if d.strip()]:
        settings = BenchSettings(tuple(args.batch_sizes), args.repeats, args.warmup, args.bench_threads, args.device,
                                 dtype, args.sort_by_length, not args.no_memory, not args.no_flops_check,
                                 progress=True)
        result = run_benchmark(specs, data, settings)
        upsert_bench(tables / "bench.csv", result.rows)
        if not args.no_results and args.results_batch_size in settings.batch_sizes:
            upsert_results(tables / "results.csv", results_rows(result, specs, runs, args.results_batch_size))
        Compare(result.measurements).print()
        summary = result.rows[SUMMARY_COLUMNS].round(3)
        print(json.dumps({"device": result.rows["device_name"].iloc[0], "dtype": dtype,
                          "threads": settings.threads, "sorted_by_length": settings.sort_by_length}))
        print(summary.to_string(index=False, na_rep="-"))
    return 0
