"""One input through a pruned classifier: its tokens, per-layer keep grid, prediction and FLOPs.

The logic behind the interactive explorer (`tsdtp.explorer.widgets`), free of any widget so that tests
and scripts can call it directly. A model comes from a trained run directory (`load_run`) or
is the packaged default encoder with an untrained head (`load_default`).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from tsdtp.classification.checkpoint import load_checkpoint
from tsdtp.classification.encoding import EncodedSplit, collate, encode_texts
from tsdtp.classification.evaluate import predict_batch
from tsdtp.classification.model import PrunedClassifier
from tsdtp.classification.tasks import get_task
from tsdtp.core.config import PruningConfig, method_spec
from tsdtp.core.flops import encoder_shape, method_flops
from tsdtp.core.pruned_model import special_token_ids
from tsdtp.errors import CheckpointError, ConfigError
from tsdtp.hub import DEFAULT_MODEL, load_tokenizer, short_model_name

DEFAULT_MAX_LENGTH = 128
"""Token limit of inputs to the default model (runs use their task's limit)."""

DISPLAY_LABELS: dict[str, tuple[str, ...]] = {"sst2": ("negative", "positive")}
"""Readable class names where a task's own label names are bare numbers."""

HEAD_SEED = 0
"""Seed of the default model's untrained classifier head, so its outputs are reproducible."""


@dataclass(frozen=True)
class RunEntry:
    """A trained run directory found under a runs root, with a one-line label."""

    path: Path
    label: str


@dataclass
class LoadedModel:
    """A classifier ready to analyse inputs, with what is needed to read its outputs."""

    model: PrunedClassifier
    tokenizer: PreTrainedTokenizerBase
    title: str
    label_names: tuple[str, ...]
    text_fields: tuple[str, ...]
    max_length: int
    trained: bool


@dataclass(frozen=True)
class TokenAnalysis:
    """One input under one pruning setting.

    keep[l][j] is True where token j is alive at the input of layer l (for reference-masking:
    not masked); tokens_per_layer[l] is how many tokens layer l processed.
    """

    pruning: PruningConfig
    tokens: tuple[str, ...]
    special: tuple[bool, ...]
    keep: tuple[tuple[bool, ...], ...]
    tokens_per_layer: tuple[int, ...]
    label_names: tuple[str, ...]
    probs: tuple[float, ...]
    flops_ratio: float
    notes: tuple[str, ...]

    @property
    def num_layers(self) -> int:
        """Depth of the encoder."""
        return len(self.keep)

    @property
    def prediction(self) -> int:
        """Index of the predicted class."""
        return max(range(len(self.probs)), key=self.probs.__getitem__)

    @property
    def label(self) -> str:
        """Name of the predicted class."""
        return self.label_names[self.prediction]

    @property
    def confidence(self) -> float:
        """Probability of the predicted class."""
        return self.probs[self.prediction]

    @property
    def kept_cells(self) -> int:
        """Token-layers marked kept in the grid."""
        return sum(sum(row) for row in self.keep)

    @property
    def keep_ratio(self) -> float:
        """Token-layers processed over those of the dense pass (as `EvalResult.keep_ratio`)."""
        return sum(self.tokens_per_layer) / (len(self.tokens) * self.num_layers)

    @property
    def final_tokens(self) -> int:
        """Tokens alive at the input of the last layer."""
        return sum(self.keep[-1])

    @property
    def flops_saved(self) -> float:
        """Fraction of the dense FLOPs saved (negative when the method costs more)."""
        return 1.0 - self.flops_ratio


def resolve_local_path(path: str | Path) -> Path:
    """A folder as given, or, when relative and absent, relative to the parent folder if it is there.

    A notebook in `notebooks/` runs with that folder as its working directory, so `runs`
    there means the repository's `runs/`.
    """
    local = Path(path).expanduser()
    if local.is_absolute() or local.exists():
        return local
    parent = Path.cwd().parent / local
    return parent if parent.exists() else local


def _run_label(path: Path) -> str:
    try:
        data = json.loads((path / "config.json").read_text())
        pruning = data.get("pruning", {})
        return f"{path.name} · {data['task']} · {pruning.get('method', '?')} k={pruning.get('k', '?')}"
    except (OSError, ValueError, KeyError, TypeError):
        return path.name


def scan_runs(runs_root: str | Path) -> list[RunEntry]:
    """Run directories directly under `runs_root` that hold a `checkpoint.pt`, by name.

    A missing or unreadable root gives an empty list.
    """
    root = resolve_local_path(runs_root)
    try:
        folders = sorted(p for p in root.iterdir() if (p / "checkpoint.pt").is_file())
    except OSError:
        return []
    return [RunEntry(path, _run_label(path)) for path in folders]


@contextmanager
def quiet_loading() -> Iterator[None]:
    """Silence transformers' load report and progress bars (restored afterwards)."""
    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def load_default(model_id: str = DEFAULT_MODEL) -> LoadedModel:
    """The pretrained encoder with a fresh, seeded two-class head: pruning is real, predictions are not."""
    with quiet_loading():
        tokenizer = load_tokenizer(model_id)
        with torch.random.fork_rng():
            torch.manual_seed(HEAD_SEED)
            model = PrunedClassifier.from_pretrained(model_id, 2, special_token_ids(tokenizer), PruningConfig())
    return LoadedModel(model.eval(), tokenizer, f"default model · {short_model_name(model_id)} (untrained head)",
                       ("label 0", "label 1"), ("text",), DEFAULT_MAX_LENGTH, trained=False)


def load_run(run_dir: str | Path) -> LoadedModel:
    """The classifier of a trained run directory, with its task's labels and token limit."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run directory {run_dir} does not exist")
    with quiet_loading():
        model, config = load_checkpoint(run_dir)
        tokenizer = load_tokenizer(config.model)
    task = get_task(config.task)
    labels = DISPLAY_LABELS.get(task.name, task.label_names)
    title = f"{run_dir.name} · {task.folder} · trained as {config.pruning.method}"
    return LoadedModel(model, tokenizer, title, tuple(labels), task.text_fields,
                       config.max_length or task.max_length, trained=True)


def pruning_for(base: PruningConfig, method: str, k: float, gamma: float) -> PruningConfig:
    """`base` switched to `method` with threshold width `k`; gamma is 0 for methods without the scorer."""
    return base.replace(method=method, k=float(k), gamma=float(gamma) if method_spec(method).uses_scorer else 0.0)


def _clean_texts(texts: Sequence[str]) -> tuple[str, ...]:
    parts = tuple(text.strip() for text in texts)
    if not parts or not parts[0]:
        raise ConfigError("the input is empty: type or paste a sentence to analyse")
    if len(parts) > 2:
        raise ConfigError(f"expected a sentence or a sentence pair, got {len(parts)} texts")
    return parts if len(parts) == 2 and parts[1] else parts[:1]


def _notes(loaded: LoadedModel, texts: tuple[str, ...], pruning: PruningConfig, caught: list[str]) -> tuple[str, ...]:
    notes = list(caught)
    if not loaded.trained:
        notes.append("untrained head and task scorers: the prediction is not meaningful, the pruning is real")
    if len(loaded.text_fields) == 2 and len(texts) == 1:
        notes.append(f"this task reads a pair ({' + '.join(loaded.text_fields)}); only one text was given")
    if pruning.spec.masks:
        notes.append("masking only: every token is still processed, in two full passes")
    return tuple(notes)


@torch.no_grad()
def analyse(loaded: LoadedModel, texts: Sequence[str], pruning: PruningConfig) -> TokenAnalysis:
    """Run one sentence (or sentence pair) through `loaded` under `pruning` and record what was kept.

    Raises ConfigError for an empty input. The model's own pruning setting is restored afterwards.
    """
    texts = _clean_texts(texts)
    model, tokenizer = loaded.model, loaded.tokenizer
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ids, types = encode_texts(tokenizer, [texts], loaded.max_length)
    batch = collate(EncodedSplit(ids, types, [0], [texts]), [0], tokenizer.pad_token_id)
    previous, was_training = model.pruning, model.training
    model.pruning = pruning
    model.eval()
    try:
        generator = torch.Generator().manual_seed(pruning.seed)
        logits, per_layer, trace = predict_batch(model, batch, record_trace=True, generator=generator)
        flops = method_flops(per_layer, encoder_shape(model), pruning)
        special = model.adapter.special_mask(batch["input_ids"])[0]
    finally:
        model.pruning = previous
        model.train(was_training)
    assert trace is not None
    return TokenAnalysis(
        pruning=pruning,
        tokens=tuple(tokenizer.convert_ids_to_tokens(ids[0])),
        special=tuple(bool(x) for x in special),
        keep=tuple(tuple(bool(x) for x in row) for row in trace[0]),
        tokens_per_layer=tuple(int(x) for x in per_layer[0]),
        label_names=loaded.label_names,
        probs=tuple(float(p) for p in logits[0].softmax(dim=-1)),
        flops_ratio=flops.ratio,
        notes=_notes(loaded, texts, pruning, [str(w.message) for w in caught]),
    )
