"""The explorer widget without a browser: live updates and error messages in place of tracebacks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tsdtp.classification.checkpoint import save_checkpoint
from tsdtp.classification.config import TrainConfig
from tsdtp.explorer import widgets
from tsdtp.explorer.session import LoadedModel

SENTENCE = "a gorgeous , witty , seductive movie ."


@pytest.fixture()
def default_model(monkeypatch: pytest.MonkeyPatch, model, tokenizer) -> LoadedModel:
    """Make the explorer's default model the session model (no second load from disk)."""
    loaded = LoadedModel(model, tokenizer, "default test model", ("label 0", "label 1"), ("text",), 128,
                         trained=False)
    monkeypatch.setattr(widgets, "load_default", lambda: loaded)
    return loaded


def kept(panel: str) -> int:
    """The kept-cell count the grid of a rendered panel declares."""
    return int(re.search(r'data-kept="(\d+)"', panel).group(1))


def test_explorer_shows_two_methods_and_updates_live(default_model, tmp_path: Path):
    explorer = widgets.Explorer(tmp_path, text=SENTENCE, k=1.0)
    assert explorer.message.value == ""
    assert 'data-method="ts-dtp"' in explorer.panel_a.value
    assert 'data-method="general-dtp"' in explorer.panel_b.value
    assert "seductive" in explorer.panel_a.value and "prediction:" in explorer.panel_a.value
    assert "FLOPs:" in explorer.panel_a.value and "no trained runs" in explorer.status.value
    before = kept(explorer.panel_a.value)
    explorer.k.value = -1.0
    assert kept(explorer.panel_a.value) < before and 'data-k="-1"' in explorer.panel_a.value
    explorer.text.value = "an ugly , pointless mess"
    assert "pointless" in explorer.panel_a.value and "seductive" not in explorer.panel_a.value
    explorer.method_b.value = ""
    assert explorer.panel_b.value == "" and explorer.panel_a.value


def test_empty_input_shows_a_message_not_an_error(default_model, capsys):
    explorer = widgets.Explorer(text=SENTENCE)
    explorer.text.value = "   "
    assert "input is empty" in explorer.message.value and "tsdtp-info" in explorer.message.value
    assert explorer.panel_a.value == "" and explorer.panel_b.value == ""
    explorer.text.value = SENTENCE
    assert explorer.message.value == "" and explorer.panel_a.value
    assert capsys.readouterr() == ("", "")


def test_unreadable_run_directory_is_reported_in_the_widget(default_model, tmp_path: Path, capsys):
    broken = tmp_path / "broken-run"
    broken.mkdir()
    (broken / "checkpoint.pt").write_bytes(b"not a checkpoint")
    explorer = widgets.Explorer(tmp_path, run_dir=broken, text=SENTENCE)
    assert "tsdtp-error" in explorer.message.value and "corrupt" in explorer.message.value
    assert explorer.panel_a.value == ""
    explorer.source.value = widgets.DEFAULT_SOURCE
    assert explorer.message.value == "" and "seductive" in explorer.panel_a.value
    missing = widgets.Explorer(tmp_path, run_dir=tmp_path / "gone", text=SENTENCE)
    assert "does not exist" in missing.message.value
    assert capsys.readouterr() == ("", "")


def test_model_that_fails_to_load_is_reported_and_retried(monkeypatch: pytest.MonkeyPatch, default_model, capsys):
    def fail() -> LoadedModel:
        raise OSError("disk unavailable")

    monkeypatch.setattr(widgets, "load_default", fail)
    explorer = widgets.Explorer(text=SENTENCE)
    assert "could not load the default model: OSError: disk unavailable" in explorer.message.value
    monkeypatch.setattr(widgets, "load_default", lambda: default_model)
    explorer.k.value = 0.5
    assert explorer.message.value == "" and explorer.panel_a.value
    assert capsys.readouterr() == ("", "")


def test_scan_finds_a_new_run_and_loads_it(default_model, model, tmp_path: Path):
    explorer = widgets.Explorer(tmp_path, text=SENTENCE)
    assert len(explorer.source.options) == 1
    save_checkpoint(tmp_path / "sst2-ts-dtp-test", model, TrainConfig(task="sst2"))
    explorer.scan.click()
    assert len(explorer.source.options) == 2 and "1 trained run(s)" in explorer.status.value
    explorer.source.value = str(tmp_path / "sst2-ts-dtp-test")
    assert "sst2-ts-dtp-test" in explorer.status.value
    assert 'data-label="negative"' in explorer.panel_a.value or 'data-label="positive"' in explorer.panel_a.value
    assert explorer.text.description == "sentence"


def test_grid_escapes_token_strings(default_model):
    explorer = widgets.Explorer(text="<b>bold</b> & co")
    assert "&lt;" in explorer.panel_a.value and "<b>bold" not in explorer.panel_a.value


def test_unknown_method_parameter_is_reported(default_model, capsys):
    explorer = widgets.Explorer(text=SENTENCE, methods=("ts-dtp", "magic"))
    assert "unknown method(s) magic" in explorer.message.value and explorer.panel_a.value
    assert explorer.method_b.value == "" and capsys.readouterr() == ("", "")
