"""The kinds of run the run cache handles (classification, translation), registered by their task packages.

`tsdtp.runs` sits below the task packages, so it cannot import their configs or trainers. Instead each
task package registers a `RunKind` when it is imported (`tsdtp/classification/__init__.py`,
`tsdtp/translation/__init__.py`): the config class, the tasks its config.json may name, how to train
it and how to tell a finished run.
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
    training_data(config, data_dir): the data it trains on (checked against a cached run's `data.json`).
    """

    config_class: type
    tasks: tuple[str, ...]
    train: Callable[..., dict[str, Any]]
    finished: Callable[[Path, Any, dict[str, Any]], bool]
    training_data: Callable[[Any, str | None], DataSource] | None = None


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
                          "(tsdtp.classification or tsdtp.translation) first")


def kind_of_task(task: str, source: str | Path) -> RunKind:
    """The registered kind whose configs name `task` (read from `source`, for the error message)."""
    for kind in _KINDS:
        if task in kind.tasks:
            return kind
    known = ", ".join(sorted(name for kind in _KINDS for name in kind.tasks))
    raise CheckpointError(f"{source} names task {task!r}; expected one of {known or 'no registered task'} "
                          "(the task packages register theirs when imported)")
