"""Measurements into the tables: bench.csv, profile.csv, profile_layers.csv and results.csv, and their summaries.

`record_bench` and `record_profile` are what `tsdtp bench` and `tsdtp profile` do once their
flags are parsed: measure a workload (`tsdtp.measure.session`), then upsert the rows into the
tables folder. A row replaces the earlier rows of the same method, batch size and setting
(`BENCH_KEY_COLUMNS`). The summaries are the text the commands print.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
from torch.utils.benchmark import Compare

from tsdtp.classification.evaluate import EvalResult
from tsdtp.classification.report import result_row
from tsdtp.measure.bench import BenchResult, BenchSettings, run_benchmark
from tsdtp.measure.methods import BenchSpec
from tsdtp.measure.profile import ProfileResult, ProfileSettings, run_profile
from tsdtp.measure.session import LoadedRun, Workload
from tsdtp.runs.eval_files import training_variant
from tsdtp.runs.results import SPEED_COLUMNS, onto_fuller_evaluations, upsert_results
from tsdtp.runs.speedups import RATIO_COLUMNS
from tsdtp.runs.tables import upsert_csv

RESULTS_BATCH_SIZE = 32
"""The batch size whose bench.csv rows go into results.csv by default."""

BENCH_KEY_COLUMNS = ("task", "model", "eval_split", "label", "run_dir", "device", "device_name", "threads", "dtype",
                     "sorted_by_length", "batch_size")
"""A bench.csv (or profile.csv) row is replaced, not duplicated, when these match."""

SUMMARY_COLUMNS = ["label", "order", "batch_size", "sentences_per_s", "latency_ms", "speedup", "speedup_baseline",
                   *RATIO_COLUMNS, "flops_speedup", "realization", "scorer_overhead", "padding_waste",
                   "peak_memory_mb", "accuracy"]
"""The bench.csv columns `bench_summary` shows."""


def device_label(row: pd.Series) -> str:
    """results.csv's device column: `cpu x2`, `cuda NVIDIA H100`, with the dtype unless fp32."""
    base = f"cpu x{row['threads']}" if row["device"] == "cpu" else f"cuda {row['device_name']}"
    return base if row["dtype"] == "fp32" else f"{base} {row['dtype']}"


def results_rows(result: BenchResult, specs: list[BenchSpec], runs: dict[str, LoadedRun],
                 batch_size: int = RESULTS_BATCH_SIZE) -> list[dict[str, Any]]:
    """results.csv rows for the specs at `batch_size`.

    Dense becomes method `none` when its weights are a densely trained run (otherwise it has
    no results row); the engine's `none` is bench.csv only, being the same model as dense.
    The rows come from the first measured batch order; `speedup` and the ratios to each
    baseline belong to the method, the same in every order (`tsdtp.runs.speedups`).
    """
    table = result.rows[result.rows["batch_size"] == batch_size]
    table = table[table["order"] == table["order"].iloc[0]]
    rows = []
    for spec, (_, row) in zip(specs, table.iterrows()):
        run = runs[spec.run_dir]
        pruning = spec.pruning
        if pruning is None and not run.config.pruning.spec.prunes:
            pruning = run.config.pruning
        elif pruning is None or not pruning.spec.prunes:
            continue
        split = row["eval_split"] + (", length-sorted" if row["sorted_by_length"] else "")
        evaluation = EvalResult(row["accuracy"], int(row["n_eval"]), row["keep_ratio"], (), row["flops_ratio"],
                                row["scorer_overhead"])
        record = result_row(row["task"], row["model"], pruning, evaluation, split, row["speedup"], batch_size,
                            spec.run_dir, row[list(SPEED_COLUMNS)].to_dict(), run.config.seed,
                            training_variant(run.config.pruning))
        record["device"] = device_label(row)
        rows.append(record)
    return rows


def record_bench(workload: Workload, settings: BenchSettings, tables_dir: str | Path,
                 results_batch_size: int | None = RESULTS_BATCH_SIZE) -> BenchResult:
    """Benchmark the workload and upsert bench.csv in `tables_dir`.

    results.csv there gets the rows at `results_batch_size` too, when it is one of the measured
    batch sizes (None: bench.csv only), unless the last layer ran for [CLS] alone: results.csv
    holds the full forward only. A row evaluated there on more examples keeps its accuracy and
    takes only the timing (`onto_fuller_evaluations`).
    """
    tables = Path(tables_dir)
    result = run_benchmark(workload.specs, workload.data, settings)
    upsert_csv(tables / "bench.csv", result.rows, BENCH_KEY_COLUMNS)
    if results_batch_size in settings.batch_sizes and not settings.cls_only_last_layer:
        rows = results_rows(result, workload.specs, workload.runs, results_batch_size)
        upsert_results(tables / "results.csv", onto_fuller_evaluations(tables / "results.csv", rows))
    return result


def bench_summary(result: BenchResult, settings: BenchSettings) -> str:
    """The timing comparison, the setting and the main columns of each row, as printed by `tsdtp bench`."""
    setting = {"device": result.rows["device_name"].iloc[0], "dtype": settings.dtype, "threads": settings.threads,
               "orders": list(settings.orders)}
    summary = result.rows[SUMMARY_COLUMNS].round(3)
    return "\n".join([str(Compare(result.measurements)), json.dumps(setting),
                      summary.to_string(index=False, na_rep="-")])


def record_profile(workload: Workload, settings: ProfileSettings, tables_dir: str | Path) -> ProfileResult:
    """Profile the workload and upsert profile.csv and profile_layers.csv in `tables_dir`."""
    tables = Path(tables_dir)
    result = run_profile(workload.specs, workload.data, settings)
    upsert_csv(tables / "profile.csv", result.components, BENCH_KEY_COLUMNS)
    upsert_csv(tables / "profile_layers.csv", result.layers, BENCH_KEY_COLUMNS)
    return result


def profile_summary(result: ProfileResult, settings: ProfileSettings) -> str:
    """The setting, then per clock each method's shares by component and time per batch (`tsdtp profile` prints it)."""
    rows = result.components
    lines = [json.dumps({"device": rows["device_name"].iloc[0], "dtype": settings.dtype, "threads": settings.threads})]
    for clock, table in rows.groupby("clock", sort=False):
        shares = table.pivot_table(index="component", columns=["batch_size", "label"], values="share", sort=False)
        totals = table.groupby(["batch_size", "label"], sort=False)[["ms_per_batch", "unprofiled_ms_per_batch"]]
        lines += [f"share of the profiled forward time ({clock} clock):", shares.round(3).to_string(),
                  totals.agg({"ms_per_batch": "sum", "unprofiled_ms_per_batch": "first"}).round(2).to_string()]
    return "\n".join(lines)
