"""Accuracy, keep ratios, FLOPs and per-example keep traces of a model on an encoded split."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd
import torch
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from tsdtp.classification.encoding import EncodedSplit, batch_indices, collate
from tsdtp.classification.model import PrunedClassifier
from tsdtp.classification.reference import reference_masking_forward
from tsdtp.core.flops import FlopsReport, encoder_shape, method_flops
from tsdtp.runs.device import draw_generator, model_device, on_device
from tsdtp.runs.distributed import gather_in_order, is_main, share
from tsdtp.runs.keep_trace import trace_frame


@dataclass(frozen=True)
class EvalResult:
    """What `evaluate_model` measured."""

    accuracy: float
    n_eval: int
    keep_ratio: float
    layer_keep: tuple[float, ...]
    flops_ratio: float
    scorer_overhead: float

    def summary(self) -> dict[str, float | int | list[float]]:
        """JSON-ready fields, rounded for reading."""
        data = asdict(self)
        data["layer_keep"] = [round(x, 4) for x in self.layer_keep]
        return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in data.items()}


def predict_batch(model: PrunedClassifier, batch: dict[str, torch.Tensor], record_trace: bool = False,
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Logits, tokens per layer [B, L] and keep trace of one batch, for any method."""
    if model.pruning.spec.masks:
        return reference_masking_forward(model, batch)
    output = model(batch, record_trace=record_trace, generator=generator)
    return output.logits, output.engine.tokens_per_layer, output.engine.keep_trace


@torch.no_grad()
def evaluate_model(model: PrunedClassifier, split: EncodedSplit, batch_size: int, pad_id: int,
                   record_traces: bool = False, tokenizer: PreTrainedTokenizerBase | None = None,
                   progress: bool = True) -> tuple[EvalResult, pd.DataFrame | None]:
    """Evaluate with hard pruning (real removal), in dataset order.

    With `record_traces` (needs `tokenizer`) also returns a tidy frame with one row per
    example, layer and token: `example, layer, position, token, kept, label, pred, correct`.
    In a distributed run each rank evaluates its share of the batches and every rank gets all the
    results (the same batches as one process, so the same numbers); the `random` method, whose draws
    follow the batch order, runs every batch on every rank. The model runs on the device it is on.
    """
    was_training = model.training
    model.eval()
    device = model_device(model)
    generator = draw_generator(device, model.pruning.seed)
    batches = batch_indices(split.lengths(), batch_size, shuffle=False)
    sharded = not model.pruning.spec.random_scores
    outcomes = []
    for indices in tqdm(share(batches) if sharded else batches, desc=f"eval {model.pruning.method}",
                        disable=not progress or not is_main(), leave=False):
        batch = on_device(collate(split, indices, pad_id), device)
        logits, per_layer, trace = predict_batch(model, batch, record_trace=record_traces, generator=generator)
        predictions = logits.argmax(dim=-1)
        frame = (trace_frame(split.input_ids, split.labels, indices, trace.cpu(), predictions.cpu(), tokenizer)
                 if record_traces else None)
        outcomes.append((int((predictions == batch["labels"]).sum()), per_layer.cpu(), frame))
    model.train(was_training)
    correct, tokens, frames = zip(*(gather_in_order(outcomes) if sharded else outcomes))
    per_layer = torch.cat(tokens)
    flops: FlopsReport = method_flops(per_layer, encoder_shape(model), model.pruning)
    layer_keep = (per_layer.double().sum(0) / per_layer[:, 0].double().sum()).tolist()
    result = EvalResult(sum(correct) / len(split), len(split), sum(layer_keep) / len(layer_keep), tuple(layer_keep),
                        flops.ratio, flops.scorer_overhead)
    traces = [frame for frame in frames if frame is not None]
    return result, (pd.concat(traces, ignore_index=True) if traces else None)

