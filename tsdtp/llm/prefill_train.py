"""Training the task scorers of the TS-DTP prefill variant, briefly, on a task's prompts.

The encoder recipe (soft masks, the task loss through every layer) needs a backward pass through the whole
model on long prompts, out of reach on 2 CPU cores in minutes. Here each scorer learns what its layer's own
attention misses: which prompt tokens the last prompt tokens will attend to in the *later* layers. A dense
prefill of each training prompt records, at every pruning layer l, the layer's output (the scorer's features)
and the target: the attention the last `last_queries` tokens pay each token, averaged over the layers after l.
The scorer's task attention received (a distribution over the tokens) is fitted to it by cross-entropy. The
model is frozen; only the scorers train, on features computed once. (At a pruning layer that is the model's
last, the target is that layer's own attention.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn
from transformers import DynamicCache, PreTrainedModel

from tsdtp.llm.prefill import check_prompt, decoder_layers
from tsdtp.llm.prefill_config import PrefillPruning
from tsdtp.llm.prefill_rank import last_query_attention, task_attention

Example = dict[int, tuple[torch.Tensor, torch.Tensor]]
"""Per pruning layer: the layer's output [1, n, hidden] and the target importance [n]."""


@torch.no_grad()
def scorer_targets(model: PreTrainedModel, input_ids: torch.Tensor, pruning: PrefillPruning) -> Example:
    """One dense prefill of a prompt: each pruning layer's output and the later layers' last-query attention."""
    ids, layers, inner = check_prompt(model, input_ids), decoder_layers(model), model.model
    pruning.check_depth(len(layers))
    hidden, positions = inner.embed_tokens(ids[None]), torch.arange(len(ids))
    rotary, cache = inner.rotary_emb(hidden, positions[None]), DynamicCache(config=model.config)
    outputs, attention = {}, []
    for index, layer in enumerate(layers):
        layer_input = hidden
        hidden = layer(hidden, attention_mask=None, position_embeddings=rotary, cache=cache)
        attention.append(last_query_attention(layer, layer_input, cache.layers[index].keys, rotary, positions,
                                              pruning.last_queries))
        if index in pruning.prune_layers:
            outputs[index] = hidden.clone()
    return {index: (outputs[index], torch.stack(attention[index + 1:] or attention[index:]).mean(dim=0))
            for index in outputs}


def train_scorers(scorers: nn.ModuleDict, examples: Sequence[Example], last_queries: int, epochs: int = 5,
                  lr: float = 1e-3, log: Callable[[str], None] = print) -> list[float]:
    """Fit each scorer's task attention to its targets (cross-entropy, Adam); the mean loss of every epoch."""
    optimizer = torch.optim.Adam(scorers.parameters(), lr=lr)
    scorers.train()
    losses = []
    for epoch in range(epochs):
        total = 0.0
        for example in examples:
            optimizer.zero_grad()
            loss = sum(-(target * task_attention(scorers[str(layer)], features, last_queries).clamp_min(1e-9).log()
                         ).sum() for layer, (features, target) in example.items()) / len(example)
            loss.backward()
            optimizer.step()
            total += float(loss.detach())
        losses.append(total / len(examples))
        log(f"scorers: epoch {epoch + 1}/{epochs}, cross-entropy {losses[-1]:.4f}")
    scorers.eval()
    return losses
