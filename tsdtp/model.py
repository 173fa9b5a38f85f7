"""`PrunedClassifier`: a pretrained BERT-family classifier plus per-layer task scorers.

The pretrained model is used as it is; the engine changes only which tokens each layer sees.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, BertForSequenceClassification

from tsdtp.adapters.bert import BertAdapter
from tsdtp.config import PruningConfig
from tsdtp.engine import EngineOutput, run_layers
from tsdtp.errors import ConfigError
from tsdtp.hub import resolve_model
from tsdtp.losses import pruning_penalty
from tsdtp.scoring import TaskScorer

SCORER_INIT_SEED = 0
"""The scorers are initialised from this seed, whatever the global RNG state."""


@dataclass
class ClassifierOutput:
    """Logits plus the engine's record of what was kept."""

    logits: torch.Tensor
    engine: EngineOutput


class PrunedClassifier(nn.Module):
    """Sequence classifier on [CLS] whose encoder prunes tokens as `pruning` says."""

    def __init__(self, model: BertForSequenceClassification, special_ids: list[int], pruning: PruningConfig) -> None:
        super().__init__()
        self.model = model
        self.adapter = BertAdapter(model, special_ids)
        self.special_ids = list(special_ids)
        self.pruning = pruning
        with torch.random.fork_rng():
            torch.manual_seed(SCORER_INIT_SEED)
            self.scorers = nn.ModuleList(
                TaskScorer(self.adapter.hidden_size, pruning.d_task) for _ in range(self.adapter.num_layers)
            )

    @classmethod
    def from_pretrained(cls, model_id: str, num_labels: int, special_ids: list[int],
                        pruning: PruningConfig) -> PrunedClassifier:
        """Load a pretrained encoder (packaged copy when installed) with a fresh classifier head."""
        path = resolve_model(model_id)
        config = AutoConfig.from_pretrained(path, num_labels=num_labels)
        if config.model_type != "bert":
            raise ConfigError(f"model {model_id!r} is a {config.model_type!r} model; "
                              "the classification engine supports BERT-family encoders (model_type 'bert')")
        model = BertForSequenceClassification.from_pretrained(path, config=config)
        return cls(model, special_ids, pruning)

    def forward(self, batch: dict[str, torch.Tensor], record_trace: bool = False,
                generator: torch.Generator | None = None) -> ClassifierOutput:
        """Classify a padded batch; in training mode with a pruning method, masks are soft."""
        valid = batch["attention_mask"].bool()
        special = self.adapter.special_mask(batch["input_ids"])
        embeddings = self.adapter.embed(batch)
        soft = self.training and self.pruning.prunes
        output = run_layers(self.adapter, self.scorers, self.pruning, embeddings, valid, special,
                            soft=soft, record_trace=record_trace, generator=generator)
        return ClassifierOutput(self.adapter.classify(output.hidden), output)

    def loss(self, output: ClassifierOutput, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """`CE + lambda_aux * L_aux + lambda_keep * L_keep` (see `tsdtp.losses`), and each part as a float."""
        loss = F.cross_entropy(output.logits, labels)
        penalty, parts = pruning_penalty(output.engine, self.pruning)
        return loss + penalty, {"ce": float(loss.detach()), **parts}
