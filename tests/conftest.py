"""Shared fixtures: offline settings, a tiny data folder (GLUE and WMT16 layouts), the packaged model."""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

from tsdtp.classification.encoding import EncodedSplit, collate, encode_texts  # noqa: E402
from tsdtp.classification.model import PrunedClassifier  # noqa: E402
from tsdtp.core.config import PruningConfig  # noqa: E402
from tsdtp.core.pruned_model import special_token_ids  # noqa: E402
from tsdtp.data_files import DATA_DIR_VARIABLE  # noqa: E402
from tsdtp.gguf_models import DEFAULT_LLM, ensure_converted  # noqa: E402
from tsdtp.hub import load_tokenizer  # noqa: E402

MODEL = "sentence-transformers/all-MiniLM-L6-v2"

SST2_ROWS = [
    ("it 's a charming and often affecting journey . ", 1),
    ("unflinchingly bleak and desperate ", 0),
    ('the "best" movie of the year , if you like "boring" ', 0),
    ("a gorgeous , witty , seductive movie . ", 1),
    ("the acting is dreadful and the plot makes no sense at all ", 0),
    ("one of the most delightful films i have seen in a long time ", 1),
    ("an ugly , pointless mess ", 0),
    ("warm , funny and wise ", 1),
]

QNLI_ROWS = [
    ("What came into force after the new constitution was herald?",
     "As of that day, the new constitution heralding the Second Republic came into force.", "entailment"),
    ("What is the first major city in the stream of the Rhine?",
     "The most important tributaries in this area are the Ill below of Strasbourg.", "not_entailment"),
] * 10


def write_glue(root: Path) -> Path:
    """Write a GLUE-layout folder: SST-2 train/dev, QNLI dev only (as offline)."""
    sst2 = root / "glue" / "SST-2"
    sst2.mkdir(parents=True)
    rows = [f"{text}\t{label}" for text, label in SST2_ROWS]
    (sst2 / "train.tsv").write_text("\n".join(["sentence\tlabel", *rows * 4]) + "\n")
    (sst2 / "dev.tsv").write_text("\n".join(["sentence\tlabel", *rows]) + "\n")
    qnli = root / "glue" / "QNLI"
    qnli.mkdir(parents=True)
    rows = ["index\tquestion\tsentence\tlabel"] + [f"{i}\t{q}\t{s}\t{l}" for i, (q, s, l) in enumerate(QNLI_ROWS)]
    (qnli / "dev.tsv").write_text("\n".join(rows) + "\n")
    return root


SUBJECTS = [("A man", "Ein Mann"), ("A woman", "Eine Frau"), ("A dog", "Ein Hund"), ("A child", "Ein Kind"),
            ("Two men", "Zwei Männer")]
ACTIONS = [("is running", "rennt"), ("is sleeping", "schläft"), ("is eating", "isst"), ("is jumping", "springt")]
PLACES = [("in the park", "im Park"), ("on the beach", "am Strand"), ("near a red house", "neben einem roten Haus")]


def pairs(places: list[tuple[str, str]]) -> tuple[list[str], list[str]]:
    """Synthetic caption pairs: every subject, action and place."""
    english, german = [], []
    for subject, sub_de in SUBJECTS:
        for action, act_de in ACTIONS:
            for place, place_de in places:
                english.append(f"{subject} {action} {place}.")
                german.append(f"{sub_de} {act_de} {place_de}.")
    return english, german


def write_lines(path: Path, lines: list[str], gzipped: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data) if gzipped else data)


def write_wmt(root: Path) -> Path:
    """A tiny `wmt16_en_de` folder in the shared data layout."""
    folder = root / "wmt16_en_de"
    en, de = pairs(PLACES)
    for split, (src, tgt) in {"train": (en * 2, de * 2), "val": (en[:8], de[:8]),
                              "test_2016_flickr": (en[::7], de[::7])}.items():
        write_lines(folder / "multi30k_task1" / f"{split}.en.gz", src, True)
        write_lines(folder / "multi30k_task1" / f"{split}.de.gz", tgt, True)
    news_en, news_de = pairs([("in the city today", "heute in der Stadt")])
    for year in (2015, 2016):
        write_lines(folder / "newstest" / f"newstest{year}.en", news_en[:6], False)
        write_lines(folder / "newstest" / f"newstest{year}.de", news_de[:6], False)
    return root


