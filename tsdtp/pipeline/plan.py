"""The plan of a profile: every step validated, training steps with their configuration and cached run folder.

`make_plan` checks the whole profile before anything runs: every notebook exists and declares
the parameters given; every training configuration and evaluation is a valid `TrainConfig` /
`MTConfig` / `LlmTrainConfig` / `PruningConfig`; `init_from` and `teacher` name an earlier training step of
the same task and kind.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tsdtp.classification.experiments import train_config
from tsdtp.core.config import PruningConfig
from tsdtp.data_files import data_dir_from_env
from tsdtp.errors import ConfigError, TsdtpError
from tsdtp.llm.experiments import llm_config
from tsdtp.pipeline.spec import (
    Output,
    Profile,
    StepSpec,
    check_defaults_used,
    read_outputs,
    read_profile,
    read_step,
)
from tsdtp.runs.cache import RUN_REFERENCES, RunConfig, config_hash, run_cache_dir
from tsdtp.translation.experiments import translation_config

TRAINING_NOTEBOOKS: dict[str, Callable[..., RunConfig]] = {"01_train.ipynb": train_config,
                                                           "05_translation.ipynb": translation_config,
                                                           "08_llm_classify.ipynb": llm_config}
"""Notebooks that train one configuration, with the function building it from their parameters."""


@dataclass(frozen=True)
class Step:
    """One notebook execution, validated; `config` and `run_dir` are set for training steps."""

    id: str
    notebook: Path
    parameters: dict[str, Any]
    declared: frozenset[str]
    outputs: tuple[Output, ...] = ()
    config: RunConfig | None = None
    config_hash: str | None = None
    run_dir: Path | None = None
    figures_only_parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    """A validated profile: where everything goes and the steps in order."""

    profile: str
    description: str
    spec_path: Path
    root: Path
    out_dir: Path
    runs_root: Path
    data_dir: Path | None
    steps: tuple[Step, ...] = field(default_factory=tuple)
    launcher: str | None = None

    def executed_name(self, step: Step) -> str:
        """File name of a step's executed notebook (suffixed with the step id when a notebook runs twice)."""
        uses = sum(1 for other in self.steps if other.notebook == step.notebook)
        return step.notebook.name if uses == 1 else f"{step.notebook.stem}-{step.id}.ipynb"


def display_path(path: Path, root: Path) -> str:
    """`path` relative to `root` when inside it (how notebooks, run with cwd=root, see it), else absolute."""
    path = Path(os.path.abspath(path))
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def make_plan(profile: str, spec_path: str | Path | None = None, data_dir: str | Path | None = None,
              runs_root: str | Path | None = None, out_dir: str | Path | None = None) -> Plan:
    """Validate `profile` of the spec completely, without running anything; returns the steps to run.

    Raises ConfigError naming the step for an unknown notebook or parameter, an invalid training
    configuration or evaluation (unknown method, k out of range, ...), or a dangling `init_from`.
    """
    spec = read_profile(profile, spec_path, runs_root, out_dir)
    steps: list[Step] = []
    used_defaults: set[str] = set()
    for raw in spec.steps:
        checked = read_step(spec, raw, {step.id for step in steps})
        used_defaults |= checked.defaulted
        step = _plan_step(spec, checked, steps)
        _check_outputs_unique(step, steps)
        steps.append(step)
    check_defaults_used(spec, used_defaults)
    data = data_dir_from_env(data_dir)
    return Plan(spec.name, spec.description, spec.spec_path, spec.root, spec.out_dir, spec.runs_root,
                data.resolve() if data is not None else None, tuple(steps), spec.launcher)


def _plan_step(profile: Profile, checked: StepSpec, earlier: list[Step]) -> Step:
    """The step of `checked`; a training step gets its config, any invalid setting a ConfigError naming the step."""
    builder = TRAINING_NOTEBOOKS.get(checked.notebook.name)
    try:
        if builder is None:
            _check_plain_parameters(checked.parameters)
            step = Step(checked.id, checked.notebook, checked.parameters, checked.declared)
        else:
            step = _train_step(checked, earlier, profile, builder)
    except (TsdtpError, TypeError, ValueError) as exc:
        raise ConfigError(f"step {checked.id} ({checked.notebook.name}): {exc}") from exc
    return dataclasses.replace(step, outputs=read_outputs(checked.id, checked.outputs),
                               figures_only_parameters=checked.figures_only_parameters)


def _check_plain_parameters(parameters: dict[str, Any]) -> None:
    """Pruning settings named in any notebook's parameters (`method(s)`, `k`) must be valid."""
    for method in ([parameters["method"]] if "method" in parameters else []) + list(parameters.get("methods", [])):
        PruningConfig(method=method, gamma=0.0)
    if "k" in parameters:
        PruningConfig(k=float(parameters["k"]))


def _check_outputs_unique(step: Step, earlier: list[Step]) -> None:
    """ConfigError when an output of `step` is also declared by an earlier step."""
    owners = {output.name: other.id for other in earlier for output in other.outputs}
    for output in step.outputs:
        if output.name in owners:
            raise ConfigError(f"output {output.name} is declared by {owners[output.name]} and {step.id}")
        owners[output.name] = step.id


def _train_step(checked: StepSpec, earlier: list[Step], profile: Profile, builder: Callable[..., RunConfig]) -> Step:
    """A training step: its config (made by `builder`), the hash-named run folder and the validated evaluations.

    Every parameter of `builder` is passed to the notebook explicitly (defaults filled in), so
    the notebook trains exactly the configuration hashed here.
    """
    fields = _config_fields(checked, builder)
    parents = {name: _init_parent(fields[name], earlier, name) for name in RUN_REFERENCES
               if fields.get(name) is not None}
    for name, parent in parents.items():
        fields[name] = display_path(parent.run_dir, profile.root)
    hashes = [parents[name].config_hash if name in parents else None for name in RUN_REFERENCES]
    config = builder(**fields)
    for name, parent in parents.items():
        if parent.config is not None and parent.config.task != config.task:
            raise ConfigError(f"{name} {parent.id!r} was trained on {parent.config.task}, not {config.task}")
        if parent.config is not None and type(parent.config) is not type(config):
            raise ConfigError(f"{name} {parent.id!r} is a {type(parent.config).__name__} run; {checked.id} needs a "
                              f"{type(config).__name__} run")
    for override in checked.parameters.get("evals", [{}]):
        if not isinstance(override, dict):
            raise ConfigError(f"evals entries must be mappings of pruning settings (got {override!r})")
        config.pruning.with_overrides(override)
    return Step(checked.id, checked.notebook, {**checked.parameters, **fields}, checked.declared, (), config,
                config_hash(config, *hashes), run_cache_dir(config, profile.runs_root, *hashes))


def _config_fields(checked: StepSpec, builder: Callable[..., RunConfig]) -> dict[str, Any]:
    """Every parameter of `builder`: the step's value, else the builder's default; the notebook must take them all."""
    signature = inspect.signature(builder).parameters
    missing = set(signature) - checked.declared
    if missing:
        raise ConfigError(f"{checked.notebook.name} does not declare the config parameter(s) {sorted(missing)}")
    return {name: checked.parameters.get(name, signature[name].default) for name in signature}


def _init_parent(step_id: str, earlier: list[Step], field: str = "init_from") -> Step:
    """The earlier training step `init_from` (or `teacher`: `field`) names; ConfigError when there is none."""
    parent = next((step for step in earlier if step.id == step_id and step.config is not None), None)
    if parent is None or parent.run_dir is None:
        raise ConfigError(f"{field} {step_id!r} is not an earlier training step")
    return parent
