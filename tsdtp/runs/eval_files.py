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


def eval_stem(method: str, k: float, gamma: float, source: SourceTag | None = None) -> str:
    """File stem of one evaluation, e.g. `ts-dtp_k1_g0.5`; `gamma` is the effective one (0 without the scorer),
    as in results.csv; `source` (None: the standard data) adds its suffix."""
    return f"{method}_k{k:g}_g{gamma:g}" + (source.file_suffix if source else "")


def eval_name(pruning: PruningConfig, source: SourceTag | None = None) -> str:
    """File stem for one evaluation of a run under `pruning` (its effective gamma, `PruningConfig.effective_gamma`)
    on `source` (None: the standard data)."""
    return eval_stem(pruning.method, pruning.k, pruning.effective_gamma, source)


def eval_file(run_dir: Path, pruning: PruningConfig, suffix: str, source: SourceTag | None = None) -> Path:
    """`<run_dir>/eval/<eval_name>.<suffix>`: where the evaluation under `pruning` on `source` writes its `suffix`
    file."""
    return run_dir / EVAL_FOLDER / f"{eval_name(pruning, source)}.{suffix}"


def write_keep_traces(run_dir: Path, pruning: PruningConfig, task: str, traces: pd.DataFrame,
                      source: SourceTag | None = None) -> Path:
    """Save `traces` as the evaluation's parquet file, led by `method`, `k` and `task` columns (added in place)."""
    traces.insert(0, "method", pruning.method)
    traces.insert(1, "k", pruning.k)
    traces.insert(2, "task", task)
    path = eval_file(run_dir, pruning, "parquet", source)
    atomic_write_bytes(path, traces.to_parquet(index=False))
    return path
