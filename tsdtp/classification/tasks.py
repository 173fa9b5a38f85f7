"""The classification tasks: `GlueTask` says what one is, `TASKS` lists them, `get_task(name)` finds one."""

from __future__ import annotations

from dataclasses import dataclass

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
    """Without a train.tsv, train on a seeded split of dev (`tsdtp.classification.data`); else it is an error."""

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
