"""The training recipe: the keep-target ramp, the learning-curve log, distillation from a teacher run."""

from __future__ import annotations

import pytest
import torch

import tsdtp.classification.teacher as teacher_module
from tsdtp.classification.config import TrainConfig
from tsdtp.classification.objective import training_loss
from tsdtp.classification.teacher import CACHE_FOLDER, TeacherBatch, dense_outputs, teacher_targets
from tsdtp.classification.train import prepare_data, train
from tsdtp.core.config import PruningConfig
from tsdtp.core.distillation import logit_distillation, rank_distillation
from tsdtp.core.engine import EngineOutput
from tsdtp.core.losses import pruning_penalty
from tsdtp.core.schedule import ramped_keep_target
from tsdtp.errors import CheckpointError
from tsdtp.runs.step_log import StepLog, read_step_log


def tiny_config(**changes) -> TrainConfig:
    base = dict(task="sst2", epochs=1.0, batch_size=8, lr=1e-4, max_train_samples=32, save_every=2,
                pruning=PruningConfig(method="ts-dtp", k=0.5))
    return TrainConfig(**{**base, **changes})


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory, glue_dir):
    run_dir = tmp_path_factory.mktemp("runs") / "dense"
    train(tiny_config(pruning=PruningConfig()), run_dir, str(glue_dir), progress=False)
    return run_dir


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
    assert float(early.detach()) == pytest.approx((0.8 - 0.7) ** 2, rel=1e-5)
    assert float(late.detach()) == pytest.approx((0.8 - 0.4) ** 2, rel=1e-5)
    assert "keep_target" not in pruning_penalty(engine, pruning.replace(keep_ramp=0.0))[1]


def test_the_step_log_averages_each_interval_and_a_resumed_run_drops_the_steps_after_its_state(tmp_path):
    log = StepLog(tmp_path, total_steps=400, resumed_step=0)
    for step in range(1, 13):
        log.add(step, {"ce": float(step)})
    assert read_step_log(tmp_path) == [{"step": 4, "ce": 2.5}, {"step": 8, "ce": 6.5}, {"step": 12, "ce": 10.5}]
    StepLog(tmp_path, total_steps=400, resumed_step=9)
    assert [line["step"] for line in read_step_log(tmp_path)] == [4, 8]


def test_the_logit_distillation_is_zero_exactly_when_student_and_teacher_agree():
    logits = torch.tensor([[2.0, -1.0], [0.3, 0.1]])
    assert float(logit_distillation(logits, logits.clone(), temperature=2.0)) == pytest.approx(0.0, abs=1e-7)
    assert float(logit_distillation(logits, logits.flip(-1), temperature=2.0)) > 0.1


def test_the_ranking_distillation_sees_only_the_order_of_the_candidates():
    teacher = torch.tensor([[0.1, 0.5, 0.2, 0.9, 7.0]])
    candidates = torch.tensor([[True, True, True, True, False]])
    same_order = 3.0 * teacher + 1.0
    same_order[0, 4] = -5.0  # not a candidate: ignored
    assert float(rank_distillation([same_order], [candidates], teacher)) == pytest.approx(0.0, abs=1e-6)
    assert float(rank_distillation([-teacher], [candidates], teacher)) > 0.1


def test_the_teacher_pass_is_the_dense_forward_with_last_layer_attention(model, batch):
    logits, received = dense_outputs(model, batch)
    assert torch.allclose(logits, model(batch).logits, atol=1e-5)
    assert torch.allclose(received.sum(-1), torch.ones(len(logits)), atol=1e-5)
    assert (received[~batch["attention_mask"].bool()] == 0).all()


def test_the_distilled_loss_has_no_kl_against_the_students_own_logits(model, batch):
    model.pruning = PruningConfig(method="ts-dtp", k=0.5)
    model.train()
    output = model(batch)
    teacher = TeacherBatch(output.logits.detach(), torch.rand(batch["input_ids"].shape))
    config = tiny_config(teacher="runs/dense", rank_weight=0.01)
    loss, parts = training_loss(model, output, batch["labels"], config, teacher)
    assert parts["kl"] == pytest.approx(0.0, abs=1e-6) and parts["rank"] > 0
    loss.backward()
    assert model.scorers[1].weight.grad is not None


def test_the_teacher_outputs_are_computed_once_and_read_back(teacher_run, glue_dir, tokenizer, monkeypatch):
    config = tiny_config(teacher=str(teacher_run))
    split, _, _ = prepare_data(config, tokenizer, str(glue_dir))
    first = teacher_targets(config, split, tokenizer.pad_token_id)
    assert len(list((teacher_run / CACHE_FOLDER).glob("*.pt"))) == 1

    def no_pass(*args, **kwargs):
        raise AssertionError("the teacher ran again")

    monkeypatch.setattr(teacher_module, "teacher_pass", no_pass)
    again = teacher_targets(config, split, tokenizer.pad_token_id)
    assert torch.equal(first.logits, again.logits) and torch.equal(first.attention, again.attention)
    widths = [len(split.input_ids[i]) for i in (3, 5)]
    assert again.batch([3, 5], max(widths)).attention.shape == (2, max(widths))


def test_a_teacher_of_another_task_or_unfinished_is_refused(teacher_run, tmp_path, glue_dir):
    with pytest.raises(CheckpointError, match="trained on sst2"):
        train(tiny_config(task="qnli", teacher=str(teacher_run)), tmp_path / "q", str(glue_dir), progress=False)
    with pytest.raises(CheckpointError, match="not a finished run"):
        train(tiny_config(teacher=str(tmp_path)), tmp_path / "s", str(glue_dir), progress=False)


def test_a_distilled_run_logs_its_learning_curve_with_every_loss_part(teacher_run, tmp_path, glue_dir):
    config = tiny_config(teacher=str(teacher_run), rank_weight=0.01, hard_ratio=0.5,
                         pruning=PruningConfig(method="ts-dtp", k=0.5, keep_ramp=0.5))
    metrics = train(config, tmp_path, str(glue_dir), progress=False)
    curve = read_step_log(tmp_path)
    assert [line["step"] for line in curve] == list(range(1, metrics["steps"] + 1))
    assert {"loss", "ce", "kl", "rank", "aux", "soft_keep", "keep_target"} <= set(curve[0])
    assert [line["keep_target"] for line in curve] == [1.0, 0.75, 0.5, 0.5]


def test_top_k_fine_tunes_with_its_hard_rule_and_a_teacher(teacher_run, tmp_path, glue_dir):
    pruning = PruningConfig(method="topk", gamma=0.0, keep_schedule=(0.8, 0.6, 0.4, 0.3))
    config = tiny_config(teacher=str(teacher_run), pruning=pruning)
    metrics = train(config, tmp_path, str(glue_dir), progress=False)
    curve = read_step_log(tmp_path)
    assert metrics["steps"] == 4 and {"ce", "kl"} <= set(curve[0]) and "soft_keep" not in curve[0]
    assert metrics["final"]["keep_ratio"] < 0.8
