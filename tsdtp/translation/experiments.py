"""One translation configuration at a time, for the pipeline: its `MTConfig` and its evaluations.

The run cache, training and adoption are shared with classification (`tsdtp.runs.cache`);
this module builds the `MTConfig` of the translation notebook's parameters, exactly as
`tsdtp mt-train` would from the same flags, and evaluates a run under several settings.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from tsdtp.core.config import PruningConfig
from tsdtp.translation.checkpoint import read_config
from tsdtp.translation.config import MT_PRUNING_DEFAULTS, SCRATCH, MTConfig
from tsdtp.translation.data import EVAL_CORPORA
from tsdtp.translation.report import evaluate_translation, run_variant


def translation_config(method: str = "none", k: float = 1.0, gamma: float | None = None,
                       keep_target: float = MT_PRUNING_DEFAULTS["keep_target"], epochs: float = 10.0,
                       lr: float = 5e-4, init_from: str | None = None, max_train_samples: int | None = None,
                       val_samples: int = 500, vocab_size: int = 8000, d_model: int = 256, encoder_layers: int = 6,
                       decoder_layers: int = 3, ffn_dim: int = 1024, seed: int = 0, hard_ratio: float = 0.0,
                       exit_mode: str = MT_PRUNING_DEFAULTS["exit_mode"], prune_layers: Sequence[int] | None = None,
                       distill_weight: float = 0.0) -> MTConfig:
    """The validated `MTConfig` of the translation notebook's parameters (everything else at its default).

    `gamma=None` is the method's default (the gamma rule of `PruningConfig.with_overrides`), and the
    scorer width, keep target and exit mode are `tsdtp mt-train`'s, so a CLI run and a pipeline step with
    the same settings hash alike. `prune_layers=None` prunes after every encoder layer but the first.
    """
    given = {"method": method, "k": k, "keep_target": keep_target, "d_task": MT_PRUNING_DEFAULTS["d_task"],
             "exit_mode": exit_mode, **({} if gamma is None else {"gamma": gamma}),
             **({} if prune_layers is None else {"prune_layers": tuple(prune_layers)})}
    return MTConfig(model=SCRATCH, pruning=PruningConfig().with_overrides(given), epochs=float(epochs), lr=float(lr),
                    init_from=None if init_from is None else str(init_from), max_train_samples=max_train_samples,
                    val_samples=val_samples, vocab_size=vocab_size, d_model=d_model, encoder_layers=encoder_layers,
                    decoder_layers=decoder_layers, ffn_dim=ffn_dim, seed=seed, hard_ratio=float(hard_ratio),
                    distill_weight=float(distill_weight))


def evaluate_translation_settings(run_dir: str | Path, evals: Iterable[dict[str, Any]], data_dir: str | None = None,
                                  results_csv: str | Path | None = None, splits: Sequence[str] = EVAL_CORPORA,
                                  batch_size: int = 64, num_beams: int = 4, max_eval_samples: int | None = None,
                                  speed_repeats: int = 0, progress: bool = True) -> pd.DataFrame:
    """Evaluate a translation run under each override of `evals`; one summary row per evaluation and test set.

    The rows carry `task`, `method`, `k`, the effective `gamma`, `run_dir` (for
    `tsdtp.analysis.frames.load_traces`) and the test set's name in `split` (for
    `tsdtp.analysis.stored_hypotheses.store_hypotheses`).
    """
    config = read_config(run_dir)
    rows = []
    for override in evals:
        pruning = config.pruning.with_overrides(override)
        record = evaluate_translation(run_dir, data_dir, override, results_csv, splits, batch_size, num_beams,
                                      max_eval_samples, speed_repeats, progress=progress)
        for split, figures in record["splits"].items():
            speed = record["speed"] if record.get("speed_split") == split else {}
            evaluated = PruningConfig.from_dict(record["pruning"])
            rows.append({"task": config.task, "method": pruning.method, "k": pruning.k,
                         "gamma": pruning.effective_gamma, "variant": run_variant(config, evaluated),
                         "split": split, "eval_split": figures["eval_split"], "bleu": figures["bleu"],
                         "chrf": figures["chrf"],
                         "keep_ratio": figures["keep_ratio"], "flops_ratio": figures["flops_ratio"],
                         "cross_flops_ratio": figures["cross_flops_ratio"], "speedup": speed.get("speedup"),
                         "encoder_speedup": speed.get("encoder_speedup"), "n_eval": figures["n_eval"],
                         "run_dir": str(run_dir)})
    return pd.DataFrame(rows)
