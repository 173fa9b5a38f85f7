"""Fine-tune one configuration: AdamW with warm-up and linear decay, evaluation each epoch.

The run directory is opened once the inputs are validated (`tsdtp.runs.run_dir.open_run`) and written
as training goes (see `tsdtp.runs.training_loop`): `config.json` first, `state.pt` every `save_every`
steps and at each epoch end but the last (so an interrupted run resumes where it stopped),
`checkpoint.pt` and `metrics.json` after each evaluation.
"""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from tsdtp.classification.checkpoint import load_checkpoint, save_checkpoint
from tsdtp.classification.config import TrainConfig
from tsdtp.classification.encoding import (
    EncodedSplit,
    batch_indices,
    collate,
    encode_split,
)
from tsdtp.classification.evaluate import evaluate_model
from tsdtp.classification.model import PrunedClassifier
from tsdtp.classification.objective import training_loss
from tsdtp.classification.teacher import teacher_targets
from tsdtp.core.pruned_model import special_token_ids
from tsdtp.data_files import DataSource
from tsdtp.errors import CheckpointError
from tsdtp.glue_tasks import data_source, get_task, load_task_data
from tsdtp.hub import load_tokenizer
from tsdtp.runs.data_parallel import Forward
from tsdtp.runs.device import CPU, on_device
from tsdtp.runs.run_dir import open_run
from tsdtp.runs.selection import SELECTION_WORD, training_and_evaluation
from tsdtp.runs.training_data import check_training_data, record_training_data
from tsdtp.runs.training_loop import RunHooks, plan_epochs, seed_everything, train_with_adamw


def prepare_data(config: TrainConfig, tokenizer: PreTrainedTokenizerBase, data_dir: str | None,
                 include_train: bool = True, split: str = "eval") -> tuple[EncodedSplit | None, EncodedSplit, str]:
    """Encoded train and eval splits (subsampled as configured) and the eval split's label.

    The training split never holds the selection split; `split="selection"` evaluates on that instead
    (`tsdtp.runs.selection`).
    """
    task = get_task(config.task)
    data = load_task_data(task, data_dir, need_train=include_train or split == SELECTION_WORD)
    train, evaluation, eval_name = training_and_evaluation(data, config.selection_fraction, split)
    if config.max_train_samples is not None and config.max_train_samples < len(train):
        train = train.shuffle(seed=config.seed).select(range(config.max_train_samples))
    if config.max_eval_samples is not None and config.max_eval_samples < len(evaluation):
        evaluation = evaluation.select(range(config.max_eval_samples))
    encoded_train = encode_split(task, train, tokenizer, config.max_length) if include_train else None
    return encoded_train, encode_split(task, evaluation, tokenizer, config.max_length), eval_name


def training_data(config: TrainConfig, data_dir: str | None) -> DataSource:
    """The data `train` reads for `config` from `data_dir` (else `TSDTP_DATA_DIR`, else the hub), with checksums."""
    return data_source(get_task(config.task), data_dir)


def build_model(config: TrainConfig, tokenizer: PreTrainedTokenizerBase) -> PrunedClassifier:
    """The model to train: pretrained weights, or the encoder and head of `init_from`'s run."""
    task = get_task(config.task)
    if config.init_from is None:
        return PrunedClassifier.from_pretrained(config.model, task.num_labels, special_token_ids(tokenizer),
                                                config.pruning)
    source, source_config = load_checkpoint(config.init_from)
    if source_config.task != config.task:
        raise CheckpointError(f"init_from {config.init_from} was trained on {source_config.task!r}, "
                              f"not {config.task!r}")
    model = PrunedClassifier(source.model, source.special_ids, config.pruning)
    return model


def epoch_plan(split: EncodedSplit, config: TrainConfig) -> list[list[list[int]]]:
    """The batches of every epoch (seeded per epoch), the last cut to the fraction `epochs` asks for."""
    steps_per_epoch = math.ceil(len(split) / config.batch_size)
    total_steps = max(1, math.ceil(config.epochs * steps_per_epoch))
    epochs = math.ceil(total_steps / steps_per_epoch)
    lengths = split.lengths()
    return plan_epochs(lambda seed: batch_indices(lengths, config.batch_size, shuffle=True, seed=seed),
                       config.seed, epochs, lambda _: total_steps - (epochs - 1) * steps_per_epoch)


def run_complete(run_dir: Path, config: TrainConfig, metrics: dict[str, Any]) -> bool:
    """Whether `run_dir` (with these metrics.json `metrics`) holds the checkpoint of `config`'s last step."""
    if not (run_dir / "checkpoint.pt").is_file():
        return False
    steps_per_epoch = math.ceil(metrics["train_examples"] / config.batch_size)
    return metrics["steps"] >= max(1, math.ceil(config.epochs * steps_per_epoch))


def train(config: TrainConfig, run_dir: str | Path, data_dir: str | None = None, progress: bool = True,
          keep_state: bool = False, grad_accum: int = 1, device: torch.device = CPU) -> dict[str, Any]:
    """Train `config` into `run_dir`, resuming if it holds an interrupted run; returns metrics.

    Everything is validated (model, data, pruning layers) before the run directory is opened, so a bad
    input leaves nothing behind. A finished run returns its metrics; one whose checkpoint is gone is
    saved again from state.pt (kept with `keep_state`) or retrained. state.pt is removed at the end
    unless `keep_state`. A run directory that records other training data (`tsdtp.runs.training_data`)
    is refused. Each batch runs in `grad_accum` accumulation steps; under torchrun it is split over the
    processes (`tsdtp.runs.distributed.process_group`). The model trains and is evaluated on `device`
    (`tsdtp.runs.device.training_device`).
    """
    run_dir = Path(run_dir)
    source = training_data(config, data_dir)
    check_training_data(run_dir, source)
    seed_everything(config.seed)
    tokenizer = load_tokenizer(config.model)
    train_split, eval_split, eval_name = prepare_data(config, tokenizer, data_dir)
    assert train_split is not None
    model = build_model(config, tokenizer).to(device)
    plan = epoch_plan(train_split, config)
    pad_id = tokenizer.pad_token_id
    teacher = None if config.teacher is None else teacher_targets(config, train_split, pad_id, progress, device)

    def step_loss(forward: Forward, indices: list[int]) -> tuple[torch.Tensor, dict[str, float]]:
        batch = on_device(collate(train_split, indices, pad_id), device)
        targets = None if teacher is None else teacher.batch(indices, batch["input_ids"].shape[1]).to(device)
        return training_loss(model, forward(batch), batch["labels"], config, targets)

    def epoch_record(epoch: int, step: int, parts: dict[str, float]) -> dict[str, Any]:
        result, _ = evaluate_model(model, eval_split, config.eval_batch_size, pad_id, progress=progress)
        return {"epoch": epoch + 1, "step": step, "loss": parts["ce"], **result.summary()}

    def save_run(step: int, seconds: float, history: list[dict[str, Any]]) -> dict[str, Any]:
        save_checkpoint(run_dir, model, config)
        return {"task": config.task, "method": config.pruning.method, "eval_split": eval_name,
                "train_examples": len(train_split), "eval_examples": len(eval_split), "steps": step,
                "train_seconds": round(seconds, 1), "history": history, "final": history[-1]}

    hooks = RunHooks(step_loss, epoch_record, save_run, partial(run_complete, run_dir, config))
    with open_run(run_dir, config.to_dict()):
        record_training_data(run_dir, source)
        return train_with_adamw(run_dir, model, plan, config, hooks, keep_state=keep_state, progress=progress,
                                description=f"train {config.task} {config.pruning.method}", grad_accum=grad_accum)
