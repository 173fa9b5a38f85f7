"""What kind of token a word piece is: special, punctuation, stop word, sentiment word or other word.

Used to ask which kinds of token survive pruning. Word pieces are judged by the whole word
they belong to, lowercased: WordPiece `play ##ing`, SentencePiece `▁play ing` and byte-level
BPE `Ġplay ing` (GPT-2, Llama 3, SmolLM2) are all the word "playing". A chat template's markers
(`<|im_start|>`) and its newlines (`Ċ`) count as special tokens.

The two word lists are small and written for this project, not taken from a published
resource:
- `STOP_WORDS`: about 150 English function words (articles, pronouns, auxiliaries,
  prepositions, conjunctions, common adverbs), in the spirit of the usual NLTK/spaCy lists.
- `SENTIMENT_WORDS`: about 170 common evaluative words of film reviews, positive and
  negative (good, bad, boring, funny, masterpiece, ...). It is a coarse marker of
  "sentiment-bearing" for SST-2 figures, not a sentiment classifier.
"""

from __future__ import annotations

import string
from collections.abc import Sequence

KINDS: tuple[str, ...] = ("special", "punctuation", "stop word", "sentiment word", "other word")
"""Every kind, in the order figures show them."""

SPECIAL_TOKENS: frozenset[str] = frozenset({"[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]", "<s>", "</s>", "<pad>"})

STOP_WORDS: frozenset[str] = frozenset("""
a about above after again against all am an and any are aren't as at be because been before being below
between both but by can can't cannot could couldn't did didn't do does doesn't doing don't down during each
few for from further had hadn't has hasn't have haven't having he her here hers herself him himself his how
i if in into is isn't it it's its itself just let's me more most my myself no nor not of off on once only or
other ought our ours ourselves out over own same she should shouldn't so some such than that that's the their
theirs them themselves then there there's these they this those through to too under until up very was wasn't
we were weren't what when where which while who whom why will with won't would wouldn't you your yours
yourself yourselves 's n't 're 've 'll 'd also s t
""".split())

SENTIMENT_WORDS: frozenset[str] = frozenset("""
good great best better excellent superb wonderful brilliant fantastic terrific amazing outstanding
beautiful beautifully lovely delightful charming enjoyable entertaining fun funny hilarious witty clever smart
moving touching powerful compelling gripping engaging engrossing fascinating intriguing riveting thrilling
exciting fresh original inventive imaginative remarkable impressive memorable masterpiece masterful classic
perfect perfectly rich warm sweet tender heartfelt honest sincere intelligent thoughtful insightful
wise elegant stunning gorgeous love loved loves lovable likable likeable liked pleasure pleasant
satisfying solid strong worth worthwhile recommend triumph success successful admirable
refreshing uplifting inspiring inspired joy joyous affecting poignant haunting vivid sharp
bad worse worst awful terrible horrible dreadful poor poorly weak lame dull boring bored tedious tiresome
slow sluggish bland flat stale tired predictable formulaic cliche cliched contrived forced silly stupid dumb
pointless mindless senseless mediocre uninspired unfunny annoying irritating painful unpleasant ugly mess
messy disappointing disappointment disaster failure fails failed fail waste wasted worthless
confusing incoherent pretentious shallow hollow empty lifeless unwatchable unbearable overlong
sloppy clumsy awkward embarrassing ridiculous laughable inept monotonous hate hated
lacks lacking lack wrong unfortunately sadly mediocrity
""".split())


def word_kind(word: str, sentiment: bool = True) -> str:
    """The kind of one whole (lowercased, de-pieced) word; `sentiment=False` folds sentiment into other."""
    if _is_special(word):
        return "special"
    if _is_punctuation(word):
        return "punctuation"
    lowered = word.lower()
    if lowered in STOP_WORDS:
        return "stop word"
    if sentiment and lowered in SENTIMENT_WORDS:
        return "sentiment word"
    return "other word"


WORD_START_MARKS: tuple[str, ...] = ("\u2581", "\u0120")
"""The marks SentencePiece (`▁`) and byte-level BPE (`Ġ`) put at the start of a piece that begins a word."""

BYTE_LEVEL_NEWLINE = "\u010a"
"""Byte-level BPE's newline (`Ċ`)."""


def _is_punctuation(text: str) -> bool:
    return bool(text) and all(ch in string.punctuation for ch in text)


def _is_special(token: str) -> bool:
    return (token in SPECIAL_TOKENS or (token.startswith("<|") and token.endswith("|>"))
            or (bool(token) and set(token) == {BYTE_LEVEL_NEWLINE}))


def whole_words(tokens: Sequence[str]) -> list[str]:
    """For each token, the whole word it belongs to.

    WordPiece (`##` marks a continuation) and SentencePiece or byte-level BPE (`▁` or `Ġ` marks a
    word start; a piece without it continues the word before, unless it is punctuation or special, or
    follows a special token) are told apart by whether any token carries a word-start mark.
    """
    marked = any(token.startswith(WORD_START_MARKS) for token in tokens)
    words: list[str] = []
    starts: list[int] = []
    for index, token in enumerate(tokens):
        if marked:
            previous = tokens[index - 1] if index else ""
            continues = not (token.startswith(WORD_START_MARKS) or _is_special(token) or _is_punctuation(token)
                             or _is_special(previous))
            piece = token[1:] if token.startswith(WORD_START_MARKS) else token
        else:
            continues, piece = token.startswith("##"), token.removeprefix("##")
        if continues and starts:
            words[starts[-1]] += piece
            starts.append(starts[-1])
            words.append("")
        else:
            starts.append(index)
            words.append(piece)
    return [words[start] for start in starts]


def token_kinds(tokens: Sequence[str], sentiment: bool = True) -> list[str]:
    """The kind of every token of one tokenized example (see `KINDS`)."""
    return [word_kind(word, sentiment) for word in whole_words(tokens)]
