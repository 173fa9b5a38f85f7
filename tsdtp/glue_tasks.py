"""The GLUE classification tasks (`GlueTask`, `TASKS`, `get_task`) and their data: a local GLUE-layout folder
or the hub. Every task package that classifies GLUE text (the encoders' `classification`, the decoders' `llm`)
reads it from here.

A local .tsv is read with Python's csv module (tab-separated, quotes kept as written, a UTF-8
byte-order mark dropped, blank lines skipped) into a `datasets.Dataset`; a malformed file is a
DataError naming the file and line. The eval split of a data directory other than the standard
one is labelled by its source (`tsdtp.data_files.SourceTag`), e.g. `sst2 dev [mydata 1a2b3c4d]`.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from datasets import Dataset, Features, Value, load_dataset

from tsdtp.data_files import (
    HUB,
    DataSource,
    SourceTag,
    data_dir_from_env,
    labelled,
    read_text,
    source_tag,
)
from tsdtp.errors import DataError


@dataclass(frozen=True)
class GlueTask:
    """A GLUE sentence or sentence-pair classification task."""

    name: str
    folder: str
    hub_config: str
    text_fields: tuple[str, ...]
    label_names: tuple[str, ...]
    max_length: int
    metric_name: str = "accuracy"
    dev_split_fallback: bool = False
    """Without a train.tsv, train on a seeded split of dev (`load_task_data`); else it is an error."""

    @property
    def num_labels(self) -> int:
        """Number of classes."""
        return len(self.label_names)


TASKS: dict[str, GlueTask] = {
    "sst2": GlueTask("sst2", "SST-2", "sst2", ("sentence",), ("0", "1"), max_length=128),
    "qnli": GlueTask("qnli", "QNLI", "qnli", ("question", "sentence"), ("entailment", "not_entailment"),
                     max_length=256, dev_split_fallback=True),
}


def get_task(name: str) -> GlueTask:
    """The task called `name`; raises DataError naming the known tasks otherwise."""
    try:
        return TASKS[name]
    except KeyError:
        raise DataError(f"unknown task {name!r}; expected one of {', '.join(TASKS)}") from None

DEV_SPLIT_SEED = 0
"""Seed of the documented QNLI dev split used when no train.tsv exists."""
DEV_SPLIT_EVAL_FRACTION = 0.2
"""Fraction of dev held out for evaluation in that split; the rest is used for training."""
DEV_SPLIT_MIN_ROWS = 10
"""A dev.tsv with fewer rows is too small to split."""


@dataclass(frozen=True)
class TaskData:
    """The train and eval splits of a task, the eval split's label (`labelled` by source) and the files read."""

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


def data_source(task: GlueTask, data_dir: str | os.PathLike | None = None) -> DataSource:
    """What `load_task_data` reads for `task`: the hub, or the folder's `data_files` with their checksums."""
    folder = data_dir_from_env(data_dir)
    if folder is None:
        return DataSource(HUB)
    return DataSource.local(folder, task_folder(task, folder), data_files(task, folder))


def read_tsv(task: GlueTask, path: Path) -> Dataset:
    """Read one GLUE .tsv: a header naming (at least) the task's text fields and `label`, then one example a line.

    Labels become ints. A DataError names the file and line of a row with another number of fields
    than the header, an empty text or an unknown label.
    """
    needed = [*task.text_fields, "label"]
    text = read_text(path, f"a GLUE {task.folder} .tsv file")
    rows = csv.reader(io.StringIO(text, newline=""), delimiter="\t", quoting=csv.QUOTE_NONE)
    columns: dict[str, list[str | int]] = {name: [] for name in needed}
    try:
        header = _header(rows, path, needed)
        positions = [header.index(name) for name in needed]
        for fields in rows:
            if fields:
                _add_row(task, header, positions, fields, columns, f"{path}:{rows.line_num}")
    except csv.Error as exc:
        raise DataError(f"{path}:{rows.line_num}: {exc}; expected tab-separated text") from None
    if not columns["label"]:
        raise DataError(f"{path} has no rows; expected labelled {task.name} examples")
    features = Features({**{name: Value("string") for name in task.text_fields}, "label": Value("int64")})
    return Dataset.from_dict(columns, features=features)


