"""Fusing pruned tokens (EViT): one extra kept token per example, the importance-weighted mean of the pruned."""

from __future__ import annotations

import pytest
import torch

from tsdtp.core.config import PruningConfig
from tsdtp.core.engine import EngineMode, run_layers
from tsdtp.core.fusion import fuse_pruned
from tsdtp.core.packing import TokenLayout
from tsdtp.errors import ConfigError


def small_batch() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    valid = torch.tensor([[True] * 5, [True, True, True, False, False]])
    return {"hidden": torch.randn(2, 5, 4), "importance": torch.rand(2, 5) + 0.1, "valid": valid,
            "keep": torch.tensor([[True, False, True, False, False], [True, True, False, False, False]])}


def test_fusion_keeps_one_more_token_holding_the_importance_weighted_mean_of_the_pruned():
    data = small_batch()
    fused = torch.zeros_like(data["valid"])
    hidden, importance, keep, slot = fuse_pruned(data["hidden"], data["importance"], data["valid"], data["keep"], fused)
    assert torch.equal(keep.sum(-1), data["keep"].sum(-1) + 1)
    for row in range(2):
        pruned = data["valid"][row] & ~data["keep"][row]
        weights = data["importance"][row][pruned]
        expected = (weights[:, None] * data["hidden"][row][pruned]).sum(0) / weights.sum()
        (position,) = slot[row].nonzero()[0].tolist()
        assert position == int(pruned.nonzero()[0])  # the first pruned token's slot
        assert torch.allclose(hidden[row, position], expected, atol=1e-6)
        assert importance[row, position] == pytest.approx(float(weights.sum()))
    untouched = ~slot
    assert torch.equal(hidden[untouched], data["hidden"][untouched])


def test_a_later_step_merges_into_the_same_fused_token_weighted_by_its_importance():
    data = small_batch()
    fused = torch.tensor([[False, False, False, True, False], [False] * 5])
    keep = torch.tensor([[True, False, True, True, True], [True] * 3 + [False] * 2])
    hidden, importance, keep_after, slot = fuse_pruned(data["hidden"], data["importance"], data["valid"], keep, fused)
    assert torch.equal(slot, fused)  # the row with a fused token keeps it; the row that prunes nothing gets none
    weights = data["importance"][0, [1, 3]]
    expected = (weights[:, None] * data["hidden"][0, [1, 3]]).sum(0) / weights.sum()
    assert torch.allclose(hidden[0, 3], expected, atol=1e-6)
    assert torch.equal(keep_after, keep)


def test_packed_fusion_equals_padded_fusion():
    data = small_batch()
    layout = TokenLayout.from_valid(data["valid"])
    fused = torch.zeros_like(data["valid"])
    padded = fuse_pruned(data["hidden"], data["importance"], data["valid"], data["keep"], fused)
    packed = fuse_pruned(layout.pack(data["hidden"]), data["importance"], data["valid"], data["keep"], fused, layout)
    assert torch.allclose(layout.pad(packed[0])[data["valid"]], padded[0][data["valid"]], atol=1e-6)
    assert all(torch.equal(a, b) for a, b in zip(packed[1:], padded[1:]))


@pytest.mark.parametrize("method", ["ts-dtp", "topk"])
def test_the_engine_keeps_the_drop_count_plus_one_after_the_first_pruning_layer(model, batch, method):
    first = 2  # the input of the layer after the first pruning layer (1)
    counts = {}
    with torch.no_grad():
        for removal in ("drop", "fuse"):
            model.pruning = PruningConfig(method=method, k=0.0, removal=removal, gamma=0.5 if method == "ts-dtp"
                                          else 0.0)
            output = model(batch, record_trace=True)
            counts[removal] = output.engine.tokens_per_layer
            traced = output.engine.keep_trace.sum(-1)
    pruned = counts["drop"][:, first] < counts["drop"][:, 0]
    assert pruned.any()
    assert torch.equal(counts["fuse"][:, first], counts["drop"][:, first] + pruned.long())
    assert torch.equal(traced[:, first], counts["drop"][:, first])  # the trace holds input tokens only


@pytest.mark.parametrize("packed", [True, False])
def test_straight_through_training_with_fusion_equals_inference(model, batch, packed):
    model.pruning = PruningConfig(method="ts-dtp", k=0.0, removal="fuse")
    model.packed_inference = packed
    valid = batch["attention_mask"].bool()
    special = model.adapter.special_mask(batch["input_ids"])
    with torch.no_grad():
        inference = model(batch, record_trace=True)
    trained = run_layers(model.adapter, model.scorers, model.pruning, model.adapter.embed(batch), valid, special,
                         mode=EngineMode.STRAIGHT_THROUGH, record_trace=True)
    assert torch.equal(trained.keep_trace, inference.engine.keep_trace)
    assert torch.equal(trained.tokens_per_layer, inference.engine.tokens_per_layer)
    assert torch.allclose(model.adapter.classify(trained.hidden), inference.logits, atol=1e-4)
    model.adapter.classify(trained.hidden).logsumexp(-1).sum().backward()
    assert model.scorers[1].weight.grad is not None and model.scorers[1].weight.grad.abs().sum() > 0


def test_soft_training_with_fusion_trains_the_scorer_through_the_fused_token(model, batch):
    model.pruning = PruningConfig(method="ts-dtp", k=0.0, removal="fuse")
    valid = batch["attention_mask"].bool()
    special = model.adapter.special_mask(batch["input_ids"])
    output = run_layers(model.adapter, model.scorers, model.pruning, model.adapter.embed(batch), valid, special,
                        mode=EngineMode.SOFT)
    assert output.hidden.shape[1] == valid.shape[1] + 1 and output.valid[:, -1].all()
    model.adapter.classify(output.hidden).logsumexp(-1).sum().backward()
    assert model.scorers[1].weight.grad.abs().sum() > 0


def test_fusion_needs_the_hidden_task_features():
    with pytest.raises(ConfigError, match="needs task_features 'hidden'"):
        PruningConfig(method="ts-dtp", removal="fuse", task_features="embeddings")
