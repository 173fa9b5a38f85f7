"""`reports/data/results.csv`: the one tidy table every figure and table reads."""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from tsdtp.core.config import PruningConfig
from tsdtp.runs.eval_files import schedule_label
from tsdtp.runs.io import atomic_write_bytes
from tsdtp.runs.speedups import RATIO_COLUMNS
from tsdtp.runs.tables import row_keys, upsert_csv

RESULT_COLUMNS: tuple[str, ...] = (
    "task", "model", "method", "k", "gamma", "metric_name", "metric", "keep_ratio", "flops_ratio",
    "speedup", "batch_size", "device", "n_eval",
)
"""The contracted columns, in order."""

SPEED_COLUMNS: tuple[str, ...] = (*RATIO_COLUMNS, "speedup_baseline")
"""The speedup against each dense baseline and the name of the fastest (`tsdtp.runs.speedups`).

`speedup` is against the fastest; rows without `speedup_baseline` predate that rule and are
against transformers' padded forward in dataset order."""

EXTRA_COLUMNS: tuple[str, ...] = ("eval_split", "keep_target", "seed", "removal", "schedule", "scorer_overhead",
                                  "run_dir", "command", *SPEED_COLUMNS, "variant")
"""Columns after the contract: which split, the training budget and seed, whether pruned tokens were fused, a
scheduled method's keep schedule, how the row was made, the speedups, and what else tells the run apart. `seed` is
the trained run's; rows written before the column get it from their run directory's config.json when that still
exists (`fill_seeds`), else stay empty. `removal` is empty when pruned tokens are dropped and `fuse` when they are
fused; `schedule` is empty for the default top-k schedule (`tsdtp.runs.eval_files.schedule_label`); `variant` is
e.g. a translation run's exit mode and pruning layers (empty when nothing)."""

KEY_COLUMNS: tuple[str, ...] = ("task", "model", "method", "k", "gamma", "keep_target", "eval_split", "batch_size",
                                "device", "seed", "removal", "schedule", "variant")
"""A row is replaced, not duplicated, when these match."""

TIMING_COLUMNS: tuple[str, ...] = ("speedup", *SPEED_COLUMNS, "command")
"""What a timing-only measurement (`tsdtp bench`) may change in a row evaluated on more examples."""


def invoking_command() -> str:
    """The `tsdtp ...` command line of this process, quoted, or "" when it is not the `tsdtp` command."""
    return " ".join(shlex.quote(arg) for arg in ["tsdtp", *sys.argv[1:]]) if sys.argv[0].endswith("tsdtp") else ""


def build_result_row(*, task: str, model: str, pruning: PruningConfig, metric_name: str, metric: float,
                     keep_ratio: float, flops_ratio: float, speedup: float, batch_size: int, threads: int,
                     n_eval: int, eval_split: str, scorer_overhead: float, run_dir: str,
                     speedups: Mapping[str, Any] | None = None, seed: int | None = None, variant: str = ""
                     ) -> dict[str, Any]:
    """One results.csv row, `RESULT_COLUMNS` then `EXTRA_COLUMNS`, rounded as the table keeps them.

    `gamma` is the effective one; `keep_target` is set only for methods trained with a keep budget.
    `speedups` holds the `SPEED_COLUMNS` (`tsdtp.runs.speedups.speedup_columns`; empty when not timed).
    """
    spec = pruning.spec
    speedups = speedups or {}
    ratios = {c: round(float(speedups.get(c, float("nan"))), 3) for c in RATIO_COLUMNS}
    return {
        "task": task, "model": model, "method": pruning.method, "k": pruning.k, "gamma": pruning.effective_gamma,
        "metric_name": metric_name, "metric": round(metric, 2), "keep_ratio": round(keep_ratio, 4),
        "flops_ratio": round(flops_ratio, 4), "speedup": round(speedup, 3), "batch_size": batch_size,
        "device": f"cpu x{threads}", "n_eval": n_eval, "eval_split": eval_split,
        "keep_target": pruning.keep_target if spec.trained and spec.thresholded else None, "seed": seed,
        "removal": pruning.removal if pruning.fuses else None, "schedule": schedule_label(pruning),
        "scorer_overhead": round(scorer_overhead, 4), "run_dir": run_dir, "command": invoking_command(),
        **ratios, "speedup_baseline": speedups.get("speedup_baseline"), "variant": variant,
    }


def fill_seeds(table: pd.DataFrame) -> pd.DataFrame:
    """`table` with a `seed` column; a row without one gets its run's seed when `<run_dir>/config.json` exists."""
    seeds = table["seed"] if "seed" in table.columns else pd.Series(pd.NA, index=table.index)
    runs = table["run_dir"] if "run_dir" in table.columns else pd.Series(pd.NA, index=table.index)
    known = {run_dir: _run_seed(run_dir) for run_dir in runs[seeds.isna() & runs.notna()].unique()}
    filled = seeds.where(seeds.notna(), runs.map(known))
    return table.assign(seed=pd.to_numeric(filled, errors="coerce").astype("Int64"))


def _run_seed(run_dir: str) -> int | None:
    """The seed in a run directory's config.json, or None when it is gone."""
    config = Path(str(run_dir)) / "config.json"
    return json.loads(config.read_text()).get("seed") if config.is_file() else None


def read_results(path: str | Path) -> pd.DataFrame:
    """The results table (with a `seed` column, `fill_seeds`), or an empty one with the contracted columns."""
    path = Path(path)
    if not path.is_file():
        return pd.DataFrame(columns=[*RESULT_COLUMNS, *EXTRA_COLUMNS])
    return fill_seeds(pd.read_csv(path))


def upsert_results(path: str | Path, rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Add rows (replacing any with the same key) and rewrite the file atomically.

    Rows of an older file without seeds get them first (`fill_seeds`), so a new row replaces its old twin.
    """
    path = Path(path)
    if path.is_file() and "seed" not in pd.read_csv(path, nrows=0).columns:
        atomic_write_bytes(path, fill_seeds(pd.read_csv(path)).to_csv(index=False).encode())
    new = pd.DataFrame(list(rows))
    missing = [c for c in RESULT_COLUMNS if c not in new.columns]
    if missing:
        raise ValueError(f"result rows lack the contracted column(s) {missing}")
    for column in EXTRA_COLUMNS:
        if column not in new.columns:
            new[column] = None
    return upsert_csv(path, new, KEY_COLUMNS, columns=[*RESULT_COLUMNS, *EXTRA_COLUMNS],
                      sort_by=["task", "method", "k"])


def onto_fuller_evaluations(path: str | Path, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """`rows` ready to upsert into the table at `path`: a row whose key already has a row evaluated on more
    examples (`n_eval`) becomes that row with only the new `TIMING_COLUMNS`, so a benchmark on a subset never
    replaces the accuracy, keep and FLOPs ratios of a full evaluation."""
    rows = list(rows)
    if not Path(path).is_file() or not rows:
        return rows
    table = read_results(path)
    fuller = dict(zip(row_keys(table, KEY_COLUMNS), table.to_dict("records")))
    merged = []
    for row, key in zip(rows, row_keys(pd.DataFrame(rows), KEY_COLUMNS)):
        old = fuller.get(key)
        if old is not None and old["n_eval"] > row["n_eval"]:
            row = {**old, **{column: row[column] for column in TIMING_COLUMNS if column in row}}
        merged.append(row)
    return merged
