"""Keep traces committed with the reports: `reports/data/traces/<run folder>/<method>_k<k>_g<gamma>.parquet`.

An evaluation writes its per-example, per-layer keep trace into its run directory
(`tsdtp.runs.eval_files`), which is not committed. The training notebooks copy each trace into
the reports' data folder with `store_traces`, compactly: one row per example and token (the
token, whether the example was classified correctly, and one `kept_<layer>` column per layer)
instead of one row per layer, zstd-compressed. The figure notebooks read them back with
`load_stored_traces`, in the long layout `tsdtp.analysis.frames` works on, so the figures are
made again from `reports/data/` alone, without `runs/`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tsdtp.analysis.frames import row_stem, trace_path
from tsdtp.runs.io import atomic_write_bytes

KEPT_PREFIX = "kept_"
"""Stored column `kept_<layer>`: whether the token is alive at that layer's input."""

LONG_COLUMNS: list[str] = ["method", "k", "task", "example", "layer", "position", "token", "kept"]
"""Columns of a loaded trace, as `tsdtp.analysis.frames.load_traces` gives them (plus `correct`, `eval_split`)."""


def stored_trace_path(row: pd.Series, traces_dir: str | Path) -> Path:
    """Where the stored trace of one results row lives: `<traces_dir>/<run folder name>/<eval stem>.parquet`."""
    return Path(traces_dir) / Path(str(row["run_dir"])).name / f"{row_stem(row, with_source=False)}.parquet"


def compact(trace: pd.DataFrame) -> pd.DataFrame:
    """A long trace (a row per example, layer and token) as one row per example and token with `kept_<layer>`.

    Kept per token: `eval_split` (translation), `example`, `position`, `token` and `correct` when
    the trace has them; `label`, `pred`, `method`, `k` and `task` are dropped (the results row has the last three).
    """
    index = [column for column in ("eval_split", "example", "position") if column in trace.columns]
    values = [column for column in ("token", "correct") if column in trace.columns]
    tokens = trace[trace["layer"] == trace["layer"].min()].set_index(index)[values]
    kept = trace.pivot(index=index, columns="layer", values="kept")
    kept.columns = [f"{KEPT_PREFIX}{layer}" for layer in kept.columns]
    table = tokens.join(kept.astype(bool)).reset_index()
    return table.astype({"example": "int32", "position": "int16"}).sort_values(index, kind="stable")


def expand(table: pd.DataFrame) -> pd.DataFrame:
    """The long layout of a `compact` table: a row per example, layer and token, sorted so."""
    kept = [column for column in table.columns if column.startswith(KEPT_PREFIX)]
    ids = [column for column in table.columns if column not in kept]
    long = table.melt(id_vars=ids, value_vars=kept, var_name="layer", value_name="kept")
    long["layer"] = long["layer"].str.slice(len(KEPT_PREFIX)).astype(int)
    long["kept"] = long["kept"].astype(bool)
    order = [column for column in ("eval_split", "example", "layer", "position") if column in long.columns]
    return long.sort_values(order, kind="stable").reset_index(drop=True)


def store_traces(rows: pd.DataFrame, traces_dir: str | Path) -> list[Path]:
    """Copy the run-directory keep trace of each row (a notebook's evaluation summary) into `traces_dir`, compactly.

    Rows sharing one trace file (a translation evaluation has a row per test set) copy it once.
    Returns the written paths.
    """
    written: list[Path] = []
    for _, row in rows.iterrows():
        target = stored_trace_path(row, traces_dir)
        if target in written:
            continue
        table = compact(pd.read_parquet(trace_path(row)))
        atomic_write_bytes(target, table.to_parquet(index=False, compression="zstd"))
        written.append(target)
    return written


def missing_traces(rows: pd.DataFrame, traces_dir: str | Path) -> list[str]:
    """A label (`task method k=...`) for each row whose stored trace is not in `traces_dir`."""
    return [f"{row['task']} {row['method']} k={float(row['k']):g}" for _, row in rows.iterrows()
            if not stored_trace_path(row, traces_dir).is_file()]


def load_stored_traces(rows: pd.DataFrame, traces_dir: str | Path) -> pd.DataFrame:
    """The stored traces of the chosen results rows in the long layout; a row's own `eval_split` only.

    Raises FileNotFoundError naming the first missing trace (check with `missing_traces` first).
    """
    frames = []
    for _, row in rows.iterrows():
        path = stored_trace_path(row, traces_dir)
        if not path.is_file():
            raise FileNotFoundError(f"no stored keep trace {path} for {row['task']} {row['method']} k={row['k']}")
        trace = expand(pd.read_parquet(path))
        if "eval_split" in trace.columns and "eval_split" in row.index:
            trace = trace[trace["eval_split"] == row["eval_split"]]
        frames.append(trace.assign(method=row["method"], k=float(row["k"]), task=row["task"]))
    if not frames:
        return pd.DataFrame(columns=LONG_COLUMNS)
    traces = pd.concat(frames, ignore_index=True)
    return traces[LONG_COLUMNS + [column for column in traces.columns if column not in LONG_COLUMNS]]


def traces_or_reason(rows: pd.DataFrame, traces_dir: str | Path, what: str) -> tuple[pd.DataFrame | None, str]:
    """The stored traces of `rows`, or None and why not (no results rows for `what`, or traces missing)."""
    if rows.empty:
        return None, f"results.csv has no rows for {what}"
    missing = missing_traces(rows, traces_dir)
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        return None, f"no keep traces in {traces_dir} for {len(missing)} evaluation(s): {shown}"
    return load_stored_traces(rows, traces_dir), ""
