"""`PrunedTranslator`: a `MarianMTModel` whose encoder prunes source tokens, plus per-layer task scorers.

What the decoder reads depends on the exit mode (`PruningConfig.exit_mode`, `tsdtp.core.exits`):
- `exit` (the translation default): every source position, a pruned token at the state it had when it
  left the encoder; in training the decoder sees every position too.
- `delete`: in training the cumulative log soft mask after the last encoder layer is added to the
  decoder's cross-attention logits, so the decoder learns to translate from what the encoder keeps; at
  inference only the surviving encoder states, gathered and re-padded, and their validity mask are
  passed to `generate()` as `encoder_outputs` and `attention_mask`; beam search expands them like any
  encoder output, and every decoder step cross-attends to the survivors only.
- `merge`: the survivors, each carrying the tokens merged into it, with +log(size) on its
  cross-attention logits (an additive 4-D mask), on top of the soft mask in training.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import (
    GenerationConfig,
    MarianConfig,
    MarianMTModel,
    PreTrainedTokenizerBase,
)
from transformers.modeling_outputs import BaseModelOutput

from tsdtp.adapters.marian import MarianAdapter
from tsdtp.core.config import PruningConfig
from tsdtp.core.engine import EngineOutput
from tsdtp.core.exits import TokenExit
from tsdtp.core.pruned_model import PrunedModel
from tsdtp.translation.config import MTConfig, translation_pruning
from tsdtp.translation.encoding import LABEL_PAD


@dataclass
class TranslatorOutput:
    """Teacher-forced logits [B, T, V] plus the engine's record of what was kept."""

    logits: torch.Tensor
    engine: EngineOutput


def scratch_marian_config(config: MTConfig, tokenizer: PreTrainedTokenizerBase) -> MarianConfig:
    """The `MarianConfig` of a model trained from scratch: shared vocabulary and tied embeddings."""
    vocab = len(tokenizer)
    return MarianConfig(
        vocab_size=vocab, decoder_vocab_size=vocab, d_model=config.d_model, encoder_layers=config.encoder_layers,
        decoder_layers=config.decoder_layers, encoder_attention_heads=config.attention_heads,
        decoder_attention_heads=config.attention_heads, encoder_ffn_dim=config.ffn_dim,
        decoder_ffn_dim=config.ffn_dim, max_position_embeddings=max(config.max_source_length,
                                                                     config.max_target_length) + 2,
        dropout=config.dropout, attention_dropout=config.dropout, activation_dropout=0.0,
        activation_function=config.activation, scale_embedding=True, share_encoder_decoder_embeddings=True,
        tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id, forced_eos_token_id=tokenizer.eos_token_id)


def build_scratch_model(config: MTConfig, tokenizer: PreTrainedTokenizerBase) -> MarianMTModel:
    """A freshly initialised `MarianMTModel` with beam-search defaults in its generation config."""
    model = MarianMTModel(scratch_marian_config(config, tokenizer))
    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
    model.generation_config = GenerationConfig(
        decoder_start_token_id=pad, eos_token_id=eos, pad_token_id=pad, forced_eos_token_id=eos,
        bad_words_ids=[[pad]], num_beams=4, max_length=config.max_target_length)
    return model


