"""Time training steps of each recipe side by side, for the CPU-hours estimate of the comparison sweep.

Every recipe trains its own copy of the model on the same batches (length-grouped, as training plans
them), interleaved step by step; the CPU seconds of each step (forward, distillation loss, backward,
AdamW) are measured with `time.process_time`, and the medians reported, with the teacher's one-off
forward pass and the evaluation forward per example. Usage:
    python scripts/time_training_steps.py --task sst2 --steps 12 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from tsdtp.classification.config import TrainConfig
from tsdtp.classification.encoding import batch_indices, collate
from tsdtp.classification.objective import training_loss
from tsdtp.classification.teacher import TeacherBatch, dense_outputs
from tsdtp.classification.train import build_model, epoch_plan, prepare_data
from tsdtp.core.config import PruningConfig
from tsdtp.hub import load_tokenizer
from tsdtp.runs.training_loop import build_optimizer

RECIPES: dict[str, tuple[PruningConfig, bool]] = {
    "dense (none)": (PruningConfig(), False),
    "ts-dtp soft": (PruningConfig(method="ts-dtp", k=0.5, keep_ramp=0.25), False),
    "ts-dtp straight-through": (PruningConfig(method="ts-dtp", k=0.5), True),
    "general-dtp soft": (PruningConfig(method="general-dtp", gamma=0.0, k=0.5), False),
    "topk hard": (PruningConfig(method="topk", gamma=0.0, keep_schedule=(0.8, 0.6, 0.45, 0.3)), False),
}
"""Each recipe's pruning and whether it runs straight-through (the hard phase)."""


def cpu_seconds(work) -> float:
    """CPU seconds of this process spent in `work()`."""
    started = time.process_time()
    work()
    return time.process_time() - started


def main() -> None:
    """Print the median CPU seconds per training step of every recipe, and of the teacher and evaluation passes."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--task", default="sst2")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base = TrainConfig(task=args.task, max_train_samples=32 * args.steps * 4, teacher="x", rank_weight=0.01)
    tokenizer = load_tokenizer(base.model)
    split, _, _ = prepare_data(base, tokenizer, None)
    batches = [batch for epoch in epoch_plan(split, base) for batch in epoch][: args.steps]
    pad = tokenizer.pad_token_id
    models = {name: build_model(base.replace(pruning=pruning), tokenizer) for name, (pruning, _) in RECIPES.items()}
    optimizers = {name: build_optimizer(model, base.lr, base.scorer_lr, base.weight_decay)
                  for name, model in models.items()}
    times: dict[str, list[float]] = {name: [] for name in RECIPES}
    for indices in batches:
        batch = collate(split, indices, pad)
        teacher = TeacherBatch(torch.randn(len(indices), 2), torch.rand(batch["input_ids"].shape))
        for name, (_, straight) in RECIPES.items():
            model, optimizer = models[name].train(), optimizers[name]
            model.straight_through = straight

            def step() -> None:
                loss, _ = training_loss(model, model(batch), batch["labels"], base, teacher)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

            times[name].append(cpu_seconds(step))
    tokens = sum(len(split.input_ids[i]) for batch in batches for i in batch) / sum(len(b) for b in batches)
    print(f"{args.task}: {len(batches)} steps of batch 32 ({tokens:.1f} tokens/example), {args.threads} thread(s)")
    dense = statistics.median(times["dense (none)"][1:])
    for name, values in times.items():
        median = statistics.median(values[1:])
        print(f"  {name:26s} {median:6.3f} CPU s/step  ({median / dense:4.2f} x dense)")
    evaluation = batch_indices(split.lengths(), 64, shuffle=False)[: args.steps]
    teacher_model = models["dense (none)"].eval()
    with torch.no_grad():
        per_batch = [cpu_seconds(lambda: dense_outputs(teacher_model, collate(split, b, pad))) for b in evaluation]
        models["ts-dtp soft"].eval()
        packed = [cpu_seconds(lambda: models["ts-dtp soft"](collate(split, b, pad))) for b in evaluation]
    print(f"  teacher forward            {1000 * statistics.median(per_batch) / 64:6.2f} CPU ms/example")
    print(f"  ts-dtp packed evaluation   {1000 * statistics.median(packed) / 64:6.2f} CPU ms/example")


if __name__ == "__main__":
    main()
