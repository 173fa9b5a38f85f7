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

    valid: [B, n], True for live slots; rows, cols: [T] slot of each packed token (row-major),
    None when no slot is padding (`full`).
    """

    valid: torch.Tensor
    rows: torch.Tensor | None = None
    cols: torch.Tensor | None = None

    @classmethod
    def from_valid(cls, valid: torch.Tensor) -> TokenLayout:
        """The layout of the live slots of `valid` [B, n], in row-major order."""
        rows, cols = valid.nonzero(as_tuple=True)
        return cls(valid) if rows.shape[0] == valid.numel() else cls(valid, rows, cols)

    @property
    def full(self) -> bool:
        """No slot is padding, so packing and padding are reshapes (always so at batch size 1)."""
        return self.rows is None

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

    def first_tokens(self, packed: torch.Tensor) -> torch.Tensor:
        """`[T, ...]` -> `[B, ...]`: the first live token of each row (every row has one)."""
        batch, width = self.valid.shape
        if self.full:
            return packed.view(batch, width, *packed.shape[1:])[:, 0]
        counts = self.valid.sum(dim=-1)
        return packed[counts.cumsum(dim=0) - counts]

    def select(self, keep: torch.Tensor, valid: torch.Tensor) -> tuple[TokenLayout, torch.Tensor]:
        """The layout after keeping the slots `keep` [B, n], and which packed tokens survive.

        `valid` is the new [B, n'] mask with each row's kept tokens moved to the front, as
        `tsdtp.core.pruning.gather_kept` returns it; the survivors keep their row-major order, so
        packed token i of the new layout is packed token `index[i]` of this one.
        """
        kept = keep.reshape(-1) if self.full else keep[self.rows, self.cols]
        index = kept.nonzero().squeeze(1)
        return TokenLayout.from_valid(valid), index


def first_tokens(hidden: torch.Tensor, layout: TokenLayout | None) -> torch.Tensor:
    """The first token of each row, [B, d]: of the padded block [B, n, d], or of packed tokens with their `layout`."""
    return hidden[:, 0] if layout is None else layout.first_tokens(hidden)
