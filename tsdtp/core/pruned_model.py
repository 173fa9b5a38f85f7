"""`PrunedModel`: what a pruning wrapper owns, whatever the task: the model, its adapter, the scorers.

The classifier and the translator subclass it: each adds its task head (or decoder) and loss.
`pruning` can be switched at any time (another k, or a post-hoc method); the scorers stay.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from tsdtp.core.config import PruningConfig
from tsdtp.core.engine import EngineMode, EngineOutput, LayerAdapter, run_layers
from tsdtp.core.losses import pruning_penalty
from tsdtp.core.scoring import TaskScorer

SCORER_INIT_SEED = 0
"""The scorers are initialised from this seed, whatever the global RNG state."""


def special_token_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """The ids never pruned: whichever sequence-boundary tokens the tokenizer has ([CLS]/<s>, [SEP]/</s>)."""
    ids = {tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id}
    return sorted(i for i in ids if i is not None)


class ScoredAdapter(LayerAdapter, Protocol):
    """What the wrapper needs from a model family's adapter beyond the engine's layer call."""

    hidden_size: int
    intermediate_size: int

    def special_mask(self, input_ids: torch.Tensor) -> torch.Tensor: ...


class PrunedModel(nn.Module):
    """A model seen layer by layer through `adapter`, with one task scorer per layer.

    `straight_through` (the hard phase of training) and `packed_inference` (False: inference
    keeps the batch padded) choose, with `training` and `pruning`, the engine mode (`engine_mode`).
    `training_progress` (fraction of the training steps done, set by the training loop; 1 otherwise)
    places the loss on the recipe's schedules (`tsdtp.core.schedule`).
    """

    def __init__(self, model: nn.Module, adapter: ScoredAdapter, special_ids: list[int],
                 pruning: PruningConfig) -> None:
        super().__init__()
        self.model = model
        self.adapter = adapter
        self.special_ids = list(special_ids)
        self.pruning = pruning
        self.straight_through = False
        self.packed_inference = True
        self.training_progress = 1.0
        with torch.random.fork_rng():
            torch.manual_seed(SCORER_INIT_SEED)
            self.scorers = nn.ModuleList(
                TaskScorer(adapter.hidden_size, pruning.d_task) for _ in range(adapter.num_layers)
            )

    @property
    def pruning(self) -> PruningConfig:
        """The pruning settings in use; setting them checks them against the model's depth (ConfigError)."""
        return self._pruning

    @pruning.setter
    def pruning(self, value: PruningConfig) -> None:
        completed = self.complete_pruning(value)
        completed.check_depth(self.adapter.num_layers)
        self._pruning = completed

    def complete_pruning(self, pruning: PruningConfig) -> PruningConfig:
        """`pruning` with any model-specific defaults filled in (none here)."""
        return pruning

    def engine_mode(self) -> EngineMode:
        """The engine mode of the next forward.

        Training with a pruning method: soft masks, or straight-through with `straight_through`
        set (the training forward then keeps exactly the tokens inference keeps); a trained method
        without a differentiable form (top-k) trains on the padded batch, pruned as at inference.
        Training without one (dense fine-tuning): the padded batch. Inference: packed, or padded
        when `packed_inference` is off.
        """
        spec = self.pruning.spec
        if self.training and self.pruning.prunes and (spec.differentiable or not spec.trained):
            return EngineMode.STRAIGHT_THROUGH if self.straight_through else EngineMode.SOFT
        if self.training or not self.packed_inference:
            return EngineMode.PADDED
        return EngineMode.PACKED

    def run_engine(self, embeddings: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   record_trace: bool = False, generator: torch.Generator | None = None) -> EngineOutput:
        """Run every layer on `embeddings`, pruning as `pruning` says, in the mode `engine_mode` gives."""
        valid = attention_mask.bool()
        special = self.adapter.special_mask(input_ids)
        return run_layers(self.adapter, self.scorers, self.pruning, embeddings, valid, special,
                          mode=self.engine_mode(), record_trace=record_trace, generator=generator)

    def add_pruning_penalty(self, task_loss: torch.Tensor, engine: EngineOutput
                            ) -> tuple[torch.Tensor, dict[str, float]]:
        """`task_loss` plus the pruning terms of `tsdtp.core.losses`, and each part as a float (`ce`: the task loss)."""
        penalty, parts = pruning_penalty(engine, self.pruning, self.training_progress)
        return task_loss + penalty, {"ce": float(task_loss.detach()), **parts}
