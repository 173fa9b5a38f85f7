"""Which training steps a reproduce runs: `--from` and `--until` publish a long profile in parts.

The training steps outside the window are kept: their published results, keep traces and translations
stand. A step inside it that starts from, or distils from, a kept step needs that step's finished run in the
cache, so the window is checked before anything runs.
"""

from __future__ import annotations

from collections.abc import Mapping

from tsdtp.errors import ConfigError
from tsdtp.pipeline.plan import Plan, Step, display_path
from tsdtp.runs.cache import RUN_REFERENCES, run_finished


def window_flags(start: str | None, until: str | None) -> str:
    """The command-line flags of a window: ` --from A --until B`, either part, or ``."""
    return (f" --from {start}" if start else "") + (f" --until {until}" if until else "")


def outside_window(plan: Plan, start: str | None, until: str | None) -> list[Step]:
    """The training steps before `start` and after `until` (ids of training steps; None: no bound).

    Raises ConfigError when a bound is not a training step of the profile, or `start` comes after `until`.
    """
    training = [step for step in plan.steps if step.run_dir is not None]
    ids = [step.id for step in training]
    for flag, bound in (("--from", start), ("--until", until)):
        if bound is not None and bound not in ids:
            raise ConfigError(f"{flag} {bound!r} is not a training step of profile {plan.profile}; "
                              f"its training steps are {', '.join(ids) or 'none'}")
    first = ids.index(start) if start else 0
    last = ids.index(until) if until else len(ids) - 1
    if start and until and first > last:
        raise ConfigError(f"--from {start!r} comes after --until {until!r} in profile {plan.profile}")
    return training[:first] + training[last + 1:]


def check_parents_cached(plan: Plan, kept: set[str], running: set[str]) -> None:
    """ConfigError when a running step's `init_from` or `teacher` is a kept step whose run is not in the cache."""
    by_path = {display_path(step.run_dir, plan.root): step for step in plan.steps if step.run_dir is not None}
    for step in plan.steps:
        if step.id not in running:
            continue
        for name, parent in _parents(step, by_path).items():
            if parent.id in kept and parent.run_dir is not None and not run_finished(parent.run_dir):
                raise ConfigError(f"step {step.id} needs the run of {parent.id} ({name}), which is not in the run "
                                  f"cache {display_path(plan.runs_root, plan.root)}; start earlier: --from {parent.id}")


def _parents(step: Step, by_path: Mapping[str, Step]) -> dict[str, Step]:
    """The steps a training step's `init_from` and `teacher` name, by field."""
    return {name: by_path[step.parameters[name]] for name in RUN_REFERENCES
            if step.parameters.get(name) in by_path}
