"""Translate, score (sacreBLEU, chrF), count encoder and cross-attention FLOPs, and what the decoder reads."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import sacrebleu
import torch
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from tsdtp.core.engine import EngineOutput
from tsdtp.core.flops import encoder_shape, method_flops
from tsdtp.runs.device import draw_generator, model_device, on_device
from tsdtp.runs.distributed import gather_in_order, is_main, share
from tsdtp.translation.costs import cross_attention_flops
from tsdtp.translation.encoding import collate_sources, sentence_batches
from tsdtp.translation.model import PrunedTranslator

TRACE_COLUMNS: tuple[str, ...] = ("example", "layer", "position", "token", "kept")
"""The tidy keep-trace columns, as for classification. Layer `L` (one past the last encoder
layer) holds the tokens the decoder's cross-attention sees."""


@dataclass
class Translations:
    """Hypotheses in input order and what the encoder kept for each sentence.

    tokens_per_layer: [n, L] live source tokens at each encoder layer's input.
    kept: [n] source states the decoder cross-attends to; source_tokens: [n] before pruning.
    target_tokens: [n] tokens generated for each sentence (`</s>` included); num_beams: the beam size.
    """

    hypotheses: list[str]
    tokens_per_layer: torch.Tensor
    kept: torch.Tensor
    source_tokens: torch.Tensor
    traces: pd.DataFrame | None
    seconds: float
    target_tokens: torch.Tensor
    num_beams: int


def generation_budget(source_lengths: Sequence[int], max_target_length: int) -> int:
    """New tokens allowed for a batch: 1.5 x its longest source plus 10, capped at `max_target_length`."""
    return min(max_target_length, int(1.5 * max(source_lengths)) + 10)


def length_sorted(source_ids: Sequence[Sequence[int]], batch_size: int) -> list[list[int]]:
    """Batches of indices with similar source lengths (shortest first): little padding for either path."""
    order = sorted(range(len(source_ids)), key=lambda i: len(source_ids[i]))
    return [[order[i] for i in batch] for batch in sentence_batches([0] * len(order), batch_size)]


@torch.no_grad()
def translate(translator: PrunedTranslator, tokenizer: PreTrainedTokenizerBase, source_ids: Sequence[Sequence[int]],
              batch_size: int, num_beams: int, max_target_length: int, trace_samples: int | None = 0,
              progress: bool = True) -> Translations:
    """Translate every source with hard pruning (real removal), batched by length; results in input order.

    `trace_samples`: keep traces for the first that many sentences (None: all; 0: none). In a distributed
    run each rank translates its share of the batches and every rank gets all the results (the `random`
    method, whose draws follow the batch order, runs every batch on every rank). The translator runs on the
    device it is on.
    """
    was_training = translator.training
    translator.eval()
    generator = draw_generator(model_device(translator), translator.pruning.seed)
    n = len(source_ids)
    hypotheses = [""] * n
    per_layer = torch.zeros(n, translator.adapter.num_layers, dtype=torch.long)
    kept = torch.zeros(n, dtype=torch.long)
    generated = torch.zeros(n, dtype=torch.long)
    limit = n if trace_samples is None else min(trace_samples, n)
    started = time.perf_counter()
    batches = length_sorted(source_ids, batch_size)
    sharded = not translator.pruning.spec.random_scores
    mine = tqdm(share(batches) if sharded else batches, desc=f"translate {translator.pruning.method}",
                disable=not progress or not is_main(), leave=False)
    outcomes = [_translate_batch(translator, tokenizer, source_ids, indices, num_beams, max_target_length, limit,
                                 generator) for indices in mine]
    seconds = time.perf_counter() - started
    translator.train(was_training)
    frames = []
    for indices, texts, layers, survivors, lengths, frame in (gather_in_order(outcomes) if sharded else outcomes):
        rows = torch.tensor(indices)
        per_layer[rows], kept[rows], generated[rows] = layers, survivors, lengths
        for row, index in enumerate(indices):
            hypotheses[index] = texts[row]
        if frame is not None:
            frames.append(frame)
    source_tokens = torch.tensor([len(ids) for ids in source_ids])
    traces = pd.concat(frames, ignore_index=True).sort_values(["example", "layer", "position"]) if frames else None
    return Translations(hypotheses, per_layer, kept, source_tokens,
                        traces.reset_index(drop=True) if traces is not None else None, seconds, generated, num_beams)


