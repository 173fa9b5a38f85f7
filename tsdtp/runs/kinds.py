"""The kinds of run the run cache handles (classification, translation, LLM classification), registered by their
task packages.

`tsdtp.runs` sits below the task packages, so it cannot import their configs or trainers. Instead each
task package registers a `RunKind` when it is imported (`tsdtp/classification/__init__.py`,
`tsdtp/translation/__init__.py`, `tsdtp/llm/__init__.py`): the config class, the tasks its config.json may
name, how to train it and how to tell a finished run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tsdtp.core.config import PruningConfig
from tsdtp.data_files import DataSource
from tsdtp.errors import CheckpointError


class RunConfig(Protocol):
    """What the run cache needs of a run's config (`TrainConfig`, `MTConfig`)."""

    @property
    def task(self) -> str: ...

    @property
    def pruning(self) -> PruningConfig: ...

    @property
    def init_from(self) -> str | None: ...

    def to_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class RunKind:
    """One kind of run.

    config_class: its config (with `from_dict`); tasks: the `task` values its config.json may hold;
    train(config, run_dir, data_dir, progress=..., keep_state=..., grad_accum=..., device=...): trains or resumes
    it (split over the processes of a joined process group, `tsdtp.runs.distributed`, on `device`), returns the
    metrics;
    finished(run_dir, config, metrics): whether `run_dir` holds the run trained to its last step;
    training_data(config, data_dir): the data it trains on (checked against a cached run's `data.json`);
    marker: a config.json key only this kind writes, which tells it from another kind of the same task (LLM
    classification's `lora_rank` against classification's configs); None: the task alone decides;
    folder_prefix: put before `<task>-<method>-<sha12>` in its cache folders' names (`llm-`).
    """

    config_class: type
    tasks: tuple[str, ...]
    train: Callable[..., dict[str, Any]]
    finished: Callable[[Path, Any, dict[str, Any]], bool]
    training_data: Callable[[Any, str | None], DataSource] | None = None
    marker: str | None = None
    folder_prefix: str = ""


_KINDS: list[RunKind] = []


def register_run_kind(kind: RunKind) -> None:
    """Make the run cache handle `kind` (registering the same config class again replaces it)."""
    _KINDS[:] = [known for known in _KINDS if known.config_class is not kind.config_class] + [kind]


def kind_of_config(config: RunConfig) -> RunKind:
    """The registered kind of a config object."""
    for kind in _KINDS:
        if isinstance(config, kind.config_class):
            return kind
    raise CheckpointError(f"no run kind is registered for a {type(config).__name__}; import its task package "
                          "(tsdtp.classification, tsdtp.translation or tsdtp.llm) first")


def kind_of_run(data: dict[str, Any], source: str | Path) -> RunKind:
    """The registered kind of a run's config.json `data` (read from `source`, for the error message): the kind of
    its task whose marker key it holds, else the one of its task without a marker."""
    task = data.get("task")
    of_task = [kind for kind in _KINDS if task in kind.tasks]
    marked = [kind for kind in of_task if kind.marker is not None and kind.marker in data]
    unmarked = [kind for kind in of_task if kind.marker is None]
    if marked or unmarked:
        return (marked or unmarked)[0]
    known = ", ".join(sorted({name for kind in _KINDS for name in kind.tasks}))
    raise CheckpointError(f"{source} names task {task!r}; expected one of {known or 'no registered task'} "
                          "(the task packages register theirs when imported)")
