"""`PrunedCache`: the KV cache a pruned prefill leaves, each layer holding only the tokens alive at it.

The keys and values live in transformers' own `DynamicCache` (its layers grow independently, so they may
differ in length); next to them each layer keeps the original positions of its cached tokens. transformers'
`create_causal_mask` builds one mask from the first layer's length, which is wrong for the shorter layers, so
the masks here are built per layer from those positions: a query at position p sees the keys at positions <= p.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import DynamicCache


@dataclass
class PrunedCache:
    """Per-layer keys and values (`cache`) and the positions of the tokens each layer holds (`positions`).

    `next_position` is where the next token goes: the prompt's length plus the tokens decoded so far, so new
    tokens continue the original positions whatever was pruned.
    """

    cache: DynamicCache = field(default_factory=DynamicCache)
    positions: list[torch.Tensor] = field(default_factory=list)
    next_position: int = 0

    def lengths(self) -> list[int]:
        """How many tokens each layer's cache holds."""
        return [layer.get_seq_length() for layer in self.cache.layers]

    def record(self, layer: int, positions: torch.Tensor) -> None:
        """Note the positions of the tokens that `layer` has just cached during prefill."""
        if layer != len(self.positions):
            raise ValueError(f"prefill records layer {layer} after {len(self.positions)} layers")
        self.positions.append(positions)

    def extend(self, new_positions: torch.Tensor) -> list[torch.Tensor | None]:
        """Add `new_positions` (the next tokens, about to be cached) to every layer; return each layer's mask.

        A mask is boolean `[1, 1, q, n_l + q]` (True: attend) over layer l's cached keys then the q new ones;
        None for a single new token, which sees every cached key.
        """
        masks: list[torch.Tensor | None] = []
        for index, old in enumerate(self.positions):
            keys = torch.cat([old, new_positions])
            self.positions[index] = keys
            masks.append(None if len(new_positions) == 1 else (keys[None, :] <= new_positions[:, None])[None, None])
        self.next_position = int(new_positions[-1]) + 1
        return masks

    def fork(self) -> PrunedCache:
        """An independent copy: decoding from it leaves this cache as it is."""
        copy = DynamicCache(ddp_cache_data=[(layer.keys, layer.values) for layer in self.cache.layers])
        return PrunedCache(copy, list(self.positions), self.next_position)

    def check(self) -> None:
        """Raise RuntimeError unless every layer's keys, values and positions agree in length and order."""
        for index, (layer, positions) in enumerate(zip(self.cache.layers, self.positions, strict=True)):
            if not layer.keys.shape[-2] == layer.values.shape[-2] == len(positions):
                raise RuntimeError(f"layer {index}: {layer.keys.shape[-2]} keys, {layer.values.shape[-2]} values, "
                                   f"{len(positions)} positions")
            if not bool((positions[1:] > positions[:-1]).all()):
                raise RuntimeError(f"layer {index}: cached positions are not increasing")
