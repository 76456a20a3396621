"""The Hugging Face objects a run trains with, built from the run config: tokenizer, 4-bit base with LoRA adapters,
and the Trainer with its arguments, collator and the engine's callback. The recipe (train.py) and the benches use
these same builders."""

from __future__ import annotations

from pathlib import Path

import torch
from peft import get_peft_model
from transformers import AutoModelForCausalLM, PrinterCallback, TrainingArguments

from engine.heavy import distributed, model_setup, sharding, tracking_setup
from engine.heavy.collator import PaddingCollator
from engine.heavy.models import tokenizer as tokenizers
from engine.heavy.train_callbacks import EngineCallback
from engine.heavy.trainer import EngineTrainer
from engine.light import protocol, tracking
from engine.light.run_folder import RunFolder


def tokenizer_for(folder: Path):
    tokenizer = tokenizers.load(folder)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(folder: Path, config, device: str, dtype):
    """The base model (4-bit unless the config says otherwise), frozen and prepared, with fresh LoRA adapters."""
    quantization = model_setup.quantization_config(config, dtype)
    sharding.before_loading()  # under FSDP: accelerate's environment must be there before the weights are read
    model = AutoModelForCausalLM.from_pretrained(
        folder,
        dtype=dtype,
        quantization_config=quantization,
        # one GPU per rank; with FSDP the Trainer places the shards (each rank loads to the CPU first)
        device_map=None if distributed.sharded() else {"": distributed.local_rank() if device == "cuda" else "cpu"},
        attn_implementation="sdpa",
    )
    model.config.use_cache = False  # no KV cache in training; lets transformers see packed sequences
    model_setup.for_training(model, config.train, quantized=quantization is not None, device=device)
    torch.manual_seed(config.train.seed)
    return get_peft_model(model, model_setup.peft_config(config))


def training_arguments(config, folder: RunFolder, device: str, dtype, *, has_eval: bool,
                       report_to: list[str] = ()) -> TrainingArguments:
    t = config.train
    args = TrainingArguments(
        run_name=folder.name,  # the run's name in MLflow and W&B
        output_dir=str(folder.checkpoints_dir),
        per_device_train_batch_size=t.micro_batch,
        per_device_eval_batch_size=t.micro_batch,
        gradient_accumulation_steps=t.grad_accum,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.scheduler,
        warmup_steps=t.warmup_ratio,
        num_train_epochs=t.epochs,
        max_steps=t.max_steps if t.max_steps > 0 else -1,
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        optim=sharding.optimizer(t.optimizer, device),
        seed=t.seed,
        data_seed=t.seed,
        bf16=dtype == torch.bfloat16,
        fp16=dtype == torch.float16,
        use_cpu=device == "cpu",
        logging_steps=t.logging_steps,
        logging_first_step=True,
        logging_nan_inf_filter=False,  # a NaN loss must reach the callback, which stops the run
        eval_strategy=("steps" if t.eval_steps else "epoch") if has_eval else "no",
        eval_steps=t.eval_steps or None,
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=None,  # the callback keeps the newest `keep_checkpoints` complete ones
        report_to=list(report_to),  # the trackers train.report_to chose (engine/heavy/tracking_setup.py)
        disable_tqdm=True,
        remove_unused_columns=False,  # position_ids is not in PeftModel.forward's signature but must reach it
        dataloader_pin_memory=device == "cuda",
        ddp_backend=("nccl" if device == "cuda" else "gloo") if distributed.world_size() > 1 else None,
        ddp_find_unused_parameters=False,  # every LoRA weight gets a gradient: no search for unused ones per step
        **sharding.training_arguments(t),
    )
    if t.loss_chunk_tokens:
        args.prediction_loss_only = True  # evaluation needs the loss only, never the logits
    return args


def build_trainer(model, tokenizer, train_set, eval_set, config, folder: RunFolder, emitter, control, device: str,
                  dtype) -> tuple[EngineTrainer, EngineCallback]:
    has_eval = eval_set is not None and len(eval_set) > 0
    report_to = tracking_setup.configure(config.train.report_to, folder)
    for command in tracking.open_commands(report_to, folder.path):
        emitter.emit(protocol.Log("info", f"tracking: open the records with: {command}"))
    collator = PaddingCollator(tokenizer.pad_token_id, padding_free=config.train.padding_free)
    callback = EngineCallback(emitter=emitter, control=control, folder=folder, collator=collator, device=device,
                              config=config)
    trainer = EngineTrainer(model=model, args=training_arguments(config, folder, device, dtype, has_eval=has_eval,
                                                                 report_to=report_to),
                            train_dataset=train_set, eval_dataset=eval_set if has_eval else None,
                            data_collator=collator, processing_class=tokenizer, callbacks=[callback])
    trainer.loss_chunk_tokens = config.train.loss_chunk_tokens
    callback.trainer = trainer
    trainer.remove_callback(PrinterCallback)  # it prints raw log dicts; the engine reports progress itself
    return trainer, callback
