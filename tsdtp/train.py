"""Fine-tune one configuration: AdamW with warm-up and linear decay, evaluation each epoch.

The run directory is written as training goes: `config.json` first, `state.pt` every
`save_every` steps and at each epoch end (so an interrupted run resumes where it stopped),
`checkpoint.pt` and `metrics.json` after each evaluation.
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import AutoTokenizer, PreTrainedTokenizerBase, get_linear_schedule_with_warmup

from tsdtp.checkpoint import atomic_torch_save, atomic_write_json, load_checkpoint, load_trainer_state, save_checkpoint
from tsdtp.config import TrainConfig
from tsdtp.errors import CheckpointError
from tsdtp.evaluate import evaluate_model
from tsdtp.hub import resolve_model
from tsdtp.model import PrunedClassifier
from tsdtp.tasks import get_task, load_task_data
from tsdtp.tasks.encoding import EncodedSplit, batch_indices, collate, encode_split


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_tokenizer(model_id: str) -> PreTrainedTokenizerBase:
    """The tokenizer of `model_id` (packaged copy when installed)."""
    return AutoTokenizer.from_pretrained(resolve_model(model_id))


def special_token_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Tokens that are never pruned: [CLS]/<s> and [SEP]/</s>."""
    ids = {tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id}
    return sorted(i for i in ids if i is not None)


def prepare_data(config: TrainConfig, tokenizer: PreTrainedTokenizerBase, data_dir: str | None,
                 include_train: bool = True) -> tuple[EncodedSplit | None, EncodedSplit, str]:
    """Encoded train and eval splits (subsampled as configured) and the eval split's label."""
    task = get_task(config.task)
    data = load_task_data(task, data_dir)
    train, evaluation = data.train, data.eval
    if config.max_train_samples is not None and config.max_train_samples < len(train):
        train = train.shuffle(seed=config.seed).select(range(config.max_train_samples))
    if config.max_eval_samples is not None and config.max_eval_samples < len(evaluation):
        evaluation = evaluation.select(range(config.max_eval_samples))
    encoded_train = encode_split(task, train, tokenizer, config.max_length) if include_train else None
    return encoded_train, encode_split(task, evaluation, tokenizer, config.max_length), data.eval_name


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


def _check_run_dir(run_dir: Path, config: TrainConfig) -> None:
    saved = run_dir / "config.json"
    if saved.is_file():
        try:
            previous = json.loads(saved.read_text())
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{saved} is not valid JSON ({exc}); remove the run directory to start again")
        if previous != json.loads(json.dumps(config.to_dict())):
            raise CheckpointError(f"{run_dir} holds a run with a different config; choose another --run-dir "
                                  "or delete it")
    atomic_write_json(saved, config.to_dict())


def train(config: TrainConfig, run_dir: str | Path, data_dir: str | None = None, progress: bool = True
          ) -> dict[str, Any]:
    """Train `config` into `run_dir`, resuming if it holds an interrupted run; returns metrics."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    _check_run_dir(run_dir, config)
    seed_everything(config.seed)
    tokenizer = load_tokenizer(config.model)
    train_split, eval_split, eval_name = prepare_data(config, tokenizer, data_dir)
    assert train_split is not None
    model = build_model(config, tokenizer)
    scorer_params = list(model.scorers.parameters())
    decay = [p for n, p in model.model.named_parameters() if p.dim() > 1]
    no_decay = [p for n, p in model.model.named_parameters() if p.dim() <= 1]
    optimizer = torch.optim.AdamW([
        {"params": decay, "lr": config.lr, "weight_decay": config.weight_decay},
        {"params": no_decay, "lr": config.lr, "weight_decay": 0.0},
        {"params": scorer_params, "lr": config.scorer_lr, "weight_decay": 0.0},
    ])
    steps_per_epoch = math.ceil(len(train_split) / config.batch_size)
    total_steps = max(1, math.ceil(config.epochs * steps_per_epoch))
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * total_steps), total_steps)

    step, history, seconds = 0, [], 0.0
    state = load_trainer_state(run_dir)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, history, seconds = state["step"], state["history"], state["train_seconds"]
        torch.set_rng_state(state["torch_rng"])
    if step >= total_steps and (run_dir / "metrics.json").is_file():
        return json.loads((run_dir / "metrics.json").read_text())

    def save_state() -> None:
        atomic_torch_save(run_dir / "state.pt", {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "step": step, "history": history, "train_seconds": seconds, "torch_rng": torch.get_rng_state()})

    pad_id = tokenizer.pad_token_id
    bar = tqdm(total=total_steps, initial=step, desc=f"train {config.task} {config.pruning.method}",
               disable=not progress)
    while step < total_steps:
        epoch, offset = divmod(step, steps_per_epoch)
        batches = batch_indices(train_split.lengths(), config.batch_size, shuffle=True, seed=config.seed + epoch)
        model.train()
        started = time.perf_counter()
        for indices in batches[offset:]:
            batch = collate(train_split, indices, pad_id)
            output = model(batch)
            loss, parts = model.loss(output, batch["labels"])
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"loss became {loss.item()} at step {step}; lower --lr or check the data")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            step += 1
            bar.update(1)
            bar.set_postfix({key: f"{value:.3f}" for key, value in parts.items()})
            if step % config.save_every == 0 or step == total_steps:
                seconds += time.perf_counter() - started
                started = time.perf_counter()
                save_state()
            if step == total_steps:
                break
        seconds += time.perf_counter() - started
        result, _ = evaluate_model(model, eval_split, config.eval_batch_size, pad_id, progress=progress)
        history.append({"epoch": epoch + 1, "step": step, "loss": parts["ce"], **result.summary()})
        save_checkpoint(run_dir, model, config)
        save_state()
        metrics = {"task": config.task, "method": config.pruning.method, "eval_split": eval_name,
                   "train_examples": len(train_split), "eval_examples": len(eval_split), "steps": step,
                   "train_seconds": round(seconds, 1), "history": history, "final": history[-1]}
        atomic_write_json(run_dir / "metrics.json", metrics)
    bar.close()
    return json.loads((run_dir / "metrics.json").read_text())
