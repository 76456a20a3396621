"""Protocol round-trips for every message type, and a reader that survives garbage."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from engine.light import protocol

SAMPLES = {
    "export_loaded": protocol.ExportLoaded("/exports/a/a-q4_k_m.gguf", "a-q4_k_m.gguf", "Q4_K_M",
                                           "Q4_K_M, 98.4 MB, run by llama.cpp"),
    "load_export": protocol.LoadExport("/exports/a/a-q4_k_m.gguf"),
    "unload_export": protocol.UnloadExport(),
    "hello": protocol.Hello(1, "0.1.0", {"kind": "cpu", "bf16": False}, "train"),
    "run_started": protocol.RunStarted("/runs/a", True),
    "state": protocol.State("training", "60 steps"),
    "progress": protocol.Progress(3, 60, 0.15, 2.5, 1e-3, 0.9, 812.5, 12.0, 228.0),
    "eval": protocol.Eval(10, 1.75),
    "memory": protocol.Memory(10, 1 << 30, 3 << 29),
    "checkpoint_saved": protocol.CheckpointSaved(5, "/runs/a/checkpoints/step-5"),
    "log": protocol.Log("info", "data: 155 rows"),
    "warning": protocol.Warning("3 rows skipped", "run data check"),
    "error": protocol.Error("out_of_memory", "the GPU ran out of memory", "lower micro_batch"),
    "finished": protocol.Finished("/runs/a", "/runs/a/adapter", {"train_loss": 1.2}),
    "chat_token": protocol.ChatToken("r1", " Paris"),
    "chat_done": protocol.ChatDone("r1", "end", 8, 1.2),
    "export_progress": protocol.ExportProgress("converting", 12, 30, 41.5, "blk.12"),
    "time_estimate": protocol.TimeEstimate(312.5, 60, 4.2, {"loading": 12.0, "training": 252.0}, 31.0),
    "compare_progress": protocol.CompareProgress("answers", 3, 8, 120.0, 95.5),
    "skip_comparison": protocol.SkipComparison(),
    "export_finished": protocol.ExportFinished("/exports/a", "gguf", ["a.gguf"], {"top1": 1.0}, True),
    "stop": protocol.Stop(),
    "pause": protocol.Pause(),
    "resume": protocol.Resume(),
    "chat": protocol.Chat("r1", [{"role": "user", "content": "<b>hi</b> \u2603"}], "be brief", 0.0),
    "cancel": protocol.Cancel("r1"),
    "shutdown": protocol.Shutdown(),
}


def test_every_message_type_has_a_sample():
    assert set(SAMPLES) == set(protocol.message_types())


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_round_trip(name):
    msg = SAMPLES[name]
    line = protocol.encode(msg)
    assert "\n" not in line and json.loads(line)["type"] == name
    assert protocol.decode(line) == msg
    assert protocol.decode(line.encode()) == msg


def test_non_finite_numbers_travel_as_null():
    line = protocol.encode(protocol.Progress(1, 2, 0.1, loss=math.nan, grad_norm=math.inf))
    decoded = protocol.decode(line)
    assert decoded.loss is None and decoded.grad_norm is None


def test_newer_peer_fields_are_ignored():
    assert protocol.decode('{"type": "state", "state": "ready", "added_later": 1}') == protocol.State("ready")


@pytest.mark.parametrize("line", [b"not json", b"[1, 2]", b'{"no": "type"}', b'{"type": "launch_rockets"}',
                                  b'{"type": "eval", "step": 1}', b"\xff\xfe", b'{"type": 5}'])
def test_decode_rejects_with_protocol_error(line):
    with pytest.raises(protocol.ProtocolError):
        protocol.decode(line)


def test_reader_counts_malformed_lines_and_keeps_going():
    reader = protocol.Reader()
    chunk = b'garbage\n{"type": "stop"}\n\n{"type": "chat", "id": "1", "mess'
    assert reader.feed(chunk) == [protocol.Stop()]
    assert reader.feed(b'ages": []}\n{"type": "nope"}\n') == [protocol.Chat("1", [])]
    assert reader.malformed == 2


def test_reader_drops_an_endless_line():
    reader = protocol.Reader()
    reader.MAX_LINE = 1000
    assert reader.feed(b"x" * 5000) == []
    assert reader.malformed == 1
    assert reader.feed(b'\n{"type": "pause"}\n') == [protocol.Pause()]


def test_messages_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        SAMPLES["state"].state = "other"


def test_an_older_peer_ignores_a_message_added_within_the_version():
    """A new message type is an addition within PROTOCOL_VERSION: a reader that does not know it counts and skips the
    line, and reads on."""
    reader = protocol.Reader()
    known = protocol.message_types()
    line = protocol.encode(protocol.CompareProgress("answers", 1, 8)).encode()
    protocol._REGISTRY.pop("compare_progress")
    try:
        assert reader.feed(line + b'\n{"type": "stop"}\n') == [protocol.Stop()]
    finally:
        protocol._REGISTRY.update(known)
    assert reader.malformed == 1 and reader.last_error == "unknown message type"
