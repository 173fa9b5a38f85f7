"""The pruning engine: dense equivalence, removal = masking, monotone pruning, gradients."""

from __future__ import annotations

import copy

import pytest
import torch

from tsdtp.adapters import attention
from tsdtp.adapters.attention import biased_self_attention, query_chunk
from tsdtp.classification.evaluate import predict_batch
from tsdtp.core.config import K_MAX, PruningConfig
from tsdtp.core.engine import EngineMode, run_layers, scored_layers
from tsdtp.core.engine_common import readout_weight
from tsdtp.core.flops import encoder_flops, encoder_shape
from tsdtp.core.scoring import LayerRequest, attention_received
from tsdtp.errors import ConfigError


def test_pruning_off_reproduces_library_dense_forward(model, batch):
    with torch.no_grad():
        reference = model.adapter.dense_logits(batch)
        for config in (PruningConfig(), PruningConfig(method="ts-dtp", k=K_MAX)):
            model.pruning = config
            assert torch.allclose(model(batch).logits, reference, atol=1e-5)


def test_threshold_at_minus_infinity_prunes_nothing_and_matches_dense(model, batch):
    model.pruning = PruningConfig(method="ts-dtp", k=1e5)
    with torch.no_grad():
        output = model(batch, record_trace=True)
        reference = model.adapter.dense_logits(batch)
    assert torch.equal(output.engine.tokens_per_layer, batch["attention_mask"].sum(-1, keepdim=True).expand(-1, 6))
    assert torch.allclose(output.logits, reference, atol=1e-5)


@pytest.mark.parametrize(("method", "queries"), [("ts-dtp", "all"), ("general-dtp-posthoc", "all"), ("topk", "all"),
                                                ("random", "all"), ("ts-dtp", "readout")])
def test_gather_removal_equals_masking_the_same_tokens(model, batch, method, queries):
    model.pruning = PruningConfig(method=method, k=0.0, gamma=0.5 if method == "ts-dtp" else 0.0, queries=queries)
    with torch.no_grad():
        output = model(batch, record_trace=True, generator=torch.Generator().manual_seed(1))
        trace = output.engine.keep_trace
        assert (output.engine.tokens_per_layer[:, -1] < output.engine.tokens_per_layer[:, 0]).any()
        hidden = model.adapter.embed(batch)
        for layer in range(model.adapter.num_layers):
            bias = torch.where(trace[:, layer], 0.0, torch.finfo(hidden.dtype).min)
            hidden, _ = model.adapter.layer(layer, hidden, LayerRequest(bias))
        masked = model.adapter.classify(hidden)
    assert torch.allclose(output.logits, masked, atol=1e-4)


def test_keep_ratio_and_flops_fall_as_k_falls(model, batch):
    keep, flops = [], []
    for k in (3.0, 1.0, 0.5, 0.0, -0.5, -1.0):
        model.pruning = PruningConfig(method="ts-dtp", k=k)
        with torch.no_grad():
            _, tokens, _ = predict_batch(model, batch)
        keep.append(float(tokens.sum()))
        flops.append(encoder_flops(tokens, encoder_shape(model), scored_layers(model.pruning, 6)).ratio)
    assert all(a >= b for a, b in zip(keep, keep[1:]))
    assert all(a >= b for a, b in zip(flops, flops[1:]))
    assert keep[-1] < keep[0] and flops[-1] < 0.7


def test_k_offsets_set_each_pruning_layer_its_own_threshold_in_inference_and_training(model, batch):
    valid = batch["attention_mask"].bool()
    special = model.adapter.special_mask(batch["input_ids"])

    def traces(config: PruningConfig) -> tuple[torch.Tensor, torch.Tensor]:
        model.pruning = config
        with torch.no_grad():
            inference = model(batch, record_trace=True).engine
            trained = run_layers(model.adapter, model.scorers, config, model.adapter.embed(batch), valid, special,
                                 mode=EngineMode.STRAIGHT_THROUGH, record_trace=True)
        assert torch.equal(trained.keep_trace, inference.keep_trace)  # training keeps what inference keeps
        return inference.keep_trace, inference.tokens_per_layer

    shifted, _ = traces(PruningConfig(method="ts-dtp", k=0.0, k_offsets=(0.5,) * 4))
    assert torch.equal(shifted, traces(PruningConfig(method="ts-dtp", k=0.5))[0])
    _, tokens = traces(PruningConfig(method="ts-dtp", k=0.0, k_offsets=(10.0, 0.0, 0.0, 0.0)))
    assert torch.equal(tokens[:, 2], tokens[:, 0])  # no token is 10 std below its row's mean after layer 1
    assert (tokens[:, 3] < tokens[:, 2]).any()  # the later layers threshold at k = 0


