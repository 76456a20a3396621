"""ROUGE-L for answers in any language: the one scorer of the before/after comparison and the API model's answers.

rouge-score's own tokenizer keeps only [a-z0-9], so an answer in Chinese, Russian, Greek or with accents scores 0
however right it is. This one keeps every Unicode word: it normalises the text (NFKC, so composed and decomposed
accents and full-width letters read the same), case-folds it, splits on anything that is not a letter, digit or
combining mark, and makes each CJK ideograph, kana and hangul character a token of its own, since Chinese and Japanese
write no spaces between words (per-character tokens are the usual practice for ROUGE on them). No stemming: the
Porter stemmer is English only. On plain ASCII text the tokens, and so the scores, are rouge-score's default ones.
"""

from __future__ import annotations

import functools
import unicodedata

# Scripts written without spaces between words: ideographs (with 々 〆 〇), kana and hangul, one token per character.
_CHARACTER_TOKENS = (
    (0x1100, 0x11FF),  # hangul jamo
    (0x3005, 0x3007),  # ideographic iteration mark, closing mark, number zero
    (0x3040, 0x30FF),  # hiragana, katakana
    (0x3130, 0x318F),  # hangul compatibility jamo
    (0x31F0, 0x31FF),  # katakana phonetic extensions
    (0x3400, 0x4DBF),  # CJK unified ideographs extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xA960, 0xA97F),  # hangul jamo extended-A
    (0xAC00, 0xD7FF),  # hangul syllables, jamo extended-B
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0x20000, 0x3FFFF),  # CJK extensions B and later (planes 2 and 3)
)


def rouge_l(reference: str, answer: str) -> float:
    """The ROUGE-L F-measure of ``answer`` against ``reference``, from 0 (nothing in common) to 1 (the same words)."""
    return _scorer().score(reference, answer)["rougeL"].fmeasure


def tokens(text: str) -> list[str]:
    """The words ROUGE-L compares: see the module's docstring."""
    found: list[str] = []
    word: list[str] = []
    for char in unicodedata.normalize("NFKC", text).casefold():
        if _is_character_token(char):
            _flush(word, found)
            found.append(char)
        elif char.isalnum() or (word and unicodedata.category(char).startswith("M")):
            word.append(char)  # isalnum is the re module's \w less the underscore, which rouge-score splits on too
        else:
            _flush(word, found)
    _flush(word, found)
    return found


class _WordTokenizer:
    """What rouge-score's RougeScorer asks of a tokenizer: a tokenize(text) method."""

    def tokenize(self, text: str) -> list[str]:
        return tokens(text)


@functools.cache
def _scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False, tokenizer=_WordTokenizer())


def _is_character_token(char: str) -> bool:
    code = ord(char)
    return any(low <= code <= high for low, high in _CHARACTER_TOKENS)


def _flush(word: list[str], found: list[str]) -> None:
    if word:
        found.append("".join(word))
        word.clear()
