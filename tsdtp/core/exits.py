"""What becomes of a pruned token (`PruningConfig.exit_mode`): deleted, exited, or merged into a kept one.

delete: the token is gone; the output holds the survivors only, so a decoder cross-attends to them only.
exit: the token stops being updated by later layers, but its hidden state after the last layer it ran in
    stays in the output at its original position, so a decoder reads every source position. (Marian's
    encoder is post-norm with no final layer norm: that state has already been through the layer norm
    of the last layer it ran in.)
merge: the token is added into its most similar kept token of the same example (cosine similarity of the
    hidden states), a size-weighted average; a token standing for s original tokens gets +log(s) on its
    attention logits as a key in later layers and in a decoder's cross-attention (ToMe's proportional
    attention).

`ExitState` is what the inference engine carries for the mode between layers (`record_removal` just
before pruned tokens are removed, `output` at the end); `freeze_exited` and `merge_into_kept` are the
operations the training engine applies in place, on the padded batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import torch
import torch.nn.functional as F

from tsdtp.core.packing import TokenLayout
from tsdtp.core.pruning import gather_kept


class TokenExit(str, Enum):
    """The exit modes; the value is what `PruningConfig.exit_mode` holds."""

    DELETE = "delete"
    EXIT = "exit"
    MERGE = "merge"


EXIT_MODES: tuple[str, ...] = tuple(mode.value for mode in TokenExit)
"""The names of the exit modes, for settings and flags."""


def merge_into_kept(hidden: torch.Tensor, sizes: torch.Tensor, live: torch.Tensor, keep: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Add every pruned token (`live`, not `keep`) into its most similar kept token of the same row.

    hidden: [B, n, d]; sizes: [B, n], how many original tokens each token stands for; live, keep: [B, n]
    (`keep` within `live`, at least one kept token in every row with a live one). A kept token becomes
    the size-weighted average of itself and the tokens merged into it and its size their sum; pruned
    tokens keep their state and get size 0; other tokens are untouched.
    """
    pruned = live & ~keep
    unit = F.normalize(hidden, dim=-1)
    similarity = (unit @ unit.transpose(1, 2)).masked_fill(~keep[:, None, :], float("-inf"))
    target = similarity.argmax(dim=-1)
    moved = torch.where(pruned, sizes, 0.0).to(hidden.dtype)
    own = torch.where(keep, sizes, 0.0).to(hidden.dtype)
    mass = own.scatter_add(1, target, moved)
    summed = (hidden * own[..., None]).scatter_add(1, target[..., None].expand_as(hidden), hidden * moved[..., None])
    merged = summed / mass.clamp_min(1.0)[..., None]
    return torch.where(keep[..., None], merged, hidden), torch.where(live, mass, sizes)


def merge_flops(tokens: torch.Tensor, hidden: int) -> torch.Tensor:
    """FLOPs of one `merge_into_kept` on `tokens` live tokens per example (elementwise): the cosine
    similarities (2 n^2 d) and the size-weighted sums (2 n d); the normalisation is left out like the
    layer norms are."""
    n = tokens.double()
    return 2 * n * n * hidden + 2 * n * hidden


def freeze_exited(updated: torch.Tensor, previous: torch.Tensor, key_bias: torch.Tensor) -> torch.Tensor:
    """Training's exit: each token's new state is `m * updated + (1 - m) * previous`, with `m = exp(key_bias)`
    its (soft, or straight-through) keep mask at the layer's input, so a token pruned earlier is frozen."""
    keep = key_bias.exp().to(updated.dtype)[..., None]
    return keep * updated + (1 - keep) * previous


def log_sizes(sizes: torch.Tensor) -> torch.Tensor:
    """log(size) of each token (0 for the removed tokens of size 0: their keys are masked anyway)."""
    return sizes.clamp_min(1.0).log()


@dataclass
class ExitState:
    """What inference carries for the exit mode between layers.

    states: exit only, [B, N, d], each exited token's last state at its original position.
    valid: the batch's validity mask at the start, [B, N].
    sizes: merge only, [B, n], in the layout of the live tokens.
    """

    mode: TokenExit
    valid: torch.Tensor
    states: torch.Tensor | None = None
    sizes: torch.Tensor | None = None

    @classmethod
    def start(cls, mode: str | TokenExit, embeddings: torch.Tensor, valid: torch.Tensor) -> ExitState:
        """The state before the first layer of a batch with `embeddings` [B, N, d] and validity `valid` [B, N]."""
        mode = TokenExit(mode)
        states = torch.zeros_like(embeddings) if mode is TokenExit.EXIT else None
        sizes = torch.ones(valid.shape, device=valid.device) if mode is TokenExit.MERGE else None
        return cls(mode, valid, states, sizes)

    def key_bias(self, valid: torch.Tensor, neg: float) -> torch.Tensor:
        """The additive key bias of the next layer: 0 (log size when merging) for live tokens, `neg` for padding."""
        return torch.where(valid, 0.0 if self.sizes is None else log_sizes(self.sizes), neg)

    def record_removal(self, hidden: torch.Tensor, layout: TokenLayout | None, valid: torch.Tensor,
                       positions: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """Called just before the tokens outside `keep` are removed; returns `hidden`, merged when merging.

        hidden: [B, n, d], or packed [T, d] with its `layout`; valid, positions, keep: [B, n].
        Exit stashes the leaving tokens' states; merge adds them into the kept tokens (and gathers the
        sizes to the survivors, as the engine gathers everything else).
        """
        if self.mode is TokenExit.EXIT:
            self._stash(hidden, layout, positions, valid & ~keep)
        elif self.mode is TokenExit.MERGE:
            assert self.sizes is not None
            padded = layout.pad(hidden) if layout is not None else hidden
            merged, sizes = merge_into_kept(padded, self.sizes, valid, keep)
            _, (self.sizes,) = gather_kept(keep, sizes)
            return layout.pack(merged) if layout is not None else merged
        return hidden

    def _stash(self, hidden: torch.Tensor, layout: TokenLayout | None, positions: torch.Tensor,
               leaving: torch.Tensor) -> None:
        assert self.states is not None
        if layout is None or layout.full:
            padded = hidden if layout is None else layout.pad(hidden)  # a view when the layout is full
            rows, cols = leaving.nonzero(as_tuple=True)
            self.states[rows, positions[rows, cols]] = padded[rows, cols]
            return
        chosen = leaving[layout.rows, layout.cols]
        rows, cols = layout.rows[chosen], layout.cols[chosen]
        self.states[rows, positions[rows, cols]] = hidden[chosen]

    def output(self, hidden: torch.Tensor, valid: torch.Tensor, positions: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The pass's output from the survivors' `hidden` [B, n, d], `valid` and `positions` [B, n].

        Returns hidden, valid, positions and, when merging, the survivors' log sizes [B, n]. Under exit
        the output holds every original position, [B, N, d], with the batch's own validity mask.
        """
        if self.mode is TokenExit.EXIT:
            assert self.states is not None
            rows, cols = valid.nonzero(as_tuple=True)
            self.states[rows, positions[rows, cols]] = hidden[rows, cols]
            everything = torch.arange(self.valid.shape[1], device=valid.device).expand_as(self.valid)
            return self.states, self.valid, everything, None
        if self.mode is TokenExit.MERGE:
            assert self.sizes is not None
            return hidden, valid, positions, log_sizes(self.sizes)
        return hidden, valid, positions, None
