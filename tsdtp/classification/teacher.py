"""The teacher of distillation: a finished fine-tuned run's logits and final-layer attention, cached once.

One dense pass of the teacher over the student's encoded training split gives, per example, its
logits and the attention each token receives in its last layer (mean over heads and queries: what
ToP ranks tokens by). They are saved in the teacher's run folder,
`<teacher>/teacher_cache/<digest>.pt`, keyed by the exact token ids of the split and the teacher's
checkpoint, so every student of that teacher on the same data (every method, keep target and seed,
and a resumed run) reads them instead of running the teacher again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from tsdtp.classification.checkpoint import load_checkpoint
from tsdtp.classification.config import TrainConfig
from tsdtp.classification.encoding import EncodedSplit, batch_indices, collate
from tsdtp.classification.model import PrunedClassifier
from tsdtp.core.scoring import LayerRequest
from tsdtp.errors import CheckpointError
from tsdtp.runs.cache import read_run_config, run_finished
from tsdtp.runs.device import CPU, model_device, on_device
from tsdtp.runs.io import atomic_torch_save, load_torch_payload
from tsdtp.runs.teacher_cache import CACHE_FOLDER, cache_key

CACHE_FORMAT = "tsdtp-teacher-v1"
TEACHER_BATCH_SIZE = 64


@dataclass(frozen=True)
class TeacherBatch:
    """The teacher's outputs for one training batch: logits [B, C] and final-layer attention received [B, n]."""

    logits: torch.Tensor
    attention: torch.Tensor

    def to(self, device: torch.device) -> TeacherBatch:
        """The same outputs on `device`."""
        return TeacherBatch(self.logits.to(device), self.attention.to(device))


@dataclass(frozen=True)
class TeacherTargets:
    """The teacher's outputs for every example of a split: logits [N, C]; attention received flat, by `offsets`."""

    logits: torch.Tensor
    attention: torch.Tensor
    offsets: torch.Tensor

    def batch(self, indices: list[int], width: int) -> TeacherBatch:
        """The outputs of examples `indices`, attention padded with zeros to `width` tokens (as `collate` pads)."""
        attention = torch.zeros(len(indices), width)
        for row, example in enumerate(indices):
            start, end = int(self.offsets[example]), int(self.offsets[example + 1])
            attention[row, : end - start] = self.attention[start:end].float()
        return TeacherBatch(self.logits[indices].float(), attention)


@torch.no_grad()
def dense_outputs(model: PrunedClassifier, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The dense forward of `model` on a padded batch: logits [B, C] and last-layer attention received [B, N]."""
    adapter = model.adapter
    valid = batch["attention_mask"].bool()
    hidden = adapter.embed(batch)
    key_bias = torch.where(valid, 0.0, torch.finfo(hidden.dtype).min)
    received = None
    for index in range(adapter.num_layers):
        scored = index == adapter.num_layers - 1
        request = LayerRequest(key_bias, scored, valid.float() if scored else None)
        hidden, received = adapter.layer(index, hidden, request)
    assert received is not None
    return adapter.classify(hidden), received


def teacher_pass(model: PrunedClassifier, split: EncodedSplit, pad_id: int, progress: bool = False
                 ) -> TeacherTargets:
    """Run the teacher (eval mode, dense, on the device it is on) over `split` and collect its outputs per example
    (on the CPU)."""
    model.eval()
    device = model_device(model)
    logits = torch.empty(len(split), model.model.config.num_labels)
    pieces: list[torch.Tensor | None] = [None] * len(split)
    batches = batch_indices(split.lengths(), TEACHER_BATCH_SIZE, shuffle=False, sort_by_length=True)
    for indices in tqdm(batches, desc="teacher", disable=not progress, leave=False):
        batch_logits, received = dense_outputs(model, on_device(collate(split, indices, pad_id), device))
        logits[indices] = batch_logits.cpu()
        received = received.cpu()
        for row, example in enumerate(indices):
            pieces[example] = received[row, : len(split.input_ids[example])]
    lengths = torch.tensor(split.lengths())
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)])
    return TeacherTargets(logits, torch.cat(pieces), offsets)  # type: ignore[arg-type]


def check_teacher(config: TrainConfig) -> Path:
    """The teacher run of `config`, checked: finished, and trained on the same task with the same model."""
    assert config.teacher is not None
    teacher_dir = Path(config.teacher)
    if not run_finished(teacher_dir):
        raise CheckpointError(f"teacher {teacher_dir} is not a finished run; train it first (tsdtp train)")
    teacher = read_run_config(teacher_dir)
    if teacher.task != config.task or getattr(teacher, "model", None) != config.model:
        raise CheckpointError(f"teacher {teacher_dir} was trained on {teacher.task} with "
                              f"{getattr(teacher, 'model', '?')}; the student trains {config.task} with {config.model}")
    return teacher_dir


def teacher_targets(config: TrainConfig, split: EncodedSplit, pad_id: int, progress: bool = False,
                    device: torch.device = CPU) -> TeacherTargets:
    """The teacher's outputs on the student's training `split`: read from its cache, or computed once (on `device`)
    and cached."""
    teacher_dir = check_teacher(config)
    path = teacher_dir / CACHE_FOLDER / f"{cache_key(teacher_dir, [split.input_ids, split.token_type_ids])}.pt"
    if path.is_file():
        payload = load_torch_payload(path, CACHE_FORMAT, "; delete it to compute it again")
        return TeacherTargets(payload["logits"], payload["attention"], payload["offsets"])
    model, _ = load_checkpoint(teacher_dir)
    targets = teacher_pass(model.to(device), split, pad_id, progress)
    path.parent.mkdir(exist_ok=True)
    atomic_torch_save(path, {"format": CACHE_FORMAT, "logits": targets.logits, "attention": targets.attention,
                             "offsets": targets.offsets})
    return targets
