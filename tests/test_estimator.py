"""The VRAM estimator: exact parts checked against real PEFT and bitsandbytes objects; fit and auto-fit logic."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from engine.light import catalog, estimator, fit
from engine.light import config as run_config
from engine.light.model_folder import spec_from_config
from tests import fake_nvml

GIB = 2**30


def cfg(overrides: dict | None = None) -> run_config.RunConfig:
    """The default run config with dotted-path changes (the standard loss unless a change says otherwise)."""
    return run_config.RunConfig().with_values({"train.loss_chunk_tokens": 0, **(overrides or {})})


def _tiny_spec(tiny_model):
    return spec_from_config(json.loads((tiny_model / "config.json").read_text()))


@pytest.mark.parametrize("targets", [estimator.TARGETS_ALL, ("q_proj", "v_proj")])
def test_lora_parameter_count_equals_peft(tiny_model, targets):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=8, target_modules=list(targets), task_type="CAUSAL_LM"))
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    assert estimator.lora_params(_tiny_spec(tiny_model), 8, targets) == trainable


def test_lora_parameter_count_for_a_real_shape_on_the_meta_device():
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    spec = catalog.find("llama-3.2-1b")
    with torch.device("meta"):
        model = LlamaForCausalLM(LlamaConfig(**spec.llama_config_kwargs()))
    peft_model = get_peft_model(model, LoraConfig(r=16, target_modules="all-linear", task_type="CAUSAL_LM"))
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    assert estimator.lora_params(spec, 16) == trainable == 11_272_192


@pytest.mark.parametrize("double_quant", [True, False])
def test_quantized_bytes_equal_bitsandbytes_storage(tiny_model, double_quant):
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    model = AutoModelForCausalLM.from_pretrained(
        tiny_model, dtype=torch.float32, device_map={"": "cpu"},
        quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                               bnb_4bit_use_double_quant=double_quant,
                                               bnb_4bit_compute_dtype=torch.float32))
    stored, unquantized = 0, 0
    for param in model.parameters():
        if type(param).__name__ != "Params4bit":
            unquantized += param.numel()
            continue
        state = param.quant_state
        tensors = [param.data, state.absmax, state.code]
        if state.nested:
            tensors += [state.state2.absmax, state.state2.code, state.offset]
        stored += sum(t.numel() * t.element_size() for t in tensors)
    spec = _tiny_spec(tiny_model)
    assert estimator.quantized_bytes(spec, double_quant) == stored
    assert estimator.unquantized_params(spec) == unquantized


def test_breakdown_lines_and_the_effect_of_each_setting():
    spec = catalog.find("llama-3.1-8b")
    base = {"train.micro_batch": 1, "data.cutoff": 2048}
    result = estimator.estimate(spec, cfg(base))
    names = [line.name for line in result.lines]
    assert names == ["4-bit weights", "16/32-bit layers", "LoRA adapters", "LoRA gradients", "optimizer states",
                     "activations", "logits and loss", "CUDA context", "allocator headroom"]
    assert all(line.explanation.endswith((".", "vocabulary.")) for line in result.lines)
    total = result.total
    assert estimator.estimate(spec, cfg({**base, "train.gradient_checkpointing": False})).total > total + 10 * GIB
    assert estimator.estimate(spec, cfg({**base, "train.micro_batch": 2})).total > total
    assert estimator.estimate(spec, cfg({**base, "train.optimizer": "adamw_torch"})).total > total
    # bf16 weights (16 GB) instead of 4-bit ones plus the fp32 embeddings and head (7.3 GB).
    assert estimator.estimate(spec, cfg({**base, "quantization": "none"})).total > total + 7 * GIB
    # Llama 3's 128k vocabulary makes the loss buffers large: bigger than the 4-bit weights at 2048 tokens.
    lines = {line.name: line.bytes for line in result.lines}
    assert lines["logits and loss"] > lines["4-bit weights"]


def test_verdict_is_against_free_memory():
    assert estimator.verdict(10 * GIB, 20 * GIB).status == "fits"
    assert estimator.verdict(19 * GIB, 20 * GIB).status == "tight"
    assert estimator.verdict(21 * GIB, 20 * GIB).status == "won't fit"
    assert estimator.verdict(21 * GIB, 20 * GIB).margin_bytes == -GIB


def test_suggestions_fit_and_keep_the_effective_batch():
    spec = catalog.find("llama-3.1-8b")
    config = run_config.from_mapping({"dataset": "x", "model": "llama-3.1-8b", "data": {"cutoff": 2048},
                                      "train": {"micro_batch": 8, "grad_accum": 2,
                                                "gradient_checkpointing": False}})
    free = 24 * GIB
    report = fit.check(config, free_bytes=free)
    assert report.verdict.status == "won't fit" and report.suggestions
    for suggestion in report.suggestions:
        assert suggestion.need_bytes <= 0.9 * free
        fixed = fit.apply(config, suggestion)
        assert fixed.train.micro_batch * fixed.train.grad_accum == 16, suggestion.change
        assert estimator.estimate(spec, fixed).total == suggestion.need_bytes
    assert report.largest_micro_batch == 0, "without checkpointing not even one sequence of 2048 fits in 24 GB"
    checkpointed = config.with_values({"train.gradient_checkpointing": True})
    batch = estimator.largest_micro_batch(spec, checkpointed, free)
    assert batch >= 1
    assert estimator.estimate(spec, checkpointed.with_values({"train.micro_batch": batch})).total <= 0.9 * free
    assert estimator.estimate(spec, checkpointed.with_values({"train.micro_batch": batch * 2})).total > 0.9 * free


def test_fit_against_a_faked_rtx_4090_with_another_program(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml.module(
        fake_nvml.card(used_gib=6.0, processes=[(77, "game", 6 * GIB)])))
    config = run_config.from_mapping({"dataset": "x", "model": "llama-3.2-1b", "data": {"cutoff": 1024}})
    report = fit.check(config)
    assert report.gpu_name == "NVIDIA GeForce RTX 4090" and report.verdict.free_bytes == 18 * GIB
    assert report.verdict.status == "fits"
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml.module(
        init_error=fake_nvml.NVMLError_LibraryNotFound("no library")))
    assert fit.check(config).verdict is None


def test_local_folder_and_demo_resolve_to_architecture_facts(tiny_model):
    assert fit.spec_for("demo").key == "smollm2-135m"
    assert fit.spec_for(str(tiny_model)).hidden_size == 64


def test_cli_estimate_json():
    out = subprocess.run([sys.executable, "-m", "engine", "estimate", "--set", "model=llama-3.2-3b", "--free-gib",
                          "12", "--json"], capture_output=True, text=True, check=True).stdout
    data = json.loads(out)
    assert data["verdict"]["free_bytes"] == 12 * GIB and data["estimate"]["total_bytes"] > 2 * GIB
    assert {line["name"] for line in data["estimate"]["lines"]} >= {"4-bit weights", "activations"}


def test_calibration_records_are_matched_to_similar_runs(home):
    from engine.light import calibration

    one_b = cfg({"model": "llama-3.2-1b", "train.micro_batch": 2, "data.cutoff": 1024})
    calibration.record(one_b, 5 * GIB, int(5.5 * GIB), 5 * GIB, "NVIDIA RTX 4090")
    calibration.record(one_b.with_values({"train.micro_batch": 8}), 9 * GIB, 10 * GIB, 9 * GIB, "RTX 4090")
    calibration.record(one_b.with_values({"model": "llama-3.1-8b"}), 12 * GIB, 13 * GIB, 12 * GIB, "RTX 4090")
    (home / "calibration.jsonl").open("a").write('{"model": "llama-3.2-1b", "settings": {"micro_batch": 2}}\n')
    found = calibration.similar(one_b.with_values({"train.micro_batch": 3}))
    assert [e["config"]["train"]["micro_batch"] for e in found] == [2, 8], "a record of an older format is skipped"
    assert "measured 5.50 GiB vs estimated 5.00 GiB (110%)" in calibration.describe(found[0])
    config = run_config.from_mapping({"dataset": "x", "model": "llama-3.2-1b", "data": {"cutoff": 1024},
                                      "train": {"micro_batch": 2}})
    report = fit.check(config, free_bytes=24 * GIB)
    assert report.measured and "Similar run here" in report.text()


def test_the_chunked_loss_shrinks_the_logits_line_for_llama_3():
    """The direction and the size of the saving; the bytes themselves are checked against real peaks on a GPU."""
    spec = catalog.find("llama-3.1-8b")
    standard = cfg({"train.micro_batch": 2, "data.cutoff": 2048})
    chunked = standard.with_values({"train.loss_chunk_tokens": 1024})
    line = {x.name: x.bytes for x in estimator.estimate(spec, standard).lines}["logits and loss"]
    small = {x.name: x.bytes for x in estimator.estimate(spec, chunked).lines}["logits and loss"]
    assert line > 6 * GIB and small < line / 3  # 128k-entry scores for 4,096 tokens, against a 1,024-token chunk
    tiny = catalog.find("smollm2-135m")
    assert estimator.estimate(tiny, chunked).total < estimator.estimate(tiny, standard).total


def test_padding_free_runs_are_estimated_for_the_datasets_longest_row():
    """With padding-free batches a micro-batch is as long as its examples: the need follows the data's longest row,
    and the cutoff's need stays as the worst case; packing fills every sequence to the cutoff, so it does not."""
    from engine.light import demo_settings, fit

    config = demo_settings.demo_config()
    at_cutoff = fit.check(config, free_bytes=8 * 2**30)
    for_data = fit.check(config, free_bytes=8 * 2**30, longest_row=89)
    assert for_data.data_sequence == 89 and for_data.worst_case_bytes == at_cutoff.estimate.total
    assert for_data.estimate.total < at_cutoff.estimate.total / 2
    longer = fit.check(config, free_bytes=8 * 2**30, longest_row=10 * config.data.cutoff)
    assert longer.estimate.total == at_cutoff.estimate.total and longer.data_sequence == config.data.cutoff
    for changed in ({"data.packing": True}, {"train.padding_free": False}):
        same = fit.check(config.with_values(changed), free_bytes=8 * 2**30, longest_row=89)
        assert same.worst_case_bytes is None and same.data_sequence is None


