"""One configuration at a time: its config, its cached run directory, training it, evaluating it.

A run is of a kind its task package registered (`tsdtp.runs.kinds`: classification `TrainConfig`s,
translation `MTConfig`s, LLM classification `LlmTrainConfig`s); `read_run_config` tells them apart by the
task in config.json (and a kind's marker key). Trained runs are cached by a hash of their config:
`run_cache_dir` names the folder `<root>/<task>-<method>-<sha12>` (LLM runs: `llm-<task>-...`). Within the
hash, `init_from` and `teacher` (paths; `RUN_REFERENCES`) are replaced by the hash of the run they point to,
so a pruned run started from (or distilled from) a dense run keeps its identity wherever that dense run
lives. Numbers are hashed as floats (`epochs: 2` and `2.0` are the same run).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from tsdtp.errors import CheckpointError
from tsdtp.runs.kinds import RunConfig, kind_of_config, kind_of_run
from tsdtp.runs.launch import launcher_from_env, train_launched
from tsdtp.runs.training_data import check_training_data


def _canonical(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, dict):
        return {key: _canonical(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(item) for item in value]
    raise TypeError(f"cannot hash a {type(value).__name__} setting")


def read_run_config(run_dir: str | Path) -> RunConfig:
    """The validated config of a run directory (from its config.json), of the kind registered for its task."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{run_dir} has no config.json; expected a run directory written by `tsdtp train` "
                              "or `tsdtp mt-train`")
    return read_config_file(path)


def read_config_file(path: str | Path) -> RunConfig:
    """The validated run config a JSON file holds (a run's config.json), of the kind registered for its task."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no config file {path}; expected a run's config.json")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} is not a JSON object of settings")
    return kind_of_run(data, path).config_class.from_dict(data)


RUN_REFERENCES: tuple[str, ...] = ("init_from", "teacher")
"""Config fields that name another run directory; the hash holds that run's hash instead of the path."""


def config_hash(config: RunConfig, init_hash: str | None = None, teacher_hash: str | None = None) -> str:
    """The sha256 of a config, with `init_from` (`teacher`) replaced by `init_hash` (`teacher_hash`) or by the
    hash of the run it names."""
    data = config.to_dict()
    for name, given in zip(RUN_REFERENCES, (init_hash, teacher_hash)):
        if data.get(name) is not None:
            data[name] = "run:" + (given or config_hash(read_run_config(data[name])))
    text = json.dumps(_canonical(data), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def run_cache_dir(config: RunConfig, root: str | Path, init_hash: str | None = None,
                  teacher_hash: str | None = None) -> Path:
    """Where the run of `config` is cached: `<root>/<prefix><task>-<method>-<first 12 hex of its hash>`, the prefix
    its kind's `folder_prefix` (`llm-` for LLM classification, else none)."""
    prefix = kind_of_config(config).folder_prefix
    return Path(root) / (f"{prefix}{config.task}-{config.pruning.method}-"
                         f"{config_hash(config, init_hash, teacher_hash)[:12]}")


def run_finished(run_dir: str | Path) -> bool:
    """Whether `run_dir` holds a run trained to its last step (checkpoint and final metrics written)."""
    run_dir = Path(run_dir)
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.is_file() or not (run_dir / "config.json").is_file():
        return False
    config = read_run_config(run_dir)
    return kind_of_config(config).finished(run_dir, config, json.loads(metrics_path.read_text()))


def remove_run(run_dir: str | Path) -> None:
    """Delete a run directory; a symlink (an adopted run) is unlinked, never followed."""
    run_dir = Path(run_dir)
    if run_dir.is_symlink():
        run_dir.unlink()
    elif run_dir.exists():
        shutil.rmtree(run_dir)


def ensure_trained(config: RunConfig, run_dir: str | Path, data_dir: str | None = None, force: bool = False,
                   progress: bool = True) -> tuple[dict[str, Any], bool]:
    """Train `config` into `run_dir` unless it already holds that finished run; returns (metrics, trained).

    `force` deletes the run first and retrains. A finished run with another config, or trained on
    other data than `data_dir` holds (`tsdtp.runs.training_data`), is an error. With `TSDTP_LAUNCHER` set
    the training runs through that launcher (`tsdtp.runs.launch`).
    """
    run_dir = Path(run_dir)
    kind = kind_of_config(config)
    if force:
        remove_run(run_dir)
    if run_finished(run_dir):
        if config_hash(read_run_config(run_dir)) != config_hash(config):
            raise CheckpointError(f"{run_dir} holds a finished run with another config; "
                                  "choose another run directory or retrain with force")
        if kind.training_data is not None:
            check_training_data(run_dir, kind.training_data(config, data_dir))
        return json.loads((run_dir / "metrics.json").read_text()), False
    launcher = launcher_from_env()
    if launcher is not None:
        return train_launched(launcher, config, run_dir, data_dir), True
    return kind.train(config, run_dir, data_dir, progress=progress), True


def adopt_run(run_dir: str | Path, root: str | Path, expected: RunConfig | None = None, move: bool = False
              ) -> Path:
    """Register a finished run under its hash-named cache folder in `root`; returns that folder.

    The run's config.json is validated (and compared with `expected` when given). By default
    the cache entry is a relative symlink, so paths that name the original (such as another
    run's `init_from`) keep working; `move=True` moves the folder instead.
    """
    run_dir = Path(run_dir)
    if not run_finished(run_dir):
        raise CheckpointError(f"{run_dir} is not a finished run (no checkpoint.pt or model/, or metrics.json short "
                              "of the last step); finish it with `tsdtp train` or `tsdtp mt-train` first")
    config = read_run_config(run_dir)
    if expected is not None and config_hash(expected) != config_hash(config):
        differing = _differences(expected.to_dict(), config.to_dict())
        raise CheckpointError(f"{run_dir} was trained with another config than expected; differs in {differing}")
    target = run_cache_dir(config, root)
    if target.exists() or target.is_symlink():
        if target.resolve() == run_dir.resolve():
            return target
        raise CheckpointError(f"the cache already holds {target} for this config; remove it to adopt {run_dir}")
    target.parent.mkdir(parents=True, exist_ok=True)
    if move:
        shutil.move(str(run_dir), str(target))
    else:
        os.symlink(os.path.relpath(run_dir.resolve(), target.parent.resolve()), target, target_is_directory=True)
    return target


def _differences(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    keys = sorted(set(a) | set(b))
    out: list[str] = []
    for key in keys:
        left, right = a.get(key), b.get(key)
        if isinstance(left, dict) and isinstance(right, dict):
            out += _differences(left, right, f"{prefix}{key}.")
        elif _canonical(left) != _canonical(right):
            out.append(f"{prefix}{key} ({left!r} vs {right!r})")
    return out
