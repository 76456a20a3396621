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

CHECK_TEXT = (
    "\n \n\n \t\t \t\n  \n   \n    \n"
    "7 77 777 7777 77777 777777 1.5 2..5 3...5 1,000,000 0x1F 2026-12-07 12:30 ½ ¾\n"
    "I'm sure you've seen it; we'd go if they'll come. Isn'T it? DON'T 'quote' “curly” ’apostrophe’\n"
    "Ünïcödé café naïve façade Straße ÆØÅ æøå ñ\n"
    "Привет, мир! Ελληνικά. עברית العربية हिन्दी ภาษาไทย 日本語のテキスト 中文没有空格2026年 한국어\n"
    "🦙🦙 😀😃 👩‍👩‍👧 ✅ 🚀 (emoji)\n"
    "def f(x):\n    return x**2  # comment\n\tif a != b and c >= d: pass\n"
    "------====== ...... !!!!!! ?????? ''''''``````\"\"\"\" <<>> {{}} [[ ]] \\\\ //\n"
    "   leading and trailing spaces   \n\n\n"
)
KNOWN = {  # fingerprint (the sha256 of the check text's ids) → llama.cpp's name, and the models it was taken from
    "a2e29668e608269cb0fab056824074cfa54e40f4842b8835d96d4aa99728e02b": ("llama-bpe", "Llama 3, 3.1, 3.2, 3.3"),
    "116d9546ed8b8055f6d7866ae8271cacea453ac8d2ccdb36f6adf35363871212": ("smollm", "SmolLM2"),
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
