"""Decoder-only language models (Llama architecture): classification and long-prompt prefill pruning.

Importing the package registers LLM classification runs with the run cache (`tsdtp.runs.kinds`); their
config.json holds `lora_rank`, which tells them from classification's runs of the same GLUE tasks.
"""

from tsdtp.glue_tasks import TASKS
from tsdtp.llm import classifier_checkpoint, classifier_config, classifier_train
from tsdtp.runs.kinds import RunKind, register_run_kind

register_run_kind(RunKind(classifier_config.LlmTrainConfig, tuple(TASKS), classifier_train.train_llm,
                          classifier_checkpoint.run_complete, classifier_train.training_data, marker="lora_rank",
                          folder_prefix="llm-"))
