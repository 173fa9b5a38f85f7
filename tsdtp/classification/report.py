"""Evaluate a trained run directory under any method and record it in results.csv."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from tsdtp.classification.checkpoint import load_checkpoint
from tsdtp.classification.evaluate import EvalResult, evaluate_model
from tsdtp.classification.speed import measured_speedup
from tsdtp.classification.train import prepare_data
from tsdtp.core.config import PruningConfig
from tsdtp.data_files import tag_of_label
from tsdtp.hub import load_tokenizer, short_model_name
from tsdtp.runs.eval_files import eval_file, training_variant, write_keep_traces
from tsdtp.runs.io import atomic_write_json
from tsdtp.runs.results import build_result_row, upsert_results
from tsdtp.runs.run_dir import holding_evaluation_lock

SPEED_SAMPLES = 256
"""Speed is timed on the first this-many eval examples (dataset order): enough for a stable median."""


@holding_evaluation_lock
def evaluate_run(run_dir: str | Path, data_dir: str | None = None, overrides: dict[str, Any] | None = None,
                 results_csv: str | Path | None = None, batch_size: int = 64, max_eval_samples: int | None = None,
                 speed_repeats: int = 0, progress: bool = True, split: str = "eval") -> dict[str, Any]:
    """Evaluate `run_dir`'s checkpoint, optionally under another method or k (`PruningConfig.with_overrides`).

    Writes `eval/<name>.json` and the per-example, per-layer keep traces `eval/<name>.parquet`
    into the run directory; appends a row to `results_csv` when given. On data other than the
    standard data, the split label and `<name>` name that source (`tsdtp.data_files.SourceTag`).
    `speed_repeats > 0` also measures throughput against the dense baselines, side by side, on the
    first `SPEED_SAMPLES` examples (`measured_speedup`: `speedup` is against the fastest baseline;
    the full `tsdtp bench` times everything). `split="selection"` evaluates on the run's held-out
    selection split instead (`tsdtp.runs.selection`): its own label and `<name>_selection` files.
    """
    run_dir = Path(run_dir)
    model, config = load_checkpoint(run_dir)
    pruning = config.pruning.with_overrides(overrides or {})
    model.pruning = pruning
    limit = max_eval_samples or config.max_eval_samples
    tokenizer = load_tokenizer(config.model)
    eval_config = dataclasses.replace(config, max_eval_samples=limit)
    _, examples, split_name = prepare_data(eval_config, tokenizer, data_dir, include_train=False, split=split)
    result, traces = evaluate_model(model, examples, batch_size, tokenizer.pad_token_id, record_traces=True,
                                    tokenizer=tokenizer, progress=progress)
    speedups = (measured_speedup(model, examples.head(SPEED_SAMPLES), batch_size, tokenizer.pad_token_id,
                                 repeats=speed_repeats) if speed_repeats > 0 else {"speedup": float("nan")})
    record = {"run_dir": str(run_dir), "eval_split": split_name, "pruning": pruning.__dict__, **speedups,
              "batch_size": batch_size, "threads": torch.get_num_threads(), **result.summary()}
    source = tag_of_label(split_name)
    atomic_write_json(eval_file(run_dir, pruning, "json", source, split), record)
    assert traces is not None
    write_keep_traces(run_dir, pruning, config.task, traces, source, split)
    if results_csv is not None:
        upsert_results(results_csv, [result_row(config.task, config.model, pruning, result, split_name,
                                                speedups["speedup"], batch_size, str(run_dir), speedups,
                                                config.seed, training_variant(config.pruning))])
    return record


def result_row(task: str, model: str, pruning: PruningConfig, result: EvalResult, split_name: str, speedup: float,
               batch_size: int, run_dir: str, speedups: Mapping[str, Any] | None = None, seed: int | None = None,
               variant: str = "") -> dict[str, Any]:
    """One row of results.csv (metric: accuracy in percent); `speedups`: the ratios to each dense baseline;
    `seed`: the trained run's; `variant`: what else tells the trained run apart (`training_variant`)."""
    return build_result_row(task=task, model=short_model_name(model), pruning=pruning, metric_name="accuracy",
                            metric=100 * result.accuracy, keep_ratio=result.keep_ratio,
                            flops_ratio=result.flops_ratio, speedup=speedup, batch_size=batch_size,
                            threads=torch.get_num_threads(), n_eval=result.n_eval, eval_split=split_name,
                            scorer_overhead=result.scorer_overhead, run_dir=run_dir, speedups=speedups, seed=seed,
                            variant=variant)
