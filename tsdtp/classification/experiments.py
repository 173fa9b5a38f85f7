"""One classification configuration at a time, for the pipeline and notebooks: its `TrainConfig` and its evaluations.

The run cache, training and adoption are shared with translation (`tsdtp.runs.cache`).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from tsdtp.classification.config import TrainConfig
from tsdtp.classification.report import evaluate_run
from tsdtp.core.config import PruningConfig
from tsdtp.glue_tasks import get_task
from tsdtp.hub import DEFAULT_MODEL
from tsdtp.runs.cache import read_run_config
from tsdtp.runs.eval_files import schedule_label


def train_config(task: str = "sst2", model: str = DEFAULT_MODEL, method: str = "none", k: float = 1.0,
                 gamma: float | None = None, epochs: float = 1.0, max_train_samples: int | None = None, seed: int = 0,
                 max_eval_samples: int | None = None, init_from: str | None = None, keep_target: float = 0.5,
                 teacher: str | None = None, hard_ratio: float = 0.0, keep_ramp: float = 0.0,
                 rank_weight: float = 0.0, selection_fraction: float = 0.0, removal: str = "drop",
                 keep_schedule: list[float] | None = None, k_offsets: list[float] | None = None) -> TrainConfig:
    """The validated `TrainConfig` of the training notebook's parameters (everything else at its default).

    `gamma=None` is the method's default (the gamma rule of `PruningConfig.with_overrides`), as for `tsdtp train`.
    The recipe's parameters (teacher, hard phase, keep ramp, ranking distillation, selection split, fusion, a
    top-k keep schedule, per-layer k offsets) leave the config, and its hash, as before while at their defaults.
    """
    get_task(task)
    given = {"method": method, "k": k, "keep_target": keep_target, "keep_ramp": keep_ramp, "removal": removal,
             **({} if gamma is None else {"gamma": gamma}),
             **({} if keep_schedule is None else {"keep_schedule": keep_schedule}),
             **({} if k_offsets is None else {"k_offsets": k_offsets})}
    pruning = PruningConfig().with_overrides(given)
    return TrainConfig(task=task, model=model, pruning=pruning, epochs=float(epochs),
                       max_train_samples=max_train_samples, seed=seed, max_eval_samples=max_eval_samples,
                       init_from=None if init_from is None else str(init_from),
                       teacher=None if teacher is None else str(teacher), hard_ratio=float(hard_ratio),
                       rank_weight=float(rank_weight), selection_fraction=float(selection_fraction))


def evaluate_settings(run_dir: str | Path, evals: Iterable[dict[str, Any]], data_dir: str | None = None,
                      results_csv: str | Path | None = None, batch_size: int = 32,
                      max_eval_samples: int | None = None, speed_repeats: int = 0, progress: bool = True,
                      split: str = "eval") -> pd.DataFrame:
    """Evaluate a run under each override of `evals` (`PruningConfig.with_overrides`) on `split` (`eval`, or the
    held-out `selection` split); one summary row per evaluation.

    The rows carry `task`, `method`, `k`, the effective `gamma`, `removal`, `schedule`, `eval_split` and `run_dir`, so
    `tsdtp.analysis.frames.load_traces` reads their keep traces.
    """
    config = read_run_config(run_dir)
    rows = []
    for override in evals:
        pruning = config.pruning.with_overrides(override)
        record = evaluate_run(run_dir, data_dir, override, results_csv, batch_size, max_eval_samples,
                              speed_repeats, progress, split)
        rows.append({"task": config.task, "method": pruning.method, "k": pruning.k, "gamma": pruning.effective_gamma,
                     "removal": pruning.removal if pruning.fuses else None, "schedule": schedule_label(pruning),
                     "eval_split": record["eval_split"],
                     "accuracy": record["accuracy"], "keep_ratio": record["keep_ratio"],
                     "flops_ratio": record["flops_ratio"], "speedup": record["speedup"], "n_eval": record["n_eval"],
                     "run_dir": str(run_dir)})
    return pd.DataFrame(rows)
