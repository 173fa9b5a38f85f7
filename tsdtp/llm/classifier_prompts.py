"""Classification prompts for a chat model, as token ids: the task's question is the system message, the example
the user message, and the assistant's turn is opened, so the label is read at the prompt's last token.

The chat template rendered around a placeholder gives the ids before and after the example; the example's own
ids go between. A prompt longer than `max_length` keeps its instruction and answer prefix and cuts the example
text at its end (a documented truncation: counted, warned, and marked per example). An empty text is an error.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from datasets import Dataset
from transformers import PreTrainedTokenizerBase

from tsdtp.errors import ConfigError, DataError
from tsdtp.glue_tasks import get_task, load_task_data
from tsdtp.llm.classifier_config import LlmTrainConfig
from tsdtp.llm.classifier_few_shot import (
    EVALUATION_SEED,
    demonstration_pool,
    few_shot_prompt_ids,
    prompt_budgets,
)
from tsdtp.runs.selection import SELECTION_WORD, training_and_evaluation

PLACEHOLDER = "\ue000"
"""A private-use character that stands for the example while the chat template is rendered."""


@dataclass(frozen=True)
class PromptStyle:
    """How a task asks its question: the instruction, the name introducing each text field (pairs), and the
    word naming each label (it initialises the label's row of the head from the model's own output layer)."""

    instruction: str
    field_names: tuple[str, ...]
    label_words: tuple[str, ...]

    def message(self, texts: Sequence[str]) -> str:
        """The user message of one example: each text field on its own line after its name."""
        return "\n".join(f"{name}: {text}" for name, text in zip(self.field_names, texts))


PROMPTS: dict[str, PromptStyle] = {
    "sst2": PromptStyle("Is the sentiment of this movie review positive or negative? Answer with one word.",
                        ("Review",), ("negative", "positive")),
    "qnli": PromptStyle("Does the sentence contain the answer to the question? Answer yes or no.",
                        ("Question", "Sentence"), ("yes", "no")),
}
"""The prompt of every task, its label words in the task's label order."""


@dataclass(frozen=True)
class PromptFrame:
    """The token ids of a task's prompt before and after the example."""

    before: list[int]
    after: list[int]

    @classmethod
    def of(cls, tokenizer: PreTrainedTokenizerBase, style: PromptStyle) -> PromptFrame:
        """The frame of `style` in the tokenizer's chat template (a plain `question / text / Answer:` without one)."""
        messages = [{"role": "system", "content": style.instruction}, {"role": "user", "content": PLACEHOLDER}]
        if tokenizer.chat_template is not None:
            text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        else:
            text = f"{style.instruction}\n\n{PLACEHOLDER}\nAnswer:"
        before, after = text.split(PLACEHOLDER)
        return cls(_ids(tokenizer, before), _ids(tokenizer, after))

    def budget(self, max_length: int) -> int:
        """Tokens left for the example in a prompt of `max_length`; ConfigError when none are."""
        budget = max_length - len(self.before) - len(self.after)
        if budget < 1:
            raise ConfigError(f"max_length {max_length} leaves no room for the text: the prompt's instruction and "
                              f"answer prefix take {len(self.before) + len(self.after)} tokens")
        return budget


