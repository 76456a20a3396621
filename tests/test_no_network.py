"""Nothing leaves the computer unless the user asked: a QLoRA training run (with its before/after comparison), a chat
and a GGUF export, each a real engine process under an audit hook that records every name lookup and outgoing
connection (tests/network_audit.py). Hub kernels are off: no kernel code is fetched and run."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import pytest

from engine.light import protocol
from tests.conftest import REPO
from tests.engine_driver import EngineProcess, state

AUDIT = [sys.executable, str(REPO / "tests" / "network_audit.py")]


def _attempts(log) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_the_audit_sees_a_connection_attempt(home, tmp_path):
    """The harness is no blind eye: a lookup and a connection to another machine are both recorded."""
    log = tmp_path / "network.jsonl"
    probe = tmp_path / "probe.py"
    probe.write_text("import socket\ntry:\n    socket.create_connection(('192.0.2.1', 9), timeout=0.01)\n"
                     "except OSError:\n    pass\ntry:\n    socket.getaddrinfo('huggingface.co', 443)\n"
                     "except OSError:\n    pass\n")
    harness = (REPO / "tests" / "network_audit.py").read_text().split("from engine.cli import main")[0]
    script = tmp_path / "audited.py"
    script.write_text(harness + f"exec(open({str(probe)!r}).read())\n")
    subprocess.run([sys.executable, str(script)], env=dict(os.environ, LLAMADESK_TEST_NETWORK_LOG=str(log)),
                   check=True, timeout=60)
    events = [a["event"] for a in _attempts(log)]
    assert "socket.connect" in events and "socket.getaddrinfo" in events


@pytest.mark.slow
def test_training_chat_and_export_make_no_network_connection(home, decisive_tiny_model, small_dataset, tmp_path,
                                                             monkeypatch):
    log = tmp_path / "network.jsonl"
    env = {"LLAMADESK_TEST_NETWORK_LOG": str(log)}
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):  # no offline switch to lean on
        monkeypatch.delenv(name, raising=False)
    trained = EngineProcess(home, "train", "--json", "--set", f"model={decisive_tiny_model}", "--set",
                            f"dataset={small_dataset}", "--set", "quantization=nf4", "--set", "run_name=private",
                            "--set", "train.max_steps=3", "--set", "data.validation_share=0.1",
                            "--set", "train.compare_prompts=1", program=AUDIT, env=env)
    assert trained.finish() == 0, trained.stderr.decode()[-2000:]
    assert (home / "runs" / "private" / "evaluation.json").exists(), "the before/after comparison ran too"

    chat = EngineProcess(home, "chat", "--run", "private", "--device", "cpu", program=AUDIT, env=env)
    chat.wait_for(state("ready"))
    chat.send(protocol.Chat("a", [{"role": "user", "content": "Who keeps the lighthouse?"}], temperature=0.0,
                            max_new_tokens=4, repetition_penalty=1.0))
    chat.wait_for(lambda m: isinstance(m, protocol.ChatDone) and m.id == "a")
    chat.send(protocol.Shutdown())
    assert chat.finish() == 0

    exported = EngineProcess(home, "export", "private", "--format", "gguf", "--quant", "f16", "--device", "cpu",
                             "--out", str(tmp_path / "private.gguf-export"), "--json", program=AUDIT, env=env)
    assert exported.finish() == 0, exported.stderr.decode()[-2000:]
    assert _attempts(log) == []


@pytest.mark.slow
def test_hub_kernels_are_off_in_the_engine_unless_the_user_turns_them_on(tmp_path):
    """transformers' switch is off, and the ``kernels`` package is never asked for a kernel, not even by bitsandbytes'
    CPU backend, which asks on import whenever the package is installed. Where ``kernels`` is not installed (the
    tested releases do not need it) a stand-in package takes its place; either way every fetch is written down."""
    fetched = tmp_path / "fetched.txt"
    site = tmp_path / "site"
    if importlib.util.find_spec("kernels") is None:
        (site / "kernels").mkdir(parents=True)
        (site / "kernels" / "__init__.py").write_text("def get_kernel(repo_id, *args, **kwargs):\n"
                                                      "    raise RuntimeError('no hub here')\n")
    check = textwrap.dedent(f"""
        import os, sys
        import kernels
        def record(repo_id, *args, **kwargs):  # in place before anything asks: every fetch is written down
            with open({str(fetched)!r}, "a") as out:
                out.write(repo_id + "\\n")
            raise RuntimeError("no hub here")
        kernels.get_kernel = record
        if sys.argv[1] == "engine":
            import engine.heavy
        import bitsandbytes
        import transformers.integrations.hub_kernels
        print(os.environ.get("USE_HUB_KERNELS", "YES"))  # transformers' switch, and its default
    """)

    def run(side: str, **extra) -> str:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(REPO)]), **extra)
        env.pop("USE_HUB_KERNELS", None)
        fetched.unlink(missing_ok=True)
        out = subprocess.run([sys.executable, "-c", check, side], env=env, capture_output=True, text=True,
                             timeout=180)
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout.split()

    assert run("engine") == ["0"] and not fetched.exists()
    assert run("engine", LLAMADESK_HUB_KERNELS="1") == ["YES"]  # transformers' default: on
    if _cpu_has("avx512_bf16"):  # bitsandbytes asks only where its fused CPU kernel would run
        assert fetched.read_text().strip() == "kernels-community/quantization-bitsandbytes"
        run("plain")
        assert fetched.exists(), "without the engine's switch bitsandbytes asks the hub: the test can fail"


def _cpu_has(flag: str) -> bool:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            return flag in info.read().split()
    except OSError:
        return False
