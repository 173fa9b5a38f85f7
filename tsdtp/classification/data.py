"""The data of a GLUE classification task (`tsdtp.classification.tasks`): a local GLUE-layout folder or the hub."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from datasets import Dataset, Features, Value, load_dataset

from tsdtp.classification.tasks import GlueTask
from tsdtp.data_files import data_dir_from_env, require_file
from tsdtp.errors import DataError

DEV_SPLIT_SEED = 0
"""Seed of the documented QNLI dev split used when no train.tsv exists."""
DEV_SPLIT_EVAL_FRACTION = 0.2
"""Fraction of dev held out for evaluation in that split; the rest is used for training."""


@dataclass(frozen=True)
class TaskData:
    """The train and eval splits of a task, with where they came from."""

    train: Dataset
    eval: Dataset
    eval_name: str
    files: tuple[Path, ...]


def task_folder(task: GlueTask, data_dir: Path) -> Path:
    """The task's folder under `data_dir` (`<dir>/glue/<TASK>` or `<dir>/<TASK>`)."""
    for candidate in (data_dir / "glue" / task.folder, data_dir / task.folder):
        if candidate.is_dir():
            return candidate
    raise DataError(
        f"no {task.folder} folder for task {task.name!r} under {data_dir}: expected "
        f"{data_dir / 'glue' / task.folder} or {data_dir / task.folder} holding dev.tsv (and train.tsv)"
    )


def data_files(task: GlueTask, data_dir: Path) -> list[Path]:
    """The local files `load_task_data` reads for `task` under `data_dir`: dev.tsv and, when present, train.tsv."""
    folder = task_folder(task, data_dir)
    return [path for path in (folder / "dev.tsv", folder / "train.tsv") if path.is_file()]


def read_tsv(task: GlueTask, path: Path) -> Dataset:
    """Read one GLUE .tsv with the datasets CSV loader, quotes kept, labels mapped to ints."""
    require_file(path, f"a GLUE {task.folder} .tsv file")
    with path.open(encoding="utf-8") as handle:
        header = handle.readline().rstrip("\n").split("\t")
        if not any(line.strip() for line in handle):
            raise DataError(f"{path} has no rows; expected labelled {task.name} examples")
    strings = Features({name: Value("string") for name in header})
    try:
        table = load_dataset("csv", data_files=str(path), delimiter="\t", quoting=csv.QUOTE_NONE,
                             split="train", keep_default_na=False, features=strings)
    except Exception as exc:  # the csv builder raises many different types for malformed files
        raise DataError(f"cannot parse {path} as a tab-separated GLUE file: {exc}") from exc
    needed = [*task.text_fields, "label"]
    missing = [c for c in needed if c not in table.column_names]
    if missing:
        raise DataError(f"{path} lacks column(s) {missing}; expected a header with {needed}")
    return table.select_columns(needed).map(lambda row: {"label": _label_id(task, row["label"], path)})


def _label_id(task: GlueTask, raw: str, path: Path) -> int:
    raw = raw.strip()
    if raw in task.label_names:
        return task.label_names.index(raw)
    if raw.isdigit() and int(raw) < task.num_labels:
        return int(raw)
    raise DataError(f"{path}: label {raw!r} is not one of {list(task.label_names)} or their indices")


def load_task_data(task: GlueTask, data_dir: str | os.PathLike | None = None) -> TaskData:
    """Load train and eval splits, locally when a data directory is given, else from the hub.

    Without a local train.tsv (QNLI offline), dev is split with seed `DEV_SPLIT_SEED` into
    train (80%) and a held-out eval (20%), labelled "<task> (dev split)".
    """
    folder = data_dir_from_env(data_dir)
    if folder is None:
        return _load_from_hub(task)
    root = task_folder(task, folder)
    dev = read_tsv(task, root / "dev.tsv")
    train_path = root / "train.tsv"
    if train_path.is_file():
        return TaskData(read_tsv(task, train_path), dev, f"{task.name} dev", (train_path, root / "dev.tsv"))
    if len(dev) < 10:
        raise DataError(f"{root / 'dev.tsv'} has {len(dev)} rows, too few to split into train and eval")
    split = dev.train_test_split(test_size=DEV_SPLIT_EVAL_FRACTION, seed=DEV_SPLIT_SEED)
    return TaskData(split["train"], split["test"], f"{task.name} (dev split)", (root / "dev.tsv",))


def _load_from_hub(task: GlueTask) -> TaskData:
    splits = load_dataset("glue", task.hub_config)
    return TaskData(splits["train"], splits["validation"], f"{task.name} dev", ())