def test_special_tokens_and_at_least_one_token_always_survive(model, batch, tokenizer):
    model.pruning = PruningConfig(method="ts-dtp", k=-3.0)
    with torch.no_grad():
        trace = model(batch, record_trace=True).engine.keep_trace
    special = torch.isin(batch["input_ids"], torch.tensor([tokenizer.cls_token_id, tokenizer.sep_token_id]))
    for layer in range(trace.shape[1]):
        assert trace[:, layer][special].all()
        assert (trace[:, layer].sum(-1) >= 1).all()
    assert trace[:, -1].sum() < batch["attention_mask"].sum()


def test_gradients_reach_the_task_specific_scorer(model, batch):
    model.pruning = PruningConfig(method="ts-dtp", k=0.5)
    model.train()
    output = model(batch)
    loss, parts = model.loss(output, batch["labels"])
    loss.backward()
    model.eval()
    assert 0.0 < parts["soft_keep"] < 1.0
    for layer in scored_layers(model.pruning, 6):
        scorer = model.scorers[layer]
        assert scorer.weight.grad is not None and scorer.weight.grad.abs().sum() > 0
        assert scorer.phi.weight.grad is not None and scorer.phi.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.scorers[5].parameters())


@pytest.mark.parametrize("queries", ["all", "readout"])
def test_straight_through_training_forward_equals_inference_and_still_trains_the_scorer(model, batch, queries):
    model.pruning = PruningConfig(method="ts-dtp", k=0.0, queries=queries)
    valid = batch["attention_mask"].bool()
    special = model.adapter.special_mask(batch["input_ids"])
    with torch.no_grad():
        inference = model(batch, record_trace=True)
    trained = run_layers(model.adapter, model.scorers, model.pruning, model.adapter.embed(batch), valid, special,
                         mode=EngineMode.STRAIGHT_THROUGH, record_trace=True)
    assert torch.equal(trained.keep_trace, inference.engine.keep_trace)
    assert torch.equal(trained.tokens_per_layer, inference.engine.tokens_per_layer)
    assert (inference.engine.tokens_per_layer[:, -1] < inference.engine.tokens_per_layer[:, 0]).any()
    assert torch.allclose(model.adapter.classify(trained.hidden), inference.logits, atol=1e-4)
    kept_last = trained.keep_trace[:, -1]
    assert torch.equal(trained.log_keep[kept_last], torch.zeros(int(kept_last.sum())))
    assert (trained.log_keep[valid & ~kept_last] < -1e30).all()
    loss = model.adapter.classify(trained.hidden).logsumexp(-1).sum() + trained.soft_keep.sum()
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.scorers[0].parameters())
    model.zero_grad(set_to_none=True)


def test_readout_queries_score_each_token_by_the_attention_cls_pays_it(model, batch):
    bert = copy.deepcopy(model.adapter.model)  # eager attention and the library's attention capture stay on the copy
    bert.set_attn_implementation("eager")
    valid = batch["attention_mask"].bool()
    bias = torch.where(valid, 0.0, torch.finfo(torch.float32).min)
    with torch.no_grad():
        attentions = bert(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                          token_type_ids=batch["token_type_ids"], output_attentions=True).attentions[0]
        request = LayerRequest(bias, True, readout_weight(model.adapter, valid))
        _, received = model.adapter.layer(0, model.adapter.embed(batch), request)
    torch.testing.assert_close(received[valid], attentions[:, :, 0].mean(dim=1)[valid])


def test_general_dtp_ignores_the_scorer(model, batch):
    model.pruning = PruningConfig(method="general-dtp-posthoc", k=0.5, gamma=0.0)
    with torch.no_grad():
        before = model(batch).logits
        for p in model.scorers.parameters():
            p.add_(1.0)
        after = model(batch).logits
        for p in model.scorers.parameters():
            p.sub_(1.0)
    assert torch.equal(before, after)


def test_topk_and_random_keep_the_same_counts(model, batch):
    counts = {}
    for method in ("topk", "random"):
        model.pruning = PruningConfig(method=method, gamma=0.0, topk_final_keep=0.4)
        with torch.no_grad():
            counts[method] = model(batch, generator=torch.Generator().manual_seed(0)).engine.tokens_per_layer
    assert torch.equal(counts["topk"], counts["random"])
    assert (counts["topk"][:, -1] < counts["topk"][:, 0]).all()


def test_reference_masking_costs_two_dense_passes(model, batch):
    model.pruning = PruningConfig(method="reference-masking", k=1.0)
    with torch.no_grad():
        logits, tokens, trace = predict_batch(model, batch)
    report = encoder_flops(tokens, encoder_shape(model), (0,), passes=2)
    assert report.ratio > 2.0
    assert logits.shape == (8, 2) and not trace.all()


