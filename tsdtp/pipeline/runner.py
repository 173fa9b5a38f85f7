"""`tsdtp reproduce`: run every notebook of a pipeline profile with papermill and publish reports/.

The spec (`pipeline.yaml` at the repository root) lists, per profile, the steps: a notebook,
its parameters and its outputs. `reproduce` then

1. validates the whole profile before anything runs: every notebook exists and declares the
   parameters given; every training configuration and evaluation is a valid `TrainConfig` /
   `PruningConfig`; `init_from` names an earlier training step;
2. executes the steps in order into a staging folder `<out_dir>/.staging/` (executed notebooks
   in `notebooks/`, figures in `figures/`, tables in `tables/`), training only runs whose
   hash-named cache folder (`tsdtp.runs.cache.run_cache_dir`) does not hold a finished run;
3. writes `manifest.json` and the gallery `README.md`, then renames every new file into
   `<out_dir>/`. A failing step stops the pipeline, names the notebook and the cell, and
   leaves the partly executed copy in the staging folder; `<out_dir>/` keeps the last good run.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import hashlib
import importlib.metadata
import inspect
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from tsdtp.classification import data as classification_data
from tsdtp.classification.data import data_dir_from_env
from tsdtp.classification.experiments import train_config
from tsdtp.classification.tasks import get_task
from tsdtp.core.config import PruningConfig
from tsdtp.errors import ConfigError, TsdtpError
from tsdtp.runs.cache import (
    RunConfig,
    adopt_run,
    config_hash,
    eval_overrides,
    read_run_config,
    run_cache_dir,
    run_finished,
)
from tsdtp.runs.io import atomic_write_bytes, atomic_write_json
from tsdtp.translation import data as translation_data
from tsdtp.translation.config import MTConfig
from tsdtp.translation.experiments import translation_config

SPEC_FILE = "pipeline.yaml"
TRAINING_NOTEBOOKS: dict[str, Callable[..., RunConfig]] = {"01_train.ipynb": train_config,
                                                           "05_translation.ipynb": translation_config}
"""Notebooks that train one configuration, with the function building it from their parameters."""
INJECTED: tuple[str, ...] = ("run_dir", "data_dir", "results_csv", "bench_csv", "figures_dir", "tables_dir",
                             "force")
"""Parameters the pipeline fills in itself; a spec may not set them."""
PACKAGES: tuple[str, ...] = ("tsdtp", "torch", "transformers", "datasets", "numpy", "pandas", "pyarrow",
                             "matplotlib", "seaborn", "papermill", "nbformat", "ipykernel", "PyYAML")
"""Packages whose versions the manifest records."""


class PipelineError(TsdtpError):
    """A pipeline step failed while running."""


@dataclass(frozen=True)
class Output:
    """One declared output: a figure stem (PNG and PDF) or a table file, with its gallery caption."""

    kind: str
    name: str
    caption: str
    optional: bool = False

    def files(self) -> list[str]:
        """Paths of its files relative to the reports folder."""
        if self.kind == "figure":
            return [f"figures/{self.name}.png", f"figures/{self.name}.pdf"]
        return [f"tables/{self.name}"]


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

    def executed_name(self, step: Step) -> str:
        """File name of a step's executed notebook (suffixed with the step id when a notebook runs twice)."""
        uses = sum(1 for other in self.steps if other.notebook == step.notebook)
        return step.notebook.name if uses == 1 else f"{step.notebook.stem}-{step.id}.ipynb"


def project_root(start: str | Path | None = None) -> Path:
    """`start` (default: the working directory) if it holds the spec, else its parent if that does, else `start`.

    Notebooks change to it first, so their relative paths mean the same in JupyterLab (which
    starts them in notebooks/) and under `reproduce` (which starts them in the root).
    """
    start = Path(start or Path.cwd()).resolve()
    return next((folder for folder in (start, start.parent) if (folder / SPEC_FILE).is_file()), start)


