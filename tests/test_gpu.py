"""The CUDA path, where a GPU exists (bench/gpu_check.sh runs these on one; elsewhere they are reported as skipped):
4-bit nf4 with the paged 8-bit AdamW in bf16, checkpoint offloading, a pause that gives the GPU back, the calibration
record, and the memory estimate against the measured peak."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

import resources
from engine.light import config as run_config
from engine.light import protocol
from engine.light.run_folder import RunFolder
from tests.engine_driver import EngineProcess, of_type, state

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def tokenizer_dir(request) -> Path:
    """The demo model's tokenizer files: from LLAMADESK_TEST_TOKENIZER on a machine without the network."""
    carried = os.environ.get("LLAMADESK_TEST_TOKENIZER")
    return Path(carried) if carried else request.getfixturevalue("demo_model_dir")


@pytest.fixture(scope="module")
def gpu_model(tmp_path_factory, tokenizer_dir) -> Path:
    """A random-weight LLaMA big enough for the GPU to matter (8 layers, hidden 512), written in bf16."""
    from engine.heavy.models.random_weights import write_model

    return write_model(tmp_path_factory.mktemp("gpu") / "model", tokenizer_dir, dtype="bfloat16", hidden_size=512,
                       intermediate_size=1536, num_hidden_layers=8, num_attention_heads=8, num_key_value_heads=4)


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    rows = json.loads(resources.path("sample/harbor_lights.json").read_text(encoding="utf-8"))
    path = tmp_path_factory.mktemp("data") / "sample.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _config(model, data, name, **train):
    return run_config.from_mapping({"model": str(model), "dataset": str(data), "run_name": name,
                                    "data": {"validation_share": 0.0, "cutoff": 512},
                                    "train": {"max_steps": 6, "save_steps": 3, "micro_batch": 4, **train}})


def test_qlora_with_the_paged_8bit_optimizer_in_bf16_and_its_calibration_record(home, gpu_model, sample):
    import torch

    from engine.heavy import train
    from engine.heavy.control import Control
    from engine.heavy.events import Emitter
    from engine.light import calibration, estimator, fit

    messages = []

    class Recorder(Emitter):
        def emit(self, msg):
            messages.append(msg)

    config = _config(gpu_model, sample, "cuda-qlora")
    assert train.run(config, emitter=Recorder(None), control=Control()) == 0
    memory = [m for m in messages if isinstance(m, protocol.Memory)]
    assert memory and memory[-1].reserved_peak_bytes > 0
    args = torch.load(RunFolder(home / "runs" / "cuda-qlora").latest_checkpoint()[1] / "training_args.bin",
                      weights_only=False)
    assert args.optim.value == "paged_adamw_8bit" and args.bf16 == torch.cuda.is_bf16_supported()
    record = calibration.similar(config)[0]
    assert record["reserved_peak_bytes"] == memory[-1].reserved_peak_bytes
    assert record["estimated_bytes"] == estimator.estimate(fit.spec_for(str(gpu_model)), config).total


def test_the_estimate_is_near_the_measured_peak(home, gpu_model, sample):
    """The memory the run reserved against the estimate without the CUDA context (which torch does not count):
    within 30% here; bench/estimator_accuracy.py measures the full matrix against the 10% goal."""
    from engine.heavy import train
    from engine.heavy.control import Control
    from engine.heavy.events import Emitter
    from engine.light import calibration

    config = _config(gpu_model, sample, "estimate")
    assert train.run(config, emitter=Emitter(None), control=Control()) == 0
    record = calibration.similar(config)[0]
    estimated = record["estimated_bytes"] - 0.55 * 2**30  # the CUDA context line
    ratio = record["reserved_peak_bytes"] / estimated
    print(f"measured {record['reserved_peak_bytes'] / 2**30:.2f} GiB, estimated {estimated / 2**30:.2f} GiB "
          f"(ratio {ratio:.2f})")
    assert 0.7 <= ratio <= 1.3


def test_checkpoint_offload_gives_the_same_gradients_on_cuda(gpu_model):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from engine.heavy import model_setup

    def gradients(offload: bool):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(gpu_model, dtype=torch.float32, device_map={"": 0})
        train = run_config.TrainSettings(checkpoint_offload=offload)
        model_setup.for_training(model, train, quantized=False, device="cuda")
        torch.manual_seed(0)
        model = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False))
        model.train()
        ids = torch.randint(10, 1000, (2, 256), generator=torch.Generator().manual_seed(1)).cuda()
        model(input_ids=ids, labels=ids).loss.backward()
        return {n: p.grad.detach().cpu() for n, p in model.named_parameters() if p.requires_grad}

    kept, offloaded = gradients(False), gradients(True)
    for name, grad in kept.items():
        assert torch.allclose(offloaded[name], grad, atol=1e-5), name


def test_pause_gives_the_gpu_back_and_resume_goes_on(home, gpu_model, sample):
    """While paused, the card's free memory is back to what it was before the engine started."""
    import torch

    free_before = torch.cuda.mem_get_info()[0]
    engine = EngineProcess(home, "train", "--json", "--set", f"model={gpu_model}", "--set", f"dataset={sample}",
                           "--set", "run_name=paused", "--set", "train.max_steps=200", "--set", "train.save_steps=100")
    engine.wait_for(of_type(protocol.Progress))
    free_training = torch.cuda.mem_get_info()[0]
    engine.send(protocol.Pause())
    engine.wait_for(state("paused"))
    assert engine.finish() == 0
    time.sleep(1)
    free_paused = torch.cuda.mem_get_info()[0]
    print(f"GPU free: {free_before / 2**30:.2f} GiB before, {free_training / 2**30:.2f} while training, "
          f"{free_paused / 2**30:.2f} paused")
    assert free_before - free_training > 256 * 2**20, "the engine held GPU memory while training"
    assert free_paused >= free_before - 64 * 2**20, "nothing of it is held while paused"
    resumed = EngineProcess(home, "train", "--json", "--resume", str(home / "runs" / "paused"))
    assert resumed.finish() == 0
    assert RunFolder(home / "runs" / "paused").summary().status == "finished"
