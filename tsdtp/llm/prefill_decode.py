"""Decoding from a (pruned) prefill's cache: greedy generation, and the logits of a given continuation.

New tokens continue the original positions (prompt length + step) whatever the prefill pruned; each layer
attends over its own cache with its own mask (`PrunedCache.extend`).
"""

from __future__ import annotations

import torch
from transformers import PreTrainedModel

from tsdtp.errors import ConfigError
from tsdtp.llm.prefill import PrefillResult, context_limit, decoder_layers
from tsdtp.llm.prefill_cache import PrunedCache


@torch.inference_mode()
def decode(model: PreTrainedModel, cache: PrunedCache, tokens: torch.Tensor) -> torch.Tensor:
    """Feed `tokens` [q] after what `cache` holds (extending it); their next-token logits [q, vocab]."""
    start = cache.next_position
    if start + len(tokens) > context_limit(model):
        raise ConfigError(f"decoding to position {start + len(tokens)} runs past the model's context limit of "
                          f"{context_limit(model)} positions")
    positions = torch.arange(start, start + len(tokens))
    masks = cache.extend(positions)
    inner = model.model
    hidden = inner.embed_tokens(tokens[None])
    rotary = inner.rotary_emb(hidden, positions[None])
    for layer, mask in zip(decoder_layers(model), masks, strict=True):
        hidden = layer(hidden, attention_mask=mask, position_embeddings=rotary, position_ids=positions[None],
                       cache=cache.cache)
    return model.lm_head(inner.norm(hidden))[0]


def greedy_tokens(model: PreTrainedModel, result: PrefillResult, steps: int) -> torch.Tensor:
    """The next `steps` greedy tokens after the prompt [steps], decoded from a fork of the prefill's cache
    (no stop at end-of-sequence: exactly `steps` tokens)."""
    cache = result.cache.fork()
    token = result.logits.argmax()[None]
    tokens = [token]
    for _ in range(steps - 1):
        token = decode(model, cache, token)[-1].argmax()[None]
        tokens.append(token)
    return torch.cat(tokens)


def continuation_logits(model: PreTrainedModel, result: PrefillResult, continuation: torch.Tensor) -> torch.Tensor:
    """Next-token logits [m, vocab] for each token of `continuation` [m] given the prompt and the continuation
    before it (teacher forcing), from a fork of the prefill's cache."""
    if len(continuation) == 0:
        raise ConfigError("the continuation is empty: expected at least one token to score")
    rest = decode(model, result.cache.fork(), continuation[:-1]) if len(continuation) > 1 else None
    return result.logits[None] if rest is None else torch.cat([result.logits[None], rest])
