"""Rendering, label masking, truncation, chunking, packing, the split, token statistics, the preview and the cache,
with the real SmolLM2 tokenizer and its ChatML template."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from engine.heavy.data.pipeline import DataSettings, prepare
from engine.heavy.data.tokenize import IGNORE

END = "<|im_end|>"


def write_jsonl(path: Path, records) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def chat(*turns: str, system: str | None = None) -> dict:
    """An OpenAI-style record from alternating user/assistant texts."""
    messages = [{"role": "system", "content": system}] if system else []
    messages += [{"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(turns)]
    return {"messages": messages}


def run(path, tokenizer, *, use_cache=False, **settings):
    settings.setdefault("validation_share", 0)
    return prepare(path, tokenizer, DataSettings(**settings), use_cache=use_cache)


def trained_runs(input_ids, labels) -> list[list[int]]:
    """The runs of consecutive tokens that carry a label."""
    runs, current = [], []
    for token, label in zip(input_ids, labels):
        if label != IGNORE:
            assert label == token
            current.append(token)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return runs


def trained_texts(tokenizer, row) -> list[str]:
    return [tokenizer.decode(run) for run in trained_runs(row["input_ids"], row["labels"])]


# ---------------------------------------------------------------------------------------------------------------
# Label masking.
# ---------------------------------------------------------------------------------------------------------------


def test_single_turn_labels_are_exactly_the_reply(tmp_path, tokenizer):
    path = write_jsonl(tmp_path / "d.jsonl", [
        {"instruction": "Where is Vellmoor?", "output": "An island in the Skarrow Sea."},
        {"instruction": "Say it with accents.", "output": "Ünïcödé — 😀 ok"},
    ])
    prepared = run(path, tokenizer)
    train, _ = prepared.splits()
    assert trained_texts(tokenizer, train[0]) == ["An island in the Skarrow Sea." + END]
    assert trained_texts(tokenizer, train[1]) == ["Ünïcödé — 😀 ok" + END]
    full = tokenizer.decode(train[0]["input_ids"])
    assert full == tokenizer.apply_chat_template(
        [{"role": "user", "content": "Where is Vellmoor?"},
         {"role": "assistant", "content": "An island in the Skarrow Sea."}], tokenize=False)


def test_multi_turn_labels_every_assistant_turn_and_nothing_else(tmp_path, tokenizer):
    record = chat("Hi!", "Hello, how can I help?", "What is 2+2?", "It is 4.", "Thanks", "You're welcome.",
                  system="You are terse.")
    prepared = run(write_jsonl(tmp_path / "d.jsonl", [record]), tokenizer)
    train, _ = prepared.splits()
    texts = trained_texts(tokenizer, train[0])
    assert texts == ["Hello, how can I help?" + END, "It is 4." + END, "You're welcome." + END]
    joined = "".join(texts)
    for untrained in ("You are terse.", "Hi!", "What is 2+2?", "Thanks", "user", "system"):
        assert untrained not in joined


def test_weight_zero_turn_is_not_trained(tmp_path, tokenizer):
    record = {"messages": [
        {"role": "user", "content": "Draft?"}, {"role": "assistant", "content": "Bad draft", "weight": 0},
        {"role": "user", "content": "Again"}, {"role": "assistant", "content": "Good answer"},
    ]}
    train, _ = run(write_jsonl(tmp_path / "d.jsonl", [record]), tokenizer).splits()
    assert trained_texts(tokenizer, train[0]) == ["Good answer" + END]


def test_sharegpt_multi_turn_masking(tmp_path, tokenizer):
    record = {"conversations": [{"from": "human", "value": "One"}, {"from": "gpt", "value": "Uno"},
                                {"from": "human", "value": "Two"}, {"from": "gpt", "value": "Dos"}]}
    train, _ = run(write_jsonl(tmp_path / "d.jsonl", [record]), tokenizer).splits()
    assert trained_texts(tokenizer, train[0]) == ["Uno" + END, "Dos" + END]


def test_train_on_all_labels_every_token(tmp_path, tokenizer):
    path = write_jsonl(tmp_path / "d.jsonl", [chat("Q1", "A1", "Q2", "A2", system="S")])
    train, _ = run(path, tokenizer, train_on="all").splits()
    assert train[0]["labels"] == train[0]["input_ids"]
    assert IGNORE not in train[0]["labels"]


def test_base_tokenizer_without_template_gets_the_default(tmp_path, fresh_tokenizer):
    fresh_tokenizer.chat_template = None
    record = chat("First question", "First answer", "Second question", "Second answer", system="Sys")
    prepared = run(write_jsonl(tmp_path / "d.jsonl", [record]), fresh_tokenizer)
    assert prepared.template == "default"
    text = "".join(seg for seg, _ in prepared.preview[0].segments)
    assert "### Assistant:" in text and "### User:\nFirst question" in text and "### System:\nSys" in text
    eos = fresh_tokenizer.eos_token
    assert [seg for seg, on in prepared.preview[0].segments if on] == ["First answer" + eos, "Second answer" + eos]
    train, _ = prepared.splits()
    assert trained_texts(fresh_tokenizer, train[0]) == ["First answer" + eos, "Second answer" + eos]


def test_model_template_is_reported(tmp_path, tokenizer):
    prepared = run(write_jsonl(tmp_path / "d.jsonl", [chat("Q", "A")]), tokenizer)
    assert prepared.template == "model"
    assert "### Assistant:" not in "".join(seg for seg, _ in prepared.preview[0].segments)


# ---------------------------------------------------------------------------------------------------------------
# Truncation and raw text.
# ---------------------------------------------------------------------------------------------------------------


def test_truncation_at_the_cutoff_keeps_the_start(tmp_path, tokenizer):
    reply = " ".join(f"item{i}" for i in range(120))
    prepared = run(write_jsonl(tmp_path / "d.jsonl", [chat("List items.", reply)]), tokenizer, cutoff=64)
    train, _ = prepared.splits()
    row = train[0]
    full_ids = tokenizer(tokenizer.apply_chat_template(
        [{"role": "user", "content": "List items."}, {"role": "assistant", "content": reply}], tokenize=False),
        add_special_tokens=False)["input_ids"]
    assert len(full_ids) > 64
    assert row["input_ids"] == full_ids[:64]
    trained = trained_texts(tokenizer, row)
    assert len(trained) == 1 and reply.startswith(trained[0]) and trained[0]
    assert prepared.preview[0].truncated and prepared.preview[0].tokens == 64
    assert prepared.stats.percentiles["max"] == len(full_ids)


def test_raw_text_is_chunked_with_all_tokens_trained(tmp_path, tokenizer):
    long = " ".join(f"Sentence number {i} of the long document." for i in range(40))
    path = tmp_path / "book.txt"
    path.write_text(f"{long}\n\nA short paragraph.", encoding="utf-8")
    cutoff = 64
    prepared = run(path, tokenizer, cutoff=cutoff)
    train, _ = prepared.splits()
    lengths = [len(ids) for ids in train["input_ids"]]
    assert all(n <= cutoff for n in lengths)
    expected_long = len(tokenizer(long + tokenizer.eos_token, add_special_tokens=False)["input_ids"])
    assert expected_long > 3 * cutoff
    assert sum(lengths[:-1]) == expected_long
    assert len(lengths) == math.ceil(expected_long / cutoff) + 1
    assert tokenizer.decode([t for ids in train["input_ids"][:-1] for t in ids]) == long + tokenizer.eos_token
    for ids, labels in zip(train["input_ids"], train["labels"]):
        assert labels == ids
    assert prepared.report.counts.get("too_long", 0) == 0
    assert prepared.report.rows_usable == 2


# ---------------------------------------------------------------------------------------------------------------
# Packing.
# ---------------------------------------------------------------------------------------------------------------


def _pack_pair(tmp_path, tokenizer, path, cutoff):
    plain = run(path, tokenizer, cutoff=cutoff)
    packed = run(path, tokenizer, cutoff=cutoff, packing=True)
    return plain.splits()[0], packed, packed.splits()[0]


def test_packing_chat_examples(tmp_path, tokenizer):
    rows = [chat(f"Question {i}?", f"Answer {i}." + " more" * (i % 5)) for i in range(12)]
    cutoff = 160
    plain, packed, packed_train = _pack_pair(tmp_path, tokenizer, write_jsonl(tmp_path / "d.jsonl", rows), cutoff)
    assert packed_train.num_rows < plain.num_rows
    assert packed.stats.sequences == packed_train.num_rows
    starts = 0
    for seq in packed_train:
        n = len(seq["input_ids"])
        assert n <= cutoff
        assert len(seq["labels"]) == len(seq["position_ids"]) == n
        for i, pos in enumerate(seq["position_ids"]):
            assert pos == (0 if i == 0 else seq["position_ids"][i - 1] + 1) or pos == 0
            if pos == 0:
                starts += 1
                assert seq["labels"][i] == IGNORE
    assert starts == plain.num_rows
    # Every example is there once, whole (packing reorders them to fill each sequence).
    whole = sorted(tuple(seq[start:end]) for seq, positions in zip(packed_train["input_ids"],
                                                                     packed_train["position_ids"])
                   for start, end in _segments(positions))
    assert whole == sorted(tuple(ids) for ids in plain["input_ids"])
    # Chat examples start with an untrained token, so no trained token is lost.
    trained = lambda ds: sum(1 for labels in ds["labels"] for x in labels if x != IGNORE)  # noqa: E731
    assert trained(packed_train) == trained(plain)


def _segments(positions: list[int]) -> list[tuple[int, int]]:
    starts = [i for i, p in enumerate(positions) if p == 0] + [len(positions)]
    return list(zip(starts, starts[1:]))


def test_packing_position_ids_restart_per_example(tmp_path, tokenizer):
    rows = [chat("Hi", "Hello"), chat("Yo", "Hey there, friend"), chat("Bye", "Goodbye")]
    plain, _, packed_train = _pack_pair(tmp_path, tokenizer, write_jsonl(tmp_path / "d.jsonl", rows), 1024)
    assert packed_train.num_rows == 1
    lengths = sorted((len(ids) for ids in plain["input_ids"]), reverse=True)  # longest first
    assert packed_train[0]["position_ids"] == [p for n in lengths for p in range(n)]


def test_packing_fills_sequences_nearly_full():
    import random

    from engine.heavy.data.tokenize import Tokenized, pack

    rng = random.Random(0)
    lengths = [int(rng.lognormvariate(5, 1)) % 1000 + 8 for _ in range(2000)]  # a wide spread, as in real sets
    items = [Tokenized(row=i, input_ids=[i] * n, labels=[i] * n, offsets=[], full_length=n)
             for i, n in enumerate(lengths)]
    packed = pack(items, 1024)
    assert all(len(p["input_ids"]) <= 1024 for p in packed)
    assert sorted(t for p in packed for t in p["input_ids"]) == sorted(t for it in items for t in it.input_ids)
    fill = sum(lengths) / (1024 * len(packed))
    assert fill > 0.97, fill
    assert len(packed) <= -(-sum(lengths) // 1024) + 3  # within a few sequences of the lower bound


def test_packing_raw_text_loses_only_first_labels(tmp_path, tokenizer):
    path = tmp_path / "notes.txt"
    path.write_text("\n\n".join(f"Note {i}: " + "words " * (3 + 7 * i) for i in range(8)), encoding="utf-8")
    cutoff = 48
    plain, packed, packed_train = _pack_pair(tmp_path, tokenizer, path, cutoff)
    assert all(len(ids) <= cutoff for ids in packed_train["input_ids"])
    trained = lambda ds: sum(1 for labels in ds["labels"] for x in labels if x != IGNORE)  # noqa: E731
    # Raw text trains on its first token too; packing ignores the first label of each example (chunk).
    assert trained(packed_train) == trained(plain) - plain.num_rows
    assert sum(ids.count(0) for ids in packed_train["position_ids"]) == plain.num_rows


# ---------------------------------------------------------------------------------------------------------------
# Train/validation split.
# ---------------------------------------------------------------------------------------------------------------


def _split_rows(prepared) -> tuple[list, list]:
    train, validation = prepared.splits()
    return list(train["input_ids"]), ([] if validation is None else list(validation["input_ids"]))


def test_seeded_split(tmp_path, tokenizer):
    path = write_jsonl(tmp_path / "d.jsonl", [chat(f"Question {i}", f"Answer {i}") for i in range(20)])
    a = _split_rows(run(path, tokenizer, validation_share=0.25, seed=1))
    b = _split_rows(run(path, tokenizer, validation_share=0.25, seed=1))
    c = _split_rows(run(path, tokenizer, validation_share=0.25, seed=2))
    assert a == b
    assert a != c
    train, validation = a
    assert len(validation) == 5 and len(train) == 15
    assert sorted(map(tuple, train + validation)) == sorted(map(tuple, c[0] + c[1]))
    assert not set(map(tuple, train)) & set(map(tuple, validation))


@pytest.mark.parametrize(("share", "n_val"), [(0.0, 0), (0.1, 1), (0.5, 5)])
def test_validation_share(tmp_path, tokenizer, share, n_val):
    path = write_jsonl(tmp_path / "d.jsonl", [chat(f"Question {i}", f"Answer {i}") for i in range(10)])
    prepared = run(path, tokenizer, validation_share=share)
    train, validation = prepared.splits()
    assert (0 if validation is None else validation.num_rows) == n_val
    assert train.num_rows == 10 - n_val
    assert prepared.stats.sequences == train.num_rows


# ---------------------------------------------------------------------------------------------------------------
# Token statistics.
# ---------------------------------------------------------------------------------------------------------------


def test_token_stats(tmp_path, tokenizer):
    replies = ["word " * n for n in (1, 2, 3, 5, 8, 13, 21, 34, 55, 89)]
    rows = [chat(f"Q{i}", reply.strip()) for i, reply in enumerate(replies)]
    cutoff = 64
    prepared = run(write_jsonl(tmp_path / "d.jsonl", rows), tokenizer, cutoff=cutoff)
    lengths = sorted(
        len(tokenizer(tokenizer.apply_chat_template(
            [{"role": m["role"], "content": m["content"]} for m in r["messages"]], tokenize=False),
            add_special_tokens=False)["input_ids"])
        for r in rows)
    stats = prepared.stats
    assert stats.rows == 10
    assert stats.percentiles == {"p50": lengths[4], "p90": lengths[8], "p95": lengths[9], "p99": lengths[9],
                                 "max": lengths[9]}
    assert stats.mean_length == round(sum(lengths) / 10, 1)
    assert stats.truncated_rows == sum(1 for n in lengths if n > cutoff) >= 1
    assert stats.truncated_share == stats.truncated_rows / 10
    assert stats.total_tokens == sum(min(n, cutoff) for n in lengths)
    train, _ = prepared.splits()
    assert stats.trained_tokens == sum(1 for labels in train["labels"] for x in labels if x != IGNORE)
    hist = stats.histogram
    assert sum(hist["counts"]) == 10
    assert len(hist["edges"]) == len(hist["counts"]) + 1
    expected_counts = [sum(1 for n in lengths if lo <= n < hi) for lo, hi in zip(hist["edges"], hist["edges"][1:])]
    assert hist["counts"] == expected_counts
    assert hist["edges"][0] == 0 and hist["edges"][-1] > lengths[-1]
    assert f"{stats.truncated_share:.1%}" in stats.summary()


# ---------------------------------------------------------------------------------------------------------------
# Preview.
# ---------------------------------------------------------------------------------------------------------------


def test_preview_segments(tmp_path, tokenizer):
    rows = [chat("Hi", "Hello!", "Name?", "Smol.", system="Sys"), chat("Q", "A"), chat("X", "Y"), chat("Z", "W")]
    prepared = run(write_jsonl(tmp_path / "d.jsonl", rows), tokenizer)
    assert [p.row for p in prepared.preview] == [1, 2, 3]  # preview_rows defaults to 3
    first = prepared.preview[0]
    rendered = tokenizer.apply_chat_template(
        [{"role": m["role"], "content": m["content"]} for m in rows[0]["messages"]], tokenize=False)
    assert "".join(seg for seg, _ in first.segments) == rendered
    assert [seg for seg, on in first.segments if on] == ["Hello!" + END, "Smol." + END]
    assert first.marked() == rendered.replace("Hello!" + END, "⟦Hello!" + END + "⟧").replace(
        "Smol." + END, "⟦Smol." + END + "⟧")
    assert not first.truncated
    assert first.tokens == len(prepared.splits()[0][0]["input_ids"])


def test_preview_row_count(tmp_path, tokenizer):
    path = write_jsonl(tmp_path / "d.jsonl", [chat(f"Q{i}", f"A{i}") for i in range(5)])
    prepared = prepare(path, tokenizer, DataSettings(validation_share=0), preview_rows=1, use_cache=False)
    assert len(prepared.preview) == 1


# ---------------------------------------------------------------------------------------------------------------
# Cache.
# ---------------------------------------------------------------------------------------------------------------


def _without_hit(prepared) -> dict:
    data = prepared.to_dict()
    data.pop("cache_hit")
    return data


def test_cache_hit_and_misses(tmp_path, tokenizer):
    path = write_jsonl(tmp_path / "d.jsonl", [chat(f"Question {i}", f"Answer {i}") for i in range(6)]
                       + [{"messages": [{"role": "user", "content": 5}]}])
    settings = DataSettings(validation_share=0.2)
    first = prepare(path, tokenizer, settings)
    second = prepare(path, tokenizer, settings)
    assert not first.cache_hit and second.cache_hit
    assert _without_hit(second) == _without_hit(first)
    assert second.report.problems == first.report.problems and first.report.problems
    assert second.folder == first.folder
    t1, v1 = first.splits()
    t2, v2 = second.splits()
    assert t1["input_ids"] == t2["input_ids"] and v1["labels"] == v2["labels"]

    changed_setting = prepare(path, tokenizer, DataSettings(validation_share=0.2, cutoff=512))
    assert not changed_setting.cache_hit
    assert changed_setting.cache_key != first.cache_key

    path.write_text(path.read_text(encoding="utf-8").replace("Answer 0", "Answer zero"), encoding="utf-8")
    changed_bytes = prepare(path, tokenizer, settings)
    assert not changed_bytes.cache_hit
    assert changed_bytes.cache_key != first.cache_key
    assert changed_bytes.preview[0].segments != first.preview[0].segments

    assert prepare(path, tokenizer, settings).cache_hit
    assert not prepare(path, tokenizer, settings, use_cache=False).cache_hit


def test_cache_misses_when_the_template_changes(tmp_path, tokenizer, fresh_tokenizer):
    path = write_jsonl(tmp_path / "d.jsonl", [chat("Q", "A")])
    prepare(path, tokenizer, DataSettings(validation_share=0))
    fresh_tokenizer.chat_template = None
    other = prepare(path, fresh_tokenizer, DataSettings(validation_share=0))
    assert not other.cache_hit and other.template == "default"


def test_cache_key_includes_the_file_type(tmp_path, tokenizer):
    body = "".join(json.dumps({"text": f"Document {i}."}) + "\n" for i in range(3))
    (tmp_path / "a.jsonl").write_text(body, encoding="utf-8")
    (tmp_path / "a.txt").write_text(body, encoding="utf-8")
    prepare(tmp_path / "a.jsonl", tokenizer, DataSettings(validation_share=0))
    as_text = prepare(tmp_path / "a.txt", tokenizer, DataSettings(validation_share=0))
    assert as_text.file_type == "txt"
    assert as_text.source == str(tmp_path / "a.txt")
    assert as_text.report.rows_read == 1


# ---------------------------------------------------------------------------------------------------------------
# The splits as datasets.
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("packing", [False, True])
def test_splits_have_aligned_columns(tmp_path, tokenizer, packing):
    path = write_jsonl(tmp_path / "d.jsonl", [chat(f"Question {i}", f"Answer {i} " * i) for i in range(10)])
    prepared = run(path, tokenizer, validation_share=0.2, packing=packing, cutoff=128)
    train, validation = prepared.splits()
    assert validation is not None
    for ds, extra in ((train, set()), (validation, {"prompt_messages"})):  # what the API comparison sends
        assert set(ds.column_names) == {"input_ids", "labels", "position_ids"} | extra
        for row in ds:
            n = len(row["input_ids"])
            assert n > 0 and len(row["labels"]) == n and len(row["position_ids"]) == n
            assert any(label != IGNORE for label in row["labels"])
