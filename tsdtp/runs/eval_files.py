"""The files one evaluation writes into a run directory: `eval/<name>.json`, `eval/<name>.parquet`, ...

`<name>` (`eval_name`) says which pruning setting was evaluated, so a run evaluated under several
methods or k keeps one set of files per setting. An evaluation on data other than the standard
data adds that source's suffix (`tsdtp.data_files.SourceTag`, e.g. `ts-dtp_k1_g0.5_data-1a2b3c4d`),
so it never replaces the files of the standard evaluation.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tsdtp.core.config import PruningConfig
from tsdtp.data_files import SourceTag
from tsdtp.runs.io import atomic_write_bytes

EVAL_FOLDER = "eval"
"""The folder of a run directory that holds its evaluations."""


K_OFFSETS_PREFIX = "dk "
"""How results.csv's `schedule` starts for a thresholded method's per-layer k offsets (`schedule_label`)."""


READOUT_WORD = "readout"
"""What `schedule_label` adds when only the readout token's attention ranks the tokens (`queries` 'readout')."""


def schedule_label(pruning: PruningConfig) -> str | None:
    """What results.csv's `schedule` shows of a setting's read-time rule when it is not the default: a scheduled
    method's keep fractions (`0.8/0.6/0.4/0.3`, or `linear 0.5` for a linear fall to another final keep), or a
    thresholded method's k offsets (`dk 0.5/0.25/0/-0.25`), then `readout` when the readout token's attention
    ranks the tokens (`PruningConfig.queries`); else None."""
    parts = [_layer_rule(pruning), READOUT_WORD if pruning.reads_out else None]
    return " ".join(part for part in parts if part) or None


def _layer_rule(pruning: PruningConfig) -> str | None:
    """The per-layer part of `schedule_label`: keep fractions or k offsets, None for the default."""
    if pruning.k_offsets is not None:
        return K_OFFSETS_PREFIX + "/".join(f"{offset:g}" for offset in pruning.k_offsets)
    if not pruning.spec.scheduled:
        return None
    if pruning.keep_schedule is not None:
        return "/".join(f"{fraction:g}" for fraction in pruning.keep_schedule)
    default = PruningConfig().topk_final_keep
    return None if pruning.topk_final_keep == default else f"linear {pruning.topk_final_keep:g}"


def training_variant(trained: PruningConfig) -> str:
    """What results.csv's `variant` says of a classification run trained with per-layer k offsets or readout
    queries (`trained dk 0.6/0.2/-0.2/-0.6`, `trained readout`), so its rows never share a key with a run trained
    without them and read the same way; empty otherwise."""
    return f"trained {schedule_label(trained)}" if trained.k_offsets is not None or trained.reads_out else ""


def eval_stem(method: str, k: float, gamma: float, source: SourceTag | None = None, removal: str = "drop",
              split: str = "eval", schedule: str | None = None) -> str:
    """File stem of one evaluation, e.g. `ts-dtp_k1_g0.5`; `gamma` is the effective one (0 without the scorer),
    as in results.csv; a keep schedule other than the default (`schedule_label`) adds `_s<fractions>`, fused
    pruned tokens add `_fuse`, an evaluation on a split other than `eval` (the held-out selection split) adds
    `_<split>`, and `source` (None: the standard data) adds its suffix."""
    parts = [f"{method}_k{k:g}_g{gamma:g}", *([f"s{schedule.replace('/', '-').replace(' ', '')}"] if schedule else []),
             *(["fuse"] if removal == "fuse" else []), *([split] if split != "eval" else [])]
    return "_".join(parts) + (source.file_suffix if source else "")


def eval_name(pruning: PruningConfig, source: SourceTag | None = None, split: str = "eval") -> str:
    """File stem for one evaluation of a run under `pruning` (its effective gamma, `PruningConfig.effective_gamma`)
    on `source` (None: the standard data) and `split`."""
    return eval_stem(pruning.method, pruning.k, pruning.effective_gamma, source, pruning.removal, split,
                     schedule_label(pruning))


def eval_file(run_dir: Path, pruning: PruningConfig, suffix: str, source: SourceTag | None = None,
              split: str = "eval") -> Path:
    """`<run_dir>/eval/<eval_name>.<suffix>`: where the evaluation under `pruning` on `source` and `split` writes
    its `suffix` file."""
    return run_dir / EVAL_FOLDER / f"{eval_name(pruning, source, split)}.{suffix}"


def write_keep_traces(run_dir: Path, pruning: PruningConfig, task: str, traces: pd.DataFrame,
                      source: SourceTag | None = None, split: str = "eval") -> Path:
    """Save `traces` as the evaluation's parquet file, led by `method`, `k` and `task` columns (added in place)."""
    traces.insert(0, "method", pruning.method)
    traces.insert(1, "k", pruning.k)
    traces.insert(2, "task", task)
    path = eval_file(run_dir, pruning, "parquet", source, split)
    atomic_write_bytes(path, traces.to_parquet(index=False))
    return path
