"""`reproduce`: run every notebook of a pipeline profile with papermill and publish reports/.

The spec (`pipeline.yaml` at the repository root, `tsdtp.pipeline.spec`) lists, per profile,
the steps: a notebook, its parameters and its outputs. `reproduce` then

1. validates the whole profile before anything runs (`tsdtp.pipeline.plan.make_plan`) and logs
   the plan: what each step will do, with estimates from the last run (`tsdtp.pipeline.progress`);
2. executes the steps in order into a staging folder `<out_dir>/.staging/`
   (`tsdtp.pipeline.staging`: executed notebooks in `notebooks/`, figures in `figures/`, tables in
   `tables/`, and a copy of the reports' data `data/` that training steps update: results.csv,
   translation.csv and the stored keep traces), training only runs whose hash-named cache folder
   (`tsdtp.runs.cache.run_cache_dir`) does not hold a finished run; with `figures_only` it runs
   only the steps that train nothing, so figures and tables are made again from `<out_dir>/data/`;
3. writes `manifest.json` and the gallery `README.md`, then renames every new file into
   `<out_dir>/`. A failing step stops the pipeline, names the notebook and the cell, and
   leaves the partly executed copy in the staging folder; `<out_dir>/` keeps the last good run.

A profile's `launcher` (e.g. `torchrun --nproc-per-node 2`) is set as `TSDTP_LAUNCHER` while the steps
run, so their training goes through it (`tsdtp.runs.launch`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from tsdtp.errors import ConfigError, TsdtpError
from tsdtp.pipeline.execute import PipelineError, execute_notebook
from tsdtp.pipeline.gallery import write_gallery
from tsdtp.pipeline.manifest import data_checksums, write_manifest
from tsdtp.pipeline.plan import Plan, Step, display_path, make_plan
from tsdtp.pipeline.progress import (
    EVALUATE,
    KEPT,
    TRAIN,
    duration,
    estimate,
    plan_lines,
    previous_records,
    remaining,
    step_action,
)
from tsdtp.pipeline.staging import (
    DATA_FOLDER,
    HYPOTHESES_FOLDER,
    TRACES_FOLDER,
    forget_runs,
    publish,
    restore_later_rows,
    stage,
    take_pending,
)
from tsdtp.pipeline.window import check_parents_cached, outside_window, window_flags
from tsdtp.runs.cache import adopt_run, config_hash, read_run_config, run_finished
from tsdtp.runs.launch import launcher_environment

__all__ = ["PipelineError", "adopt_runs", "reproduce"]


@dataclass(frozen=True)
class _Run:
    """One reproduce in progress: the plan, where it stages, what each step does and how long it should take."""

    plan: Plan
    staging: Path
    force: bool
    figures_only: bool
    actions: dict[str, str]
    estimates: dict[str, float | None]
    log: Callable[[str], None]
    stream: TextIO | None


def _injected(run: _Run, step: Step) -> dict[str, Any]:
    """The parameters the pipeline fills in (`tsdtp.pipeline.spec.INJECTED`), paths as notebooks see them."""
    plan, data = run.plan, run.staging / DATA_FOLDER
    return {
        "run_dir": display_path(step.run_dir, plan.root) if step.run_dir else None,
        "data_dir": str(plan.data_dir) if plan.data_dir else None,
        "results_csv": display_path(data / "results.csv", plan.root),
        "bench_csv": display_path(data / "bench.csv", plan.root),
        "traces_dir": display_path(data / TRACES_FOLDER, plan.root),
        "hypotheses_dir": display_path(data / HYPOTHESES_FOLDER, plan.root),
        "figures_dir": display_path(run.staging / "figures", plan.root),
        "tables_dir": display_path(run.staging / "tables", plan.root),
        "force": run.force,
        "progress": True,
    }


def _check_outputs(run: _Run, step: Step, executed: Path, pending: dict[str, str]) -> None:
    """PipelineError when a declared output is missing; a figure awaiting its data is allowed with --figures-only."""
    if pending and not run.figures_only:
        name, reason = next(iter(pending.items()))
        raise PipelineError(f"notebook {step.notebook.name} (step {step.id}) could not draw {name}: {reason}; "
                            f"the training steps before it should have made that data (see {executed})")
    missing = [f for o in step.outputs if not o.optional and o.name not in pending for f in o.files()
               if not (run.staging / f).is_file()]
    if missing:
        raise PipelineError(f"notebook {step.notebook.name} (step {step.id}) ran but did not write {missing}; "
                            f"see {executed}")


def _run_step(run: _Run, step: Step, number: int) -> dict[str, Any]:
    """Execute `step` (the plan's `number`th) into the staging folder, check its outputs, return its manifest record."""
    plan, action = run.plan, run.actions[step.id]
    executed = run.staging / "notebooks" / plan.executed_name(step)
    injected = _injected(run, step)
    parameters = {**step.parameters, **(step.figures_only_parameters if run.figures_only else {}),
                  **{k: v for k, v in injected.items() if k in step.declared}}
    what = {TRAIN: " (training)", EVALUATE: " (cached run, evaluating)"}.get(action, "")
    run.log(f"[{number}/{len(plan.steps)}] {step.id}: {step.notebook.name}{what}")
    began = time.perf_counter()
    execute_notebook(plan, step, parameters, executed, run.stream)
    wall = round(time.perf_counter() - began, 1)
    staged_at, published_at = display_path(run.staging, plan.root), display_path(plan.out_dir, plan.root)
    pending = {name: reason.replace(staged_at, published_at) for name, reason in take_pending(run.staging).items()}
    _check_outputs(run, step, executed, pending)
    return {"id": step.id, "notebook": f"notebooks/{step.notebook.name}",
            "executed": f"notebooks/{plan.executed_name(step)}", "parameters": parameters,
            "run_dir": injected["run_dir"], "config_hash": step.config_hash, "action": action,
            "cached": action == EVALUATE if step.run_dir else None, "wall_s": wall, "pending": pending,
            "outputs": [f for o in step.outputs for f in o.files() if (run.staging / f).is_file()]}


def _kept_record(step: Step, previous: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The last run's record of a training step that --figures-only does not run, marked `kept`."""
    record = previous.get(step.id, {"id": step.id, "notebook": f"notebooks/{step.notebook.name}",
                                    "config_hash": step.config_hash, "wall_s": None, "outputs": []})
    return {**record, "kept": True}


def _run_steps(run: _Run, previous: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Every step in order (kept ones from `previous`), with its time and the estimate of what is left after it."""
    records = []
    steps = run.plan.steps
    for number, step in enumerate(steps, start=1):
        if run.actions[step.id] == KEPT:
            records.append(_kept_record(step, previous))
            continue
        record = _run_step(run, step, number)
        records.append(record)
        left = [run.estimates[later.id] for later in steps[number:] if run.actions[later.id] != KEPT]
        run.log(f"    done in {duration(record['wall_s'])}" + (f"; left: {remaining(left)}" if left else ""))
    return records


def _pending_lines(plan: Plan, records: list[dict[str, Any]]) -> list[str]:
    """One line per figure not drawn for want of data, under a line saying what makes that data."""
    pending = [(name, reason) for record in records for name, reason in record.get("pending", {}).items()]
    if not pending:
        return []
    command = f"tsdtp reproduce --profile {plan.profile}" + (" (make reproduce)" if plan.profile == "full" else "")
    header = (f"{len(pending)} figure(s) not regenerated: their data is not in "
              f"{display_path(plan.out_dir / DATA_FOLDER, plan.root)}; they await {command}:")
    return [header] + [f"  {name}: {reason}" for name, reason in pending]


def _stale_runs(plan: Plan, previous: dict[str, dict[str, Any]]) -> set[str]:
    """The runs the last reproduce recorded (`previous`) for steps of `plan` that now make another run."""
    current = {step.id: display_path(step.run_dir, plan.root) for step in plan.steps if step.run_dir is not None}
    return {record["run_dir"] for step_id, record in previous.items()
            if record.get("run_dir") and step_id in current and record["run_dir"] != current[step_id]}


def rerun_runs(plan: Plan, actions: dict[str, str]) -> set[str]:
    """The runs whose published rows and traces the steps about to train or evaluate replace: each such step's
    run, unless a kept step (outside `--from`/`--until`) shares it, whose results must stand."""
    def runs(wanted: tuple[str, ...]) -> set[str]:
        return {display_path(step.run_dir, plan.root) for step in plan.steps
                if step.run_dir is not None and actions[step.id] in wanted}
    return runs((TRAIN, EVALUATE)) - runs((KEPT,))


def reproduce(profile: str, force: bool = False, spec_path: str | Path | None = None,
              data_dir: str | Path | None = None, runs_root: str | Path | None = None,
              out_dir: str | Path | None = None, log: Callable[[str], None] = print, figures_only: bool = False,
              stream: TextIO | None = None, until: str | None = None, start: str | None = None) -> Path:
    """Run every step of `profile` and publish its notebooks, figures, tables, data, manifest and gallery.

    `force` retrains every training step even when its cached run is finished. `figures_only`
    runs only the steps that train nothing (figures and tables from `<out_dir>/data/`); there a
    figure whose data is missing is listed, not an error. `start` and `until` (training steps' ids) run the
    training steps from `start` and up to `until` only, then every step that trains nothing: a long profile
    published in parts (`tsdtp.pipeline.window`). A reproduce that trains drops the published rows, keep traces
    and translations of the runs the last one made for steps whose settings have changed since.
    Before running, the plan is logged with estimates from the last run's manifest; each step's notebook
    output goes to `stream` (None: not shown). Returns the path of the written manifest.json. Raises
    ConfigError before running anything when the profile is invalid, and PipelineError when a notebook fails
    or misses an output.
    """
    if figures_only and force:
        raise ConfigError("--figures-only trains nothing, so --force has nothing to retrain; drop one of them")
    if figures_only and (until or start):
        raise ConfigError(f"--figures-only runs no training step, so{window_flags(start, until)} has nothing to "
                          "bound; drop one of them")
    plan = make_plan(profile, spec_path, data_dir, runs_root, out_dir)
    old, previous = previous_records(plan.out_dir)
    actions = {step.id: step_action(step, force, figures_only) for step in plan.steps}
    actions.update({step.id: KEPT for step in outside_window(plan, start, until)})
    check_parents_cached(plan, {i for i, a in actions.items() if a == KEPT},
                         {i for i, a in actions.items() if a in (TRAIN, EVALUATE)})
    estimates = {step.id: estimate(step, actions[step.id], previous) for step in plan.steps}
    for line in plan_lines(plan, actions, estimates):
        log(line)
    if plan.launcher is not None:
        log(f"training steps run through `{plan.launcher}`")
    data = old.get("data", {}) if figures_only else data_checksums(plan)
    started, clock = datetime.now(timezone.utc), time.perf_counter()
    staging, carried = stage(plan.out_dir)
    stale = set() if figures_only else _stale_runs(plan, previous)
    forget_runs(staging, stale | rerun_runs(plan, actions))
    if stale:
        log(f"dropped the published results of {len(stale)} run(s) that the last reproduce made for steps whose "
            f"settings have changed since: {', '.join(sorted(stale))}")
    run = _Run(plan, staging, force, figures_only, actions, estimates, log, stream)
    with launcher_environment(plan.launcher):
        records = _run_steps(run, previous)
    kept = {display_path(step.run_dir, plan.root) for step in plan.steps
            if step.run_dir is not None and actions[step.id] == KEPT}
    order = {display_path(step.run_dir, plan.root): index for index, step in enumerate(plan.steps)
             if step.run_dir is not None}
    restored = restore_later_rows(staging, plan.out_dir / DATA_FOLDER / "results.csv", order, kept)
    if restored:
        log(f"kept the published rows of {', '.join(restored)}: a step earlier in the profile wrote the same keys")
    wall = round(time.perf_counter() - clock, 1)
    write_manifest(staging / "manifest.json", plan, force, started, wall, data, records, figures_only, until, start)
    write_gallery(plan, staging, records, figures_only, until, start)
    publish(staging, plan.out_dir, carried)
    log(f"reports written to {display_path(plan.out_dir, plan.root)} in {duration(wall)}")
    for line in _pending_lines(plan, records):
        log(line)
    return plan.out_dir / "manifest.json"


def adopt_runs(profile: str, search_dir: str | Path, spec_path: str | Path | None = None,
               runs_root: str | Path | None = None) -> dict[str, Path]:
    """Register finished runs under `search_dir` whose configs match training steps of `profile`.

    Each match is linked into the run cache (`tsdtp.runs.cache.adopt_run`), so `reproduce`
    evaluates it instead of training it again. Returns step id -> cache folder.
    """
    plan = make_plan(profile, spec_path, runs_root=runs_root)
    wanted = {step.config_hash: step for step in plan.steps if step.config is not None}
    adopted: dict[str, Path] = {}
    for candidate in sorted(Path(search_dir).iterdir()):
        if candidate.is_symlink() or not candidate.is_dir() or not run_finished(candidate):
            continue
        try:
            digest = config_hash(read_run_config(candidate))
        except TsdtpError:
            continue
        step = wanted.get(digest)
        if step is not None and step.id not in adopted:
            adopted[step.id] = adopt_run(candidate, plan.runs_root)
    return adopted
