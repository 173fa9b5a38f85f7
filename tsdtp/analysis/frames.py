"""Tidy frames for the figures and tables: settings chosen from results.csv, keep traces, the results table.

Everything here reads `results.csv` (see `tsdtp.runs.results`), the keep-trace parquet files that
`tsdtp eval` writes beside each run (`<run_dir>/eval/<method>_k<k>_g<gamma>.parquet`), and,
when present, the benchmark's `bench.csv`. Nothing here draws (`tsdtp.analysis.plots` does) or writes
files (`tsdtp.analysis.table_files` does).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from tsdtp.analysis.token_kinds import KINDS, token_kinds
from tsdtp.core.config import METHODS
from tsdtp.data_files import tag_of_label
from tsdtp.runs.eval_files import eval_stem
from tsdtp.runs.selection import SELECTION_WORD, is_selection_label

SENTIMENT_TASKS: tuple[str, ...] = ("sst2",)
"""Tasks whose token-kind breakdown separates sentiment-bearing words."""

DECODER_ROW_TASKS: tuple[str, ...] = ("wmt16",)
"""Tasks whose keep traces end with one extra row: the source tokens the decoder cross-attends to."""

MEMORY_COLUMNS: dict[str, float] = {
    "memory_mb": 1.0, "peak_memory_mb": 1.0, "peak_memory_mib": 1.0, "activation_memory_mb": 1.0,
    "peak_activation_mib": 1.0, "peak_activation_bytes": 2.0**-20, "peak_memory_bytes": 2.0**-20,
}
"""Peak-memory columns bench.csv may have, in order of preference, with the factor to MiB."""


def method_order(methods: Sequence[str]) -> list[str]:
    """The methods given in the harness's order (bench.csv's `dense` first, then `METHODS`), unknown ones last."""
    rank = {name: index for index, name in enumerate(("dense", *METHODS))}
    return sorted(dict.fromkeys(methods), key=lambda name: (rank.get(name, len(rank)), name))


def filter_results(results: pd.DataFrame, batch_size: int | None = None, tasks: Sequence[str] | None = None,
                   models: Sequence[str] | None = None) -> pd.DataFrame:
    """The rows measured at `batch_size`, of `tasks` and of `models` (None keeps all)."""
    keep = pd.Series(True, index=results.index)
    if batch_size is not None:
        keep &= results["batch_size"] == batch_size
    for column, allowed in (("task", tasks), ("model", models)):
        if allowed is not None:
            keep &= results[column].isin(list(allowed))
    return results[keep].reset_index(drop=True)


def panels(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(title, rows) per task; a task with rows of several models (an encoder and an LLM) gets a panel per model, and
    one with several evaluation splits (translation: captions, news) a panel per split."""
    return [panel for task in sorted(frame["task"].unique())
            for title, rows in _split_by(frame[frame["task"] == task], "model", str(task))
            for panel in _split_by(rows, "eval_split", title)]


def _split_by(frame: pd.DataFrame, column: str, title: str) -> list[tuple[str, pd.DataFrame]]:
    """`frame` as one (title, rows) panel, or one per value of `column` when it holds several."""
    values = sorted(frame[column].dropna().unique()) if column in frame.columns else []
    if len(values) <= 1:
        return [(title, frame)]
    return [(f"{title}: {value}", frame[frame[column] == value]) for value in values]


def select_settings(results: pd.DataFrame, k: float) -> pd.DataFrame:
    """Per task, model and method, the setting whose k is closest to `k` (ties: the default rule, no `schedule`)."""
    if results.empty:
        return results
    ruled = results["schedule"].notna() if "schedule" in results.columns else False
    ranked = results.assign(_distance=(results["k"].astype(float) - k).abs(), _ruled=ruled).sort_values(
        ["task", "model", "method", "_distance", "_ruled", "k"], kind="stable")
    return ranked.drop_duplicates(["task", "model", "method"], ignore_index=True).drop(columns=["_distance", "_ruled"])


def row_stem(row: pd.Series, with_source: bool = True) -> str:
    """The evaluation file stem of one results row: its method, k, effective gamma, schedule and removal, the
    selection split when its `eval_split` names one, and (`with_source`) the data source its label carries."""
    label = str(row.get("eval_split", ""))
    removal, schedule = row.get("removal"), row.get("schedule")
    return eval_stem(row["method"], float(row["k"]), float(row["gamma"]),
                     tag_of_label(label) if with_source else None, "drop" if pd.isna(removal) else str(removal),
                     SELECTION_WORD if is_selection_label(label) else "eval",
                     None if pd.isna(schedule) else str(schedule))


