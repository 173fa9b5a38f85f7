"""The teacher of LLM distillation: a finished dense LLM run's logits on the student's training prompts, cached once.

One pass of the teacher (its own adapters and head, pruning off) over the student's training split gives each
prompt's label logits. They are saved in the teacher's run folder, `<teacher>/teacher_cache/<digest>.pt`, keyed
by the exact token ids of the split and the teacher's checkpoint, so every student of that teacher on the same
prompts (every method, keep target and seed, and a resumed run) reads them instead of running the teacher again.
Only logits are distilled here: ToP's ranking distillation (classification's `rank_weight`) is not offered for
decoder-only models.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tqdm.auto import tqdm

from tsdtp.core.config import DENSE_METHOD
from tsdtp.errors import CheckpointError
from tsdtp.llm.classifier_checkpoint import load_checkpoint, run_complete
from tsdtp.llm.classifier_config import LlmTrainConfig
from tsdtp.llm.classifier_model import PrunedLlamaClassifier
from tsdtp.llm.classifier_prompts import PromptSplit, collate
from tsdtp.runs.batches import batch_indices
from tsdtp.runs.device import CPU, model_device, on_device
from tsdtp.runs.io import atomic_torch_save, load_torch_payload
from tsdtp.runs.teacher_cache import CACHE_FOLDER, cache_key

CACHE_FORMAT = "tsdtp-llm-teacher-v1"


def check_teacher(config: LlmTrainConfig) -> Path:
    """The teacher run of `config`, checked: finished (checkpoint and metrics), dense, and of the same task, model
    and prompt limit."""
    assert config.teacher is not None
    teacher_dir = Path(config.teacher)
    try:
        teacher = LlmTrainConfig.from_dict(json.loads((teacher_dir / "config.json").read_text()))
        finished = run_complete(teacher_dir, teacher, json.loads((teacher_dir / "metrics.json").read_text()))
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise CheckpointError(f"teacher {teacher_dir} is not a finished LLM run ({exc}); train it first "
                              "(tsdtp llm-train)") from exc
    if not finished:
        raise CheckpointError(f"teacher {teacher_dir} has not reached its last step; finish it first (the same "
                              "tsdtp llm-train resumes it)")
    if teacher.pruning.method != DENSE_METHOD:
        raise CheckpointError(f"teacher {teacher_dir} prunes ({teacher.pruning.method}); expected a dense run "
                              "(--method none)")
    differing = [name for name in ("task", "model", "max_length") if getattr(teacher, name) != getattr(config, name)]
    if differing:
        raise CheckpointError(f"teacher {teacher_dir} differs from the student in {', '.join(differing)}; expected "
                              "a run of the same task, model and max_length")
    return teacher_dir


@torch.no_grad()
def teacher_pass(model: PrunedLlamaClassifier, split: PromptSplit, pad_id: int, batch_size: int,
                 progress: bool = False) -> torch.Tensor:
    """The label logits [N, C] of `model` (eval mode, on the device it is on) for every prompt of `split`."""
    model.eval()
    device = model_device(model)
    logits = torch.empty(len(split), model.model.config.num_labels)
    batches = batch_indices(split.lengths(), batch_size, shuffle=False, sort_by_length=True)
    for indices in tqdm(batches, desc="teacher", disable=not progress, leave=False):
        logits[indices] = model(on_device(collate(split, indices, pad_id), device)).logits.float().cpu()
    return logits


def teacher_logits(config: LlmTrainConfig, split: PromptSplit, pad_id: int, progress: bool = False,
                   device: torch.device = CPU) -> torch.Tensor:
    """The teacher's logits [N, C] on the student's training `split`: read from its cache, or computed once (on
    `device`) and cached."""
    teacher_dir = check_teacher(config)
    path = teacher_dir / CACHE_FOLDER / f"{cache_key(teacher_dir, split.input_ids)}.pt"
    if path.is_file():
        return load_torch_payload(path, CACHE_FORMAT, "; delete it to compute it again")["logits"]
    model, _, _ = load_checkpoint(teacher_dir)
    logits = teacher_pass(model.to(device), split, pad_id, config.eval_batch_size, progress)
    path.parent.mkdir(exist_ok=True)
    atomic_torch_save(path, {"format": CACHE_FORMAT, "logits": logits})
    return logits
