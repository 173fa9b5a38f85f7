"""The resumable training loop shared by classification and translation runs.

In a run directory opened by `tsdtp.runs.run_dir.open_run` (config.json written, lock held), the
loop writes `state.pt` (model, optimizer, scheduler, step, history, seconds, torch RNG) every
`save_every` steps within an epoch and after each epoch's evaluation but the last, so an
interrupted run resumes where it stopped. After each epoch the caller evaluates and saves its
model; the loop then writes `metrics.json`. A finished run keeps no state.pt unless asked to.

Under `torchrun` (`tsdtp.runs.distributed.process_group` joined) every rank runs the loop over the same
plan, each on its part of every global batch (`tsdtp.runs.data_parallel`); rank 0 alone writes files and
shows the progress bar while the others wait at a barrier. state.pt holds the unwrapped model, so a run
resumes with any number of processes. The model trains on the device it is on (`tsdtp.runs.device`; the task
moves it there), and so does its optimizer state; state.pt loads onto the CPU first, so a run resumes on
another device than the one that wrote it.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch.optim.lr_scheduler import LRScheduler
from tqdm import tqdm
from transformers import get_linear_schedule_with_warmup

from tsdtp.core.pruned_model import PrunedModel
from tsdtp.errors import CheckpointError
from tsdtp.runs.data_parallel import DataParallelStep, LossWeight, StepLoss, rank_rng_states, separate_rng_streams
from tsdtp.runs.device import model_device
from tsdtp.runs.distributed import barrier, is_main, mark, ranks, same_on_every_rank
from tsdtp.runs.io import atomic_torch_save, atomic_write_json
from tsdtp.runs.run_dir import METRICS_FILE, STATE_FILE, finish_run, read_metrics
from tsdtp.runs.step_log import StepLog

Batches = list[list[int]]
"""The example indices of each batch of one epoch."""

EpochRecord = Callable[[int, int, dict[str, float]], dict[str, Any]]
"""(epoch, step, last loss parts) -> the history entry of that epoch, after evaluating."""

SaveRun = Callable[[int, float, list[dict[str, Any]]], dict[str, Any]]
"""(step, train seconds, history) -> the metrics to write, after saving the model."""


class OptimiserSettings(Protocol):
    """What `train_with_adamw` reads from a task's run config (`TrainConfig` and `MTConfig` both have it)."""

    @property
    def lr(self) -> float: ...
    @property
    def scorer_lr(self) -> float: ...
    @property
    def weight_decay(self) -> float: ...
    @property
    def warmup_ratio(self) -> float: ...
    @property
    def save_every(self) -> int: ...
    @property
    def hard_ratio(self) -> float: ...


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def plan_epochs(epoch_batches: Callable[[int], Batches], seed: int, epochs: int,
                last_epoch_steps: Callable[[int], int]) -> list[Batches]:
    """The batches of `epochs` epochs, epoch e from `epoch_batches(seed + e)`, the last cut to its first steps.

    `last_epoch_steps(n)` is how many of the last epoch's `n` batches run: the fraction of an
    epoch that a non-whole epoch count asks for, by the task's own rounding rule.
    """
    plan = [epoch_batches(seed + epoch) for epoch in range(epochs)]
    plan[-1] = plan[-1][: last_epoch_steps(len(plan[-1]))]
    return plan


def build_optimizer(wrapper: PrunedModel, lr: float, scorer_lr: float, weight_decay: float,
                    betas: tuple[float, float] = (0.9, 0.999)) -> torch.optim.AdamW:
    """AdamW over the wrapped model (weight decay on matrices only) and the scorers (own rate, no decay)."""
    model_params = list(wrapper.model.named_parameters())
    return torch.optim.AdamW([
        {"params": [p for _, p in model_params if p.dim() > 1], "lr": lr, "weight_decay": weight_decay},
        {"params": [p for _, p in model_params if p.dim() <= 1], "lr": lr, "weight_decay": 0.0},
        {"params": list(wrapper.scorers.parameters()), "lr": scorer_lr, "weight_decay": 0.0},
    ], betas=betas)


def linear_schedule(optimizer: torch.optim.Optimizer, plan: list[Batches], warmup_ratio: float) -> LRScheduler:
    """Linear warm-up over `warmup_ratio` of the planned steps, then linear decay to zero."""
    total_steps = sum(len(epoch) for epoch in plan)
    return get_linear_schedule_with_warmup(optimizer, int(warmup_ratio * total_steps), total_steps)


