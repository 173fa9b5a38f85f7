"""Packed inference: the layout round-trips, and packed removal equals padded removal exactly."""

from __future__ import annotations

import copy

import pytest
import torch

from tsdtp.core.config import PruningConfig
from tsdtp.core.packing import TokenLayout
from tsdtp.core.pruning import gather_kept


def test_layout_packs_pads_and_selects_like_gather_kept():
    valid = torch.tensor([[True, True, True, False], [True, True, False, False]])
    layout = TokenLayout.from_valid(valid)
    padded = torch.arange(8.0).view(2, 4, 1)
    packed = layout.pack(padded)
    assert packed.squeeze(1).tolist() == [0.0, 1.0, 2.0, 4.0, 5.0]
    assert torch.equal(layout.pad(packed).squeeze(2), torch.tensor([[0.0, 1, 2, 0], [4, 5, 0, 0]]))
    keep = torch.tensor([[True, False, True, False], [False, True, False, False]])
    new_valid, (gathered,) = gather_kept(keep, padded)
    new_layout, survivors = layout.select(keep, new_valid)
    assert torch.equal(new_layout.pack(gathered), packed[survivors])


def test_a_layout_without_padding_packs_by_reshaping():
    layout = TokenLayout.from_valid(torch.ones(1, 3, dtype=torch.bool))
    x = torch.randn(3, 2)
    assert layout.full and layout.pad(x).data_ptr() == x.data_ptr()


@pytest.mark.parametrize("config", [
    PruningConfig(method="ts-dtp", k=0.0),
    PruningConfig(method="ts-dtp", k=0.5, task_features="embeddings"),
    PruningConfig(method="general-dtp-posthoc", k=0.0, gamma=0.0),
    PruningConfig(method="topk", gamma=0.0),
])
def test_packed_inference_keeps_the_same_tokens_as_the_padded_path(model, batch, config):
    model.pruning = config
    with torch.no_grad():
        packed = model(batch, record_trace=True)
        model.packed_inference = False
        padded = model(batch, record_trace=True)
    assert torch.equal(packed.engine.keep_trace, padded.engine.keep_trace)
    assert torch.allclose(packed.logits, padded.logits, atol=1e-5)


def test_bf16_inference_runs_and_stays_close_to_fp32(model, batch):
    model.pruning = PruningConfig(method="ts-dtp", k=0.0)
    low = copy.deepcopy(model).to(torch.bfloat16)
    with torch.no_grad():
        logits = low(batch).logits
        reference = model(batch).logits
    assert logits.dtype == torch.bfloat16
    assert torch.allclose(logits.float(), reference, atol=0.1)