def _header(rows: Iterator[list[str]], path: Path, needed: list[str]) -> list[str]:
    """The header line of a .tsv, checked to name every column in `needed`."""
    header = next(rows, None)
    if header is None:
        raise DataError(f"{path} is empty; expected a header line naming {needed}, then one example per line")
    missing = [name for name in needed if name not in header]
    if missing:
        raise DataError(f"{path}:1: header lacks column(s) {missing}; expected a header with {needed}, "
                        f"found {header}")
    return header


def _add_row(task: GlueTask, header: list[str], positions: list[int], fields: list[str],
             columns: dict[str, list[str | int]], where: str) -> None:
    """Append the needed columns (at `positions`) of one row's `fields` to `columns`; `where` is `file:line`."""
    if len(fields) != len(header):
        raise DataError(f"{where}: {len(fields)} tab-separated field(s), expected {len(header)} as in the header "
                        f"({', '.join(header)})")
    values = [fields[position] for position in positions]
    for name, value in zip(task.text_fields, values):
        if not value.strip():
            raise DataError(f"{where}: empty {name!r}; expected text in every row")
        columns[name].append(value)
    columns["label"].append(_label_id(task, values[-1], where))


def _label_id(task: GlueTask, raw: str, where: str) -> int:
    raw = raw.strip()
    if raw in task.label_names:
        return task.label_names.index(raw)
    if raw.isdigit() and int(raw) < task.num_labels:
        return int(raw)
    raise DataError(f"{where}: label {raw!r} is not one of {list(task.label_names)} or their indices")


def load_task_data(task: GlueTask, data_dir: str | os.PathLike | None = None, need_train: bool = True
                   ) -> TaskData:
    """Load train and eval splits, locally when a data directory is given (or set), else from the hub.

    Without a local train.tsv, a task with `dev_split_fallback` (QNLI offline) splits dev with seed
    `DEV_SPLIT_SEED` into train (80%) and a held-out eval (20%), labelled "<task> (dev split)"; any
    other task (SST-2) cannot train (a DataError). With `need_train=False` (evaluation only) train.tsv
    is not read and the train split is empty: such a task then evaluates on all of dev.tsv.
    """
    folder = data_dir_from_env(data_dir)
    if folder is None:
        return _load_from_hub(task)
    root = task_folder(task, folder)
    tag = source_tag(data_dir, lambda: data_source(task, data_dir))
    dev_path, train_path = root / "dev.tsv", root / "train.tsv"
    dev, label = read_tsv(task, dev_path), labelled(f"{task.name} dev", tag)
    if need_train and train_path.is_file():
        return TaskData(read_tsv(task, train_path), dev, label, (dev_path, train_path))
    if task.dev_split_fallback and not train_path.is_file():
        return _dev_split(task, dev, dev_path, tag)
    if not need_train:
        return TaskData(dev.select([]), dev, label, (dev_path,))
    fallbacks = ", ".join(name for name, known in TASKS.items() if known.dev_split_fallback)
    raise DataError(f"{root} has no train.tsv: {task.name} trains on train.tsv (only {fallbacks} fall back to a "
                    f"split of dev.tsv); add train.tsv there, or only evaluate on this folder (tsdtp eval "
                    f"--data-dir), which reads all of dev.tsv")


def _dev_split(task: GlueTask, dev: Dataset, dev_path: Path, tag: SourceTag | None) -> TaskData:
    """The documented split of dev into train and held-out eval, for a task without train.tsv."""
    if len(dev) < DEV_SPLIT_MIN_ROWS:
        raise DataError(f"{dev_path} has {len(dev)} rows, too few to split into train and eval "
                        f"(at least {DEV_SPLIT_MIN_ROWS})")
    split = dev.train_test_split(test_size=DEV_SPLIT_EVAL_FRACTION, seed=DEV_SPLIT_SEED)
    return TaskData(split["train"], split["test"], labelled(f"{task.name} (dev split)", tag), (dev_path,))


def _load_from_hub(task: GlueTask) -> TaskData:
    splits = load_dataset("glue", task.hub_config)
    return TaskData(splits["train"], splits["validation"], f"{task.name} dev", ())
