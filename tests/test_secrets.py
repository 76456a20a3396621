"""The Hugging Face token: keyring, else an owner-only file with a warning; never in configs, events or logs."""

from __future__ import annotations

import json
import os
import secrets
import stat
import subprocess
import sys

import keyring
import pytest
from keyring.backends import fail

from engine.light import hf_token

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _engine(home, *args, stdin: str = "", env=None, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *args], input=stdin, capture_output=True, text=True,
                          cwd=REPO, timeout=timeout,
                          env=dict(os.environ, LLAMADESK_HOME=str(home), HF_HUB_OFFLINE="1", **(env or {})))


@pytest.fixture
def no_keyring(monkeypatch):
    """A machine without a keyring service: keyring's own "fail" backend, here and in the engine processes."""
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    yield
    keyring.set_keyring(previous)


def test_with_a_keyring_the_token_goes_there_and_nowhere_else(home):
    token = "hf_" + secrets.token_hex(16)
    stored = _engine(home, "token", "set", stdin=token + "\n")
    assert stored.returncode == 0 and "stored in the system keyring" in stored.stdout, stored.stderr
    assert json.loads(open(os.environ["LLAMADESK_TEST_KEYRING"]).read())["LlamaDesk/huggingface-token"] == token
    assert not hf_token.token_file().exists() and hf_token.get_token() == token
    assert _engine(home, "token", "clear").returncode == 0 and hf_token.get_token() is None


def test_without_a_keyring_the_token_goes_to_an_owner_only_file_with_a_warning(home, no_keyring):
    token = "hf_" + secrets.token_hex(16)
    stored = _engine(home, "token", "set", stdin=token + "\n")
    assert stored.returncode == 0 and "No system keyring was found" in stored.stderr and token not in stored.stderr
    path = hf_token.token_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert hf_token.get_token() == token
    status = _engine(home, "token", "status")
    assert "is available" in status.stdout and token not in status.stdout
    assert _engine(home, "token", "clear").returncode == 0 and not path.exists() and hf_token.get_token() is None


@pytest.mark.slow
def test_the_token_never_appears_in_configs_events_logs_or_output(home, tiny_model, small_dataset):
    token = "hf_" + secrets.token_hex(16)
    hf_token.set_token(token)
    outputs = [
        _engine(home, "train", "--json", "--set", f"model={tiny_model}", "--set", f"dataset={small_dataset}",
                "--set", "quantization=none", "--set", "train.max_steps=2", "--set", "run_name=ok"),
        _engine(home, "train", "--set", f"model={tiny_model}", "--set", f"dataset={home / 'missing.jsonl'}",
                "--set", "run_name=bad"),
        _engine(home, "model", "fetch", "some-org/private-llama"),  # uses the token; the hub is unreachable
    ]
    assert outputs[0].returncode == 0 and outputs[2].returncode != 0
    assert "private-llama" in outputs[2].stderr
    for result in outputs:
        assert token not in result.stdout and token not in result.stderr
    checked = 0
    for path in home.rglob("*"):
        if path.is_file() and path != hf_token.token_file():
            assert token.encode() not in path.read_bytes(), f"the token leaked into {path}"
            checked += 1
    assert checked >= 8  # config.yaml, events.jsonl, metrics.jsonl, engine.log, checkpoints, adapter, …