def trace_path(row: pd.Series) -> Path:
    """The keep-trace parquet of one results row (its `gamma` is the effective one, as results.csv holds it; an
    `eval_split` labelled with another data source names that evaluation's own file)."""
    stem = row_stem(row)
    path = Path(str(row["run_dir"])) / "eval" / f"{stem}.parquet"
    if not path.is_file():
        raise FileNotFoundError(f"no keep trace {path.name} for {row['task']} {row['method']} k={row['k']} in "
                                f"{path.parent}; evaluate the run with `tsdtp eval` first")
    return path


def load_traces(rows: pd.DataFrame) -> pd.DataFrame:
    """The keep traces of the chosen results rows, concatenated (columns as the evaluations write them).

    A translation trace file holds every test set; only the row's own `eval_split` is kept.
    """
    frames = []
    for _, row in rows.iterrows():
        trace = pd.read_parquet(trace_path(row))
        if "eval_split" in trace.columns and "eval_split" in row.index:
            trace = trace[trace["eval_split"] == row["eval_split"]]
        frames.append(trace)
    if not frames:
        return pd.DataFrame(columns=["method", "k", "task", "example", "layer", "position", "token", "kept",
                                     "label", "pred", "correct"])
    return pd.concat(frames, ignore_index=True)


def layer_keep(traces: pd.DataFrame) -> pd.DataFrame:
    """Fraction of tokens alive at the input of each layer, per task, method and k."""
    grouped = traces.groupby(["task", "method", "k", "layer"], as_index=False)["kept"].mean()
    return grouped.rename(columns={"kept": "keep_ratio"})


def with_kinds(traces: pd.DataFrame) -> pd.DataFrame:
    """The traces with a `kind` column (see `tsdtp.analysis.token_kinds`); sentiment words only for SST-2."""
    first = traces[traces["layer"] == traces["layer"].min()].sort_values(["task", "method", "k", "example",
                                                                          "position"])
    kinds = []
    for (task, _, _, _), group in first.groupby(["task", "method", "k", "example"], sort=False):
        kinds.append(pd.Series(token_kinds(group["token"].tolist(), sentiment=task in SENTIMENT_TASKS),
                               index=group.index))
    first = first.assign(kind=pd.concat(kinds) if kinds else pd.Series(dtype=str))
    keys = ["task", "method", "k", "example", "position"]
    return traces.merge(first[[*keys, "kind"]], on=keys, how="left")


def kind_survival(traces: pd.DataFrame) -> pd.DataFrame:
    """Per task, method, k and token kind: the fraction of those tokens alive at the last layer, and how many."""
    typed = with_kinds(traces)
    last = typed[typed["layer"] == typed.groupby(["task", "method", "k"])["layer"].transform("max")]
    table = last.groupby(["task", "method", "k", "kind"], as_index=False).agg(survival=("kept", "mean"),
                                                                              tokens=("kept", "size"))
    table["kind"] = pd.Categorical(table["kind"], categories=list(KINDS), ordered=True)
    return table.sort_values(["task", "method", "kind"]).reset_index(drop=True)


def pick_examples(traces: pd.DataFrame, methods: Sequence[str], n: int, min_tokens: int = 8,
                  max_tokens: int = 24) -> list[int]:
    """Up to `n` examples for the heatmaps, the same for every method, chosen without looking at what was kept.

    Candidates are examples of `min_tokens`..`max_tokens` tokens that every method classified
    correctly (every example, for traces without a `correct` column: translation); for
    sentiment tasks those with a sentiment-bearing word come first; then by index.
    """
    first = traces[(traces["layer"] == 0) & traces["method"].isin(methods)]
    if "correct" not in first.columns:
        first = first.assign(correct=True)
    per_method = first.groupby(["method", "example"]).agg(length=("position", "size"), correct=("correct", "all"))
    table = per_method.groupby("example").agg(length=("length", "first"), correct=("correct", "all"),
                                              methods=("length", "size"))
    table = table[(table["methods"] == len(set(methods))) & table["length"].between(min_tokens, max_tokens)]
    if table.empty:
        return []
    sentiment = pd.Series(False, index=table.index)
    if set(first["task"]) & set(SENTIMENT_TASKS):
        one = first[first["method"] == methods[0]]
        kinds = one.groupby("example")["token"].apply(lambda tokens: "sentiment word" in token_kinds(list(tokens)))
        sentiment = kinds.reindex(table.index, fill_value=False)
    table = table.assign(sentiment=sentiment)
    ranked = table.sort_values(["correct", "sentiment"], ascending=False, kind="stable")
    return [int(example) for example in ranked.index[:n]]