def load_spec(path: str | Path) -> dict[str, Any]:
    """The parsed spec file; ConfigError when it is missing or not a mapping with `profiles`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no pipeline spec at {path}; run from the repository root or pass --spec")
    try:
        spec = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(spec, dict) or not isinstance(spec.get("profiles"), dict):
        raise ConfigError(f"{path} must be a mapping with a `profiles` mapping")
    return spec


def notebook_parameters(notebook: Path) -> frozenset[str]:
    """Names a notebook's `parameters` cell declares, checked to be exactly those papermill can set."""
    import nbformat
    import papermill

    cells = [c for c in nbformat.read(notebook, as_version=4).cells if "parameters" in c.metadata.get("tags", [])]
    if len(cells) != 1:
        raise ConfigError(f"{notebook.name} has {len(cells)} cells tagged `parameters`; expected exactly one")
    assigned = {target.id for node in ast.parse(cells[0].source).body if isinstance(node, ast.Assign)
                for target in node.targets if isinstance(target, ast.Name)}
    parsed = set(papermill.inspect_notebook(str(notebook)))
    if assigned != parsed:
        raise ConfigError(f"papermill cannot read parameter(s) {sorted(assigned - parsed)} of {notebook.name}; "
                          "keep one `name = value  # comment` per line, without '=' in comments")
    return frozenset(parsed)


def _flatten(steps: list[Any]) -> list[dict[str, Any]]:
    flat: list[dict[str, Any]] = []
    for step in steps:
        flat.extend(_flatten(step) if isinstance(step, list) else [step])
    return flat


def _display(path: Path, root: Path) -> str:
    """`path` relative to `root` when inside it (how notebooks, run with cwd=root, see it), else absolute."""
    path = Path(os.path.abspath(path))
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _outputs(step_id: str, raw: Any) -> tuple[Output, ...]:
    outputs = []
    for item in raw or []:
        kinds = [kind for kind in ("figure", "table") if kind in item]
        if len(kinds) != 1 or not isinstance(item.get("caption"), str):
            raise ConfigError(f"step {step_id}: output {item} needs exactly one of figure/table and a caption")
        unknown = set(item) - {"figure", "table", "caption", "optional"}
        if unknown:
            raise ConfigError(f"step {step_id}: output {item} has unknown key(s) {sorted(unknown)}")
        outputs.append(Output(kinds[0], str(item[kinds[0]]), item["caption"], bool(item.get("optional", False))))
    return tuple(outputs)


def _check_plain_parameters(parameters: dict[str, Any]) -> None:
    """Pruning settings named in any notebook's parameters (`method(s)`, `k`) must be valid."""
    for method in ([parameters["method"]] if "method" in parameters else []) + list(parameters.get("methods", [])):
        PruningConfig(method=method, gamma=0.0)
    if "k" in parameters:
        PruningConfig(k=float(parameters["k"]))


