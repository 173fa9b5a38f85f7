"""Time an LLM classification training step against transformers' dense forward of the same batch, side by side.

For budgeting `tsdtp llm-train`: loads the default LLM (converted from its GGUF on first use), takes the first
`--batch-size` SST-2 training prompts, and times, interleaved for `--repeats` rounds after a warm-up, the library's
dense forward, a LoRA training step with pruning off, and one with TS-DTP soft masks; prints the medians and the
paired ratios to the dense forward, then the untrained (label-word) head's accuracy on `--eval` dev examples.
Usage (data from TSDTP_DATA_DIR):
    python scripts/llm_step_times.py --threads 2 --batch-size 8 --repeats 3 --eval 64
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from tsdtp.core.config import PruningConfig
from tsdtp.hub import load_causal_lm
from tsdtp.llm.classifier_config import LlmTrainConfig
from tsdtp.llm.classifier_evaluate import evaluate_classifier
from tsdtp.llm.classifier_model import PrunedLlamaClassifier
from tsdtp.llm.classifier_prompts import collate, prepare_splits


def seconds(run: Callable[[], object]) -> float:
    """Wall seconds of one call."""
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def main() -> None:
    """Measure and print (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--eval", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = LlmTrainConfig(max_train_samples=args.batch_size, max_eval_samples=args.eval)
    print("load from the cache, s:", round(seconds(lambda: load_causal_lm(config.model)), 2), flush=True)
    model, tokenizer = PrunedLlamaClassifier.build(config)
    train, dev, _ = prepare_splits(config, tokenizer, None)
    assert train is not None
    batch = collate(train, list(range(args.batch_size)), tokenizer.pad_token_id)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def step(pruning: PruningConfig) -> Callable[[], None]:
        def run() -> None:
            model.pruning = pruning
            model.train()
            loss, _ = model.loss(model(batch), batch["labels"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return run

    def dense() -> None:
        model.eval()
        with torch.no_grad():
            model.adapter.dense_logits(batch)

    units = {"hf_forward": dense, "step_none": step(PruningConfig()),
             "step_ts_dtp": step(PruningConfig(method="ts-dtp", k=0.5))}
    times: dict[str, list[float]] = {name: [] for name in units}
    for repeat in range(args.repeats + 1):
        for name, run in units.items():
            elapsed = seconds(run)
            if repeat:
                times[name].append(elapsed)
    print(f"batch {tuple(batch['input_ids'].shape)}, {int(batch['attention_mask'].sum())} real tokens, "
          f"{args.threads} threads", flush=True)
    print("median seconds:", {name: round(statistics.median(t), 2) for name, t in times.items()})
    print("paired ratio to hf_forward:", {name: round(statistics.median(a / b for a, b in zip(t, times["hf_forward"])),
                                                      2) for name, t in times.items()})
    fresh, _ = PrunedLlamaClassifier.build(config)
    accuracy = evaluate_classifier(fresh, dev, 16, tokenizer.pad_token_id, progress=False)["accuracy"]
    print(f"untrained label-word head, {len(dev)} dev examples: accuracy {accuracy}")


if __name__ == "__main__":
    main()
