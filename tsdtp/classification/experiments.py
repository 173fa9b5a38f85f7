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


def train_config(task: str = "sst2", model: str = DEFAULT_MODEL, method: str = "none", k: float = 1.0,
                 gamma: float | None = None, epochs: float = 1.0, max_train_samples: int | None = None, seed: int = 0,
                 max_eval_samples: int | None = None, init_from: str | None = None, keep_target: float = 0.5
                 ) -> TrainConfig:
    """The validated `TrainConfig` of the training notebook's parameters (everything else at its default).

    `gamma=None` is the method's default (the gamma rule of `PruningConfig.with_overrides`), as for `tsdtp train`.
    """
    get_task(task)
    given = {"method": method, "k": k, "keep_target": keep_target, **({} if gamma is None else {"gamma": gamma})}
    pruning = PruningConfig().with_overrides(given)
    return TrainConfig(task=task, model=model, pruning=pruning, epochs=float(epochs),
                       max_train_samples=max_train_samples, seed=seed, max_eval_samples=max_eval_samples,
                       init_from=None if init_from is None else str(init_from))


def evaluate_settings(run_dir: str | Path, evals: Iterable[dict[str, Any]], data_dir: str | None = None,
                      results_csv: str | Path | None = None, batch_size: int = 32,
                      max_eval_samples: int | None = None, speed_repeats: int = 0, progress: bool = True
                      ) -> pd.DataFrame:
    """Evaluate a run under each override of `evals` (`PruningConfig.with_overrides`); one summary row per evaluation.

    The rows carry `task`, `method`, `k`, the effective `gamma` and `run_dir`, so
    `tsdtp.analysis.frames.load_traces` reads their keep traces.
    """
    config = read_run_config(run_dir)
    rows = []
    for override in evals:
        pruning = config.pruning.with_overrides(override)
        record = evaluate_run(run_dir, data_dir, override, results_csv, batch_size, max_eval_samples,
                              speed_repeats, progress)
        rows.append({"task": config.task, "method": pruning.method, "k": pruning.k, "gamma": pruning.effective_gamma,
                     "accuracy": record["accuracy"], "keep_ratio": record["keep_ratio"],
                     "flops_ratio": record["flops_ratio"], "speedup": record["speedup"], "n_eval": record["n_eval"],
                     "run_dir": str(run_dir)})
    return pd.DataFrame(rows)
