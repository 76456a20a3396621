"""Loading a model's tokenizer so that it tokenizes as the model was trained and as llama.cpp runs it.

transformers 5 builds every ``LlamaTokenizer`` (the SentencePiece vocabularies of Llama 2, TinyLlama and their
fine-tunes) with a Metaspace pre-tokenizer, whatever its tokenizer.json says. That pre-tokenizer adds the space
prefix only where a text does not already start with one, and not after a special token: "<s>[INST]" becomes
"[", "INST" where sentencepiece, Meta's own tokenizer and llama.cpp give "▁[", "INST". A model trained on the
one and run on the other sees prompts it never saw. The hub's tokenizer.json for these models prepends the space to
every piece of text between special tokens (a normalizer); it is put back here, in the one place the engine loads a
tokenizer. tests/test_real_tokenizers.py holds it to sentencepiece and to llama.cpp on the real Llama 2 vocabulary.
"""

from __future__ import annotations

SPACE = "\u2581"


def load(folder, **options):
    from transformers import AutoTokenizer

    return with_sentencepiece_spacing(AutoTokenizer.from_pretrained(folder, **options))


def with_sentencepiece_spacing(tokenizer):
    from tokenizers import normalizers

    backend = getattr(tokenizer, "backend_tokenizer", None)
    pre = getattr(backend, "pre_tokenizer", None)
    if type(pre).__name__ != "Metaspace" or pre.prepend_scheme == "never" or backend.normalizer is not None:
        return tokenizer
    backend.normalizer = normalizers.Sequence([normalizers.Prepend(SPACE), normalizers.Replace(" ", SPACE)])
    backend.pre_tokenizer = None
    return tokenizer
