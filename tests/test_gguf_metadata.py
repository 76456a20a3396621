"""The GGUF metadata reader gives exactly what gguf.GGUFReader gives for every key that is not an array."""

from __future__ import annotations

import gguf

from engine.heavy.export import gguf_metadata


def test_the_metadata_reader_agrees_with_gguf_readers(demo_gguf):
    reader = gguf.GGUFReader(demo_gguf)
    expected = {field.name: field.contents() for field in reader.fields.values()
                if field.types and field.types[0] != gguf.GGUFValueType.ARRAY}
    found = gguf_metadata.read(demo_gguf)
    assert set(found) == {key for key in expected if not key.startswith("GGUF.")}
    for key, value in found.items():
        assert value == expected[key] or abs(value - expected[key]) < 1e-6, key
    assert found["general.architecture"] == "llama" and "tokenizer.chat_template" in found