def test_the_caller_chooses_the_mode_and_autograd_does_not_change_it(model, batch):
    model.pruning = PruningConfig(method="ts-dtp", k=0.0)
    assert model.engine_mode() is EngineMode.PACKED
    with torch.no_grad():
        reference = model(batch, record_trace=True)
    with torch.enable_grad():
        packed = model(batch, record_trace=True)
    assert packed.logits.requires_grad
    assert torch.equal(packed.logits.detach(), reference.logits)
    assert torch.equal(packed.engine.keep_trace, reference.engine.keep_trace)
    model.packed_inference = False
    assert model.engine_mode() is EngineMode.PADDED
    model.train()
    assert model.engine_mode() is EngineMode.SOFT
    model.straight_through = True
    assert model.engine_mode() is EngineMode.STRAIGHT_THROUGH
    model.pruning = PruningConfig()
    assert model.engine_mode() is EngineMode.PADDED, "dense fine-tuning runs on the padded batch"


@pytest.mark.parametrize("mode", [EngineMode.SOFT, EngineMode.STRAIGHT_THROUGH])
@pytest.mark.parametrize("method", ["general-dtp-posthoc", "topk", "random"])
def test_training_modes_refuse_methods_without_a_training_form(model, batch, method, mode):
    model.pruning = PruningConfig(method=method, gamma=0.0)
    valid, special = batch["attention_mask"].bool(), model.adapter.special_mask(batch["input_ids"])
    with pytest.raises(ValueError, match=rf"method '{method}' has no differentiable \(training\) form"):
        run_layers(model.adapter, model.scorers, model.pruning, model.adapter.embed(batch), valid, special, mode=mode)
    model.train()
    model.straight_through = mode is EngineMode.STRAIGHT_THROUGH
    if model.pruning.spec.trained:  # top-k trains with its hard rule: the forward removes tokens as at inference
        assert model.engine_mode() is EngineMode.PADDED
        assert (model(batch).engine.tokens_per_layer[:, -1] < batch["attention_mask"].sum(-1)).all()
    else:
        with pytest.raises(ValueError, match="has no differentiable"):
            model(batch)


def _probabilities_reference(query, key, value, bias, heads):
    """The attention recomputed the way the engine did before issue 14: full probabilities, then their column sums."""
    split = [x.view(*x.shape[:2], heads, -1).transpose(1, 2) for x in (query, key, value)]
    logits = split[0] @ split[1].transpose(-1, -2) * split[0].shape[-1] ** -0.5 + bias[:, None, None, :]
    probs = logits.softmax(dim=-1)
    return (probs @ split[2]).transpose(1, 2).reshape(query.shape), probs


@pytest.mark.parametrize("budget", [attention.PROBABILITY_BUDGET, 0], ids=["within the budget", "chunks of 1 query"])
@pytest.mark.parametrize("length", [5, 20])
def test_attention_received_inside_the_attention_equals_the_column_sums_of_the_probabilities(length, budget,
                                                                                             monkeypatch):
    monkeypatch.setattr(attention, "PROBABILITY_BUDGET", budget)
    generator = torch.Generator().manual_seed(0)
    heads, batch = 2, 3
    query, key, value = (torch.randn(batch, length, 8, generator=generator) for _ in range(3))
    valid = torch.arange(length)[None, :] < torch.tensor([[length], [length - 2], [3]])
    bias = torch.where(valid, 0.0, torch.finfo(torch.float32).min)
    soft = valid.float() * torch.rand(batch, length, generator=generator)
    context, probs = _probabilities_reference(query, key, value, bias, heads)
    for weight in (valid.float(), soft):
        out, received = biased_self_attention(query, key, value, LayerRequest(bias, True, weight), heads, 0.0, False)
        assert torch.allclose(received, attention_received(probs, weight), atol=1e-6)
        assert torch.allclose(out, context, atol=1e-5)
    full = torch.zeros(batch, length)
    _, probs = _probabilities_reference(query, key, value, full, heads)
    _, uniform = biased_self_attention(query, key, value, LayerRequest(None, True, None), heads, 0.0, False)
    assert torch.allclose(uniform, attention_received(probs, torch.ones(batch, length)), atol=1e-6)
    unscored, none = biased_self_attention(query, key, value, LayerRequest(bias), heads, 0.0, False)
    assert none is None and torch.allclose(unscored, context, atol=1e-5)


def test_chunked_attention_passes_the_same_gradients(monkeypatch):
    generator = torch.Generator().manual_seed(1)
    inputs = [torch.randn(2, 12, 8, generator=generator, requires_grad=True) for _ in range(3)]
    weight = torch.rand(2, 12, generator=generator)
    grads = []
    for budget in (attention.PROBABILITY_BUDGET, 0):
        monkeypatch.setattr(attention, "PROBABILITY_BUDGET", budget)
        out, received = biased_self_attention(*inputs, LayerRequest(None, True, weight), 2, 0.0, True)
        grads.append(torch.autograd.grad(out.square().sum() + received.square().sum(), inputs))
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(*grads))


