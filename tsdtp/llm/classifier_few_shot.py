"""Few-shot SST-2 prompts to train and evaluate an LLM classifier on (`LlmTrainConfig.few_shot_tokens`).

A classifier trained on one review per prompt is at chance on long few-shot prompts (docs/llm-prefill.md,
session 12): the demonstrations before the query confuse it. Trained on few-shot prompts instead, the label is
still read at the prompt's last token, so the run's classifier answers the few-shot prompts that pruned prefill
is measured on (`tsdtp.llm.classifier_causal`).

Each prompt is `tsdtp.llm.prompts.few_shot_prompt`'s: balanced demonstrations from the training part (never the
query's own sentence), then the query review. A training prompt's token budget is drawn uniformly, seeded per
prompt, between a quarter of `few_shot_tokens` (at least `MIN_FEW_SHOT_TOKENS`) and all of it, so that the
classifier sees short and long contexts; an evaluated prompt gets the whole budget.
"""

from __future__ import annotations

import random

from datasets import Dataset
from transformers import PreTrainedTokenizerBase

from tsdtp.llm.prompts import MIN_DEMO_WORDS, few_shot_prompt

MIN_FEW_SHOT_TOKENS = 256
"""The smallest prompt budget: it holds SmolLM2's chat template, the longest SST-2 review and a few
demonstrations."""
EVALUATION_SEED = -1
"""Seeds the evaluated prompts' demonstrations, so that runs of every seed are evaluated on the same prompts."""


def demonstration_pool(train: Dataset) -> list[tuple[str, int]]:
    """The (sentence, label) rows of an SST-2 training part that may serve as demonstrations."""
    return [(sentence.strip(), label) for sentence, label in zip(train["sentence"], train["label"])
            if len(sentence.split()) >= MIN_DEMO_WORDS]


def prompt_budgets(count: int, few_shot_tokens: int, seed: int, drawn: bool) -> list[int]:
    """The token budget of each of `count` prompts: drawn uniformly from [max(few_shot_tokens / 4,
    MIN_FEW_SHOT_TOKENS), few_shot_tokens] (seeded by `seed` and the prompt's index) when `drawn`, else
    `few_shot_tokens` for all."""
    if not drawn:
        return [few_shot_tokens] * count
    low = min(few_shot_tokens, max(few_shot_tokens // 4, MIN_FEW_SHOT_TOKENS))
    return [random.Random(f"budget-{seed}-{index}").randint(low, few_shot_tokens) for index in range(count)]


def few_shot_prompt_ids(tokenizer: PreTrainedTokenizerBase, queries: Dataset, pool: list[tuple[str, int]],
                        budgets: list[int], seed: int) -> list[list[int]]:
    """The token ids of a few-shot prompt for every SST-2 row of `queries`, its demonstrations from `pool`, each
    within its budget (`few_shot_prompt`, seeded by `seed` and the row's index)."""
    rows = zip(queries["sentence"], queries["label"])
    return [few_shot_prompt(tokenizer, pool, (sentence.strip(), label), budgets[index],
                            random.Random(f"{seed}-{index}")).input_ids.tolist()
            for index, (sentence, label) in enumerate(rows)]
