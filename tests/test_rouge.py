"""ROUGE-L in any language (engine/light/rouge.py): answers in Chinese, Japanese, Cyrillic, Greek and accented Latin
score what they share with the reference, where rouge-score's default tokenizer (ASCII letters and digits only) saw
nothing; plain ASCII text scores exactly as before; the API comparison scores with the same scorer."""

from __future__ import annotations

import pytest
from rouge_score import rouge_scorer, tokenizers

from engine.light import api_compare
from engine.light.api_chat import Endpoint
from engine.light.rouge import rouge_l, tokens
from engine.light.run_folder import RunFolder
from tests.api_responders import Responder, streamed


def _default(reference: str, answer: str) -> float:
    return rouge_scorer.RougeScorer(["rougeL"]).score(reference, answer)["rougeL"].fmeasure


def _f_measure(common: int, reference_tokens: int, answer_tokens: int) -> float:
    precision, recall = common / answer_tokens, common / reference_tokens
    return 2 * precision * recall / (precision + recall)


SAME_MEANING = [  # a reference, and a right answer in other words
    ("巴黎是法国的首都。", "法国的首都是巴黎。"),  # Chinese
    ("東京は日本の首都です。", "日本の首都は東京です。"),  # Japanese
    ("서울은 한국의 수도입니다.", "한국의 수도는 서울입니다."),  # Korean
    ("Столица Франции — Париж.", "Париж — столица Франции."),  # Cyrillic
    ("Η πρωτεύουσα της Γαλλίας είναι το Παρίσι.", "Το Παρίσι είναι η πρωτεύουσα της Γαλλίας."),  # Greek
]


@pytest.mark.parametrize("reference, answer", SAME_MEANING)
def test_answers_in_other_scripts_score_what_they_share(reference, answer):
    assert _default(reference, answer) == 0.0  # what the comparison reported before
    assert 0.0 < rouge_l(reference, answer) < 1.0
    assert rouge_l(reference, reference) == 1.0


@pytest.mark.parametrize("reference, answer", [
    ("Ça va très bien, merci.", "ÇA VA TRÈS BIEN, MERCI."),  # case
    ("Ça va très bien, merci.", "Ça va tre\u0300s bien, merci."),  # è written as e and a combining grave accent
    ("Die Straße ist breit.", "DIE STRASSE IST BREIT."),  # ß case-folds to ss
    ("Привет, мир!", "ПРИВЕТ, МИР!"),
])
def test_accents_and_case_do_not_change_the_words(reference, answer):
    assert rouge_l(reference, answer) == 1.0


@pytest.mark.parametrize("reference, answer", [
    ("Paris.", "Berlin."), ("巴黎。", "柏林。"), ("Москва", "Берлин"), ("Αθήνα", "Ρώμη"), ("Paris.", ""),
])
def test_unrelated_answers_score_zero(reference, answer):
    assert rouge_l(reference, answer) == 0.0


def test_partial_answers_score_their_longest_common_subsequence():
    # the cat sat on the mat / a cat sat on a red mat: in common, in order, "cat sat on mat"
    assert rouge_l("the cat sat on the mat", "a cat sat on a red mat") == pytest.approx(_f_measure(4, 6, 7))
    # 北京是中国的首都 / 中国的首都是北京, a token per character: "中国的首都", 5 of 8 on each side
    assert rouge_l("北京是中国的首都", "中国的首都是北京") == pytest.approx(_f_measure(5, 8, 8))
    # Москва, столица, России / столица, России, Москва: "столица России" (the dash is no word)
    assert rouge_l("Москва — столица России", "Столица России — Москва") == pytest.approx(_f_measure(2, 3, 3))
    # Hindi's vowel signs are combining marks inside the word: two whole words each, one in order in common
    assert rouge_l("हिन्दी भाषा", "भाषा हिन्दी") == pytest.approx(_f_measure(1, 2, 2))


def test_cjk_characters_are_tokens_and_other_words_stay_whole():
    assert tokens("東京は日本の首都です。") == ["東", "京", "は", "日", "本", "の", "首", "都", "で", "す"]
    assert tokens("LlamaDesk を使う") == ["llamadesk", "を", "使", "う"]
    assert tokens("Ελληνικά, Русский, Français") == ["ελληνικά", "русский", "français"]


ASCII = ["The quick brown fox jumps over the lazy dog.",
         "A quick brown dog jumped over 2 lazy foxes!",
         "Don't split_snake_case or hyphen-ated WORDS, e.g. 3.14 and $5?",
         "Paris is the capital of France.",
         "The capital of France is Paris; it's on the Seine."]


@pytest.mark.parametrize("reference", ASCII)
@pytest.mark.parametrize("answer", ASCII)
def test_plain_ascii_scores_as_rouge_scores_default(reference, answer):
    assert tokens(answer) == tokenizers.DefaultTokenizer().tokenize(answer)
    assert rouge_l(reference, answer) == _default(reference, answer)


def test_the_api_comparison_scores_a_chinese_answer(home):
    folder = RunFolder.create("compared")
    folder.write_evaluation({"answers": [{"prompt": "法国的首都是哪里？", "question": "法国的首都是哪里？",
                                          "reference": "法国的首都是巴黎。", "before": "", "after": ""}]})
    responder = Responder(streamed(pieces=("巴黎", "是法国的首都", "。")))
    try:
        result = api_compare.compare(folder, Endpoint(responder.base_url, "m"))
    finally:
        responder.close()
    # 法国的首都是巴黎 / 巴黎是法国的首都: "法国的首都" in common, 5 of 8 characters on each side
    assert result["answers"][0]["rouge_l_api"] == pytest.approx(_f_measure(5, 8, 8))
    assert result["api"]["rouge_l"] == pytest.approx(_f_measure(5, 8, 8))
