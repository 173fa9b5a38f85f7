"""Translations committed with the reports: `reports/data/hypotheses/<run folder>/<eval stem>.<split>.txt`.

An evaluation writes its hypotheses into its run directory (`eval/<name>.<split>.txt`), which is not
committed. The translation notebook copies them beside the keep traces with `store_hypotheses`, so the
paired comparisons of `tsdtp.analysis.translation_matched` are made again from `reports/data/` alone, as the
classification comparison is from the stored traces.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tsdtp.analysis.frames import row_stem
from tsdtp.errors import DataError
from tsdtp.runs.eval_files import EVAL_FOLDER
from tsdtp.runs.io import atomic_write_bytes


def _file_name(row: pd.Series, split: str) -> str:
    return f"{row_stem(row)}.{split}.txt"


def stored_hypotheses_path(row: pd.Series, split: str, hypotheses_dir: str | Path) -> Path:
    """Where the stored hypotheses of one results row on test set `split` (e.g. `multi30k-test2016`) live."""
    return Path(hypotheses_dir) / Path(str(row["run_dir"])).name / _file_name(row, split)


def store_hypotheses(rows: pd.DataFrame, hypotheses_dir: str | Path) -> list[Path]:
    """Copy the run-directory hypotheses of each row (a translation evaluation summary, with its test set in
    `split`) into `hypotheses_dir`; returns the written paths. DataError names a missing hypotheses file."""
    written = []
    for _, row in rows.iterrows():
        source = Path(str(row["run_dir"])) / EVAL_FOLDER / _file_name(row, str(row["split"]))
        if not source.is_file():
            raise DataError(f"no hypotheses {source} for {row['method']} k={row['k']}; evaluate the run first")
        target = stored_hypotheses_path(row, str(row["split"]), hypotheses_dir)
        atomic_write_bytes(target, source.read_bytes())
        written.append(target)
    return written


def load_hypotheses(row: pd.Series, split: str, hypotheses_dir: str | Path) -> list[str]:
    """The stored hypotheses of one results row on `split`, one per test sentence; DataError when missing."""
    path = stored_hypotheses_path(row, split, hypotheses_dir)
    if not path.is_file():
        raise DataError(f"no stored hypotheses {path} for {row['method']} k={row['k']} ({row['run_dir']}); "
                        "run the translation step again (notebooks/05_translation.ipynb with hypotheses_dir)")
    return path.read_text(encoding="utf-8").splitlines()


def missing_hypotheses(rows: pd.DataFrame, split: str, hypotheses_dir: str | Path) -> list[str]:
    """A label (`method k=... (run folder)`) for each results row whose translations of `split` are not stored."""
    return [f"{row['method']} k={float(row['k']):g} ({Path(str(row['run_dir'])).name})" for _, row in rows.iterrows()
            if not stored_hypotheses_path(row, split, hypotheses_dir).is_file()]
