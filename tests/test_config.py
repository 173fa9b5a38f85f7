"""Settings are validated on construction, with messages that name the problem."""

from __future__ import annotations

import json

import pytest

from tsdtp.classification.config import TrainConfig
from tsdtp.core.config import METHOD_TABLE, METHODS, PruningConfig, method_spec
from tsdtp.errors import CheckpointError, ConfigError
from tsdtp.runs.cache import config_hash, read_run_config
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
    ({"method": "ts-dtp", "k_offsets": (0.5, 11.0)}, r"k_offsets must hold values in \[-10, 10\]"),
    ({"method": "topk", "gamma": 0.0, "k_offsets": (0.5, 0.0)}, "topk has none"),
    ({"method": "reference-masking", "k_offsets": (0.5, 0.0)}, "reference-masking has none"),
    ({"queries": "first"}, "queries"),
    ({"method": "ts-dtp", "queries": "readout", "removal": "fuse"}, "queries 'readout' .* removal 'fuse'"),
])
def test_out_of_range_pruning_settings_are_rejected(changes, message):
    with pytest.raises(ConfigError, match=message):
        PruningConfig(**changes)


def test_prune_layers_are_checked_against_model_depth():
    assert PruningConfig().resolved_prune_layers(6) == (1, 2, 3, 4)
    with pytest.raises(ConfigError, match="out of range for a 6-layer model"):
        PruningConfig(prune_layers=(2, 9)).resolved_prune_layers(6)


def test_k_offsets_give_one_threshold_width_per_pruning_layer():
    config = PruningConfig(method="ts-dtp", k=0.5, k_offsets=(0.5, 0.25, 0.0, -0.25))
    assert [config.k_at(step) for step in range(4)] == [1.0, 0.75, 0.5, 0.25]
    assert PruningConfig(method="ts-dtp", k=0.5).k_at(3) == 0.5
    config.check_depth(6)
    with pytest.raises(ConfigError, match="k_offsets has 4 offset.*3 pruning layer"):
        config.replace(prune_layers=(1, 2, 3)).check_depth(6)
    assert "k_offsets" not in PruningConfig(method="ts-dtp").to_dict()  # recorded runs keep their hash
    for method in ("topk", "random", "reference-masking", "none"):  # no per-layer threshold: the offsets go
        assert config.with_overrides({"method": method}).k_offsets is None
    assert config.with_overrides({"method": "general-dtp-posthoc"}).k_offsets == config.k_offsets


def test_pruning_switches_off_for_none_and_infinite_k():
    assert not PruningConfig().prunes
    assert not PruningConfig(method="ts-dtp", k=float("inf")).prunes
    assert PruningConfig(method="ts-dtp", k=1.0).prunes


@pytest.mark.parametrize("changes, message", [
    ({"epochs": 0}, "epochs"),
    ({"batch_size": 0}, "batch_size"),
    ({"max_train_samples": 0}, "max_train_samples"),
    ({"hard_ratio": 1.5}, "hard_ratio"),
    ({"pruning": PruningConfig(method="random", gamma=0.0)}, "applied to a trained model"),
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

    assert having("differentiable") == {"none", "ts-dtp", "general-dtp"}
    assert having("trained") == having("differentiable") | {"topk"}  # top-k fine-tunes with its hard rule
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


BASE_HASHES = {
    "default": "a115deee0e0effcd8887b1fef165763759b107be771e76824c9757e16d088807",
    "ts-dtp": "020ee0ce3babcd4dc7b870e2c175341f9fb677b99466662a8c7d83c7b0b67c36",
    "translation": "c8ac41efcc5be2d16031255793c54563a0d615b2886e23f34e7679571f659c5f",
}
"""Run-cache hashes of three configs as tsdtp computed them at commit b732d3f, before the recipe fields."""


def test_recipe_fields_at_their_defaults_leave_old_dicts_and_run_hashes_unchanged():
    ts_dtp = TrainConfig(pruning=PruningConfig(method="ts-dtp", k=0.5), epochs=0.5)
    assert config_hash(TrainConfig()) == BASE_HASHES["default"]
    assert config_hash(ts_dtp) == BASE_HASHES["ts-dtp"]
    assert config_hash(MTConfig()) == BASE_HASHES["translation"]
    recipe = {"teacher", "distill_weight", "distill_temperature", "rank_weight", "selection_fraction"}
    assert not recipe & set(TrainConfig().to_dict())
    assert not {"removal", "keep_ramp", "exit_mode"} & set(PruningConfig().to_dict())
    assert not {"teacher", "distill_weight", "distill_temperature"} & set(MTConfig().to_dict())
    assert PruningConfig(exit_mode="exit").to_dict()["exit_mode"] == "exit"


def test_a_recipe_field_set_is_recorded_hashed_and_read_back():
    config = TrainConfig(pruning=PruningConfig(method="ts-dtp", removal="fuse", keep_ramp=0.25), rank_weight=0.01,
                         teacher="runs/dense", distill_temperature=3.0, selection_fraction=0.1)
    data = config.to_dict()
    assert data["pruning"]["removal"] == "fuse" and data["pruning"]["keep_ramp"] == 0.25
    assert data["rank_weight"] == 0.01 and data["teacher"] == "runs/dense" and "distill_weight" not in data
    assert TrainConfig.from_dict(json.loads(json.dumps(data))) == config
    assert config_hash(config, teacher_hash="a") != config_hash(config, teacher_hash="b")


def test_the_teacher_is_hashed_by_the_run_it_names(tmp_path):
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(json.dumps(TrainConfig().to_dict()))
    first, second = (TrainConfig(teacher=str(tmp_path / name)) for name in ("one", "two"))
    assert config_hash(first) == config_hash(second) == config_hash(first, teacher_hash=config_hash(TrainConfig()))


@pytest.mark.parametrize("changes, message", [
    ({"rank_weight": 0.01}, "give a teacher run"),
    ({"distill_weight": 1.5}, "distill_weight must be"),
    ({"distill_temperature": 0.0}, "distill_temperature must be"),
    ({"selection_fraction": 0.9}, "selection_fraction must be"),
    ({"method": "reference-masking", "removal": "fuse"}, "no removal 'fuse'"),
    ({"keep_ramp": 2.0}, "keep_ramp must be"),
])
def test_bad_recipe_settings_are_rejected(changes, message):
    with pytest.raises(ConfigError, match=message):
        pruning = {key: changes.pop(key) for key in ("method", "removal", "keep_ramp") if key in changes}
        TrainConfig(pruning=PruningConfig(**pruning), **changes)
