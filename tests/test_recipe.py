"""The training recipe: the keep-target ramp, the learning-curve log, distillation from a teacher run."""

from __future__ import annotations

import pytest
import torch

from tsdtp.core.config import PruningConfig
from tsdtp.core.engine import EngineOutput
from tsdtp.core.losses import pruning_penalty
from tsdtp.core.schedule import ramped_keep_target
from tsdtp.runs.step_log import StepLog, read_step_log


@pytest.mark.parametrize("progress, target", [(0.0, 1.0), (0.125, 0.75), (0.25, 0.5), (0.5, 0.5), (1.0, 0.5)])
def test_the_keep_target_falls_linearly_from_one_over_the_ramp(progress, target):
    assert ramped_keep_target(0.5, progress, ramp=0.25) == pytest.approx(target)


def test_without_a_ramp_the_keep_target_is_fixed():
    assert [ramped_keep_target(0.4, progress, 0.0) for progress in (0.0, 0.5, 1.0)] == [0.4, 0.4, 0.4]


def test_the_keep_loss_pulls_toward_the_ramped_target():
    soft_keep = torch.full((2, 6), 0.8, requires_grad=True)
    engine = EngineOutput(torch.zeros(2, 3, 4), torch.ones(2, 3, dtype=torch.bool), torch.zeros(2, 3),
                          torch.ones(2, 6), soft_keep=soft_keep)
    pruning = PruningConfig(method="ts-dtp", lambda_aux=0.0, lambda_keep=1.0, keep_target=0.4, keep_ramp=0.5)
    early, parts = pruning_penalty(engine, pruning, progress=0.25)
    late, late_parts = pruning_penalty(engine, pruning, progress=0.75)
    assert parts["keep_target"] == pytest.approx(0.7) and late_parts["keep_target"] == pytest.approx(0.4)
    assert float(early) == pytest.approx((0.8 - 0.7) ** 2, rel=1e-5)
    assert float(late) == pytest.approx((0.8 - 0.4) ** 2, rel=1e-5)
    assert "keep_target" not in pruning_penalty(engine, pruning.replace(keep_ramp=0.0))[1]


def test_the_step_log_averages_each_interval_and_a_resumed_run_drops_the_steps_after_its_state(tmp_path):
    log = StepLog(tmp_path, total_steps=400, resumed_step=0)
    for step in range(1, 13):
        log.add(step, {"ce": float(step)})
    assert read_step_log(tmp_path) == [{"step": 4, "ce": 2.5}, {"step": 8, "ce": 6.5}, {"step": 12, "ce": 10.5}]
    StepLog(tmp_path, total_steps=400, resumed_step=9)
    assert [line["step"] for line in read_step_log(tmp_path)] == [4, 8]