def test_large_probabilities_are_made_in_chunks_of_a_quarter_of_the_head_size():
    assert query_chunk(1, 12, 60, 60, 32) == 60
    assert query_chunk(1, 12, 120, 120, 32) == 64  # a long sentence: two chunks of twice the head size
    assert query_chunk(128, 12, 60, 60, 32) == 8  # 8 queries x 12 heads = a quarter of the hidden size 384
    assert query_chunk(128, 12, 60, 60, 1) == 1


def test_the_task_scorer_without_padding_equals_the_scorer_with_an_all_live_mask(model, batch):
    scorer = model.scorers[0]
    features = model.adapter.embed(batch)[:1]
    with torch.no_grad():
        masked = scorer(features, torch.zeros(1, features.shape[1]), torch.ones(1, features.shape[1]))
        assert torch.allclose(scorer(features, None, None), masked, atol=1e-7)


CLS_CONFIGS = [PruningConfig(), PruningConfig(method="ts-dtp", k=0.0), PruningConfig(method="topk", gamma=0.0),
               PruningConfig(method="general-dtp-posthoc", k=0.0, gamma=0.0)]


@pytest.mark.parametrize("packed", [True, False], ids=["packed", "padded"])
@pytest.mark.parametrize("config", CLS_CONFIGS, ids=lambda c: c.method)
def test_a_cls_only_last_layer_gives_the_logits_of_the_full_last_layer(model, batch, config, packed):
    model.pruning, model.packed_inference = config, packed
    with torch.no_grad():
        full = model(batch, record_trace=True)
        model.cls_only_last_layer = True
        first = model(batch, record_trace=True)
    assert torch.allclose(first.logits, full.logits, atol=1e-5)
    assert torch.equal(first.engine.keep_trace, full.engine.keep_trace)
    assert first.engine.hidden.shape == (8, 1, model.adapter.hidden_size)


def test_the_library_forward_with_a_cls_only_last_layer_gives_its_logits(model, batch):
    with torch.no_grad():
        assert torch.allclose(model.adapter.dense_logits(batch, cls_only_last_layer=True),
                              model.adapter.dense_logits(batch), atol=1e-5)


def test_a_cls_only_last_layer_refuses_a_scored_last_layer(model, batch):
    model.pruning = PruningConfig(method="ts-dtp", k=0.0, prune_layers=(1, 5))
    model.cls_only_last_layer = True
    with pytest.raises(ConfigError, match=r"the last layer \(5\) is scored"), torch.no_grad():
        model(batch)


@pytest.mark.parametrize("config", CLS_CONFIGS[1:] + [PruningConfig(method="random", gamma=0.0)],
                         ids=lambda c: c.method)
def test_the_batch_one_fast_path_equals_the_general_path(model, batch, config):
    model.pruning = config
    with torch.no_grad():
        together = model(batch, record_trace=True, generator=torch.Generator().manual_seed(0))
        for row in range(batch["input_ids"].shape[0]):
            length = int(batch["attention_mask"][row].sum())
            alone = {name: value[row:row + 1, :length] for name, value in batch.items() if value.dim() == 2}
            model.packed_inference = True
            fast = model(alone, record_trace=True, generator=torch.Generator().manual_seed(row))
            model.packed_inference = False
            general = model(alone, record_trace=True, generator=torch.Generator().manual_seed(row))
            assert torch.equal(fast.engine.keep_trace, general.engine.keep_trace)
            assert torch.allclose(fast.logits, general.logits, atol=1e-5)
            if config.method != "random":
                assert torch.equal(fast.engine.keep_trace[0], together.engine.keep_trace[row, :, :length])
                assert torch.allclose(fast.logits[0], together.logits[row], atol=1e-4)
    assert (together.engine.tokens_per_layer[:, -1] < together.engine.tokens_per_layer[:, 0]).any()


def test_a_row_without_special_tokens_still_keeps_its_best_token(model, batch):
    model.pruning = PruningConfig(method="ts-dtp", k=-3.0)
    for rows in (batch, {name: value[:1] for name, value in batch.items()}):
        valid = rows["attention_mask"].bool()
        with torch.no_grad():
            output = run_layers(model.adapter, model.scorers, model.pruning, model.adapter.embed(rows), valid,
                                torch.zeros_like(valid), mode=EngineMode.PACKED)
        assert (output.tokens_per_layer >= 1).all() and (output.tokens_per_layer[:, -1] == 1).any()
