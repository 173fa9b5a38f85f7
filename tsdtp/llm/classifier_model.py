"""`PrunedLlamaClassifier`: a Llama-architecture model classifying at the prompt's last token, with LoRA adapters,
a trained head and per-layer task scorers.

The base weights are the pretrained model's, frozen; LoRA adapters (peft, injected into the model's own
linears, so the adapter's layer calls run them) are what adapts them. The head starts as the model's own
output-layer rows of the label words (`tsdtp.llm.classifier_prompts.PROMPTS`), so the untrained classifier
is the zero-shot one. The wrapper's `state_dict` holds only what trains (adapters, head, scorers): the frozen
base is reloaded from its model id, which keeps checkpoints and resumable state a few MB.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from peft import LoraConfig, inject_adapter_in_model
from torch import nn
from transformers import LlamaForCausalLM, LlamaForSequenceClassification, PreTrainedTokenizerBase

from tsdtp.adapters.llama import LlamaAdapter
from tsdtp.core.config import PruningConfig
from tsdtp.core.engine import EngineOutput, run_layers
from tsdtp.core.flops import EncoderShape
from tsdtp.core.pruned_model import PrunedModel, special_token_ids
from tsdtp.errors import ConfigError
from tsdtp.hub import load_causal_lm
from tsdtp.llm.classifier_config import LlmTrainConfig
from tsdtp.llm.classifier_prompts import label_token_ids


@dataclass
class LlmClassifierOutput:
    """Logits [B, C] at each prompt's last token, and the engine's record of what was kept."""

    logits: torch.Tensor
    engine: EngineOutput


def sequence_classifier(causal: LlamaForCausalLM, label_ids: list[int]) -> LlamaForSequenceClassification:
    """A sequence classifier sharing `causal`'s body, its head the output-layer rows of `label_ids`."""
    config = causal.config
    config.num_labels = len(label_ids)
    with torch.device("meta"):
        classifier = LlamaForSequenceClassification(config)
    classifier.model = causal.model
    classifier.score = nn.Linear(config.hidden_size, len(label_ids), bias=False)
    with torch.no_grad():
        classifier.score.weight.copy_(causal.get_output_embeddings().weight[label_ids])
    return classifier


def add_lora(model: LlamaForSequenceClassification, config: LlmTrainConfig) -> None:
    """Freeze the body and inject LoRA adapters into its `lora_targets` linears; the head stays trainable."""
    lora = LoraConfig(r=config.lora_rank, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=list(config.lora_targets))
    inject_adapter_in_model(lora, model.model)
    model.score.weight.requires_grad_(True)


def llama_shape(model: PrunedLlamaClassifier) -> EncoderShape:
    """The FLOPs-relevant sizes of the classifier: grouped-query keys and values, a three-matrix gated MLP."""
    adapter = model.adapter
    return EncoderShape(adapter.hidden_size, adapter.intermediate_size, adapter.num_layers, model.pruning.d_task,
                        kv_hidden=adapter.num_kv_heads * adapter.head_dim, ffn_matrices=3)


class PrunedLlamaClassifier(PrunedModel):
    """A Llama sequence classifier (label at the last token) whose layers prune tokens as `pruning` says."""

    model: LlamaForSequenceClassification
    adapter: LlamaAdapter

    def __init__(self, model: LlamaForSequenceClassification, special_ids: list[int], pruning: PruningConfig) -> None:
        super().__init__(model, LlamaAdapter(model, special_ids), special_ids, pruning)
        self.trained_names = frozenset(name for name, parameter in self.named_parameters()
                                       if parameter.requires_grad)

    @classmethod
    def build(cls, config: LlmTrainConfig) -> tuple[PrunedLlamaClassifier, PreTrainedTokenizerBase]:
        """The pretrained model of `config` with LoRA adapters, the label-word head and fresh scorers."""
        causal, tokenizer = load_causal_lm(config.model)
        context = causal.config.max_position_embeddings
        if config.max_length > context:
            raise ConfigError(f"max_length {config.max_length} exceeds the context of {config.model} "
                              f"({context} tokens)")
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        causal.config.pad_token_id = tokenizer.pad_token_id
        model = sequence_classifier(causal, label_token_ids(tokenizer, config.task))
        add_lora(model, config)
        return cls(model, special_token_ids(tokenizer), config.pruning), tokenizer

    def forward(self, batch: dict[str, torch.Tensor], record_trace: bool = False,
                generator: torch.Generator | None = None) -> LlmClassifierOutput:
        """Classify a right-padded batch of prompts; in training mode with a pruning method, masks are soft."""
        input_ids, valid = batch["input_ids"], batch["attention_mask"].bool()
        engine = run_layers(self.adapter, self.scorers, self.pruning, self.adapter.embed(input_ids), valid,
                            self.adapter.special_mask(input_ids, valid), mode=self.engine_mode(),
                            record_trace=record_trace, generator=generator)
        return LlmClassifierOutput(self.adapter.classify(engine.hidden, engine.valid), engine)

    def loss(self, output: LlmClassifierOutput, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """`CE + lambda_aux * L_aux + lambda_keep * L_keep` (see `tsdtp.core.losses`), and each part as a float."""
        return self.add_pruning_penalty(F.cross_entropy(output.logits, labels), output.engine)

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """What trains: the LoRA adapters, the head and the scorers (the frozen base comes from the model id)."""
        return {name: value for name, value in super().state_dict(*args, **kwargs).items()
                if name in self.trained_names}

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        """Load what `state_dict` saved; with `strict`, a key missing or unknown is a RuntimeError."""
        missing, unexpected = self.trained_names - set(state_dict), set(state_dict) - self.trained_names
        if strict and (missing or unexpected):
            raise RuntimeError(f"trained state does not match the model: missing {sorted(missing)[:3]}, "
                               f"unexpected {sorted(unexpected)[:3]}")
        return super().load_state_dict(state_dict, strict=False, assign=assign)
