"""Sentence(-pair) classification on GLUE tasks with a pruned BERT-family encoder.

Importing the package registers its runs with the run cache (`tsdtp.runs.kinds`).
"""

from tsdtp.classification import config, train
from tsdtp.glue_tasks import TASKS
from tsdtp.runs.kinds import RunKind, register_run_kind

register_run_kind(RunKind(config.TrainConfig, tuple(TASKS), train.train, train.run_complete,
                          train.training_data))