def _translate_batch(translator: PrunedTranslator, tokenizer: PreTrainedTokenizerBase,
                     source_ids: Sequence[Sequence[int]], indices: list[int], num_beams: int, max_target_length: int,
                     limit: int, generator: torch.Generator
                     ) -> tuple[list[int], list[str], torch.Tensor, torch.Tensor, torch.Tensor, pd.DataFrame | None]:
    """One batch's indices, hypotheses, live tokens per layer, source states kept, tokens generated (`</s>`
    included), and keep trace (for indices < `limit`)."""
    batch = on_device(collate_sources([source_ids[i] for i in indices], tokenizer.pad_token_id),
                      model_device(translator))
    budget = generation_budget([len(source_ids[i]) for i in indices], max_target_length)
    record = any(i < limit for i in indices)
    sequences, engine = translator.generate(batch["input_ids"], batch["attention_mask"], num_beams, budget,
                                            record_trace=record, generator=generator)
    frame = _trace_frame(tokenizer, source_ids, indices, engine, limit) if record else None
    generated = (sequences[:, 1:] != tokenizer.pad_token_id).sum(dim=-1).cpu()
    return (indices, tokenizer.batch_decode(sequences, skip_special_tokens=True), engine.tokens_per_layer.cpu(),
            engine.valid.sum(dim=-1).cpu(), generated, frame)


def _trace_frame(tokenizer: PreTrainedTokenizerBase, source_ids: Sequence[Sequence[int]], indices: list[int],
                 engine: EngineOutput, limit: int) -> pd.DataFrame:
    assert engine.keep_trace is not None
    survivors = torch.zeros(engine.keep_trace.shape[0], engine.keep_trace.shape[2], dtype=torch.bool,
                            device=engine.valid.device)
    survivors.scatter_(1, engine.positions, engine.valid)
    alive = torch.cat([engine.keep_trace, survivors[:, None]], dim=1).cpu()
    rows = []
    for row, example in enumerate(indices):
        if example >= limit:
            continue
        tokens = tokenizer.convert_ids_to_tokens(list(source_ids[example]))
        for layer in range(alive.shape[1]):
            for position, token in enumerate(tokens):
                rows.append((example, layer, position, token, bool(alive[row, layer, position])))
    return pd.DataFrame(rows, columns=list(TRACE_COLUMNS))


def score(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Corpus sacreBLEU (13a tokenisation) and chrF, on detokenised text."""
    return {"bleu": sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score,
            "chrf": sacrebleu.corpus_chrf(list(hypotheses), [list(references)]).score}


def summarize(translator: PrunedTranslator, translations: Translations) -> dict[str, float | list[float]]:
    """Keep ratios, source states the decoder reads, and FLOPs of one translated set: the encoder's against dense
    (`flops_ratio`) and the decoder's cross-attention against reading every source token (`cross_flops_ratio`,
    `tsdtp.translation.costs`), each also in GFLOPs per sentence (beams included)."""
    per_layer = translations.tokens_per_layer.double()
    layer_keep = (per_layer.sum(0) / per_layer[:, 0].sum()).tolist()
    flops = method_flops(translations.tokens_per_layer, encoder_shape(translator), translator.pruning)
    config = translator.model.config
    cross = [cross_attention_flops(n, translations.target_tokens, config.d_model, config.decoder_layers,
                                   translations.num_beams) for n in (translations.kept, translations.source_tokens)]
    sentences = len(translations.hypotheses)
    return {
        "keep_ratio": sum(layer_keep) / len(layer_keep),
        "layer_keep": layer_keep,
        "cross_keep_ratio": float(translations.kept.sum() / translations.source_tokens.sum()),
        "source_tokens": float(translations.source_tokens.double().mean()),
        "tokens_kept": float(translations.kept.double().mean()),
        "flops_ratio": flops.ratio,
        "scorer_overhead": flops.scorer_overhead,
        "encoder_gflops": flops.total / sentences / 1e9,
        "cross_flops_ratio": float(cross[0].sum() / cross[1].sum()),
        "cross_gflops": float(cross[0].sum()) / sentences / 1e9,
        "target_tokens": float(translations.target_tokens.double().mean()),
    }
