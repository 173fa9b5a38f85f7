"""Run directories: atomic writes, model checkpoints and resumable trainer state.

A run directory holds `config.json`, `metrics.json`, `checkpoint.pt` (model, scorers and
config: what `tsdtp eval` and the notebooks load) and, while training or with `--keep-state`, `state.pt`
(optimizer, scheduler and progress, for resuming).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from transformers import BertConfig, BertForSequenceClassification

from tsdtp.classification.config import TrainConfig
from tsdtp.classification.model import PrunedClassifier
from tsdtp.core.config import PruningConfig
from tsdtp.errors import CheckpointError
from tsdtp.runs.io import atomic_torch_save, load_torch_payload

CHECKPOINT_FORMAT = "tsdtp-checkpoint-v1"

RECOVERY = ("run the same `tsdtp train` command again: it saves the checkpoint again from state.pt (kept with "
            "--keep-state), or retrains the run")
"""What to do when a run's checkpoint is missing or unreadable (`tsdtp train` on such a run does it)."""


def save_checkpoint(run_dir: Path, model: PrunedClassifier, config: TrainConfig) -> Path:
    """Save model, scorers and config to `run_dir/checkpoint.pt`."""
    path = Path(run_dir) / "checkpoint.pt"
    atomic_torch_save(path, {
        "format": CHECKPOINT_FORMAT,
        "train_config": config.to_dict(),
        "model_config": model.model.config.to_dict(),
        "special_ids": model.special_ids,
        "state_dict": model.state_dict(),
    })
    return path


def _read(path: Path) -> dict[str, Any]:
    """The payload of a checkpoint file; a missing or corrupt one of a run says how to get it back."""
    if not path.is_file():
        if (path.parent / "config.json").is_file():
            raise CheckpointError(f"no checkpoint at {path}: the run has not finished its first epoch, or its "
                                  f"checkpoint was deleted; to finish the run or save it again, {RECOVERY}")
        raise CheckpointError(f"no checkpoint at {path}: expected a file written by `tsdtp train`")
    return load_torch_payload(path, CHECKPOINT_FORMAT, f"; delete it, then {RECOVERY}")


def load_checkpoint(path: str | os.PathLike, pruning: PruningConfig | None = None
                    ) -> tuple[PrunedClassifier, TrainConfig]:
    """Load a classifier from a checkpoint file or run directory, in eval mode.

    `pruning` replaces the trained pruning settings (e.g. another k, or a post-hoc method).
    """
    path = Path(path)
    payload = _read(path / "checkpoint.pt" if path.is_dir() else path)
    try:
        config = TrainConfig.from_dict(payload["train_config"])
        hf = BertForSequenceClassification(BertConfig.from_dict(payload["model_config"]))
        model = PrunedClassifier(hf, payload["special_ids"], pruning or config.pruning)
        model.load_state_dict(payload["state_dict"])
    except (KeyError, RuntimeError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {path} does not match this tsdtp version: {exc}") from exc
    return model.eval(), config
