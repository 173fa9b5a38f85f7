"""Word-level distillation (Kim & Rush 2016): the pruned model's decoder learns the dense model's distributions.

At every target position of a teacher-forced batch, the student's next-token distribution is pulled
toward the dense teacher's: `loss = (1 - a) * CE + a * T^2 * KL(p_teacher^T || p_student^T)`, where
`p^T` is the softmax at temperature T and positions with padding labels are left out. The teacher is a
dense translation run (by default the one the pruned run starts from), frozen and run on the full
source. Sequence-level distillation (training on the teacher's beam outputs) is not built.
"""

from __future__ import annotations

import torch
from transformers import MarianMTModel

from tsdtp.core.config import DENSE_METHOD
from tsdtp.core.distillation import logit_distillation
from tsdtp.errors import ConfigError
from tsdtp.translation.checkpoint import load_translator
from tsdtp.translation.encoding import LABEL_PAD


def word_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
            temperature: float = 1.0) -> torch.Tensor:
    """Mean over the labelled target positions of `T^2 KL(p_teacher^T || p_student^T)`; logits [B, T, V]
    (`tsdtp.core.distillation.logit_distillation` on each position's vocabulary logits)."""
    positions = labels != LABEL_PAD
    return logit_distillation(student_logits[positions], teacher_logits[positions], temperature)


class Teacher:
    """A frozen dense translator whose decoder distributions the pruned model is distilled toward."""

    def __init__(self, model: MarianMTModel) -> None:
        self.model = model.eval().requires_grad_(False)

    @classmethod
    def load(cls, run_dir: str, vocab_size: int) -> Teacher:
        """The model of the dense run `run_dir`; ConfigError for a pruned run or another vocabulary."""
        translator, _, config, _ = load_translator(run_dir)
        if config.pruning.method != DENSE_METHOD:
            raise ConfigError(f"the teacher {run_dir} is a {config.pruning.method} run; distil from a dense "
                              f"(--method {DENSE_METHOD}) translation run")
        teacher_vocab = translator.model.config.vocab_size
        if teacher_vocab != vocab_size:
            raise ConfigError(f"the teacher {run_dir} has a vocabulary of {teacher_vocab} tokens, the model "
                              f"{vocab_size}; distil from a run with the same tokenizer")
        return cls(translator.model)

    def to(self, device: torch.device) -> Teacher:
        """The teacher, moved to `device` (the student's)."""
        self.model.to(device)
        return self

    @torch.no_grad()
    def logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Teacher-forced logits [B, T, V] on the full source of a padded batch."""
        return self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                          decoder_input_ids=batch["decoder_input_ids"], use_cache=False).logits


def distilled_loss(task_loss: torch.Tensor, student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                   labels: torch.Tensor, weight: float, temperature: float) -> tuple[torch.Tensor, float]:
    """`(1 - weight) * task_loss + weight * word_kl(...)`, and the KL term as a float."""
    kl = word_kl(student_logits, teacher_logits, labels, temperature)
    return (1 - weight) * task_loss + weight * kl, float(kl.detach())
