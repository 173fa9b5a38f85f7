"""The task-specific scorers of TS-DTP's prefill variant: one `TaskScorer` per pruning layer, saved and loaded."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from tsdtp.core.scoring import TaskScorer
from tsdtp.errors import CheckpointError
from tsdtp.llm.prefill_config import PrefillPruning


def make_scorers(pruning: PrefillPruning, hidden_size: int, seed: int = 0) -> nn.ModuleDict:
    """Fresh (untrained) scorers for every pruning layer of `pruning`, keyed by `str(layer)`."""
    torch.manual_seed(seed)
    return nn.ModuleDict({str(layer): TaskScorer(hidden_size, pruning.d_task) for layer in pruning.prune_layers})


def save_scorers(scorers: nn.ModuleDict, pruning: PrefillPruning, path: Path) -> None:
    """Write the scorers' weights with the schedule they were trained for."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"pruning": pruning.to_dict(), "state": scorers.state_dict()}, path)


def load_scorers(path: Path, hidden_size: int) -> tuple[nn.ModuleDict, PrefillPruning]:
    """Scorers saved by `save_scorers` and their schedule; CheckpointError when the file is missing or foreign."""
    if not path.is_file():
        raise CheckpointError(f"no prefill scorers at {path}; expected a file written by save_scorers")
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(saved, dict) or set(saved) != {"pruning", "state"}:
        raise CheckpointError(f"{path} does not hold prefill scorers (expected keys pruning and state)")
    pruning = PrefillPruning.from_dict(saved["pruning"])
    scorers = make_scorers(pruning, hidden_size)
    try:
        scorers.load_state_dict(saved["state"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: the scorers do not fit a model of hidden size {hidden_size}") from exc
    return scorers.eval(), pruning
