"""`PrunedTranslator`: a `MarianMTModel` whose encoder prunes source tokens, plus per-layer task scorers.

Training (`soft` masks): the cumulative log soft mask after the last encoder layer is added to
the decoder's cross-attention logits, so the decoder learns to translate from what the
encoder keeps. Inference (real removal): only the surviving encoder states, gathered and
re-padded, and their validity mask are passed to `generate()` as `encoder_outputs` and
`attention_mask`; beam search expands them like any encoder output, and every decoder step
cross-attends to the survivors only.
"""

from __future__ import annotations

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
        output = self.model(encoder_outputs=(engine.hidden,), attention_mask=cross_attention_mask(engine),
                            decoder_input_ids=batch["decoder_input_ids"], use_cache=False)
        return TranslatorOutput(output.logits, engine)

    def loss(self, output: TranslatorOutput, labels: torch.Tensor, label_smoothing: float = 0.0
             ) -> tuple[torch.Tensor, dict[str, float]]:
        """Label-smoothed token cross-entropy plus the pruning terms of `tsdtp.core.losses`, and each part."""
        loss = F.cross_entropy(output.logits.flatten(0, 1), labels.flatten(), ignore_index=LABEL_PAD,
                               label_smoothing=label_smoothing)
        return self.add_pruning_penalty(loss, output.engine)

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, num_beams: int, max_new_tokens: int,
                 record_trace: bool = False, generator: torch.Generator | None = None
                 ) -> tuple[torch.Tensor, EngineOutput]:
        """Translate with hard pruning: the decoder cross-attends to the surviving source tokens only.

        `max_new_tokens` bounds the output (passed as `max_length`, which counts the start token).
        """
        engine = self.encode(input_ids, attention_mask, record_trace=record_trace, generator=generator)
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


def cross_attention_mask(engine: EngineOutput) -> torch.Tensor:
    """What the decoder's cross-attention sees: the validity mask [B, n], or in training the
    additive 4-D mask [B, 1, 1, N] carrying the encoder's cumulative log soft keep mask."""
    if engine.log_keep is None:
        return engine.valid.long()
    neg = torch.finfo(engine.hidden.dtype).min
    return torch.where(engine.valid, engine.log_keep, neg).to(engine.hidden.dtype)[:, None, None, :]