def _ids(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    """Token ids of `text`, no special tokens added."""
    return tokenizer(text, add_special_tokens=False)["input_ids"]


@dataclass(frozen=True)
class PromptSplit:
    """Prompt token ids per example (unpadded), labels, raw texts, and whether each text was cut to fit."""

    input_ids: list[list[int]]
    labels: list[int]
    texts: list[tuple[str, ...]]
    truncated: list[bool]

    def __len__(self) -> int:
        return len(self.labels)

    def lengths(self) -> list[int]:
        """Token count of every prompt."""
        return [len(ids) for ids in self.input_ids]


def encode_prompts(tokenizer: PreTrainedTokenizerBase, task: str, texts: Sequence[tuple[str, ...]],
                   max_length: int) -> tuple[list[list[int]], list[bool]]:
    """Prompt ids of each example of `task` (one tuple of text fields each) and whether its text was cut.

    An example whose texts are all blank is a DataError; a prompt over `max_length` keeps its frame and cuts
    the text at its end to fit (warned once, with the count).
    """
    style = PROMPTS[get_task(task).name]
    frame = PromptFrame.of(tokenizer, style)
    budget = frame.budget(max_length)
    empty = [index for index, row in enumerate(texts) if not any(part.strip() for part in row)]
    if empty:
        raise DataError(f"{len(empty)} empty {task} text(s) (the first is example {empty[0]}); a prompt needs text")
    messages = [style.message(row) for row in texts]
    bodies = tokenizer(messages, add_special_tokens=False)["input_ids"] if messages else []
    truncated = [len(body) > budget for body in bodies]
    if any(truncated):
        warnings.warn(f"{sum(truncated)} {task} text(s) cut at their end to fit a {max_length}-token prompt",
                      stacklevel=2)
    return [frame.before + body[:budget] + frame.after for body in bodies], truncated


def encode_split(tokenizer: PreTrainedTokenizerBase, task: str, split: Dataset, max_length: int) -> PromptSplit:
    """The prompts of a whole split of `task`."""
    texts = list(zip(*(split[field] for field in get_task(task).text_fields)))
    input_ids, truncated = encode_prompts(tokenizer, task, texts, max_length)
    return PromptSplit(input_ids, list(split["label"]), texts, truncated)


def prepare_splits(config: LlmTrainConfig, tokenizer: PreTrainedTokenizerBase, data_dir: str | None,
                   include_train: bool = True, split: str = "eval") -> tuple[PromptSplit | None, PromptSplit, str]:
    """The train prompts (a seeded subset of `max_train_samples`, without the held-out selection part; None without
    `include_train`), the prompts of `split` (`eval`, or the held-out `selection` part: the first
    `max_eval_samples`) and that split's label (`tsdtp.runs.selection`). With `few_shot_tokens`, every prompt is
    a few-shot prompt (`tsdtp.llm.classifier_few_shot`)."""
    need_train = include_train or split == SELECTION_WORD or config.few_shot_tokens > 0
    data = load_task_data(get_task(config.task), data_dir, need_train=need_train)
    train, evaluation, name = training_and_evaluation(data, config.selection_fraction, split)
    pool = demonstration_pool(train) if config.few_shot_tokens else []
    if config.max_train_samples is not None and config.max_train_samples < len(train):
        train = train.shuffle(seed=config.seed).select(range(config.max_train_samples))
    if config.max_eval_samples is not None and config.max_eval_samples < len(evaluation):
        evaluation = evaluation.select(range(config.max_eval_samples))

    def encode(part: Dataset, training: bool) -> PromptSplit:
        if not config.few_shot_tokens:
            return encode_split(tokenizer, config.task, part, config.max_length)
        budgets = prompt_budgets(len(part), config.few_shot_tokens, config.seed, drawn=training)
        ids = few_shot_prompt_ids(tokenizer, part, pool, budgets, config.seed if training else EVALUATION_SEED)
        return PromptSplit(ids, list(part["label"]), [(text,) for text in part["sentence"]], [False] * len(ids))

    return (encode(train, training=True) if include_train else None), encode(evaluation, training=False), name


def label_token_ids(tokenizer: PreTrainedTokenizerBase, task: str) -> list[int]:
    """The first token of each label word of `task`, in label order."""
    return [_ids(tokenizer, word)[0] for word in PROMPTS[get_task(task).name].label_words]


def collate(split: PromptSplit, indices: Sequence[int], pad_id: int) -> dict[str, torch.Tensor]:
    """The chosen prompts padded on the right to the longest, with their attention mask and labels."""
    width = max(len(split.input_ids[i]) for i in indices)
    ids = torch.full((len(indices), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(indices), width), dtype=torch.long)
    for row, i in enumerate(indices):
        ids[row, : len(split.input_ids[i])] = torch.tensor(split.input_ids[i])
        mask[row, : len(split.input_ids[i])] = 1
    return {"input_ids": ids, "attention_mask": mask,
            "labels": torch.tensor([split.labels[i] for i in indices], dtype=torch.long)}