@dataclass(frozen=True)
class RunHooks:
    """What a task gives the loop: a batch's loss, an epoch's record, saving the model, and telling a run done.

    step_loss(forward, indices): the batch's loss, the model run through `forward`.
    finished(metrics): whether the run directory, whose metrics.json holds `metrics`, has its model saved
    at the last step (the task's `run_complete`).
    loss_weight(indices): how many units the batch's task loss averages over (examples by default), which
    weighs the parts of a batch split over processes.
    """

    step_loss: StepLoss
    epoch_record: EpochRecord
    save_run: SaveRun
    finished: Callable[[dict[str, Any]], bool]
    loss_weight: LossWeight = len


def train_with_adamw(run_dir: Path, wrapper: PrunedModel, plan: list[Batches], settings: OptimiserSettings,
                     hooks: RunHooks, *, description: str, progress: bool, keep_state: bool = False,
                     betas: tuple[float, float] = (0.9, 0.999), grad_accum: int = 1) -> dict[str, Any]:
    """`run_training_loop` through `plan` with `build_optimizer`'s AdamW and `linear_schedule`, as `settings` say."""
    optimizer = build_optimizer(wrapper, settings.lr, settings.scorer_lr, settings.weight_decay, betas=betas)
    scheduler = linear_schedule(optimizer, plan, settings.warmup_ratio)
    return run_training_loop(run_dir, wrapper, optimizer, scheduler, plan, hooks, save_every=settings.save_every,
                             description=description, progress=progress, hard_ratio=settings.hard_ratio,
                             keep_state=keep_state, grad_accum=grad_accum)


@dataclass
class Progress:
    """Where a run stands: steps done, the history of its epochs, seconds spent training."""

    step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def clock(self, started: float) -> float:
        """Add the time since `started` to `seconds`; returns now, the start of the next interval."""
        now = time.perf_counter()
        self.seconds += now - started
        return now


@dataclass
class _Loop:
    """One call of the loop: the run directory, what trains, the task's hooks and the saving rules."""

    run_dir: Path
    wrapper: PrunedModel
    optimizer: torch.optim.Optimizer
    scheduler: LRScheduler
    hooks: RunHooks
    save_every: int
    keep_state: bool
    grad_accum: int = 1

    def save_state(self, done: Progress) -> None:
        """Write `state.pt`: everything `_resume` needs to continue after `done.step` (each rank's RNG too)."""
        generators = rank_rng_states(model_device(self.wrapper))
        if is_main():
            atomic_torch_save(self.run_dir / STATE_FILE, {
                "model": self.wrapper.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "step": done.step, "history": done.history,
                "train_seconds": done.seconds, "torch_rng": torch.get_rng_state(), **generators})
        barrier()

    def save_run(self, done: Progress) -> None:
        """Save the model (the task's `save_run`), then metrics.json; with several processes, the layout too, and
        off the CPU, the device type (`cuda`)."""
        if is_main():
            metrics = self.hooks.save_run(done.step, done.seconds, done.history)
            if ranks().world_size > 1 or self.grad_accum > 1:
                metrics["data_parallel"] = {"processes": ranks().world_size, "grad_accum": self.grad_accum}
            if (device := model_device(self.wrapper)).type != "cpu":
                metrics["device"] = device.type
            atomic_write_json(self.run_dir / METRICS_FILE, metrics)
        barrier()


def run_training_loop(run_dir: Path, wrapper: PrunedModel, optimizer: torch.optim.Optimizer,
                      scheduler: LRScheduler, plan: list[Batches], hooks: RunHooks, *, save_every: int,
                      description: str, progress: bool, hard_ratio: float = 0.0, keep_state: bool = False,
                      grad_accum: int = 1) -> dict[str, Any]:
    """Train through `plan` (the batches of every epoch), resuming from `run_dir/state.pt`; returns the metrics.

    Each step clips the gradient norm to 1 and fails on a non-finite loss; its global batch runs in
    `grad_accum` accumulation steps, split over the processes of a distributed run. The last `hard_ratio`
    of the steps run with `wrapper.straight_through` set (hard keep decisions forward). A finished run
    (`hooks.finished`) returns its metrics.json without training; a run whose state is at its last step
    but whose model is gone saves the model again from that state. At the end state.pt is removed
    unless `keep_state`.
    """
    loop = _Loop(run_dir, wrapper, optimizer, scheduler, hooks, save_every, keep_state, grad_accum)
    metrics = read_metrics(run_dir)
    finished = metrics is not None and hooks.finished(metrics)
    same_on_every_rank(finished, "run finished")
    if not finished:
        done = _resume(run_dir, wrapper, optimizer, scheduler)
        same_on_every_rank(done.step, "state.pt step")
        if done.step >= sum(len(epoch) for epoch in plan):
            loop.save_run(done)
        else:
            _train_epochs(loop, plan, done, description, progress, hard_ratio)
    if is_main():
        finish_run(run_dir, keep_state)
    barrier()
    return read_metrics(run_dir) or {}


