"""Which of llama.cpp's pre-tokenizers a byte-level BPE tokenizer uses, recognised by how it tokenizes a check text.

llama.cpp does not read a tokenizer's splitting rules from the GGUF; it applies the ones it knows by the name in
``tokenizer.ggml.pre``. Two tokenizers with the same vocabulary and different rules (how digits group, whether a
contraction or a space is split off) give different ids for the same text, so a wrong name makes the runtime read
every prompt differently from training. The check text holds what tells the known rules apart: runs of digits,
contractions, whitespace of every kind, punctuation runs, scripts without spaces, emoji and code. A tokenizer whose
ids for it match none of the recorded ones is refused, never guessed. tests/test_real_tokenizers.py recomputes every
recorded fingerprint from the real tokenizer and proves llama.cpp tokenizes the check text the same under the name.
"""

from __future__ import annotations

import hashlib
import json

from engine.light.errors import UserError

FRACTIONS = "½ ¾ ⅓ ⅞"
SPACE_RUNS = "    return x**2  # two spaces before a comment"
LEADING_SPACES = "   leading and trailing spaces   "
CHECK_LINES = (
    "", " ", "", " \t\t \t", "  ", "   ", "    ",
    "7 77 777 7777 77777 777777 1.5 2..5 3...5 1,000,000 0x1F 2026-12-07 12:30",
    FRACTIONS,
    "I'm sure you've seen it; we'd go if they'll come. Isn'T it? DON'T 'quote' “curly” ’apostrophe’",
    "Ünïcödé café naïve façade Straße ÆØÅ æøå ñ",
    "Привет, мир! Ελληνικά. עברית العربية हिन्दी ภาษาไทย 日本語のテキスト 中文没有空格2026年 한국어",
    "🦙🦙 😀😃 👩‍👩‍👧 ✅ 🚀 (emoji)",
    "def f(x):",
    SPACE_RUNS,
    "\tif a != b and c >= d: pass",
    "------====== ...... !!!!!! ?????? ``````\"\"\"\" <<>> {{}} [[ ]] \\\\ //",
    LEADING_SPACES, "", "", "",
)
CHECK_TEXT = "\n".join(CHECK_LINES)
# Lines llama.cpp is known to tokenize differently from transformers with a vocabulary's rules, measured on the real
# tokenizers (tests/test_real_tokenizers.py proves they still do): its "smollm" rules keep a vulgar fraction with the
# byte before it; its SentencePiece merges (as sentencepiece's own) part from transformers' on runs of spaces. A
# difference on any other line fails the export.
RUNTIME_DIFFERENCES = {"smollm": {FRACTIONS}, "default": {SPACE_RUNS, LEADING_SPACES}}
KNOWN = {  # fingerprint (the sha256 of the check text's ids) → llama.cpp's name, and the models it was taken from
    "8dc83215c6b9fd1ac44cc7232f8e88b7d44c434a046599db037d16b3d43ad270": ("llama-bpe", "Llama 3, 3.1, 3.2, 3.3"),
    "6fe75d77425c4befd882ad0e17e135773465898e11c68147207c053102d91e05": ("smollm", "SmolLM2"),
}


class UnknownPreTokenizer(UserError):
    kind = "export"


def fingerprint(tokenizer) -> str:
    ids = tokenizer(CHECK_TEXT, add_special_tokens=False).input_ids
    return hashlib.sha256(json.dumps(ids).encode()).hexdigest()


def llama_cpp_name(tokenizer, where: str) -> str:
    found = KNOWN.get(fingerprint(tokenizer))
    if found is None:
        raise UnknownPreTokenizer(
            "this tokenizer splits text in a way the GGUF export does not recognise, so llama.cpp would read prompts "
            "differently from training", where=where,
            hint="GGUF export supports the tokenizers of Llama 2, Llama 3.x, TinyLlama and SmolLM2; export the merged "
                 "model and convert it with llama.cpp's own converter (convert_hf_to_gguf.py)", kind="tokenizer")
    return found[0]
