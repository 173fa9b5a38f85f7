"""The task registry: `get_task(name)` returns a task, `TASKS` lists them."""

from __future__ import annotations

from tsdtp.classification.data import GlueTask, TaskData, load_task_data
from tsdtp.errors import DataError

TASKS: dict[str, GlueTask] = {
    "sst2": GlueTask("sst2", "SST-2", "sst2", ("sentence",), ("0", "1"), max_length=128),
    "qnli": GlueTask("qnli", "QNLI", "qnli", ("question", "sentence"), ("entailment", "not_entailment"),
                     max_length=256),
}


def get_task(name: str) -> GlueTask:
    """The task called `name`; raises DataError naming the known tasks otherwise."""
    try:
        return TASKS[name]
    except KeyError:
        raise DataError(f"unknown task {name!r}; expected one of {', '.join(TASKS)}") from None


__all__ = ["TASKS", "GlueTask", "TaskData", "get_task", "load_task_data"]
