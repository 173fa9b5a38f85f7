"""The staging folder `<out_dir>/.staging/`: a run writes there, and only a finished run is moved into place.

The reports' data (`<out_dir>/data/`: results.csv, translation.csv, bench.csv, profile tables,
the stored keep traces and translations) is copied in first, so the steps update it row by row and the
figure notebooks read it; the rows and traces of the runs this reproduce evaluates again are dropped
first (`forget_runs`), and so are those of runs the last reproduce made for steps whose settings have changed.
Every new or changed file is renamed into `<out_dir>/` at the end, and the data files dropped are deleted.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd

from tsdtp.analysis.pending import PENDING_SUFFIX, read_pending
from tsdtp.data_files import file_sha256
from tsdtp.runs.io import atomic_write_bytes
from tsdtp.runs.results import KEY_COLUMNS
from tsdtp.runs.tables import row_keys

DATA_FOLDER = "data"
"""The reports' data: what the figure and results notebooks read, what training steps refresh."""

STAGED_FOLDERS: tuple[str, ...] = ("figures", "tables", "notebooks", DATA_FOLDER)
"""The folders of the reports, as the staging folder holds them."""


def stage(out_dir: Path) -> tuple[Path, dict[str, str]]:
    """A fresh staging folder holding a copy of `<out_dir>/data/`; returns it and the copies' checksums."""
    staging = out_dir / ".staging"
    if staging.exists():
        shutil.rmtree(staging)
    for sub in STAGED_FOLDERS:
        (staging / sub).mkdir(parents=True)
    carried = {}
    data = out_dir / DATA_FOLDER
    for path in sorted(data.rglob("*")) if data.is_dir() else []:
        if path.is_file():
            relative = path.relative_to(out_dir).as_posix()
            (staging / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, staging / relative)
            carried[relative] = file_sha256(path)
    return staging, carried


RUN_TABLES: tuple[str, ...] = ("results.csv", "translation.csv")
"""The data tables whose rows an evaluating step writes, one per evaluation of its run (by `run_dir`)."""

TRACES_FOLDER = "traces"
"""The stored keep traces in the data folder, one subfolder per run (`tsdtp.analysis.stored_traces`)."""

HYPOTHESES_FOLDER = "hypotheses"
"""The stored translations in the data folder, one subfolder per run (`tsdtp.analysis.stored_hypotheses`)."""


def forget_runs(staging: Path, run_dirs: set[str]) -> None:
    """Drop the staged rows, stored traces and translations of `run_dirs` (as the tables write them), which this
    reproduce evaluates again: their evaluations then stand as this run wrote them, and none is left from an
    earlier run with other settings or another thread count."""
    data = staging / DATA_FOLDER
    for name in RUN_TABLES:
        path = data / name
        if not path.is_file():
            continue
        table = pd.read_csv(path)
        if "run_dir" in table.columns:
            atomic_write_bytes(path, table[~table["run_dir"].isin(run_dirs)].to_csv(index=False).encode())
    for run_dir in run_dirs:
        for folder in (TRACES_FOLDER, HYPOTHESES_FOLDER):
            shutil.rmtree(data / folder / Path(run_dir).name, ignore_errors=True)


def restore_later_rows(staging: Path, published: Path, order: dict[str, int], kept: set[str]) -> list[str]:
    """Put back the published results.csv rows of `kept` runs (of steps outside `--from`/`--until`) that a run
    earlier in the profile (`order`: run_dir -> step index) overwrote with the same key, as when a dense
    teacher is retrained alone and its row lands on the row of the dense run given the extra budget. A whole
    reproduce leaves the later step's row; so does a window. Returns the run_dirs whose rows were put back."""
    staged_path = staging / DATA_FOLDER / "results.csv"
    if not published.is_file() or not staged_path.is_file():
        return []
    old, staged = pd.read_csv(published), pd.read_csv(staged_path)
    old = old[old["run_dir"].isin(kept)]
    old_keys, staged_keys = row_keys(old, KEY_COLUMNS), row_keys(staged, KEY_COLUMNS)
    writers = staged["run_dir"].groupby(staged_keys).agg(list)

    def overwritten(key: str, run: str) -> bool:
        return any(order.get(writer, -1) < order.get(run, -1) for writer in writers.get(key, []))

    later = old[[overwritten(key, run) for key, run in zip(old_keys, old["run_dir"])]]
    if later.empty:
        return []
    staged = pd.concat([staged[~staged_keys.isin(set(row_keys(later, KEY_COLUMNS)))], later], ignore_index=True)
    staged = staged.sort_values(["task", "method", "k"], kind="stable")
    atomic_write_bytes(staged_path, staged.to_csv(index=False).encode())
    return sorted(set(later["run_dir"]))


def take_pending(staging: Path) -> dict[str, str]:
    """The notes of figures not drawn for want of data (`tsdtp.analysis.pending`), removed from the staging folder."""
    notes = read_pending(staging / "figures")
    for name in notes:
        (staging / "figures" / f"{name}{PENDING_SUFFIX}").unlink()
    return notes


def publish(staging: Path, out_dir: Path, carried: dict[str, str]) -> None:
    """Rename each new or changed staged file into `out_dir`, delete the data files the run dropped (a carried
    file no longer staged, and its folder when that is left empty), then remove the staging folder."""
    dropped = sorted(relative for relative in carried if not (staging / relative).is_file())
    for path in sorted(p for p in staging.rglob("*") if p.is_file()):
        relative = path.relative_to(staging).as_posix()
        if relative in carried and carried[relative] == file_sha256(path):
            continue
        target = out_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
    for relative in dropped:
        (out_dir / relative).unlink(missing_ok=True)
        folder = (out_dir / relative).parent
        while folder != out_dir / DATA_FOLDER and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
            folder = folder.parent
    shutil.rmtree(staging)
