"""The data a run is trained on, part of its identity: `data.json` in its run directory.

`config.json` says how a run trains and names its cache folder (`tsdtp.runs.cache`); `data.json`
says what it trained on (`tsdtp.data_files.DataSource`: the folder and every file read, with its
sha256, or the hub). It is written when training starts and fixed once training has made progress
(`state.pt` or `metrics.json`): from then on a rerun or resume of the run on other data is refused.
Until then (a run that stopped before its first save, e.g. on a malformed data file) the data may
still change. Run directories from before `data.json` existed are accepted as they are.
"""

from __future__ import annotations

import json
from pathlib import Path

from tsdtp.data_files import DataSource
from tsdtp.errors import CheckpointError
from tsdtp.runs.distributed import is_main
from tsdtp.runs.io import atomic_write_json

DATA_RECORD = "data.json"
"""The file of a run directory that names its training data."""

PROGRESS_FILES: tuple[str, ...] = ("state.pt", "metrics.json")
"""Files a run directory holds once training has made progress (see `tsdtp.runs.training_loop`)."""


def read_training_data(run_dir: Path) -> DataSource | None:
    """The training data `run_dir` records, or None when it has no `data.json` (a run from before it existed)."""
    path = Path(run_dir) / DATA_RECORD
    if not path.is_file():
        return None
    try:
        return DataSource.from_dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path} is not a training data record ({type(exc).__name__}: {exc}); restore it, or "
                              f"delete it to accept any data for this run") from exc


def has_progress(run_dir: Path) -> bool:
    """Whether training of `run_dir` has saved anything (`PROGRESS_FILES`)."""
    return any((Path(run_dir) / name).exists() for name in PROGRESS_FILES)


def check_training_data(run_dir: Path, source: DataSource) -> None:
    """Refuse to train or resume `run_dir` on `source` when it has made progress on other recorded data."""
    recorded = read_training_data(run_dir)
    if recorded is not None and not recorded.same_data(source) and has_progress(run_dir):
        raise CheckpointError(f"{run_dir} was trained on {recorded.describe()}, not on {source.describe()}; "
                              "give the data it was trained on (--data-dir), or another --run-dir to train anew")


def record_training_data(run_dir: Path, source: DataSource) -> None:
    """Write `data.json` for a run that starts training now (no progress yet); a run with progress keeps its own.

    In a distributed run, rank 0 writes it.
    """
    if is_main() and not has_progress(run_dir):
        atomic_write_json(Path(run_dir) / DATA_RECORD, source.to_dict())
