"""One LLM classification configuration at a time, for the pipeline and notebooks: its `LlmTrainConfig` from the
notebook's parameters, and its evaluations under other pruning settings.

The run cache (hash-named folders, `ensure_trained`) is the one classification and translation use
(`tsdtp.runs.cache`); the package registers LLM runs with it (`tsdtp/llm/__init__.py`).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from tsdtp.core.config import PruningConfig
from tsdtp.gguf_models import DEFAULT_LLM
from tsdtp.glue_tasks import get_task
from tsdtp.llm.classifier_config import LlmTrainConfig
from tsdtp.llm.classifier_evaluate import evaluate_llm_run
from tsdtp.runs.eval_files import schedule_label


def llm_config(task: str = "sst2", model: str = DEFAULT_LLM, method: str = "none", k: float = 1.0,
               gamma: float | None = None, epochs: float = 1.0, max_train_samples: int | None = None, seed: int = 0,
               max_eval_samples: int | None = None, init_from: str | None = None, keep_target: float = 0.5,
               teacher: str | None = None, hard_ratio: float = 0.0, keep_ramp: float = 0.0,
               topk_final_keep: float = 0.3, batch_size: int = 8, lora_rank: int = 8,
               max_length: int = 256, prune_layers: list[int] | None = None,
               selection_fraction: float = 0.0, k_offsets: list[float] | None = None,
               few_shot_tokens: int = 0) -> LlmTrainConfig:
    """The validated `LlmTrainConfig` of the LLM training notebook's parameters (everything else at its default).

    `gamma=None` is the method's default, as for `tsdtp llm-train`; `prune_layers=None` prunes after every layer
    but the first and the last; `topk_final_keep` sets top-k's linear keep schedule over the pruning layers;
    `selection_fraction` holds out part of the training data to choose settings on (`tsdtp.runs.selection`);
    `k_offsets` trains with per-layer thresholds `mean - (k + offset) * std` (rows get the variant `trained dk ...`);
    `few_shot_tokens > 0` trains and evaluates on SST-2 few-shot prompts of up to that many tokens.
    """
    get_task(task)
    given = {"method": method, "k": k, "keep_target": keep_target, "keep_ramp": keep_ramp,
             "topk_final_keep": topk_final_keep, **({} if gamma is None else {"gamma": gamma}),
             **({} if prune_layers is None else {"prune_layers": tuple(prune_layers)}),
             **({} if k_offsets is None else {"k_offsets": tuple(k_offsets)})}
    return LlmTrainConfig(task=task, model=model, pruning=PruningConfig().with_overrides(given),
                          epochs=float(epochs), max_train_samples=max_train_samples, seed=seed,
                          max_eval_samples=max_eval_samples, init_from=None if init_from is None else str(init_from),
                          teacher=None if teacher is None else str(teacher), hard_ratio=float(hard_ratio),
                          batch_size=batch_size, lora_rank=lora_rank, max_length=max_length,
                          selection_fraction=float(selection_fraction), few_shot_tokens=int(few_shot_tokens))


def evaluate_llm_settings(run_dir: str | Path, evals: Iterable[dict[str, Any]], data_dir: str | None = None,
                          results_csv: str | Path | None = None, batch_size: int = 16,
                          max_eval_samples: int | None = None, progress: bool = False, split: str = "eval",
                          speed_repeats: int = 0) -> pd.DataFrame:
    """Evaluate an LLM run under each override of `evals` (`PruningConfig.with_overrides`; `{}` is its own
    setting) on `split` (`eval`, or the held-out `selection` split), upserting each row into `results_csv`; one
    summary row per evaluation. `speed_repeats > 0` also times each against the dense forwards (`speedup`)."""
    rows = []
    for override in evals:
        record = evaluate_llm_run(run_dir, data_dir, override, results_csv, batch_size, max_eval_samples, progress,
                                  split, speed_repeats)
        pruning = PruningConfig.from_dict(record["pruning"])
        rows.append({"task": record["task"], "method": pruning.method, "k": pruning.k, "gamma": pruning.effective_gamma,
                     "schedule": schedule_label(pruning), "eval_split": record["eval_split"],
                     "accuracy": record["accuracy"], "keep_ratio": record["keep_ratio"],
                     "flops_ratio": record["flops_ratio"], "speedup": record["speedup"], "n_eval": record["n_eval"],
                     "layer_keep": record["layer_keep"], "run_dir": str(run_dir)})
    return pd.DataFrame(rows)


def layer_keep_frame(summary: pd.DataFrame) -> pd.DataFrame:
    """The keep ratio at each layer's input (`tsdtp.analysis.plots.layer_keep_plot`'s frame) of every evaluation in
    an `evaluate_llm_settings` summary."""
    if summary.empty:
        return pd.DataFrame(columns=["task", "method", "k", "layer", "keep_ratio"])
    exploded = summary[["task", "method", "k", "layer_keep"]].explode("layer_keep", ignore_index=False)
    exploded["layer"] = exploded.groupby(level=0).cumcount()
    return exploded.rename(columns={"layer_keep": "keep_ratio"}).astype({"keep_ratio": float}).reset_index(drop=True)
