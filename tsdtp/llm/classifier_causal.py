"""A fine-tuned SST-2 LLM classification run as a causal LM, so that pruned prefill can be measured on long
few-shot prompts with a model trained for the task (docs/llm-prefill.md, session 12: trained on one review per
prompt, it is at chance on 2,048-token few-shot prompts).

SmolLM2-135M-Instruct alone is below chance on long few-shot SST-2 prompts (docs/llm-prefill.md), so its
few-shot accuracy compares two failures. Here the run's body (the frozen base with its LoRA adapters merged
in, so it runs as fast as the base) sits under the pretrained model's output layer (reloaded from the run's
model id), whose rows for the few-shot label words (`tsdtp.llm.prompts`) become the run's trained head: at a
few-shot prompt's last token the two label logits are the classifier's, and every other token's logit is the
pretrained output layer's.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import torch
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn
from transformers import LlamaForCausalLM, PreTrainedTokenizerBase

from tsdtp.errors import ConfigError
from tsdtp.hub import load_causal_lm, short_model_name
from tsdtp.llm.classifier_checkpoint import load_checkpoint
from tsdtp.llm.prompts import label_token_ids


def classifier_causal_lm(run_dir: str | os.PathLike) -> tuple[LlamaForCausalLM, PreTrainedTokenizerBase]:
    """The SST-2 classifier of `run_dir` (written by `tsdtp llm-train`) as a causal LM in eval mode, and its
    tokenizer; a run of another task is a ConfigError, a missing or corrupt checkpoint a CheckpointError."""
    classifier, tokenizer, config = load_checkpoint(Path(run_dir))
    if config.task != "sst2":
        raise ConfigError(f"run {run_dir} classifies {config.task}; the few-shot prompts are SST-2's, so only an "
                          "sst2 run can answer them")
    body = classifier.model.model
    for module in body.modules():
        if isinstance(module, BaseTunerLayer):
            module.merge()
    pretrained, _ = load_causal_lm(config.model)
    causal_config = copy.deepcopy(body.config)
    causal_config.tie_word_embeddings = False
    with torch.device("meta"):
        causal = LlamaForCausalLM(causal_config)
    causal.model = body
    causal.lm_head = nn.Linear(causal_config.hidden_size, causal_config.vocab_size, bias=False)
    with torch.no_grad():
        causal.lm_head.weight.copy_(pretrained.get_output_embeddings().weight)
        causal.lm_head.weight[list(label_token_ids(tokenizer))] = classifier.model.score.weight
    return causal.eval(), tokenizer


def load_prefill_model(model_id: str, classifier_run: str | os.PathLike | None = None
                       ) -> tuple[LlamaForCausalLM, PreTrainedTokenizerBase, str]:
    """The causal LM that prefill is measured on, in eval mode: `classifier_causal_lm(classifier_run)` when a
    run is given, else `model_id` with SDPA attention; its tokenizer, and its label in tables."""
    if classifier_run:
        model, tokenizer = classifier_causal_lm(classifier_run)
        return model, tokenizer, f"{Path(classifier_run).name} (classifier)"
    model, tokenizer = load_causal_lm(model_id, attn_implementation="sdpa")
    return model.eval(), tokenizer, short_model_name(model_id)
