"""A shared English-German subword tokenizer trained with sentencepiece, saved as a `MarianTokenizer`.

The unigram model is trained on the source and target training text together; its pieces
are the vocabulary (`</s>` = 0, `<unk>` = 1, `<pad>` = 2), and the same model serves both
languages. The folder `save_pretrained` writes loads with `AutoTokenizer.from_pretrained`,
exactly like the tokenizer of a `Helsinki-NLP/opus-mt-*` model.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import sentencepiece as spm
from transformers import MarianTokenizer, PreTrainedTokenizerBase

from tsdtp.errors import ConfigError, DataError
from tsdtp.hub import load_tokenizer, quiet_tokenizer_advice

EOS_ID, UNK_ID, PAD_ID = 0, 1, 2


def train_tokenizer(texts: Sequence[str], out_dir: str | Path, vocab_size: int, max_length: int,
                    threads: int = 1) -> PreTrainedTokenizerBase:
    """Train a shared unigram sentencepiece model on `texts`, save a MarianTokenizer in `out_dir`.

    `vocab_size` is an upper bound: a small corpus may yield fewer pieces.
    """
    texts = [text for text in texts if text.strip()]
    if not texts:
        raise DataError("no training text for the tokenizer: every sentence is empty")
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts), model_writer=model, vocab_size=vocab_size, model_type="unigram",
            character_coverage=1.0, eos_id=EOS_ID, unk_id=UNK_ID, pad_id=PAD_ID, bos_id=-1, eos_piece="</s>",
            unk_piece="<unk>", pad_piece="<pad>", hard_vocab_limit=False, num_threads=threads, minloglevel=2)
    except RuntimeError as exc:
        raise ConfigError(f"cannot train a {vocab_size}-piece tokenizer on {len(texts)} sentences ({exc}); "
                          "lower --vocab-size") from exc
    processor = spm.SentencePieceProcessor(model_proto=model.getvalue())
    vocab = {processor.IdToPiece(i): i for i in range(processor.GetPieceSize())}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        for name in ("source.spm", "target.spm"):
            (folder / name).write_bytes(model.getvalue())
        (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
        with quiet_tokenizer_advice():
            tokenizer = MarianTokenizer(str(folder / "source.spm"), str(folder / "target.spm"),
                                        str(folder / "vocab.json"), source_lang="en", target_lang="de",
                                        model_max_length=max_length)
            tokenizer.save_pretrained(out_dir)
    return load_tokenizer(str(out_dir))


def install_tokenizer(staged: Path, folder: Path) -> PreTrainedTokenizerBase:
    """Copy the tokenizer `train_tokenizer` saved in `staged` to `folder` (whole: through `.<name>.tmp`, renamed
    into place, so an interrupted copy never leaves half a tokenizer); returns it, loaded from `folder`."""
    temporary = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(temporary, ignore_errors=True)
    shutil.copytree(staged, temporary)
    shutil.rmtree(folder, ignore_errors=True)  # an incomplete one, left by an interrupted older version
    os.replace(temporary, folder)
    return load_tokenizer(str(folder))
