"""Long prompts from the shared data: few-shot SST-2 prompts of a token budget, and English news passages.

Few-shot prompts put demonstrations from SST-2 `train.tsv` (balanced, seeded, at least `MIN_DEMO_WORDS` words)
and one `dev.tsv` review into one user turn of the chat template, as many demonstrations as fit the budget;
the assistant's turn opens with `ANSWER_PREFIX`, and the answer is read at that last token, comparing the
logits of the label words (with their leading space). On 24 dev reviews at ~300 tokens, SmolLM2-135M-Instruct
scored 67% this way, 71% with plain text and no chat template, and 46% when the assistant's turn opened bare
(it answers "The review ..." rather than a label word).
Passages are consecutive newstest2016 English segments joined by spaces, cut into a prompt of a given length
and the continuation after it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerBase

from tsdtp.data_files import read_text
from tsdtp.errors import DataError
from tsdtp.glue_tasks import get_task, load_task_data

LABEL_WORDS = ("negative", "positive")
"""SST-2 label 0 and 1 as the model should answer them."""

INSTRUCTION = "Classify the sentiment of each movie review as positive or negative."
ANSWER_PREFIX = "Sentiment:"
"""What the assistant's turn starts with, so that its next word is the label."""
MIN_DEMO_WORDS = 6
"""Shorter training rows (SST-2 train holds phrases too) are not used as demonstrations."""


@dataclass(frozen=True)
class FewShotPrompt:
    """One few-shot prompt: token ids [n], the query's label, how many demonstrations, and where the query
    review starts (token index) so plots can mark it."""

    input_ids: torch.Tensor
    label: int
    demonstrations: int
    query_start: int


@dataclass(frozen=True)
class Passage:
    """A prompt of news text [n] and the tokens that follow it in the passage [m]."""

    input_ids: torch.Tensor
    continuation: torch.Tensor


def read_sst2(data_dir: Path) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """(sentence, label) rows of SST-2 train and dev in GLUE layout (`tsdtp.glue_tasks`, its errors)."""
    data = load_task_data(get_task("sst2"), data_dir)
    train, dev = ([(row["sentence"].strip(), row["label"]) for row in split] for split in (data.train, data.eval))
    return train, dev


def label_token_ids(tokenizer: PreTrainedTokenizerBase) -> tuple[int, int]:
    """The first token of each label word as it follows `ANSWER_PREFIX` (with a leading space)."""
    return tuple(tokenizer.encode(f" {word}", add_special_tokens=False)[0]  # type: ignore[return-value]
                 for word in LABEL_WORDS)


def chat_text(tokenizer: PreTrainedTokenizerBase, content: str) -> str:
    """One user turn in the chat template, the assistant's turn opened, as text."""
    return tokenizer.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True,
                                         tokenize=False)


def few_shot_ids(tokenizer: PreTrainedTokenizerBase, content: str) -> list[int]:
    """Token ids of `chat_text` and `ANSWER_PREFIX` (the template's special tokens included)."""
    return tokenizer.encode(chat_text(tokenizer, content) + ANSWER_PREFIX, add_special_tokens=False)


def _demo(sentence: str, label: int) -> str:
    return f"Review: {sentence}\nSentiment: {LABEL_WORDS[label]}\n\n"


def few_shot_prompt(tokenizer: PreTrainedTokenizerBase, pool: list[tuple[str, int]], query: tuple[str, int],
                    budget: int, rng: random.Random) -> FewShotPrompt:
    """As many balanced demonstrations from `pool` as fit `budget` tokens before the query, in random order; the
    query's own sentence is never one of them."""
    by_label = [[row for row in pool if row[1] == label and row[0] != query[0]] for label in (0, 1)]
    head, tail = f"{INSTRUCTION}\n\n", f"Review: {query[0]}"
    demos: list[str] = []
    for index in range(len(pool)):
        candidate = _demo(*rng.choice(by_label[index % 2]))
        if len(few_shot_ids(tokenizer, head + "".join(demos) + candidate + tail)) > budget:
            break
        demos.append(candidate)
    if not demos:
        raise DataError(f"a budget of {budget} tokens fits no demonstration before the query review")
    rng.shuffle(demos)
    text = chat_text(tokenizer, head + "".join(demos) + tail) + ANSWER_PREFIX
    ids = tokenizer.encode(text, add_special_tokens=False)
    query_start = len(ids) - len(tokenizer.encode(text[text.rindex(tail):], add_special_tokens=False))
    return FewShotPrompt(torch.tensor(ids), query[1], len(demos), query_start)


def few_shot_prompts(tokenizer: PreTrainedTokenizerBase, data_dir: Path, budget: int, count: int,
                     seed: int = 0, queries_from: str = "dev") -> list[FewShotPrompt]:
    """`count` few-shot prompts of at most `budget` tokens for the first `count` dev reviews (`queries_from`
    "dev"), or for the last `count` training rows ("train": prompts to train on)."""
    train, dev = read_sst2(data_dir)
    pool = [row for row in train if len(row[0].split()) >= MIN_DEMO_WORDS]
    queries = dev[:count] if queries_from == "dev" else pool[-count:]
    return [few_shot_prompt(tokenizer, pool, query, budget, random.Random(f"{seed}-{budget}-{queries_from}{index}"))
            for index, query in enumerate(queries)]


def read_news(data_dir: Path) -> list[str]:
    """The English side of newstest2016, one segment per line."""
    path = data_dir / "wmt16_en_de" / "newstest" / "newstest2016.en"
    return [line.strip() for line in read_text(path, "newstest2016 English, one segment per line").splitlines()
            if line.strip()]


def passages(tokenizer: PreTrainedTokenizerBase, data_dir: Path, length: int, continuation: int,
             count: int) -> list[Passage]:
    """`count` disjoint passages of `length` prompt tokens and `continuation` tokens after them, each from
    consecutive newstest2016 segments, the first starting at the first segment."""
    segments, found, start = read_news(data_dir), [], 0
    while len(found) < count:
        ids: list[int] = []
        end = start
        while len(ids) < length + continuation and end < len(segments):
            end += 1
            ids = tokenizer.encode(" ".join(segments[start:end]), add_special_tokens=False)
        if len(ids) < length + continuation:
            raise DataError(f"newstest2016 holds only {len(found)} passages of {length + continuation} tokens")
        found.append(Passage(torch.tensor(ids[:length]), torch.tensor(ids[length:length + continuation])))
        start = end
    return found
