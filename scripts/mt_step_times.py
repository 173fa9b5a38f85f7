"""Time a few training steps of each translation recipe, to estimate what a full training run costs on this machine.

Usage (from the repository root, a finished dense run to start from):
    python scripts/mt_step_times.py --init-from runs/mt-dense --steps 8 --threads 1

For each recipe (dense fine-tuning; ts-dtp soft and hard phases, with and without distillation; each exit
mode) it runs `--steps` optimizer steps on real Multi30k batches (the `max_tokens` batching of training,
the same batches for every recipe) after one warm-up step, and prints the median seconds per step, the
steps of one epoch and the implied minutes per epoch, as JSON lines; also in CPU seconds of this process
(`time.process_time`), which a shared machine inflates less than the wall clock.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from tsdtp.core.config import PruningConfig
from tsdtp.runs.training_loop import build_optimizer, seed_everything
from tsdtp.translation.checkpoint import load_translator
from tsdtp.translation.config import MT_PRUNING_DEFAULTS, MTConfig
from tsdtp.translation.distill import Teacher
from tsdtp.translation.encoding import collate_pairs, encode_corpus
from tsdtp.translation.model import PrunedTranslator
from tsdtp.translation.train import distilled_step, epoch_plan, training_corpus

RECIPES: dict[str, tuple[dict, bool, float]] = {
    "dense": ({"method": "none"}, False, 0.0),
    "ts-dtp exit soft": ({"method": "ts-dtp", "exit_mode": "exit"}, False, 0.0),
    "ts-dtp exit hard": ({"method": "ts-dtp", "exit_mode": "exit"}, True, 0.0),
    "ts-dtp exit soft + kd": ({"method": "ts-dtp", "exit_mode": "exit"}, False, 0.5),
    "ts-dtp exit hard + kd": ({"method": "ts-dtp", "exit_mode": "exit"}, True, 0.5),
    "ts-dtp delete hard + kd": ({"method": "ts-dtp", "exit_mode": "delete"}, True, 0.5),
    "ts-dtp merge hard + kd": ({"method": "ts-dtp", "exit_mode": "merge"}, True, 0.5),
}
"""Recipe name -> (pruning settings, straight-through phase, distillation weight)."""


def time_recipe(name: str, init_from: str, batches: list[dict[str, torch.Tensor]], steps_per_epoch: int) -> dict:
    """Median seconds of one optimizer step of recipe `name` over `batches` (the first is a warm-up)."""
    settings, hard, weight = RECIPES[name]
    pruning = PruningConfig().with_overrides({**MT_PRUNING_DEFAULTS, "k": 0.5, **settings})
    config = MTConfig(pruning=pruning, init_from=init_from, distill_weight=weight, lr=2e-4)
    source, _, _, _ = load_translator(init_from)
    translator = PrunedTranslator(source.model, source.special_ids, pruning)
    teacher = Teacher.load(init_from, source.model.config.vocab_size) if weight else None
    optimizer = build_optimizer(translator, config.lr, config.scorer_lr, config.weight_decay, betas=(0.9, 0.98))
    translator.train()
    translator.straight_through = hard
    seconds, cpu = [], []
    for batch in batches:
        started, cpu_started = time.perf_counter(), time.process_time()
        output = translator(batch)
        if teacher is None:
            loss, _ = translator.loss(output, batch["labels"], config.label_smoothing)
        else:
            loss, _ = distilled_step(translator, output, batch, teacher, config)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(translator.parameters(), 1.0)
        optimizer.step()
        seconds.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
    step, cpu_step = statistics.median(seconds[1:]), statistics.median(cpu[1:])
    return {"recipe": name, "seconds_per_step": round(step, 3), "cpu_seconds_per_step": round(cpu_step, 3),
            "steps_per_epoch": steps_per_epoch, "minutes_per_epoch": round(step * steps_per_epoch / 60, 1),
            "cpu_minutes_per_epoch": round(cpu_step * steps_per_epoch / 60, 1), "threads": torch.get_num_threads()}


def main() -> None:
    """Parse the flags, pick the batches and print one JSON line per recipe."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--init-from", required=True, help="a finished dense translation run")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--recipes", default=",".join(RECIPES), help="comma-separated recipe names")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    seed_everything(0)
    config = MTConfig()
    dense, tokenizer, _, _ = load_translator(args.init_from)
    pairs = encode_corpus(tokenizer, training_corpus(config, args.data_dir), config.max_source_length,
                          config.max_target_length)
    epoch = epoch_plan(pairs, config)[0]
    start_id = dense.model.config.decoder_start_token_id
    batches = [collate_pairs(pairs, indices, tokenizer.pad_token_id, start_id) for indices in epoch[: args.steps + 1]]
    for name in args.recipes.split(","):
        print(json.dumps(time_recipe(name, args.init_from, batches, len(epoch))), flush=True)


if __name__ == "__main__":
    main()
