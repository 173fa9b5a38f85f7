"""Translation run directories: the model as a Hugging Face folder, the scorers beside it.

A run directory holds `config.json` (the `MTConfig`), `model/` (`save_pretrained` of the
`MarianMTModel` and its tokenizer: it loads like any Hugging Face model), `scorers.pt` (the
task scorers, the special ids and the model label), `metrics.json`, and while training
`state.pt` (for resuming). A scratch run also keeps its trained tokenizer in `tokenizer/`.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from transformers import MarianMTModel, PreTrainedTokenizerBase

from tsdtp.core.config import PruningConfig
from tsdtp.errors import CheckpointError, first_line
from tsdtp.hub import load_tokenizer
from tsdtp.runs.io import atomic_torch_save, load_torch_payload
from tsdtp.translation.config import MTConfig
from tsdtp.translation.model import PrunedTranslator

FORMAT = "tsdtp-translator-v1"

MODEL_FOLDER, SCORER_FILE, TOKENIZER_FOLDER = "model", "scorers.pt", "tokenizer"
"""The saved model (with its tokenizer), its scorers, and a scratch run's own tokenizer."""

STAGING_FOLDERS: tuple[str, ...] = (".model.tmp", ".model.old", f".{TOKENIZER_FOLDER}.tmp")
"""Folders written beside `model/` and `tokenizer/` and swapped in; an interrupted run leaves them (removed on
opening the run)."""

RECOVERY = "run the same `tsdtp mt-train` command again: it saves the model again from state.pt, or retrains it"
"""What to do when a finished run's saved model is missing or unreadable."""


def save_translator(run_dir: str | Path, translator: PrunedTranslator, tokenizer: PreTrainedTokenizerBase,
                    model_label: str) -> None:
    """Write `model/` (swapped in whole, so a crash never leaves half a folder) and `scorers.pt`."""
    run_dir = Path(run_dir)
    staging, old = (run_dir / name for name in STAGING_FOLDERS[:2])
    final = run_dir / MODEL_FOLDER
    for folder in (staging, old):
        shutil.rmtree(folder, ignore_errors=True)
    translator.model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    if final.exists():
        os.replace(final, old)
    os.replace(staging, final)
    shutil.rmtree(old, ignore_errors=True)
    atomic_torch_save(run_dir / SCORER_FILE, {
        "format": FORMAT, "scorers": translator.scorers.state_dict(), "special_ids": translator.special_ids,
        "pruning": translator.pruning.__dict__, "model_label": model_label})


def read_config(run_dir: str | Path) -> MTConfig:
    """The `MTConfig` of a run directory."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise CheckpointError(f"no translation run at {run_dir}: {path} is missing (train it with `tsdtp mt-train`)")
    try:
        return MTConfig.from_dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError) as exc:
        raise CheckpointError(f"{path} is not a valid translation config ({exc})") from exc


def _scorer_payload(run_dir: Path) -> dict[str, Any]:
    path = run_dir / SCORER_FILE
    if not path.is_file() or not (run_dir / MODEL_FOLDER / "config.json").is_file():
        raise CheckpointError(f"no trained translator in {run_dir}: expected model/ and scorers.pt written by "
                              f"`tsdtp mt-train` after its first epoch; to finish the run or save it again, {RECOVERY}")
    return load_torch_payload(path, FORMAT, f"; delete it, then {RECOVERY}")


def load_translator(run_dir: str | Path, pruning: PruningConfig | None = None
                    ) -> tuple[PrunedTranslator, PreTrainedTokenizerBase, MTConfig, str]:
    """The trained translator (eval mode), its tokenizer, its config and its model label.

    `pruning` replaces the trained pruning settings (another k, or a post-hoc method).
    """
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    payload = _scorer_payload(run_dir)
    try:
        model = MarianMTModel.from_pretrained(run_dir / MODEL_FOLDER)
        trained = PruningConfig(**{key: tuple(value) if isinstance(value, list) else value
                                   for key, value in payload["pruning"].items()})
        translator = PrunedTranslator(model, payload["special_ids"], trained)
        translator.scorers.load_state_dict(payload["scorers"])
    except OSError as exc:
        raise CheckpointError(f"the model in {run_dir / MODEL_FOLDER} cannot be read ({first_line(exc)}); delete "
                              f"model/, then {RECOVERY}") from exc
    except (KeyError, RuntimeError, TypeError) as exc:
        raise CheckpointError(f"translator in {run_dir} does not match this tsdtp version: {first_line(exc)}"
                              ) from exc
    if pruning is not None:
        translator.pruning = pruning
    return translator.eval(), load_tokenizer(str(run_dir / MODEL_FOLDER)), config, payload["model_label"]
