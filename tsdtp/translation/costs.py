"""Analytic FLOPs of the decoder's cross-attention, the part of decoding that depends on the source length.

Per decoder layer, a hypothesis of `t` target tokens cross-attending to `n` source states of width d
(multiply-add = 2) costs:
    key and value projections of the source states    4 n d^2   (once per hypothesis)
    attention scores and mixing                       4 n d t   (every step)
The query and output projections do not depend on n and are left out. Beam search runs every
hypothesis of a sentence (`num_beams`). Under `exit` the decoder reads every source position, so the
cost is the dense one; it falls only when tokens are deleted or merged.
"""

from __future__ import annotations

import torch


def cross_attention_flops(source_tokens: torch.Tensor, target_tokens: torch.Tensor, d_model: int,
                          decoder_layers: int, num_beams: int = 1) -> torch.Tensor:
    """Cross-attention FLOPs per sentence (elementwise over [n] counts of source states and target tokens)."""
    n, t = source_tokens.double(), target_tokens.double()
    return decoder_layers * num_beams * (4 * n * d_model**2 + 4 * n * d_model * t)