def _train_epochs(loop: _Loop, plan: list[Batches], done: Progress, description: str, progress: bool,
                  hard_ratio: float) -> None:
    """Train from `done.step` to the end of `plan`, evaluating and saving after each epoch."""
    starts = [sum(len(epoch) for epoch in plan[:e]) for e in range(len(plan))]
    total_steps = sum(len(epoch) for epoch in plan)
    hard_from = total_steps - round(hard_ratio * total_steps)
    bar = tqdm(total=total_steps, initial=done.step, desc=description, disable=not progress or not is_main())
    log = StepLog(loop.run_dir, total_steps, done.step, write=is_main())
    parts: dict[str, float] = {}
    parallel = DataParallelStep(loop.wrapper, loop.hooks.step_loss, loop.hooks.loss_weight, loop.grad_accum)
    while done.step < total_steps:
        epoch = max(e for e, start in enumerate(starts) if start <= done.step)
        bar.set_description(f"{description} epoch {epoch + 1}/{len(plan)}", refresh=False)
        loop.wrapper.train()
        started = time.perf_counter()
        for indices in plan[epoch][done.step - starts[epoch]:]:
            loop.wrapper.straight_through = done.step >= hard_from
            loop.wrapper.training_progress = done.step / total_steps
            mark(f"step {done.step + 1}")
            loop.optimizer.zero_grad(set_to_none=True)
            loss, parts = parallel.backward(indices)
            _optimizer_step(loop.wrapper, loop.optimizer, loop.scheduler, loss, done.step)
            done.step += 1
            log.add(done.step, {"loss": loss, **parts})
            bar.update(1)
            bar.set_postfix({key: f"{value:.3f}" for key, value in parts.items()})
            if done.step % loop.save_every == 0 and done.step < starts[epoch] + len(plan[epoch]):
                started = done.clock(started)
                loop.save_state(done)
        done.clock(started)
        loop.wrapper.straight_through = False
        loop.wrapper.training_progress = 1.0
        mark(f"evaluation after step {done.step}")
        done.history.append(loop.hooks.epoch_record(epoch, done.step, parts))
        loop.save_run(done)
        if done.step < total_steps or loop.keep_state:
            loop.save_state(done)
    bar.close()


def _optimizer_step(wrapper: PrunedModel, optimizer: torch.optim.Optimizer, scheduler: LRScheduler,
                    loss: float, step: int) -> None:
    """One update from the gradient of `loss`: refuse a non-finite loss, clip the norm to 1, step the schedule."""
    if not math.isfinite(loss):
        raise FloatingPointError(f"loss became {loss} at step {step}; lower --lr or check the data")
    torch.nn.utils.clip_grad_norm_(wrapper.parameters(), 1.0)
    optimizer.step()
    scheduler.step()


def _resume(run_dir: Path, wrapper: PrunedModel, optimizer: torch.optim.Optimizer, scheduler: LRScheduler
            ) -> Progress:
    """Restore model, optimizer, schedule and torch RNG from `state.pt`; the progress it records (none: a new run)."""
    state = load_trainer_state(run_dir)
    if state is None:
        separate_rng_streams(None, model_device(wrapper))
        return Progress()
    wrapper.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    separate_rng_streams(state, model_device(wrapper))
    return Progress(state["step"], state["history"], state["train_seconds"])


def load_trainer_state(run_dir: Path) -> dict[str, Any] | None:
    """The resumable trainer state of an interrupted run, or None if it has none."""
    path = Path(run_dir) / STATE_FILE
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise CheckpointError(f"trainer state {path} is corrupt ({type(exc).__name__}); delete it and run the same "
                              "train command again: it restarts the run from scratch") from exc