def make_plan(profile: str, spec_path: str | Path | None = None, data_dir: str | Path | None = None,
              runs_root: str | Path | None = None, out_dir: str | Path | None = None) -> Plan:
    """Validate `profile` of the spec completely, without running anything; returns the steps to run.

    Raises ConfigError naming the step for an unknown notebook or parameter, an invalid training
    configuration or evaluation (unknown method, k out of range, ...), or a dangling `init_from`.
    """
    spec_path = Path(spec_path or Path.cwd() / SPEC_FILE).resolve()
    spec = load_spec(spec_path)
    root = spec_path.parent
    profiles = spec["profiles"]
    if profile not in profiles:
        raise ConfigError(f"unknown profile {profile!r}; {spec_path.name} defines {', '.join(profiles)}")
    body = profiles[profile]
    notebooks_dir = root / spec.get("notebooks_dir", "notebooks")
    runs_root = Path(runs_root) if runs_root is not None else root / spec.get("runs_root", "runs")
    out_dir = Path(out_dir) if out_dir is not None else root / body.get("out_dir", "reports")
    defaults = dict(body.get("defaults") or {})
    bad_defaults = set(defaults) & set(INJECTED)
    if bad_defaults:
        raise ConfigError(f"profile {profile}: defaults set {sorted(bad_defaults)}, which the pipeline fills in")
    steps: list[Step] = []
    used_defaults: set[str] = set()
    outputs_seen: dict[str, str] = {}
    for raw in _flatten(body.get("steps") or []):
        if not isinstance(raw, dict):
            raise ConfigError(f"profile {profile}: each step must be a mapping with id, notebook, parameters")
        step_id = str(raw.get("id", ""))
        if not step_id or any(s.id == step_id for s in steps):
            raise ConfigError(f"profile {profile}: every step needs a unique id (got {step_id!r})")
        notebook = notebooks_dir / str(raw.get("notebook", ""))
        if not notebook.is_file():
            raise ConfigError(f"step {step_id}: notebook {notebook} does not exist")
        declared = notebook_parameters(notebook)
        given = dict(raw.get("parameters") or {})
        unknown = set(given) - declared
        if unknown:
            raise ConfigError(f"step {step_id}: {notebook.name} takes no parameter(s) {sorted(unknown)}; "
                              f"it takes {', '.join(sorted(declared))}")
        reserved = set(given) & set(INJECTED)
        if reserved:
            raise ConfigError(f"step {step_id}: {sorted(reserved)} are filled in by the pipeline; remove them")
        applied = {key: value for key, value in defaults.items() if key in declared and key not in given}
        used_defaults |= set(applied)
        parameters = {**applied, **given}
        try:
            builder = TRAINING_NOTEBOOKS.get(notebook.name)
            step = Step(step_id, notebook, parameters, declared) if builder is None else \
                _train_step(step_id, notebook, declared, parameters, steps, runs_root, root, builder)
            if step.config is None:
                _check_plain_parameters(parameters)
        except (TsdtpError, TypeError, ValueError) as exc:
            raise ConfigError(f"step {step_id} ({notebook.name}): {exc}") from exc
        step = dataclasses.replace(step, outputs=_outputs(step_id, raw.get("outputs")))
        for output in step.outputs:
            if output.name in outputs_seen:
                raise ConfigError(f"output {output.name} is declared by {outputs_seen[output.name]} and {step_id}")
            outputs_seen[output.name] = step_id
        steps.append(step)
    unused = set(defaults) - used_defaults
    if unused:
        raise ConfigError(f"profile {profile}: no notebook takes the default(s) {sorted(unused)}")
    data = data_dir_from_env(data_dir)
    data = data.resolve() if data is not None else None
    return Plan(profile, str(body.get("description", "")), spec_path, root, out_dir, runs_root, data, tuple(steps))


def _train_step(step_id: str, notebook: Path, declared: frozenset[str], parameters: dict[str, Any],
                earlier: list[Step], runs_root: Path, root: Path, builder: Callable[..., RunConfig]) -> Step:
    """A training step: its config (made by `builder`), the hash-named run folder and the validated evaluations.

    Every parameter of `builder` is passed to the notebook explicitly (defaults filled in), so
    the notebook trains exactly the configuration hashed here.
    """
    signature = inspect.signature(builder).parameters
    missing = set(signature) - declared
    if missing:
        raise ConfigError(f"{notebook.name} does not declare the config parameter(s) {sorted(missing)}")
    fields = {name: parameters.get(name, signature[name].default) for name in signature}
    init_hash, parent = None, None
    if fields["init_from"] is not None:
        parent = next((s for s in earlier if s.id == fields["init_from"] and s.config is not None), None)
        if parent is None or parent.config is None or parent.run_dir is None:
            raise ConfigError(f"init_from {fields['init_from']!r} is not an earlier training step")
        fields["init_from"] = _display(parent.run_dir, root)
        init_hash = parent.config_hash
    config = builder(**fields)
    if parent is not None and parent.config is not None and parent.config.task != config.task:
        raise ConfigError(f"init_from {parent.id!r} was trained on {parent.config.task}, not {config.task}")
    for override in parameters.get("evals", [{}]):
        if not isinstance(override, dict):
            raise ConfigError(f"evals entries must be mappings of pruning settings (got {override!r})")
        eval_overrides(config.pruning, override)
    return Step(step_id, notebook, {**parameters, **fields}, declared, (), config, config_hash(config, init_hash),
                run_cache_dir(config, runs_root, init_hash))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _git(root: Path) -> dict[str, Any]:
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(status.strip())}


