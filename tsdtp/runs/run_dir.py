"""A run directory's lifecycle: opened once the run's inputs are validated, written by one process at a time,
cleared of what an interrupted write left, and finished without its resumable state.

The trainers validate everything first (model, data, pruning layers) and only then `open_run`: so a bad
command leaves nothing behind and the corrected one starts clean. `open_run` holds the run's lock file
for the whole training (`tsdtp.runs.lock`); evaluations hold a second one (`holding_evaluation_lock`),
so a run can be evaluated while it trains, but not by two commands at once.
"""

from __future__ import annotations

import functools
import json
import math
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from tsdtp.errors import CheckpointError, ConfigError
from tsdtp.runs.distributed import barrier, is_main
from tsdtp.runs.eval_files import EVAL_FOLDER
from tsdtp.runs.io import atomic_write_json, remove_temporaries
from tsdtp.runs.lock import exclusive_lock

CONFIG_FILE, METRICS_FILE, STATE_FILE = "config.json", "metrics.json", "state.pt"
"""The files every run directory has (state.pt only while training, or with --keep-state)."""

RUN_FILES: tuple[str, ...] = (CONFIG_FILE, METRICS_FILE, STATE_FILE, "checkpoint.pt", "scorers.pt")
"""The files the trainers write atomically into a run directory (their temporary files are cleared on opening)."""

TRAIN_LOCK, EVAL_LOCK = ".tsdtp-train.lock", ".tsdtp-eval.lock"
"""The lock files of a run directory's trainer and of its evaluations."""

Params = ParamSpec("Params")
Result = TypeVar("Result")


@contextmanager
def open_run(run_dir: str | Path, config: dict[str, Any], leftovers: Sequence[str] = ()) -> Iterator[Path]:
    """Create `run_dir`, hold its lock, clear leftovers of interrupted writes and write `config.json`.

    Call it once the run's inputs are validated. A run directory holding another config is refused
    before anything is written; so is a config with a non-finite number (JSON has none). `leftovers`
    names staging folders of the caller's own (removed too). In a distributed run rank 0 opens the
    directory while the other ranks wait at a barrier.
    """
    run_dir = Path(run_dir)
    _check_finite(config)
    _check_same_config(run_dir, config)
    if not is_main():
        barrier()
        yield run_dir
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(run_dir / TRAIN_LOCK, f"run directory {run_dir}"):
        _check_same_config(run_dir, config)
        remove_temporaries(run_dir, RUN_FILES)
        for name in leftovers:
            shutil.rmtree(run_dir / name, ignore_errors=True)
        atomic_write_json(run_dir / CONFIG_FILE, config)
        barrier()
        yield run_dir


def _check_same_config(run_dir: Path, config: dict[str, Any]) -> None:
    """Refuse a run directory whose config.json is unreadable or holds another config."""
    saved = run_dir / CONFIG_FILE
    if not saved.is_file():
        return
    try:
        previous = json.loads(saved.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{saved} is not valid JSON ({exc}); delete the run directory {run_dir} "
                              "to start the run again") from exc
    if previous != json.loads(json.dumps(config)):
        raise CheckpointError(f"{run_dir} holds a run with a different config; choose another --run-dir "
                              "or delete it")


def _check_finite(config: dict[str, Any], prefix: str = "") -> None:
    """Refuse NaN and infinity in a config: config.json could not store them."""
    for key, value in config.items():
        if isinstance(value, dict):
            _check_finite(value, f"{prefix}{key}.")
        elif isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{prefix}{key} is {value}; a run's settings must be finite numbers "
                              "(k >= 1e6 switches pruning off)")


def read_metrics(run_dir: Path) -> dict[str, Any] | None:
    """The run's metrics.json, or None when it has none; a CheckpointError says how to recover an unreadable one."""
    path = run_dir / METRICS_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc}); delete it and run the same train command "
                              "again: it resumes from state.pt, or retrains the run") from exc


def finish_run(run_dir: Path, keep_state: bool) -> None:
    """A run is trained: remove its resumable state unless `keep_state`."""
    if not keep_state:
        (run_dir / STATE_FILE).unlink(missing_ok=True)


@contextmanager
def evaluation_lock(run_dir: str | Path) -> Iterator[None]:
    """Hold `run_dir`'s evaluation lock and clear leftovers of interrupted writes in its eval/ folder.

    A missing run directory is not created (the evaluation then reports it).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        yield
        return
    with exclusive_lock(run_dir / EVAL_LOCK, f"the {EVAL_FOLDER}/ folder of {run_dir}"):
        if (run_dir / EVAL_FOLDER).is_dir():
            remove_temporaries(run_dir / EVAL_FOLDER)
        yield


def holding_evaluation_lock(evaluate: Callable[Concatenate[Any, Params], Result]
                            ) -> Callable[Concatenate[Any, Params], Result]:
    """Decorate an evaluation whose first argument is a run directory: it runs holding `evaluation_lock`."""
    @functools.wraps(evaluate)
    def locked(run_dir: Any, *args: Params.args, **kwargs: Params.kwargs) -> Result:
        with evaluation_lock(run_dir):
            return evaluate(run_dir, *args, **kwargs)

    return locked
