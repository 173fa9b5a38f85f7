"""Accuracy, keep ratios and FLOPs of an LLM classifier, and `tsdtp llm-eval`: a run evaluated under any method,
recorded in `eval/<name>.json`, its per-example keep trace in `eval/<name>.parquet` (as classification's, so
the heatmap and paired-comparison notebooks read it) and, when asked, as a results.csv row.

FLOPs count the Llama layer as it is: grouped-query key/value projections and the gated MLP's three matrices
(`tsdtp.core.flops.EncoderShape`). With `speed_repeats` the pruned forward is timed against the dense ones
(`tsdtp.llm.classifier_speed`); otherwise the row's speedup columns are empty (NaN).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from tsdtp.core.flops import method_flops
from tsdtp.data_files import tag_of_label
from tsdtp.errors import ConfigError
from tsdtp.hub import short_model_name
from tsdtp.llm.classifier_checkpoint import load_checkpoint
from tsdtp.llm.classifier_config import LlmTrainConfig
from tsdtp.llm.classifier_model import PrunedLlamaClassifier, llama_shape
from tsdtp.llm.classifier_prompts import PromptSplit, collate, prepare_splits
from tsdtp.llm.classifier_speed import classifier_speed
from tsdtp.runs.batches import batch_indices
from tsdtp.runs.device import draw_generator, model_device, on_device
from tsdtp.runs.distributed import is_main
from tsdtp.runs.eval_files import eval_file, training_variant, write_keep_traces
from tsdtp.runs.io import atomic_write_json
from tsdtp.runs.keep_trace import trace_frame
from tsdtp.runs.results import build_result_row, upsert_results
from tsdtp.runs.run_dir import holding_evaluation_lock, read_metrics


@torch.no_grad()
def evaluate_classifier(model: PrunedLlamaClassifier, split: PromptSplit, batch_size: int, pad_id: int,
                        progress: bool = True, tokenizer: PreTrainedTokenizerBase | None = None
                        ) -> tuple[dict[str, Any], pd.DataFrame | None]:
    """Accuracy, keep ratios (mean and per layer), FLOPs ratio, scorer overhead, examples and cut prompts
    (`truncated`) of hard pruning (real removal) in dataset order, rounded for JSON; on the device the model is on.

    With a `tokenizer`, also the keep trace (`tsdtp.runs.keep_trace.trace_frame`: a row per example, layer and
    prompt token); else None.
    """
    if model.pruning.spec.masks:
        raise ConfigError(f"method {model.pruning.method!r} (two-pass masking) is not implemented for LLM runs")
    was_training = model.training
    model.eval()
    device = model_device(model)
    generator = draw_generator(device, model.pruning.seed)
    correct, tokens, frames = 0, [], []
    batches = batch_indices(split.lengths(), batch_size, shuffle=False)
    for indices in tqdm(batches, desc=f"eval {model.pruning.method}", disable=not progress or not is_main(),
                        leave=False):
        batch = on_device(collate(split, indices, pad_id), device)
        output = model(batch, record_trace=tokenizer is not None, generator=generator)
        predictions = output.logits.argmax(dim=-1)
        correct += int((predictions == batch["labels"]).sum())
        tokens.append(output.engine.tokens_per_layer.cpu())
        if tokenizer is not None:
            frames.append(trace_frame(split.input_ids, split.labels, indices, output.engine.keep_trace.cpu(),
                                      predictions.cpu(), tokenizer))
    model.train(was_training)
    per_layer = torch.cat(tokens)
    flops = method_flops(per_layer, llama_shape(model), model.pruning)
    layer_keep = (per_layer.double().sum(0) / per_layer[:, 0].double().sum()).tolist()
    summary = {"accuracy": round(correct / len(split), 5), "n_eval": len(split),
               "keep_ratio": round(sum(layer_keep) / len(layer_keep), 5),
               "layer_keep": [round(x, 4) for x in layer_keep], "flops_ratio": round(flops.ratio, 5),
               "scorer_overhead": round(flops.scorer_overhead, 5), "truncated": sum(split.truncated)}
    return summary, (pd.concat(frames, ignore_index=True) if frames else None)


def model_label(config: LlmTrainConfig, train_examples: int | None) -> str:
    """The results table's model name: the model, its LoRA rank and, for a subset, how many training examples."""
    label = f"{short_model_name(config.model)} LoRA r{config.lora_rank}"
    return label + (f" ({train_examples} train)" if config.max_train_samples is not None else "")


@holding_evaluation_lock
def evaluate_llm_run(run_dir: str | Path, data_dir: str | None = None, overrides: dict[str, Any] | None = None,
                     results_csv: str | Path | None = None, batch_size: int = 16,
                     max_eval_samples: int | None = None, progress: bool = True, split: str = "eval",
                     speed_repeats: int = 0, speed_samples: int = 256) -> dict[str, Any]:
    """Evaluate `run_dir`'s checkpoint, optionally under another method or k (`PruningConfig.with_overrides`).

    Writes `eval/<name>.json` and the keep trace `eval/<name>.parquet` into the run directory, and upserts a row
    into `results_csv` when given. `split="selection"` evaluates on the run's held-out selection split instead
    (`tsdtp.runs.selection`): its own label and `<name>_selection` files. `speed_repeats > 0` also times the
    first `speed_samples` prompts against the dense forwards (`tsdtp.llm.classifier_speed`) into `speed` and
    the row's speedup columns.
    """
    run_dir = Path(run_dir)
    model, tokenizer, config = load_checkpoint(run_dir)
    pruning = config.pruning.with_overrides(overrides or {})
    model.pruning = pruning
    eval_config = dataclasses.replace(config, max_eval_samples=max_eval_samples or config.max_eval_samples)
    _, prompts, split_name = prepare_splits(eval_config, tokenizer, data_dir, include_train=False, split=split)
    result, traces = evaluate_classifier(model, prompts, batch_size, tokenizer.pad_token_id, progress, tokenizer)
    speed = (classifier_speed(model, prompts, batch_size, tokenizer.pad_token_id, speed_repeats, speed_samples)
             if speed_repeats > 0 else {})
    speedup = float(speed.get("speedup", float("nan")))
    record = {"run_dir": str(run_dir), "task": config.task, "eval_split": split_name, "pruning": pruning.to_dict(),
              "speedup": speedup, "speed": speed, "batch_size": batch_size, "threads": torch.get_num_threads(),
              **result}
    source = tag_of_label(split_name)
    if traces is not None:
        write_keep_traces(run_dir, pruning, config.task, traces, source, split)
    atomic_write_json(eval_file(run_dir, pruning, "json", source, split), record)
    if results_csv is not None:
        train_examples = (read_metrics(run_dir) or {}).get("train_examples")
        upsert_results(results_csv, [build_result_row(
            task=config.task, model=model_label(config, train_examples), pruning=pruning, metric_name="accuracy",
            metric=100 * result["accuracy"], keep_ratio=result["keep_ratio"], flops_ratio=result["flops_ratio"],
            speedup=speedup, batch_size=batch_size, threads=torch.get_num_threads(), n_eval=result["n_eval"],
            eval_split=split_name, scorer_overhead=result["scorer_overhead"], run_dir=str(run_dir),
            speedups=speed, seed=config.seed, variant=training_variant(config.pruning))])
    return record