def _versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def data_files(plan: Plan) -> dict[str, Any]:
    """The data files the profile's tasks read, with sha256 checksums (or the hub, without a data folder)."""
    tasks = sorted({step.config.task for step in plan.steps if step.config is not None})
    if plan.data_dir is None:
        return {"source": "hugging face hub", "tasks": tasks, "files": []}
    files = []
    for name in tasks:
        for path in _task_files(name, plan):
            files.append({"task": name, "path": _display(path, plan.data_dir.resolve()),
                          "bytes": path.stat().st_size, "sha256": _sha256(path)})
    return {"source": str(plan.data_dir), "tasks": tasks, "files": files}


def _task_files(task: str, plan: Plan) -> list[Path]:
    """The files the plan's runs of `task` read under its data folder, as the task's own package names them."""
    assert plan.data_dir is not None
    if task != MTConfig.task:
        return classification_data.data_files(get_task(task), plan.data_dir)
    corpora = [name for step in plan.steps if isinstance(step.config, MTConfig) for name in step.config.train_corpora]
    return translation_data.data_files(plan.data_dir, corpora)


def write_gallery(plan: Plan, reports: Path, records: list[dict[str, Any]]) -> Path:
    """`reports/README.md`: every figure inline with its caption and the command that made it, then the tables."""
    command = f"tsdtp reproduce --profile {plan.profile}"
    about = f": {plan.description.rstrip('.')}." if plan.description else "."
    lines = ["# Reports", "",
             f"Generated by `{command}` from `{plan.spec_path.name}` (profile `{plan.profile}`){about} "
             "Do not edit by hand: `manifest.json` records versions, data checksums, parameters and timings, "
             "and `notebooks/` holds every executed notebook.", "", "## Figures", ""]
    by_step = {record["id"]: record for record in records}
    for step in plan.steps:
        for output in step.outputs:
            if output.kind != "figure" or not (reports / output.files()[0]).is_file():
                continue
            executed = by_step[step.id]["executed"]
            source = f"`notebooks/{step.notebook.name}`, executed: [`{executed}`]({executed})"
            lines += [f"### {output.name}", "", f"![{output.caption}]({output.files()[0]})", "",
                      f"{output.caption} ([PDF]({output.files()[1]}))  ",
                      f"Made by `{command}`, step `{step.id}` ({source}).", ""]
    lines += ["## Tables", ""]
    for step in plan.steps:
        for output in step.outputs:
            path = reports / output.files()[0]
            if output.kind == "table" and path.is_file():
                lines.append(f"- [`{output.files()[0]}`]({output.files()[0]}): {output.caption} "
                             f"Made by `{command}`, step `{step.id}`.")
    table = reports / "tables" / "results_table.md"
    if table.is_file():
        lines += ["", "### Results", "", table.read_text().rstrip(), ""]
    path = reports / "README.md"
    atomic_write_bytes(path, ("\n".join(lines).rstrip() + "\n").encode())
    return path


def _stage(plan: Plan) -> tuple[Path, dict[str, str]]:
    """A fresh staging folder holding a copy of the current tables; returns it and the copies' checksums."""
    staging = plan.out_dir / ".staging"
    if staging.exists():
        shutil.rmtree(staging)
    for sub in ("figures", "tables", "notebooks"):
        (staging / sub).mkdir(parents=True)
    carried = {}
    for path in sorted((plan.out_dir / "tables").glob("*")) if (plan.out_dir / "tables").is_dir() else []:
        if path.is_file():
            shutil.copy2(path, staging / "tables" / path.name)
            carried[f"tables/{path.name}"] = _sha256(path)
    return staging, carried


def _publish(staging: Path, out_dir: Path, carried: dict[str, str]) -> None:
    """Rename each new or changed staged file into `out_dir`, then remove the staging folder."""
    for path in sorted(p for p in staging.rglob("*") if p.is_file()):
        relative = path.relative_to(staging).as_posix()
        if relative in carried and carried[relative] == _sha256(path):
            continue
        target = out_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
    shutil.rmtree(staging)


def _execute(plan: Plan, step: Step, parameters: dict[str, Any], executed: Path) -> None:
    import papermill
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


