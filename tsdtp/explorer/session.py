"""One input through a pruned classifier: its tokens, per-layer keep grid, prediction and FLOPs.

The logic behind the interactive explorer (`tsdtp.explorer.widgets`), free of any widget so that tests
and scripts can call it directly. A model comes from a trained run directory (`load_run`) or
is the packaged default encoder with an untrained head (`load_default`); the prediction itself is
`Predictor.run` (`tsdtp.classification.predict`), the same as `tsdtp.load_run(...).predict`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from tsdtp.classification.config import TrainConfig
from tsdtp.classification.model import PrunedClassifier
from tsdtp.classification.predict import Predictor, quiet_loading
from tsdtp.classification.predict import load_run as load_predictor
from tsdtp.classification.prediction import Prediction
from tsdtp.core.config import PruningConfig, method_spec
from tsdtp.core.pruned_model import special_token_ids
from tsdtp.errors import ConfigError
from tsdtp.hub import DEFAULT_MODEL, load_tokenizer, short_model_name

DEFAULT_MAX_LENGTH = 128
"""Token limit of inputs to the default model (runs use their task's limit)."""

HEAD_SEED = 0
"""Seed of the default model's untrained classifier head, so its outputs are reproducible."""


@dataclass(frozen=True)
class RunEntry:
    """A trained run directory found under a runs root, with a one-line label."""

    path: Path
    label: str


@dataclass(frozen=True)
class LoadedModel(Predictor):
    """A classifier the explorer shows: a `Predictor`, and whether its head and scorers were trained."""

    trained: bool = True


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


def is_explorable_run(path: Path) -> bool:
    """Whether `path` holds a `checkpoint.pt` and a classification config: an LLM or translation run, or a
    config.json this version cannot read as a `TrainConfig`, is left out. A run with no readable config.json
    stays listed, so that loading it names the problem."""
    if not (path / "checkpoint.pt").is_file():
        return False
    try:
        data = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return True
    try:
        TrainConfig.from_dict(data)
    except (ConfigError, TypeError, ValueError):
        return False
    return True


def scan_runs(runs_root: str | Path) -> list[RunEntry]:
    """Run directories directly under `runs_root` that the explorer can show (`is_explorable_run`), by name.

    A missing or unreadable root gives an empty list.
    """
    root = resolve_local_path(runs_root)
    try:
        folders = sorted(p for p in root.iterdir() if is_explorable_run(p))
    except OSError:
        return []
    return [RunEntry(path, _run_label(path)) for path in folders]


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
    """The classifier of a trained run directory (`tsdtp.classification.predict.load_run`), with its task's labels."""
    run = load_predictor(run_dir)
    return LoadedModel(run.model, run.tokenizer, run.title, run.label_names, run.text_fields, run.max_length,
                       trained=True)


def pruning_for(base: PruningConfig, method: str, k: float, gamma: float) -> PruningConfig:
    """`base` switched to `method` with threshold width `k` (`PruningConfig.with_overrides`); gamma is 0 for methods
    without the scorer."""
    gamma = float(gamma) if method_spec(method).uses_scorer else 0.0
    return base.with_overrides({"method": method, "k": float(k), "gamma": gamma})


def _clean_texts(texts: Sequence[str]) -> tuple[str, ...]:
    parts = tuple(text.strip() for text in texts)
    if not parts or not parts[0]:
        raise ConfigError("the input is empty: type or paste a sentence to analyse")
    if len(parts) > 2:
        raise ConfigError(f"expected a sentence or a sentence pair, got {len(parts)} texts")
    return parts if len(parts) == 2 and parts[1] else parts[:1]


def _notes(loaded: LoadedModel, texts: tuple[str, ...], pruning: PruningConfig,
           found: tuple[str, ...]) -> tuple[str, ...]:
    notes = list(found)
    if not loaded.trained:
        notes.append("untrained head and task scorers: the prediction is not meaningful, the pruning is real")
    if len(loaded.text_fields) == 2 and len(texts) == 1:
        notes.append(f"this task reads a pair ({' + '.join(loaded.text_fields)}); only one text was given")
    if pruning.spec.masks:
        notes.append("masking only: every token is still processed, in two full passes")
    return tuple(notes)


def analyse(loaded: LoadedModel, texts: Sequence[str], pruning: PruningConfig) -> Prediction:
    """Run one sentence (or sentence pair) through `loaded` under `pruning` and record what was kept.

    Unlike `Predictor.predict`, a pair task takes a single text (with a note) and a blank second text is
    dropped. Raises ConfigError for an empty input. The model's own pruning setting is restored afterwards.
    """
    texts = _clean_texts(texts)
    prediction = loaded.run(texts, pruning)
    return dataclasses.replace(prediction, notes=_notes(loaded, texts, pruning, prediction.notes))
