"""Exact matmul FLOPs of a (pruned) prefill of a Llama model, by the project's conventions (`tsdtp.core.flops`).

A multiply-add counts 2; elementwise work (norms, rotary, activations, softmax) is left out. Per decoder layer
on n tokens, hidden d, FFN width f, H query heads and K key-value heads of width h:
    projections  2 n d (2 H h + 2 K h)        (Q and O at H heads, K and V at K heads)
    feed-forward 6 n d f                       (gate, up, down)
    attention    4 H n^2 h                     (scores and mix over the full square, as FlopCounterMode counts
                                                SDPA; the causal kernel skips about half of it, dense and pruned alike)
Ranking at a pruning layer from the last m alive tokens adds 2 m d H h (their queries), 2 H m n h (their
scores) and 2 H m n (the mean over heads and queries); the task scorer adds 4 n d d_task + 2 n^2 d_task + 2 n^2.
The LM head runs on the last token only: 2 d V, in dense and pruned prefill alike.
"""

from __future__ import annotations

from dataclasses import dataclass

from transformers import PretrainedConfig

from tsdtp.llm.prefill_config import PrefillPruning


@dataclass(frozen=True)
class DecoderShape:
    """The sizes a Llama prefill's FLOPs depend on."""

    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int

    @classmethod
    def of(cls, config: PretrainedConfig) -> DecoderShape:
        """The shape of a Llama config."""
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        return cls(config.hidden_size, config.intermediate_size, config.num_attention_heads,
                   config.num_key_value_heads, head_dim, config.vocab_size)

    def layer(self, tokens: int) -> int:
        """FLOPs of one decoder layer on `tokens` tokens (causal prefill, nothing cached before)."""
        projections = 2 * tokens * self.hidden * (2 * self.heads + 2 * self.kv_heads) * self.head_dim
        return projections + 6 * tokens * self.hidden * self.intermediate + 4 * self.heads * tokens ** 2 * self.head_dim

    def ranking(self, tokens: int, queries: int, d_task: int | None) -> int:
        """FLOPs of ranking `tokens` alive tokens by the last `queries` ones (and the task scorer when `d_task`)."""
        queries = min(queries, tokens)
        last = 2 * queries * self.hidden * self.heads * self.head_dim + 2 * self.heads * queries * tokens * (
            self.head_dim + 1)
        task = 0 if d_task is None else 4 * tokens * self.hidden * d_task + 2 * tokens ** 2 * (d_task + 1)
        return last + task

    def head(self) -> int:
        """FLOPs of the LM head on the last token."""
        return 2 * self.hidden * self.vocab


@dataclass(frozen=True)
class PrefillFlops:
    """Dense and pruned prefill FLOPs of one prompt (ranking included in `pruned`)."""

    dense: int
    pruned: int
    ranking: int

    @property
    def ratio(self) -> float:
        """Pruned over dense."""
        return self.pruned / self.dense

    @property
    def implied_speedup(self) -> float:
        """Dense over pruned: the speedup the FLOPs allow."""
        return self.dense / self.pruned


def prefill_flops(shape: DecoderShape, keep_counts: list[int], ranked_layers: list[int],
                  pruning: PrefillPruning) -> PrefillFlops:
    """FLOPs of a prefill whose layer l computed `keep_counts[l]` tokens and ranked after `ranked_layers`,
    against the dense prefill of the same prompt (`keep_counts[0]` tokens at every layer)."""
    d_task = pruning.d_task if pruning.gamma > 0 else None
    layers = sum(shape.layer(tokens) for tokens in keep_counts)
    ranking = sum(shape.ranking(keep_counts[layer], pruning.last_queries, d_task) for layer in ranked_layers)
    dense = len(keep_counts) * shape.layer(keep_counts[0]) + shape.head()
    return PrefillFlops(dense, layers + ranking + shape.head(), ranking)