def test_under_fsdp_the_estimate_counts_every_layer_checkpointed_and_adamw_without_8_bit_advice():
    """FSDP checkpoints each wrapped layer itself and its checkpoints cannot hold an 8-bit optimizer's state, so the
    engine trains with AdamW (engine/heavy/sharding.py): the estimate and its advice say the same."""
    spec = catalog.find("llama-3.1-8b")
    config = run_config.RunConfig(dataset="d.jsonl").with_values({"train.checkpoint_every": 4, "train.checkpoint_offload": True,
                                                       "distributed.gpus": ["0", "1"]})
    fsdp, ddp = estimator.Target(gpus=2, strategy="fsdp"), estimator.Target(gpus=2, strategy="ddp")
    assert estimator.optimizer_name(config, fsdp) == "adamw_torch"
    assert estimator.optimizer_name(config, ddp) == "paged_adamw_8bit"
    assert estimator.checkpointed_layers(spec, config, fsdp) == spec.num_hidden_layers
    assert estimator.checkpointed_layers(spec, config, ddp) == spec.num_hidden_layers // 4
    assert not estimator.offloading(config, fsdp) and estimator.offloading(config, ddp)
    need = estimator.estimate(spec, config, fsdp).total
    advice = [s.change for s in estimator.suggestions(spec, config, int(need * 0.8), fsdp)]
    assert advice and not any("8-bit" in text or "CPU memory" in text for text in advice)