@pytest.fixture(scope="session", autouse=True)
def glue_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A tiny data directory written by the tests: GLUE (SST-2, QNLI) and `wmt16_en_de` layouts.

    It is the session's standard data (`TSDTP_DATA_DIR`), so its splits keep their plain labels
    (`tsdtp.data_files.is_standard_data_dir`) and no test reads the data of the environment.
    """
    root = write_glue(tmp_path_factory.mktemp("data"))
    write_wmt(root)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(DATA_DIR_VARIABLE, str(root))
        yield root


@pytest.fixture(scope="session")
def unique_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A GLUE folder whose SST-2 and QNLI examples are all different, so examples can be told apart by text."""
    root = tmp_path_factory.mktemp("unique")
    sst2 = root / "glue" / "SST-2"
    sst2.mkdir(parents=True)
    lines = [f"film number {i} is {'good' if i % 2 else 'bad'}\t{i % 2}" for i in range(60)]
    (sst2 / "train.tsv").write_text("\n".join(["sentence\tlabel", *lines[:50]]) + "\n")
    (sst2 / "dev.tsv").write_text("\n".join(["sentence\tlabel", *lines[50:]]) + "\n")
    qnli = root / "glue" / "QNLI"
    qnli.mkdir(parents=True)
    pairs = [f"{i}\tquestion {i}?\tanswer {i}.\t{'entailment' if i % 2 else 'not_entailment'}" for i in range(40)]
    (qnli / "dev.tsv").write_text("\n".join(["index\tquestion\tsentence\tlabel", *pairs]) + "\n")
    return root


@pytest.fixture(scope="session")
def tokenizer():
    """The packaged MiniLM tokenizer."""
    return load_tokenizer(MODEL)


@pytest.fixture(scope="session")
def base_model(tokenizer) -> PrunedClassifier:
    """The packaged MiniLM with a (seeded) fresh classifier head, in eval mode."""
    torch.manual_seed(0)
    model = PrunedClassifier.from_pretrained(MODEL, 2, special_token_ids(tokenizer), PruningConfig())
    return model.eval()


@pytest.fixture()
def model(base_model: PrunedClassifier) -> PrunedClassifier:
    """The session model, reset to no pruning, packed inference, a full last layer and eval mode for each test."""
    base_model.pruning = PruningConfig()
    base_model.packed_inference = True
    base_model.cls_only_last_layer = False
    base_model.straight_through = False
    base_model.zero_grad(set_to_none=True)
    return base_model.eval()


@pytest.fixture(scope="session")
def batch(tokenizer) -> dict[str, torch.Tensor]:
    """A padded batch of sentences of different lengths."""
    texts = [(text,) for text, _ in SST2_ROWS]
    ids, types = encode_texts(tokenizer, texts, 128)
    split = EncodedSplit(ids, types, [label for _, label in SST2_ROWS], texts)
    return collate(split, list(range(len(texts))), tokenizer.pad_token_id)


@pytest.fixture(scope="session")
def smollm2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache root holding SmolLM2-135M-Instruct converted from its packaged GGUF (about 40 s, once a session)."""
    root = tmp_path_factory.mktemp("cache")
    ensure_converted(DEFAULT_LLM, root=root, log=lambda _: None)
    return root


@pytest.fixture()
def interrupt_on_call(monkeypatch: pytest.MonkeyPatch) -> Callable[[object, str, int], Callable]:
    """`interrupt_on_call(module, name, n)` makes `module.name` raise KeyboardInterrupt on its n-th call (as a user's
    Ctrl-C would, mid-training) and returns the original, for the test to put back."""
    def patch(module: object, name: str, call: int) -> Callable:
        real, calls = getattr(module, name), {"n": 0}

        def interrupting(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == call:
                raise KeyboardInterrupt
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, interrupting)
        return real
    return patch


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a tiny random Llama (GQA, 64 positions) and the MiniLM tokenizer (no chat template)."""
    folder = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = load_tokenizer("sentence-transformers/all-MiniLM-L6-v2")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
