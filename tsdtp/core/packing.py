"""Packed token layout: the live tokens of a batch as one `[T, ...]` tensor, padded only for attention.

Pruned rows keep different numbers of tokens. Instead of re-padding every row to the longest
live row and running the projections and feed-forward on the padding too, inference keeps
the hidden states packed (`T` = live tokens in the whole batch) and scatters them into a
padded `[B, n, ...]` block only for the per-example attention, whose cost is small next to
the projections for sentence-length inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TokenLayout:
    """Where each packed token sits in the padded `[B, n]` block.

    valid: [B, n], True for live slots; rows, cols: [T] slot of each packed token (row-major).
    full: no slot is padding, so packing and padding are reshapes (always so at batch size 1).
    """

    valid: torch.Tensor
    rows: torch.Tensor
    cols: torch.Tensor
    full: bool

    @classmethod
    def from_valid(cls, valid: torch.Tensor) -> TokenLayout:
        """The layout of the live slots of `valid` [B, n], in row-major order."""
        rows, cols = valid.nonzero(as_tuple=True)
        return cls(valid, rows, cols, rows.shape[0] == valid.numel())

    def pack(self, padded: torch.Tensor) -> torch.Tensor:
        """`[B, n, ...]` -> `[T, ...]`: the live slots, copied at most once (strided inputs are fine)."""
        if self.full:
            return padded.reshape(-1, *padded.shape[2:])
        return padded[self.rows, self.cols]

    def pad(self, packed: torch.Tensor) -> torch.Tensor:
        """`[T, ...]` -> `[B, n, ...]` with zeros in the padding slots."""
        batch, width = self.valid.shape
        if self.full:
            return packed.view(batch, width, *packed.shape[1:])
        out = packed.new_zeros(batch * width, *packed.shape[1:])
        out.index_copy_(0, self.rows * width + self.cols, packed)
        return out.view(batch, width, *packed.shape[1:])

    def select(self, keep: torch.Tensor, valid: torch.Tensor) -> tuple[TokenLayout, torch.Tensor]:
        """The layout after keeping the slots `keep` [B, n], and which packed tokens survive.

        `valid` is the new [B, n'] mask with each row's kept tokens moved to the front, as
        `tsdtp.core.pruning.gather_kept` returns it; the survivors keep their row-major order, so
        packed token i of the new layout is packed token `index[i]` of this one.
        """
        index = keep[self.rows, self.cols].nonzero().squeeze(1)
        return TokenLayout.from_valid(valid), index
