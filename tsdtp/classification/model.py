"""`PrunedClassifier`: a pretrained BERT-family classifier plus per-layer task scorers.

The pretrained model is used as it is; the engine changes only which tokens each layer sees.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import AutoConfig, BertForSequenceClassification

from tsdtp.adapters.bert import BertAdapter
from tsdtp.core.config import PruningConfig
from tsdtp.core.engine import EngineOutput
from tsdtp.core.pruned_model import PrunedModel
from tsdtp.errors import ConfigError
from tsdtp.hub import load_pretrained


@dataclass
class ClassifierOutput:
    """Logits plus the engine's record of what was kept."""

    logits: torch.Tensor
    engine: EngineOutput


class PrunedClassifier(PrunedModel):
    """Sequence classifier on [CLS] whose encoder prunes tokens as `pruning` says.

    `cls_only_last_layer` (off by default): in inference, the last layer runs [CLS] as its only
    query, all the head reads; the logits are those of the full last layer.
    """

    model: BertForSequenceClassification
    adapter: BertAdapter

    def __init__(self, model: BertForSequenceClassification, special_ids: list[int], pruning: PruningConfig) -> None:
        super().__init__(model, BertAdapter(model, special_ids), special_ids, pruning)
        self.cls_only_last_layer = False

    @classmethod
    def from_pretrained(cls, model_id: str, num_labels: int, special_ids: list[int],
                        pruning: PruningConfig) -> PrunedClassifier:
        """Load a pretrained encoder (packaged copy when installed) with a fresh classifier head."""
        config = load_pretrained(AutoConfig, model_id, num_labels=num_labels)
        if config.model_type != "bert":
            raise ConfigError(f"model {model_id!r} is a {config.model_type!r} model; "
                              "the classification engine supports BERT-family encoders (model_type 'bert')")
        model = load_pretrained(BertForSequenceClassification, model_id, config=config)
        return cls(model, special_ids, pruning)

    def forward(self, batch: dict[str, torch.Tensor], record_trace: bool = False,
                generator: torch.Generator | None = None) -> ClassifierOutput:
        """Classify a padded batch; in training mode with a pruning method, masks are soft."""
        output = self.run_engine(self.adapter.embed(batch), batch["input_ids"], batch["attention_mask"],
                                 record_trace=record_trace, generator=generator,
                                 cls_only_last_layer=self.cls_only_last_layer and not self.training)
        return ClassifierOutput(self.adapter.classify(output.hidden), output)

    def loss(self, output: ClassifierOutput, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """`CE + lambda_aux * L_aux + lambda_keep * L_keep` (see `tsdtp.core.losses`), and each part as a float."""
        return self.add_pruning_penalty(F.cross_entropy(output.logits, labels), output.engine)
