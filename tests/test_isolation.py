"""The suite never touches the user's real secrets or folders: it runs against temporary folders and a test keyring
that conftest.py sets up once, for this process and every process a test starts."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import keyring

from tests.conftest import REAL, REPO, SESSION_ROOT


def test_the_session_runs_in_temporary_folders_with_a_test_keyring():
    for name in ("HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "HF_HOME"):
        assert Path(os.environ[name]).is_relative_to(SESSION_ROOT), name
        assert os.environ[name] != REAL[name]
    assert Path.home().is_relative_to(SESSION_ROOT)
    assert type(keyring.get_keyring()).__name__ == "FileKeyring"
    child = subprocess.run([sys.executable, "-c", "import keyring, pathlib; "
                            "print(type(keyring.get_keyring()).__name__, pathlib.Path.home())"],
                           capture_output=True, text=True, check=True, cwd="/")
    name, home = child.stdout.split()
    assert name == "FileKeyring" and Path(home).is_relative_to(SESSION_ROOT)


def _fingerprint(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_token_the_user_already_has_is_untouched_by_the_token_tests(tmp_path):
    """A user with a token in their keyring, in LlamaDesk's fallback file and in the Hugging Face cache runs the
    token tests: afterwards every one of their files is byte for byte what it was, and nothing was added."""
    user = tmp_path / "user"
    token = "hf_users_own_token_0123456789"
    (user / ".local" / "share" / "LlamaDesk" / "secrets").mkdir(parents=True)
    (user / ".local" / "share" / "LlamaDesk" / "secrets" / "huggingface-token").write_text(token + "\n")
    (user / ".cache" / "huggingface").mkdir(parents=True)
    (user / ".cache" / "huggingface" / "token").write_text(token)
    (user / "keyring.json").write_text(json.dumps({"LlamaDesk/huggingface-token": token}))
    before = _fingerprint(user)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "HF_", "LLAMADESK_", "PYTHON_KEYRING"))}
    env.update(HOME=str(user), PYTHON_KEYRING_BACKEND="tests.keyring_backend.FileKeyring",
               LLAMADESK_TEST_KEYRING=str(user / "keyring.json"))  # the user's "real" keyring
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow",
                          "tests/test_secrets.py"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0 and " passed" in run.stdout, run.stdout[-2000:] + run.stderr[-2000:]
    assert _fingerprint(user) == before
