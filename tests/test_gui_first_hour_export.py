"""The Export dialog's report says first, in plain words, whether the export answers like the fine-tune; the exact
measures (tensor types, KL divergence, greedy continuations, special token ids) stay under Details, complete."""

from __future__ import annotations

from engine.light import export_report, protocol
from gui import export_words


def _measure(share: float, *, kl: float = 0.004, passed: bool = True, clear: int = 120, runtime: str = "") -> dict:
    found = {"prompts": 4, "prompt_source": "the first 4 validation examples of the run's dataset",
             "greedy_identical_tokens": [9, 32, 32, 32], "positions": 128, "clear_positions": clear,
             "top1_agreement": 0.96, "clear_top1_agreement": share, "kl_divergence": kl,
             "required": {"clear_top1_agreement": 0.95, "kl_divergence": 0.05, "clear_positions": 32},
             "passed": passed, "verdict": "passed" if passed else "failed"}
    if runtime:
        found["runtime"] = runtime
    return found


TOKENIZER = {"template_stored_identical": True, "template_renders_identical": True, "prompt_ids_identical": True,
             "check_text_ids_identical": True, "special_ids_identical": True, "stops_at_end_of_turn": True,
             "special_ids": {"marked": {"bos": 1, "eos": 2, "end_of_turn": 2},
                             "expected": {"bos": 1, "eos": 2, "end_of_turn": 2}},
             "differences": [], "check_text_known_runtime_differences": []}


def _gguf(passed: bool = True, tokenizer: dict = TOKENIZER, answers: dict | None = None) -> protocol.ExportFinished:
    verification = {"gguf": {"file": "tuned-q8_0.gguf", "bytes": 10**8, "tensor_types": {"Q8_0": 15, "F32": 61},
                             "tokenizer": tokenizer,
                             "answers": answers or _measure(0.98, runtime="llama.cpp", passed=passed)},
                    "outcome": {"export_folder": "/exports/tuned-gguf-q8_0", "files_in": "/exports/tuned-gguf-q8_0",
                                "earlier_export": "none"},
                    "seconds": {"merge": 10.0, "convert": 5.0}}
    return protocol.ExportFinished("/exports/tuned-gguf-q8_0", "gguf", ["tuned-q8_0.gguf"], verification, passed)


def _plain(text: str) -> str:
    return text.split(export_words.DETAILS)[0]


def test_a_verified_gguf_reads_in_plain_words_first_with_every_measure_in_the_details():
    done = _gguf()
    text = export_words.report(done)
    plain = _plain(text)
    assert "In llama.cpp, the GGUF file answers like the fine-tune: 98% of the next words agree where the " \
           "fine-tune is sure of its choice (95% needed)." in plain
    assert "reads prompts like the fine-tune" in plain and "How to run it:" in plain
    for jargon in ("KL", "Q8_0", "F32", "greedy", "[9, 32, 32, 32]", "ids", "top-1"):
        assert jargon not in plain, jargon
    summary = export_report.summary(done)
    for line in summary.split("\n\nHow to run it:")[0].splitlines()[1:]:
        assert line in text, line  # the engine's report, complete, under Details
    assert "15 Q8_0, 61 F32" in text and "KL divergence" in text and "[9, 32, 32, 32]" in text


def test_a_failed_export_says_how_its_answers_differ_and_what_llama_cpp_reads_differently():
    broken = dict(TOKENIZER, special_ids_identical=False,
                  special_ids={"marked": {"bos": 1, "eos": 2, "end_of_turn": 0},
                               "expected": {"bos": 1, "eos": 2, "end_of_turn": 2}},
                  differences=["the file marks different special tokens from the model's (end of turn: id 0 in the "
                               "file, id 2 in the model)"])
    done = _gguf(False, broken, _measure(0.6, runtime="llama.cpp", passed=False))
    plain = _plain(export_words.report(done))
    assert "the GGUF file answers differently from the fine-tune: only 60% of the next words agree" in plain
    assert "the file marks other start or end tokens than the fine-tune's" in plain
    assert "How to run it:" not in plain and "id 0 in the file" in export_words.report(done)

    near = _gguf(False, answers=_measure(0.97, kl=0.2, runtime="llama.cpp", passed=False))
    assert "how likely it finds each word differs more than allowed" in _plain(export_words.report(near))


def test_too_few_clear_choices_is_said_as_not_verified():
    measure = _measure(0.9, clear=5, passed=False)
    measure["verdict"] = "not verified: the fine-tune was sure of its next token at only 5 positions"
    assert export_words.answers("The merged model", measure).startswith("The merged model could not be verified")


def test_percentages_just_below_all_are_not_rounded_up_to_all():
    assert export_words._percent(0.996) == "99.6%" and export_words._percent(1.0) == "100%"
    assert export_words._percent(0.984) == "98%"


def test_the_engine_names_which_special_token_differs_and_its_ids():
    from engine.heavy.export import in_llama_cpp

    found = dict(TOKENIZER, special_ids_identical=False,
                 special_ids={"marked": {"bos": 1, "eos": 2, "end_of_turn": None},
                              "expected": {"bos": 1, "eos": 2, "end_of_turn": 2}})
    assert in_llama_cpp.differences(found) == [
        "the file marks different special tokens from the model's (end of turn: none in the file, id 2 in the model)"]

