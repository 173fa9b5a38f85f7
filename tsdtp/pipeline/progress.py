"""What a person sees during `tsdtp reproduce`: the plan with time estimates, then each step's time and what is left.

Estimates come from the wall times the last run of the same profile recorded in its
`manifest.json`: a step's time counts only when the step did the same thing then (trained,
evaluated a cached run, or made figures) with the same configuration.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tsdtp.pipeline.plan import Plan, Step, display_path
from tsdtp.runs.cache import run_finished

TRAIN, EVALUATE, RUN, KEPT = "train", "evaluate", "run", "kept"
"""A step's action: train its run (then evaluate), evaluate its finished cached run, run a notebook that trains
nothing, or keep the last run's results without running (training steps under `--figures-only`)."""


def step_action(step: Step, force: bool, figures_only: bool) -> str:
    """What `step` will do in this reproduce (one of `TRAIN`, `EVALUATE`, `RUN`, `KEPT`)."""
    if step.run_dir is None:
        return RUN
    if figures_only:
        return KEPT
    return EVALUATE if not force and run_finished(step.run_dir) else TRAIN


def previous_records(out_dir: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The last run's manifest in `out_dir` and its step records by id (both empty without a readable one)."""
    try:
        manifest = json.loads((out_dir / "manifest.json").read_text())
        return manifest, {record["id"]: record for record in manifest.get("steps", [])}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}, {}


def recorded_action(record: Mapping[str, Any]) -> str:
    """The action a manifest record says its step took (older manifests say it with `cached` only)."""
    if "action" in record:
        return str(record["action"])
    return {True: EVALUATE, False: TRAIN}.get(record.get("cached"), RUN)


def estimate(step: Step, action: str, previous: Mapping[str, Mapping[str, Any]]) -> float | None:
    """Seconds `step` should take: the last recorded time of the same action and config, else None."""
    if action == KEPT:
        return 0.0
    record = previous.get(step.id)
    if record is None or recorded_action(record) != action or record.get("config_hash") != step.config_hash:
        return None
    wall = record.get("wall_s")
    return float(wall) if isinstance(wall, (int, float)) and wall > 0 else None


def duration(seconds: float) -> str:
    """`42 s`, `7 min`, `2 h 05 min`."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def remaining(estimates: list[float | None]) -> str:
    """`about 12 min` for the steps given, naming those without a recorded time."""
    known = [seconds for seconds in estimates if seconds is not None]
    unknown = len(estimates) - len(known)
    if not unknown:
        return f"about {duration(sum(known))}"
    if not known:
        return f"unknown ({unknown} step(s) with no recorded time)"
    return f"about {duration(sum(known))} + {unknown} step(s) with no recorded time"


def plan_lines(plan: Plan, actions: Mapping[str, str], estimates: Mapping[str, float | None]) -> list[str]:
    """The plan before anything runs: one line per step (what it does, its estimate), then the total."""
    counts = {action: sum(1 for value in actions.values() if value == action) for action in (TRAIN, EVALUATE, RUN)}
    lines = [f"plan: profile {plan.profile}, {len(plan.steps)} steps into {display_path(plan.out_dir, plan.root)} "
             f"({counts[TRAIN]} to train, {counts[EVALUATE]} cached runs to evaluate, {counts[RUN]} without training)"]
    shown = [step for step in plan.steps if actions[step.id] != KEPT]
    width = max((len(step.id) for step in shown), default=0)
    for number, step in enumerate(plan.steps, start=1):
        if actions[step.id] == KEPT:
            continue
        seconds = estimates[step.id]
        when = f"~{duration(seconds)}" if seconds is not None else "no recorded time"
        lines.append(f"  {number:>2}. {step.id:<{width}}  {step.notebook.name:<28} {actions[step.id]:<8} {when}")
    kept = len(plan.steps) - len(shown)
    if kept:
        lines.append(f"  {kept} training step(s) not run: their results and keep traces are kept from the last run")
    lines.append(f"estimate: {remaining([estimates[step.id] for step in shown])}")
    return lines
