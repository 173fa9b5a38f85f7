"""What the threshold keeps at each pruning layer, against what a normal score distribution would give.

The dynamic threshold `mean(S) - k * std(S)` standardises each example's scores, so the share of tokens it
keeps at a layer depends only on the shape of the standardised score distribution: for normal scores it is
Phi(k), the normal CDF at k (0.50 at k = 0, 0.69 at 0.5, 0.84 at 1), whatever the budget loss asks for. The
table here measures that share per layer from the stored keep traces, next to Phi(k), so a reader can see
how far training moved it away from the normal share (and so how much the keep target can do).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from tsdtp.analysis.stored_traces import KEPT_PREFIX, stored_trace_path
from tsdtp.core.config import METHOD_TABLE
from tsdtp.runs.eval_files import K_OFFSETS_PREFIX

SHARE_COLUMNS: list[str] = ["task", "method", "keep_target", "schedule", "k", "seed", "layer", "share", "normal_share"]
"""Columns of `layer_shares`."""


def normal_share(k: float) -> float:
    """Phi(k): the share of a normal distribution above its mean minus k standard deviations."""
    return 0.5 * (1.0 + math.erf(k / math.sqrt(2.0)))


def alive_counts(table: pd.DataFrame) -> list[int]:
    """Tokens alive at each layer's input, summed over examples, of a compact stored trace (`kept_<layer>`)."""
    layers = sorted(int(column[len(KEPT_PREFIX):]) for column in table.columns if column.startswith(KEPT_PREFIX))
    return [int(table[f"{KEPT_PREFIX}{layer}"].sum()) for layer in layers]


def layer_shares(rows: pd.DataFrame, traces_dir: str | Path) -> pd.DataFrame:
    """For each results row (its stored trace in `traces_dir`) and each layer that removed tokens, the share of
    the tokens alive at its input that are still alive at the next layer's input, and `normal_share(k)` (NaN for a
    method that keeps a fixed schedule instead of thresholding at k, and for per-layer k offsets, where no single k
    applies)."""
    out = []
    for _, row in rows.iterrows():
        offsets = str(row.get("schedule")).startswith(K_OFFSETS_PREFIX)
        thresholded = METHOD_TABLE[row["method"]].thresholded and not offsets
        alive = alive_counts(pd.read_parquet(stored_trace_path(row, traces_dir)))
        for layer, (before, after) in enumerate(zip(alive, alive[1:])):
            if after < before:
                out.append({"task": row["task"], "method": row["method"], "keep_target": row.get("keep_target"),
                            "schedule": row.get("schedule"), "k": float(row["k"]), "seed": row.get("seed"),
                            "layer": layer, "share": after / before,
                            "normal_share": normal_share(float(row["k"])) if thresholded else float("nan")})
    return pd.DataFrame(out, columns=SHARE_COLUMNS)


def share_table(shares: pd.DataFrame) -> pd.DataFrame:
    """`layer_shares` averaged over seeds: one row per task, method, keep target, schedule and k, a column per
    layer (`after <layer>`), and Phi(k)."""
    if shares.empty:
        return pd.DataFrame()
    index = ["task", "method", "keep_target", "schedule", "k"]
    mean = shares.groupby(index + ["layer"], dropna=False)["share"].mean().unstack("layer")
    mean.columns = [f"after {layer}" for layer in mean.columns]
    normal = shares.groupby(index, dropna=False)["normal_share"].first().rename("Phi(k)")
    return mean.join(normal).reset_index()
