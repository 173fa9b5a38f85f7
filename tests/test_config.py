"""Settings are validated on construction, with messages that name the problem."""

from __future__ import annotations

import json

import pytest

from tsdtp.classification.config import TrainConfig
from tsdtp.core.config import METHOD_TABLE, METHODS, PruningConfig, method_spec
from tsdtp.errors import CheckpointError, ConfigError
from tsdtp.runs.cache import read_run_config
from tsdtp.translation.config import MTConfig


@pytest.mark.parametrize("changes, message", [
    ({"method": "magic"}, "unknown method 'magic'"),
    ({"k": -10.0}, "k must be"),
    ({"k": float("nan")}, "k must be"),
    ({"gamma": -0.1}, "gamma must be"),
    ({"method": "general-dtp", "gamma": 0.5}, "general-dtp is task-agnostic"),
    ({"d_task": 0}, "d_task must be"),
    ({"temperature": 0.0}, "temperature must be"),
    ({"keep_target": 1.5}, "keep_target must be"),
    ({"task_features": "pixels"}, "task_features"),
    ({"prune_layers": (1, 1)}, "prune_layers"),
    ({"keep_schedule": (0.5, 0.0)}, "keep_schedule"),
])
def test_out_of_range_pruning_settings_are_rejected(changes, message):
    with pytest.raises(ConfigError, match=message):
        PruningConfig(**changes)


def test_prune_layers_are_checked_against_model_depth():
    assert PruningConfig().resolved_prune_layers(6) == (1, 2, 3, 4)
    with pytest.raises(ConfigError, match="out of range for a 6-layer model"):
        PruningConfig(prune_layers=(2, 9)).resolved_prune_layers(6)


def test_pruning_switches_off_for_none_and_infinite_k():
    assert not PruningConfig().prunes
    assert not PruningConfig(method="ts-dtp", k=float("inf")).prunes
    assert PruningConfig(method="ts-dtp", k=1.0).prunes


@pytest.mark.parametrize("changes, message", [
    ({"epochs": 0}, "epochs"),
    ({"batch_size": 0}, "batch_size"),
    ({"max_train_samples": 0}, "max_train_samples"),
    ({"hard_ratio": 1.5}, "hard_ratio"),
    ({"pruning": PruningConfig(method="topk", gamma=0.0)}, "applied to a trained model"),
])
def test_out_of_range_training_settings_are_rejected(changes, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**changes)


def test_train_config_round_trips_through_a_dict():
    config = TrainConfig(pruning=PruningConfig(method="ts-dtp", k=0.5, prune_layers=(1, 3)), epochs=0.5)
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="unknown training settings: colour"):
        TrainConfig.from_dict({**config.to_dict(), "colour": "red"})


def test_the_method_table_answers_every_question_about_a_method():
    def having(flag: str) -> set[str]:
        return {name for name, method in METHOD_TABLE.items() if getattr(method, flag)}

    assert having("trained") == having("differentiable") == {"none", "ts-dtp", "general-dtp"}
    assert having("uses_scorer") == {"ts-dtp", "reference-masking"}
    assert having("scheduled") == {"topk", "random"}
    assert having("translatable") == set(METHODS) - {"reference-masking"}
    assert {name: method.default_gamma for name, method in METHOD_TABLE.items()} == {
        name: 0.5 if name in ("ts-dtp", "reference-masking") else 0.0 for name in METHODS}
    assert method_spec("topk").scheduled
    with pytest.raises(ConfigError, match="unknown method 'magic'; expected one of none, ts-dtp, general-dtp"):
        method_spec("magic")


@pytest.mark.parametrize("trained, override, gamma", [
    (PruningConfig(method="ts-dtp", gamma=0.3), {}, 0.3),  # the trained setting keeps its gamma
    (PruningConfig(method="ts-dtp", gamma=0.3), {"method": "reference-masking"}, 0.3),  # scorer to scorer
    (PruningConfig(method="ts-dtp", gamma=0.3), {"method": "topk"}, 0.0),  # the new method's default
    (PruningConfig(), {"method": "reference-masking"}, 0.5),
    (PruningConfig(), {"method": "general-dtp"}, 0.0),
    (PruningConfig(), {}, 0.5),  # a dense run's stored gamma (in its run-cache hash) is left alone
    (PruningConfig(), {"method": "ts-dtp", "gamma": 0.2}, 0.2),
])
def test_an_unset_gamma_follows_one_rule(trained, override, gamma):
    assert trained.with_overrides(override).gamma == gamma


def test_names_and_rows_use_the_effective_gamma():
    assert PruningConfig().effective_gamma == 0.0
    assert PruningConfig(method="ts-dtp", gamma=0.3).effective_gamma == 0.3
    assert isinstance(PruningConfig().with_overrides({"k": 0}).k, float)
    with pytest.raises(ConfigError, match="unknown pruning setting"):
        PruningConfig().with_overrides({"temperatur": 1.0})


def test_task_packages_register_their_runs_with_the_run_cache(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(MTConfig().to_dict()))
    assert read_run_config(tmp_path) == MTConfig()
    (tmp_path / "config.json").write_text(json.dumps(TrainConfig(task="qnli").to_dict()))
    assert read_run_config(tmp_path) == TrainConfig(task="qnli")
    (tmp_path / "config.json").write_text(json.dumps({"task": "mnli"}))
    with pytest.raises(CheckpointError, match="names task 'mnli'; expected one of qnli, sst2, wmt16"):
        read_run_config(tmp_path)
