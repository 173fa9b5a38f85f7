"""The dynamic threshold keeps Phi(k) of normal scores whatever their scale, and the per-layer share table
reads that share back from stored keep traces."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from tsdtp.analysis.layer_shares import layer_shares, normal_share, share_table
from tsdtp.analysis.stored_traces import compact, stored_trace_path
from tsdtp.core.pruning import hard_keep_dynamic


@pytest.mark.parametrize("k", [0.0, 0.5, 1.0])
def test_the_threshold_keeps_phi_of_k_of_normal_scores_at_any_scale(k: float):
    scores = torch.randn(64, 512, generator=torch.Generator().manual_seed(0))
    everything = torch.ones_like(scores, dtype=torch.bool)
    keep = hard_keep_dynamic(scores, everything, everything, k)
    assert keep.float().mean().item() == pytest.approx(normal_share(k), abs=0.01)
    assert torch.equal(hard_keep_dynamic(7.0 * scores - 3.0, everything, everything, k), keep)


def test_shares_are_read_per_pruning_layer_from_a_stored_trace(tmp_path):
    alive = {0: 5, 1: 5, 2: 4, 3: 2}  # per example, of 5 tokens
    long = pd.DataFrame([{"example": example, "layer": layer, "position": position, "token": "w",
                          "correct": True, "kept": position < count}
                         for layer, count in alive.items() for example in range(2) for position in range(5)])
    row = {"task": "sst2", "method": "ts-dtp", "k": 0.5, "gamma": 0.5, "keep_target": 0.6, "seed": 0,
           "eval_split": "sst2 dev", "run_dir": "runs/sst2-ts-dtp-0", "removal": None, "schedule": None}
    path = stored_trace_path(pd.Series(row), tmp_path)
    path.parent.mkdir(parents=True)
    compact(long).to_parquet(path)
    shares = layer_shares(pd.DataFrame([row, {**row, "seed": 1}]), tmp_path)
    assert shares["layer"].tolist() == [1, 2, 1, 2] and shares["share"].tolist() == pytest.approx([0.8, 0.5] * 2)
    table = share_table(shares)
    assert table[["after 1", "after 2"]].iloc[0].tolist() == pytest.approx([0.8, 0.5])
    assert table["Phi(k)"].iloc[0] == pytest.approx(0.6915, abs=1e-4)
    tilted = {**row, "schedule": "dk 0.6/0.2/-0.2/-0.6"}
    tilted_path = stored_trace_path(pd.Series(tilted), tmp_path)
    compact(long).to_parquet(tilted_path)
    assert tilted_path != path
    assert layer_shares(pd.DataFrame([tilted]), tmp_path)["normal_share"].isna().all()  # no single k applies
