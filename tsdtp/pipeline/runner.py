"""`reproduce`: run every notebook of a pipeline profile with papermill and publish reports/.

The spec (`pipeline.yaml` at the repository root, `tsdtp.pipeline.spec`) lists, per profile,
the steps: a notebook, its parameters and its outputs. `reproduce` then

1. validates the whole profile before anything runs (`tsdtp.pipeline.plan.make_plan`);
2. executes the steps in order into a staging folder `<out_dir>/.staging/` (executed notebooks
   in `notebooks/`, figures in `figures/`, tables in `tables/`), training only runs whose
   hash-named cache folder (`tsdtp.runs.cache.run_cache_dir`) does not hold a finished run;
3. writes `manifest.json` and the gallery `README.md`, then renames every new file into
   `<out_dir>/`. A failing step stops the pipeline, names the notebook and the cell, and
   leaves the partly executed copy in the staging folder; `<out_dir>/` keeps the last good run.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tsdtp.errors import TsdtpError
from tsdtp.pipeline.gallery import write_gallery
from tsdtp.pipeline.manifest import data_checksums, file_sha256, write_manifest
from tsdtp.pipeline.plan import Plan, Step, display_path, make_plan
from tsdtp.runs.cache import adopt_run, config_hash, read_run_config, run_finished

STAGED_FOLDERS: tuple[str, ...] = ("figures", "tables", "notebooks")
"""The folders of the reports, as the staging folder holds them."""


class PipelineError(TsdtpError):
    """A pipeline step failed while running."""


def _stage(plan: Plan) -> tuple[Path, dict[str, str]]:
    """A fresh staging folder holding a copy of the current tables; returns it and the copies' checksums."""
    staging = plan.out_dir / ".staging"
    if staging.exists():
        shutil.rmtree(staging)
    for sub in STAGED_FOLDERS:
        (staging / sub).mkdir(parents=True)
    carried = {}
    for path in sorted((plan.out_dir / "tables").glob("*")) if (plan.out_dir / "tables").is_dir() else []:
        if path.is_file():
            shutil.copy2(path, staging / "tables" / path.name)
            carried[f"tables/{path.name}"] = file_sha256(path)
    return staging, carried


def _publish(staging: Path, out_dir: Path, carried: dict[str, str]) -> None:
    """Rename each new or changed staged file into `out_dir`, then remove the staging folder."""
    for path in sorted(p for p in staging.rglob("*") if p.is_file()):
        relative = path.relative_to(staging).as_posix()
        if relative in carried and carried[relative] == file_sha256(path):
            continue
        target = out_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
    shutil.rmtree(staging)


def _injected(plan: Plan, step: Step, staging: Path, force: bool) -> dict[str, Any]:
    """The parameters the pipeline fills in (`tsdtp.pipeline.spec.INJECTED`), paths as notebooks see them."""
    return {
        "run_dir": display_path(step.run_dir, plan.root) if step.run_dir else None,
        "data_dir": str(plan.data_dir) if plan.data_dir else None,
        "results_csv": display_path(staging / "tables" / "results.csv", plan.root),
        "bench_csv": display_path(staging / "tables" / "bench.csv", plan.root),
        "figures_dir": display_path(staging / "figures", plan.root),
        "tables_dir": display_path(staging / "tables", plan.root),
        "force": force,
    }


def _execute(plan: Plan, step: Step, parameters: dict[str, Any], executed: Path) -> None:
    """Run the step's notebook into `executed`; PipelineError naming the notebook and cell when it fails."""
    import papermill  # papermill takes seconds to import: only when a notebook runs
    from papermill.exceptions import PapermillExecutionError

    try:
        papermill.execute_notebook(str(step.notebook), str(executed), parameters=parameters, kernel_name="python3",
                                   progress_bar=False, cwd=str(plan.root), start_timeout=180)
    except PapermillExecutionError as exc:
        first = next((line for line in exc.source.splitlines() if line.strip()), "")
        raise PipelineError(
            f"notebook {step.notebook.name} (step {step.id}) failed in cell {exc.cell_index + 1} "
            f"(In [{exc.exec_count}], starting `{first}`): {exc.ename}: {exc.evalue}\n"
            f"The partly executed copy is {executed}; {plan.out_dir} still holds the last good run.") from None
    except Exception as exc:  # kernel death, start timeout: papermill raises many types
        raise PipelineError(f"notebook {step.notebook.name} (step {step.id}) could not run: "
                            f"{type(exc).__name__}: {exc}\nThe partly executed copy is {executed}; "
                            f"{plan.out_dir} still holds the last good run.") from exc


def _run_step(plan: Plan, step: Step, number: int, staging: Path, force: bool,
              log: Callable[[str], None]) -> dict[str, Any]:
    """Execute `step` (the plan's `number`th) into `staging`, check its declared outputs, return its manifest record."""
    executed = staging / "notebooks" / plan.executed_name(step)
    injected = _injected(plan, step, staging, force)
    parameters = {**step.parameters, **{k: v for k, v in injected.items() if k in step.declared}}
    cached = step.run_dir is not None and not force and run_finished(step.run_dir)
    what = "" if step.run_dir is None else (" (cached run, evaluating)" if cached else " (training)")
    log(f"[{number}/{len(plan.steps)}] {step.id}: {step.notebook.name}{what}")
    began = time.perf_counter()
    _execute(plan, step, parameters, executed)
    wall = round(time.perf_counter() - began, 1)
    missing = [f for o in step.outputs if not o.optional for f in o.files() if not (staging / f).is_file()]
    if missing:
        raise PipelineError(f"notebook {step.notebook.name} (step {step.id}) ran but did not write {missing}; "
                            f"see {executed}")
    log(f"    done in {wall:.1f} s")
    return {"id": step.id, "notebook": f"notebooks/{step.notebook.name}",
            "executed": f"notebooks/{plan.executed_name(step)}", "parameters": parameters,
            "run_dir": injected["run_dir"], "config_hash": step.config_hash,
            "cached": cached if step.run_dir else None, "wall_s": wall,
            "outputs": [f for o in step.outputs for f in o.files() if (staging / f).is_file()]}


def reproduce(profile: str, force: bool = False, spec_path: str | Path | None = None,
              data_dir: str | Path | None = None, runs_root: str | Path | None = None,
              out_dir: str | Path | None = None, log: Callable[[str], None] = print) -> Path:
    """Run every step of `profile` and publish its notebooks, figures, tables, manifest and gallery.

    `force` retrains every training step even when its cached run is finished. Returns the
    path of the written manifest.json. Raises ConfigError before running anything when the
    profile is invalid, and PipelineError when a notebook fails or misses a declared output.
    """
    plan = make_plan(profile, spec_path, data_dir, runs_root, out_dir)
    data = data_checksums(plan)
    started, clock = datetime.now(timezone.utc), time.perf_counter()
    staging, carried = _stage(plan)
    records = [_run_step(plan, step, number, staging, force, log) for number, step in enumerate(plan.steps, start=1)]
    wall = round(time.perf_counter() - clock, 1)
    write_manifest(staging / "manifest.json", plan, force, started, wall, data, records)
    write_gallery(plan, staging, records)
    _publish(staging, plan.out_dir, carried)
    log(f"reports written to {plan.out_dir} in {wall:.0f} s")
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