def reproduce(profile: str, force: bool = False, spec_path: str | Path | None = None,
              data_dir: str | Path | None = None, runs_root: str | Path | None = None,
              out_dir: str | Path | None = None, log: Callable[[str], None] = print) -> Path:
    """Run every step of `profile` and publish its notebooks, figures, tables, manifest and gallery.

    `force` retrains every training step even when its cached run is finished. Returns the
    path of the written manifest.json. Raises ConfigError before running anything when the
    profile is invalid, and PipelineError when a notebook fails or misses a declared output.
    """
    plan = make_plan(profile, spec_path, data_dir, runs_root, out_dir)
    data = data_files(plan)
    started, clock = datetime.now(timezone.utc), time.perf_counter()
    staging, carried = _stage(plan)
    records = []
    for number, step in enumerate(plan.steps, start=1):
        executed = staging / "notebooks" / plan.executed_name(step)
        injected = {
            "run_dir": _display(step.run_dir, plan.root) if step.run_dir else None,
            "data_dir": str(plan.data_dir) if plan.data_dir else None,
            "results_csv": _display(staging / "tables" / "results.csv", plan.root),
            "bench_csv": _display(staging / "tables" / "bench.csv", plan.root),
            "figures_dir": _display(staging / "figures", plan.root),
            "tables_dir": _display(staging / "tables", plan.root),
            "force": force,
        }
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
        records.append({"id": step.id, "notebook": f"notebooks/{step.notebook.name}",
                        "executed": f"notebooks/{plan.executed_name(step)}", "parameters": parameters,
                        "run_dir": injected["run_dir"], "config_hash": step.config_hash,
                        "cached": cached if step.run_dir else None, "wall_s": wall,
                        "outputs": [f for o in step.outputs for f in o.files() if (staging / f).is_file()]})
        log(f"    done in {wall:.1f} s")
    manifest = {
        "profile": plan.profile, "description": plan.description, "command": f"tsdtp reproduce --profile {profile}"
        + (" --force" if force else ""), "spec": plan.spec_path.name, "spec_sha256": _sha256(plan.spec_path),
        "started": started.isoformat(timespec="seconds"), "wall_s": round(time.perf_counter() - clock, 1),
        "git": _git(plan.root), "platform": platform.platform(), "packages": _versions(),
        "runs_root": _display(plan.runs_root, plan.root), "data": data, "steps": records,
    }
    atomic_write_json(staging / "manifest.json", manifest)
    write_gallery(plan, staging, records)
    _publish(staging, plan.out_dir, carried)
    log(f"reports written to {plan.out_dir} in {manifest['wall_s']:.0f} s")
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


def add_reproduce_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `tsdtp reproduce` to the CLI's subcommands; `reproduce_command` handles it."""
    parser = subparsers.add_parser("reproduce", help="rerun the notebook pipeline and regenerate reports/")
    parser.add_argument("--profile", required=True, help="a profile of the spec: quick (minutes) or full")
    parser.add_argument("--force", action="store_true", help="retrain runs even when their cache folder is finished")
    parser.add_argument("--spec", default=SPEC_FILE, help=f"the pipeline spec (default ./{SPEC_FILE})")
    parser.add_argument("--data-dir", default=None, help="GLUE-layout folder (default: $TSDTP_DATA_DIR, else hub)")
    parser.add_argument("--runs-root", default=None, help="the run cache (default: runs/ beside the spec)")
    parser.add_argument("--out-dir", default=None, help="where reports go (default: the profile's out_dir)")
    parser.add_argument("--adopt", default=None, metavar="DIR",
                        help="first link finished runs in DIR whose configs match the profile into the cache")
    return parser


def reproduce_command(args: argparse.Namespace) -> int:
    """Handle `tsdtp reproduce`; TsdtpErrors propagate to the CLI's one-line error report."""
    if args.adopt:
        for step_id, path in adopt_runs(args.profile, args.adopt, args.spec, args.runs_root).items():
            print(f"adopted {step_id}: {path}", file=sys.stderr)
    reproduce(args.profile, args.force, args.spec, args.data_dir, args.runs_root, args.out_dir,
              log=lambda line: print(line, file=sys.stderr))
    return 0
