"""`reports/tables/results.csv`: the one tidy table every figure and table reads."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from tsdtp.runs.tables import upsert_csv

RESULT_COLUMNS: tuple[str, ...] = (
    "task", "model", "method", "k", "gamma", "metric_name", "metric", "keep_ratio", "flops_ratio",
    "speedup", "batch_size", "device", "n_eval",
)
"""The contracted columns, in order."""

EXTRA_COLUMNS: tuple[str, ...] = ("eval_split", "keep_target", "scorer_overhead", "run_dir", "command")
"""Columns after the contract: which split, the training budget, and how the row was made."""

KEY_COLUMNS: tuple[str, ...] = ("task", "model", "method", "k", "gamma", "keep_target", "eval_split", "batch_size",
                                "device")
"""A row is replaced, not duplicated, when these match."""


def read_results(path: str | Path) -> pd.DataFrame:
    """The results table, or an empty one with the contracted columns."""
    path = Path(path)
    if not path.is_file():
        return pd.DataFrame(columns=[*RESULT_COLUMNS, *EXTRA_COLUMNS])
    return pd.read_csv(path)


def upsert_results(path: str | Path, rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Add rows (replacing any with the same key) and rewrite the file atomically."""
    new = pd.DataFrame(list(rows))
    missing = [c for c in RESULT_COLUMNS if c not in new.columns]
    if missing:
        raise ValueError(f"result rows lack the contracted column(s) {missing}")
    for column in EXTRA_COLUMNS:
        if column not in new.columns:
            new[column] = None
    return upsert_csv(path, new, KEY_COLUMNS, columns=[*RESULT_COLUMNS, *EXTRA_COLUMNS],
                      sort_by=["task", "method", "k"])
