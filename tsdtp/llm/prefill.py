"""The pruned prefill: a Llama model's own decoder layers, run layer by layer on the prompt tokens still alive.

After each pruning layer the prompt tokens are ranked (`tsdtp.llm.prefill_rank`) and the weak ones are removed
from the hidden states: later layers neither compute nor cache them, so each layer's cache holds exactly the
tokens alive at it. The survivors keep their original rotary positions. Attention inside the prefill is causal
over the survivors, which stay in prompt order, so SDPA's own causal kernel serves every layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import DynamicCache, PreTrainedModel
from transformers.models.llama.modeling_llama import LlamaDecoderLayer

from tsdtp.errors import ConfigError
from tsdtp.llm.prefill_cache import PrunedCache
from tsdtp.llm.prefill_config import PrefillPruning
from tsdtp.llm.prefill_rank import choose_survivors, last_query_attention, pool_scores, task_attention


@dataclass
class PrefillResult:
    """What a (pruned) prefill leaves: the next-token logits at the last prompt token ([vocab]), the cache, and
    the layers after which tokens were ranked and pruned."""

    logits: torch.Tensor
    cache: PrunedCache
    prompt_length: int
    ranked_layers: list[int]

    def keep_counts(self) -> list[int]:
        """Prompt tokens each layer computed and cached, first layer first."""
        return [len(positions) for positions in self.cache.positions]


def decoder_layers(model: PreTrainedModel) -> nn.ModuleList:
    """The decoder layers of a Llama-architecture causal LM; ConfigError for any other model."""
    layers = getattr(getattr(model, "model", None), "layers", None)
    if layers is None or not all(isinstance(layer, LlamaDecoderLayer) for layer in layers):
        raise ConfigError(f"prefill pruning needs a Llama-architecture causal LM (LlamaForCausalLM); got "
                          f"{type(model).__name__}")
    return layers


def context_limit(model: PreTrainedModel) -> int:
    """The most positions the model was built for (`max_position_embeddings`)."""
    return int(model.config.max_position_embeddings)


def check_prompt(model: PreTrainedModel, input_ids: torch.Tensor, new_tokens: int = 0) -> torch.Tensor:
    """`input_ids` as one prompt [n]; ConfigError when it is empty, batched, or with `new_tokens` more would run
    past the model's context limit (no truncation: the caller decides what to cut)."""
    ids = input_ids[0] if input_ids.dim() == 2 and input_ids.shape[0] == 1 else input_ids
    if ids.dim() != 1:
        raise ConfigError(f"prefill takes one prompt, token ids [n] or [1, n]; got shape {tuple(input_ids.shape)}")
    if len(ids) == 0:
        raise ConfigError("the prompt is empty: expected at least one token")
    if len(ids) + new_tokens > context_limit(model):
        raise ConfigError(f"the prompt has {len(ids)} tokens and {new_tokens} more are asked for: over the model's "
                          f"context limit of {context_limit(model)} positions; shorten the prompt")
    return ids


def protected_tokens(input_ids: torch.Tensor, special_ids: set[int] | frozenset[int] = frozenset(),
                     keep_last: int = 1) -> torch.Tensor:
    """Boolean [n]: the tokens no layer may prune, the last `keep_last` (at least the last one) and every token
    whose id is in `special_ids`."""
    protected = torch.isin(input_ids, torch.tensor(sorted(special_ids), dtype=input_ids.dtype))
    protected[-max(1, keep_last):] = True
    return protected


@torch.inference_mode()
def prefill(model: PreTrainedModel, input_ids: torch.Tensor, pruning: PrefillPruning = PrefillPruning(),
            special_ids: set[int] | frozenset[int] = frozenset(),
            scorers: nn.ModuleDict | None = None) -> PrefillResult:
    """Run the prompt through the model, pruning it as `pruning` says; dense when it prunes nothing.

    special_ids: token ids never pruned (the chat template's); the last prompt token is never pruned either.
    scorers: the trained task scorers by pruning layer (`str(layer)` keys), needed when `pruning.gamma > 0`.
    """
    ids = check_prompt(model, input_ids)
    layers = decoder_layers(model)
    pruning.check_depth(len(layers))
    if pruning.gamma > 0 and (scorers is None or any(str(layer) not in scorers for layer in pruning.prune_layers)):
        raise ConfigError(f"gamma = {pruning.gamma:g} needs a trained task scorer for every pruning layer "
                          f"{pruning.prune_layers}; pass scorers or set gamma = 0")
    protected = protected_tokens(ids, special_ids, pruning.keep_last)
    inner, length = model.model, len(ids)
    hidden = inner.embed_tokens(ids[None])
    alive = torch.arange(length)
    rotary = inner.rotary_emb(hidden, alive[None])
    cache = PrunedCache(DynamicCache(config=model.config), next_position=length)
    ranked: list[int] = []
    for index, layer in enumerate(layers):
        layer_input = hidden
        hidden = layer(hidden, attention_mask=None, position_embeddings=rotary, position_ids=alive[None],
                       cache=cache.cache)
        cache.record(index, alive)
        keep = pruning.keep_count(index, length)
        if keep is None or keep >= len(alive):
            continue
        scores = last_query_attention(layer, layer_input, cache.cache.layers[index].keys, rotary, alive,
                                      pruning.last_queries)
        if pruning.gamma > 0:
            scores = scores + pruning.gamma * task_attention(scorers[str(index)], hidden, pruning.last_queries)
        kept = choose_survivors(pool_scores(scores, pruning.pool), keep, protected[alive])
        ranked.append(index)
        hidden, alive, rotary = hidden[:, kept], alive[kept], (rotary[0][:, kept], rotary[1][:, kept])
    logits = model.lm_head(inner.norm(hidden[:, -1:]))[0, -1]
    return PrefillResult(logits, cache, length, ranked)
