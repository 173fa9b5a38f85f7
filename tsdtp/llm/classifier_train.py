"""Fine-tune one LLM classification configuration: LoRA adapters, head and scorers with AdamW, warm-up and linear
decay, evaluation each epoch (`tsdtp llm-train`); with a `teacher`, the loss distils a dense run's logits
(`tsdtp.llm.classifier_teacher`), as classification's does.

The run directory works as classification's (`tsdtp.runs.run_dir`, `tsdtp.runs.training_loop`): it is opened
once the model, data and pruning layers check out; `config.json` first, resumable `state.pt`, then
`checkpoint.pt` and `metrics.json` after each evaluation. Both state files hold only the trained tensors.
"""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path
from typing import Any

import torch

from tsdtp.core.distillation import distilled_task_loss
from tsdtp.data_files import DataSource
from tsdtp.errors import CheckpointError
from tsdtp.glue_tasks import data_source, get_task
from tsdtp.llm.classifier_checkpoint import load_checkpoint, run_complete, save_checkpoint, total_steps
from tsdtp.llm.classifier_config import LlmTrainConfig
from tsdtp.llm.classifier_evaluate import evaluate_classifier
from tsdtp.llm.classifier_model import LlmClassifierOutput, PrunedLlamaClassifier
from tsdtp.llm.classifier_prompts import PromptSplit, collate, prepare_splits
from tsdtp.llm.classifier_teacher import teacher_logits
from tsdtp.runs.batches import batch_indices
from tsdtp.runs.data_parallel import Forward
from tsdtp.runs.device import CPU, on_device
from tsdtp.runs.run_dir import open_run
from tsdtp.runs.training_data import check_training_data, record_training_data
from tsdtp.runs.training_loop import RunHooks, plan_epochs, seed_everything, train_with_adamw


def training_data(config: LlmTrainConfig, data_dir: str | None) -> DataSource:
    """The data `train_llm` reads for `config` from `data_dir` (else `TSDTP_DATA_DIR`, else the hub)."""
    return data_source(get_task(config.task), data_dir)


def build_model(config: LlmTrainConfig) -> tuple[PrunedLlamaClassifier, Any]:
    """The model to train and its tokenizer: the pretrained model with fresh adapters, or `init_from`'s trained
    adapters and head with fresh scorers under `config.pruning`."""
    if config.init_from is None:
        return PrunedLlamaClassifier.build(config)
    source, tokenizer, source_config = load_checkpoint(config.init_from)
    mismatched = [name for name in ("task", "model", "lora_rank", "lora_targets")
                  if getattr(source_config, name) != getattr(config, name)]
    if mismatched:
        raise CheckpointError(f"init_from {config.init_from} differs in {', '.join(mismatched)}; expected a run "
                              "of the same task, model and LoRA shape")
    return PrunedLlamaClassifier(source.model, source.special_ids, config.pruning), tokenizer


def epoch_plan(split: PromptSplit, config: LlmTrainConfig) -> list[list[list[int]]]:
    """The batches of every epoch (seeded per epoch, grouped by length), the last cut to what `epochs` asks."""
    per_epoch = math.ceil(len(split) / config.batch_size)
    steps = total_steps(len(split), config)
    epochs = math.ceil(steps / per_epoch)
    lengths = split.lengths()
    return plan_epochs(lambda seed: batch_indices(lengths, config.batch_size, shuffle=True, seed=seed),
                       config.seed, epochs, lambda _: steps - (epochs - 1) * per_epoch)


def training_loss(model: PrunedLlamaClassifier, output: LlmClassifierOutput, labels: torch.Tensor,
                  config: LlmTrainConfig, teacher: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss of one batch and its parts as floats: the model's own (`CE` plus the pruning terms) without a
    teacher; with one, `(1 - w) * CE + w * T^2 * KL(teacher || student)` plus the same pruning terms."""
    if teacher is None:
        return model.loss(output, labels)
    task, parts = distilled_task_loss(output.logits, labels, teacher, config.distill_weight,
                                      config.distill_temperature)
    loss, penalty_parts = model.add_pruning_penalty(task, output.engine)
    return loss, {**penalty_parts, **parts}


def train_llm(config: LlmTrainConfig, run_dir: str | Path, data_dir: str | None = None, progress: bool = True,
              keep_state: bool = False, grad_accum: int = 1, device: torch.device = CPU) -> dict[str, Any]:
    """Train `config` into `run_dir`, resuming an interrupted run; returns the metrics (a finished run's as they are).

    Model, data and pruning layers are checked before the run directory is opened, so a bad input leaves
    nothing behind; a run directory that recorded other training data is refused. Each batch runs in
    `grad_accum` accumulation steps, split over the processes under torchrun; the model trains and is
    evaluated on `device` (`tsdtp.runs.device.training_device`).
    """
    run_dir = Path(run_dir)
    source = training_data(config, data_dir)
    check_training_data(run_dir, source)
    seed_everything(config.seed)
    model, tokenizer = build_model(config)
    model.to(device)
    train_split, eval_split, eval_name = prepare_splits(config, tokenizer, data_dir)
    assert train_split is not None
    plan = epoch_plan(train_split, config)
    pad_id = tokenizer.pad_token_id

    teacher = None if config.teacher is None else teacher_logits(config, train_split, pad_id, progress, device)

    def step_loss(forward: Forward, indices: list[int]) -> tuple[torch.Tensor, dict[str, float]]:
        batch = on_device(collate(train_split, indices, pad_id), device)
        targets = None if teacher is None else teacher[indices].to(device)
        return training_loss(model, forward(batch), batch["labels"], config, targets)

    def epoch_record(epoch: int, step: int, parts: dict[str, float]) -> dict[str, Any]:
        scores, _ = evaluate_classifier(model, eval_split, config.eval_batch_size, pad_id, progress=progress)
        return {"epoch": epoch + 1, "step": step, "loss": parts["ce"], **scores}

    def save_run(step: int, seconds: float, history: list[dict[str, Any]]) -> dict[str, Any]:
        save_checkpoint(run_dir, model, config)
        sizes = {"train_examples": len(train_split), "eval_examples": len(eval_split), "eval_split": eval_name}
        return {"task": config.task, "method": config.pruning.method, **sizes, "steps": step,
                "train_seconds": round(seconds, 1), "history": history, "final": history[-1]}

    hooks = RunHooks(step_loss, epoch_record, save_run, partial(run_complete, run_dir, config))
    with open_run(run_dir, config.to_dict()):
        record_training_data(run_dir, source)
        return train_with_adamw(run_dir, model, plan, config, hooks, keep_state=keep_state, progress=progress,
                                description=f"llm-train {config.task} {config.pruning.method}", grad_accum=grad_accum)
