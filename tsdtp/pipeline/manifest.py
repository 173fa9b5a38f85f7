"""Provenance of a reproduced profile: `manifest.json` with versions, git commit, parameters, data checksums and times.

The pipeline does not know where a task's data lives: each task package names the files it
reads (`tsdtp.glue_tasks.data_files`, `tsdtp.translation.data.data_files`).
"""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

from tsdtp import glue_tasks
from tsdtp.data_files import file_sha256
from tsdtp.glue_tasks import get_task
from tsdtp.pipeline.plan import Plan, display_path
from tsdtp.pipeline.window import window_flags
from tsdtp.runs.io import atomic_write_json
from tsdtp.translation import data as translation_data
from tsdtp.translation.config import MTConfig

PACKAGES: tuple[str, ...] = ("tsdtp", "torch", "transformers", "datasets", "numpy", "pandas", "pyarrow",
                             "matplotlib", "seaborn", "papermill", "nbformat", "ipykernel", "PyYAML")
"""Packages whose versions the manifest records."""


def git_state(root: Path) -> dict[str, Any]:
    """The commit checked out at `root` and whether tracked files differ from it (both None outside git)."""
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(status.strip())}


def package_versions() -> dict[str, str | None]:
    """The Python version and the installed version of each of `PACKAGES` (None when not installed)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def data_checksums(plan: Plan) -> dict[str, Any]:
    """The data files the profile's tasks read, with sha256 checksums (or the hub, without a data folder)."""
    tasks = sorted({step.config.task for step in plan.steps if step.config is not None})
    if plan.data_dir is None:
        return {"source": "hugging face hub", "tasks": tasks, "files": []}
    files = []
    for name in tasks:
        for path in _task_files(name, plan, plan.data_dir):
            files.append({"task": name, "path": display_path(path, plan.data_dir.resolve()),
                          "bytes": path.stat().st_size, "sha256": file_sha256(path)})
    return {"source": str(plan.data_dir), "tasks": tasks, "files": files}


def _task_files(task: str, plan: Plan, data_dir: Path) -> list[Path]:
    """The files the plan's runs of `task` read, as the task's own package names them."""
    if task != MTConfig.task:
        return glue_tasks.data_files(get_task(task), data_dir)
    corpora = [name for step in plan.steps if isinstance(step.config, MTConfig) for name in step.config.train_corpora]
    return translation_data.data_files(data_dir, corpora)


def write_manifest(path: Path, plan: Plan, force: bool, started: datetime, wall_s: float, data: dict[str, Any],
                   steps: list[dict[str, Any]], figures_only: bool = False, until: str | None = None,
                   start: str | None = None) -> dict[str, Any]:
    """Write `manifest.json` for a run of `plan` (`data`: `data_checksums`, `steps`: one record each); returns it.

    With `figures_only` the training steps' records (marked `kept`) and `data` are those of the
    last run that trained, which made the reports' data the figures were drawn from; with `start` and `until`
    those of the training steps outside that window (`tsdtp.pipeline.window`).
    """
    flags = ((" --force" if force else "") + (" --figures-only" if figures_only else "")
             + window_flags(start, until))
    manifest = {
        "profile": plan.profile, "description": plan.description,
        "command": f"tsdtp reproduce --profile {plan.profile}{flags}", "figures_only": figures_only,
        "from": start, "until": until,
        "spec": plan.spec_path.name, "spec_sha256": file_sha256(plan.spec_path),
        "started": started.isoformat(timespec="seconds"), "wall_s": wall_s,
        "git": git_state(plan.root), "platform": platform.platform(), "packages": package_versions(),
        "runs_root": display_path(plan.runs_root, plan.root), "data": data, "steps": steps,
    }
    atomic_write_json(path, manifest)
    return manifest