class PrunedTranslator(PrunedModel):
    """Encoder-decoder translator whose encoder prunes source tokens as `pruning` says."""

    model: MarianMTModel
    adapter: MarianAdapter

    def __init__(self, model: MarianMTModel, special_ids: list[int], pruning: PruningConfig) -> None:
        super().__init__(model, MarianAdapter(model, special_ids), special_ids, pruning)

    def complete_pruning(self, pruning: PruningConfig) -> PruningConfig:
        """`pruning` with the encoder's default pruning layers filled in."""
        return translation_pruning(pruning, self.adapter.num_layers)

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, record_trace: bool = False,
               generator: torch.Generator | None = None) -> EngineOutput:
        """Run the pruning encoder; in training mode with a pruning method, masks are soft."""
        return self.run_engine(self.adapter.embed(input_ids), input_ids, attention_mask, record_trace=record_trace,
                               generator=generator)

    def forward(self, batch: dict[str, torch.Tensor]) -> TranslatorOutput:
        """Teacher-forced decoder logits for a padded batch (`input_ids`, `attention_mask`, `decoder_input_ids`)."""
        engine = self.encode(batch["input_ids"], batch["attention_mask"])
        output = self.model(encoder_outputs=(engine.hidden,), attention_mask=self.cross_attention_mask(engine),
                            decoder_input_ids=batch["decoder_input_ids"], use_cache=False)
        return TranslatorOutput(output.logits, engine)

    def loss(self, output: TranslatorOutput, labels: torch.Tensor, label_smoothing: float = 0.0
             ) -> tuple[torch.Tensor, dict[str, float]]:
        """Label-smoothed token cross-entropy plus the pruning terms of `tsdtp.core.losses`, and each part."""
        return self.add_pruning_penalty(token_cross_entropy(output.logits, labels, label_smoothing), output.engine)

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, num_beams: int, max_new_tokens: int,
                 record_trace: bool = False, generator: torch.Generator | None = None
                 ) -> tuple[torch.Tensor, EngineOutput]:
        """Translate with hard pruning: the decoder cross-attends to what the exit mode leaves it (every source
        position under `exit`, the survivors under `delete` and `merge`).

        `max_new_tokens` bounds the output (passed as `max_length`, which counts the start token).
        """
        engine = self.encode(input_ids, attention_mask, record_trace=record_trace, generator=generator)
        with cross_attention_bias(self.model, merged_key_bias(engine)):
            sequences = self.model.generate(encoder_outputs=BaseModelOutput(last_hidden_state=engine.hidden),
                                            attention_mask=engine.valid.long(), num_beams=num_beams,
                                            max_length=max_new_tokens + 1)
        return sequences, engine

    @torch.no_grad()
    def dense_generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, num_beams: int,
                       max_new_tokens: int) -> torch.Tensor:
        """The library's own end-to-end `generate()` on the full source: the reference for equivalence and speed."""
        return self.model.generate(input_ids=input_ids, attention_mask=attention_mask, num_beams=num_beams,
                                   max_length=max_new_tokens + 1)


    def cross_attention_mask(self, engine: EngineOutput) -> torch.Tensor:
        """What the decoder's cross-attention sees of `engine`'s output under this model's exit mode."""
        return cross_attention_mask(engine, TokenExit(self.pruning.exit_mode))


def merged_key_bias(engine: EngineOutput) -> torch.Tensor | None:
    """The additive cross-attention key bias of merged tokens, log(size) or the float minimum for padding, [B, n];
    None when nothing was merged."""
    if engine.log_sizes is None:
        return None
    return torch.where(engine.valid, engine.log_sizes, torch.finfo(engine.hidden.dtype).min)


@contextmanager
def cross_attention_bias(model: MarianMTModel, bias: torch.Tensor | None) -> Iterator[None]:
    """While open, every decoder cross-attention of `model` adds `bias` [B, n] to its logits in place of the mask
    `generate()` builds (which must be 2-D), each row repeated for the sentence's beam hypotheses. None: no change."""
    if bias is None:
        yield
        return

    def replace_mask(module: torch.nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        hidden = args[0] if args else kwargs["hidden_states"]
        rows = bias.repeat_interleave(hidden.shape[0] // bias.shape[0], dim=0)
        return args, {**kwargs, "attention_mask": rows[:, None, None, :].to(hidden.dtype)}

    handles = [layer.encoder_attn.register_forward_pre_hook(replace_mask, with_kwargs=True)
               for layer in model.get_decoder().layers]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def token_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean (label-smoothed) cross-entropy of logits [B, T, V] over the labelled target tokens."""
    return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=LABEL_PAD,
                           label_smoothing=label_smoothing)


def cross_attention_mask(engine: EngineOutput, mode: TokenExit = TokenExit.DELETE) -> torch.Tensor:
    """What the decoder's cross-attention sees: the validity mask [B, n], or an additive 4-D mask [B, 1, 1, n]
    carrying, in training, the encoder's cumulative log soft keep mask (`delete`, `merge`) and, when merging,
    the log size of each merged token. Under `exit` the decoder sees every valid position, soft masks or not."""
    bias = None if mode is TokenExit.EXIT else engine.log_keep
    if engine.log_sizes is not None:
        bias = engine.log_sizes if bias is None else bias + engine.log_sizes
    if bias is None:
        return engine.valid.long()
    neg = torch.finfo(engine.hidden.dtype).min
    return torch.where(engine.valid, bias, neg).to(engine.hidden.dtype)[:, None, None, :]
