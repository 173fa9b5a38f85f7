"""An LLM classification run's `checkpoint.pt`: its config and what trained (LoRA adapters, head, scorers), and
whether a run has reached its last step.

The frozen base weights are not in it: loading rebuilds the model from the config's model id (the converted
cache for SmolLM2) and loads the trained tensors on top.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from transformers import PreTrainedTokenizerBase

from tsdtp.core.config import PruningConfig
from tsdtp.errors import CheckpointError
from tsdtp.llm.classifier_config import LlmTrainConfig
from tsdtp.llm.classifier_model import PrunedLlamaClassifier
from tsdtp.runs.io import atomic_torch_save, load_torch_payload

CHECKPOINT_FORMAT = "tsdtp-llm-checkpoint-v1"


def save_checkpoint(run_dir: Path, model: PrunedLlamaClassifier, config: LlmTrainConfig) -> Path:
    """Save the config and the trained tensors to `run_dir/checkpoint.pt`."""
    path = Path(run_dir) / "checkpoint.pt"
    atomic_torch_save(path, {"format": CHECKPOINT_FORMAT, "train_config": config.to_dict(),
                             "state_dict": model.state_dict()})
    return path


def load_checkpoint(path: str | os.PathLike, pruning: PruningConfig | None = None
                    ) -> tuple[PrunedLlamaClassifier, PreTrainedTokenizerBase, LlmTrainConfig]:
    """The classifier of a checkpoint file or run directory (eval mode), its tokenizer and its config.

    `pruning` replaces the trained pruning settings (another k, or a post-hoc method).
    """
    path = Path(path)
    file = path / "checkpoint.pt" if path.is_dir() else path
    if not file.is_file():
        raise CheckpointError(f"no checkpoint at {file}: expected a file written by `tsdtp llm-train` (a run "
                              "writes it after its first epoch)")
    payload = load_torch_payload(file, CHECKPOINT_FORMAT, "; delete it and run the same `tsdtp llm-train` again")
    try:
        config = LlmTrainConfig.from_dict(payload["train_config"])
        model, tokenizer = PrunedLlamaClassifier.build(config)
        model.load_state_dict(payload["state_dict"])
    except (KeyError, RuntimeError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {file} does not match this tsdtp version: {exc}") from exc
    if pruning is not None:
        model.pruning = pruning
    return model.eval(), tokenizer, config


def total_steps(examples: int, config: LlmTrainConfig) -> int:
    """Optimizer steps of `config` on `examples` training examples (a fractional last epoch rounds up)."""
    return max(1, math.ceil(config.epochs * math.ceil(examples / config.batch_size)))


def run_complete(run_dir: Path, config: LlmTrainConfig, metrics: dict[str, Any]) -> bool:
    """Whether `run_dir` (with these metrics.json `metrics`) holds the checkpoint of `config`'s last step."""
    return (run_dir / "checkpoint.pt").is_file() and metrics["steps"] >= total_steps(metrics["train_examples"],
                                                                                      config)