FASTEST_BASIS, PADDED_BASIS = "× fastest dense baseline", "× padded forward (older row)"
"""What a results row's `speedup` is against: the fastest-baseline rule (`tsdtp.runs.speedups`), or,
for rows written before it (no `speedup_baseline`), transformers' padded forward in dataset order."""


def speedup_basis(results: pd.DataFrame) -> pd.Series:
    """Per row, `FASTEST_BASIS` where the row names its fastest baseline, else `PADDED_BASIS`."""
    if "speedup_baseline" not in results.columns:
        return pd.Series(PADDED_BASIS, index=results.index)
    return results["speedup_baseline"].notna().map({True: FASTEST_BASIS, False: PADDED_BASIS})


def realization(results: pd.DataFrame) -> pd.DataFrame:
    """Rows with a measured speedup, with the FLOPs-implied speedup, realized/implied ratio and `speedup_basis` added
    (against the fastest dense baseline; older rows, against the padded forward, are kept and so marked)."""
    measured = results[results["speedup"].notna() & results["flops_ratio"].notna()].copy()
    measured["implied_speedup"] = 1.0 / measured["flops_ratio"].astype(float)
    measured["realization"] = measured["speedup"].astype(float) / measured["implied_speedup"]
    measured["speedup_basis"] = speedup_basis(measured)
    return measured.reset_index(drop=True)


def read_bench(path: str | Path | None) -> pd.DataFrame | None:
    """bench.csv as a frame, or None when it does not exist (the benchmark has not been run)."""
    if path is None or not Path(path).is_file():
        return None
    return pd.read_csv(path)


BENCH_PREFERRED: tuple[tuple[str, object], ...] = (("device", "cpu"), ("dtype", "fp32"), ("sorted_by_length", False))
"""bench.csv rows kept for memory when the column exists and has such rows: the CPU, fp32, dataset-order setting."""


def bench_memory(bench: pd.DataFrame | None) -> pd.DataFrame | None:
    """bench.csv's measured rows with a `memory_mb` column (peak MiB), or None without bench.csv or memory.

    Only the setting of `BENCH_PREFERRED` is kept where bench.csv has several devices, dtypes
    or orderings, so every bar compares like with like.
    """
    if bench is None:
        return None
    column = next((name for name in MEMORY_COLUMNS if name in bench.columns), None)
    if column is None or "task" not in bench.columns or "method" not in bench.columns:
        return None
    memory = bench[bench[column].notna()]
    for name, preferred in BENCH_PREFERRED:
        if name in memory.columns and (memory[name] == preferred).any():
            memory = memory[memory[name] == preferred]
    if memory.empty:
        return None
    memory = memory.copy()
    memory["memory_mb"] = memory[column].astype(float) * MEMORY_COLUMNS[column]
    return memory.reset_index(drop=True)


SETTING_COLUMNS: tuple[str, ...] = ("seed", "variant", "schedule")
"""results.csv columns that tell apart rows of one method at one k (seeds, a trained variant, per-layer k
offsets); the results table shows each one that has a value in some row."""


def results_table(results: pd.DataFrame, bench: pd.DataFrame | None = None) -> pd.DataFrame:
    """The paper's table: one row per task, test set, method and setting, with metric, keep, FLOPs, speedup, memory.

    Memory (peak MiB) comes from bench.csv, matched on task, method and k at the same batch
    size where it has that column; otherwise it is left empty. The `SETTING_COLUMNS` that have values follow gamma.
    """
    table = results.copy()
    table["memory_mb"] = np.nan
    memory = bench_memory(bench)
    if memory is not None:
        keys = [key for key in ("task", "method", "k", "batch_size") if key in memory.columns]
        memory = memory.groupby(keys, as_index=False)["memory_mb"].median()
        table = table.drop(columns="memory_mb").merge(memory, on=keys, how="left")
    order = {name: index for index, name in enumerate(method_order(table["method"].tolist()))}
    settings = [name for name in SETTING_COLUMNS if name in table.columns and table[name].notna().any()]
    table = table.assign(_order=table["method"].map(order)).sort_values(["task", "eval_split", "_order", "k",
                                                                         *settings], kind="stable")
    columns = ["task", "eval_split", "method", "k", "gamma", *settings, "metric_name", "metric", "keep_ratio",
               "flops_ratio", "speedup", "memory_mb", "n_eval"]
    return table[columns].reset_index(drop=True)
