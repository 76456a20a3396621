"""The training recipe, top to bottom: setup → load → prepare data → train → save the adapter → clean up.

transformers' Trainer runs the loop; PEFT adds the LoRA adapters; bitsandbytes holds the base model in 4-bit.
Everything this run does is written to its run folder, and every event also goes to the client.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import traceback
from pathlib import Path

from engine import config as run_config
from engine import device as devices
from engine import protocol, runs
from engine.control import Control
from engine.events import Emitter

log = logging.getLogger("engine.train")


class TrainingFailed(Exception):
    def __init__(self, kind: str, message: str, hint: str = "", retry: dict | None = None):
        super().__init__(message)
        self.kind, self.message, self.hint, self.retry = kind, message, hint, retry or {}


def run(config: run_config.RunConfig | None, *, emitter: Emitter, control: Control,
        resume_dir: Path | None = None, callbacks: tuple = ()) -> int:
    """Train one run (or resume ``resume_dir``); returns the process exit code.

    ``callbacks`` are extra TrainerCallbacks (benchmarks, fault injection in tests)."""
    # ---- setup -----------------------------------------------------------------------------------------------
    if resume_dir is not None:
        run_dir = Path(resume_dir)
        if config is None:
            config = run_config.load(run_dir / "config.yaml")
        else:  # resumed with changed settings (a retry after out-of-memory): the folder records what ran
            run_config.save(config, run_dir / "config.yaml")
    else:
        run_dir = runs.new_run_dir(config.run_name)
        run_config.save(config, run_dir / "config.yaml")
    runs.acquire_lock(run_dir)
    control.watch_file(run_dir / runs.COMMANDS_FILE)
    emitter.attach_run(run_dir)
    emitter.emit(protocol.RunStarted(str(run_dir), resumed=resume_dir is not None))
    log_handler = _log_to(run_dir / "engine.log")
    others = [name for name, pid in runs.busy_runs() if name != run_dir.name]
    if others:
        emitter.emit(protocol.Warning(f"another training run is active ({', '.join(others)}); both share the "
                                      "GPU, so each is slower and either may run out of memory",
                                      "stop or pause the other run from its Train page, or wait for it"))
    try:
        return _train(config, run_dir, emitter, control, resuming=resume_dir is not None, callbacks=callbacks)
    except TrainingFailed as exc:
        log.error("%s: %s", exc.kind, exc.message, exc_info=exc.__cause__)
        emitter.emit(protocol.Error(kind=exc.kind, message=exc.message, hint=exc.hint, retry=exc.retry))
    except Exception as exc:  # the run folder keeps the traceback; the client gets one clear message
        log.error("training failed:\n%s", traceback.format_exc())
        kind, message, hint = _classify(exc)
        emitter.emit(protocol.Error(kind=kind, message=message, hint=hint))
    finally:
        _cleanup(run_dir, log_handler, control)
    emitter.emit(protocol.State("failed"))
    return 1


def _train(config, run_dir: Path, emitter: Emitter, control: Control, *, resuming: bool, callbacks: tuple) -> int:
    from engine.data import pipeline
    from engine.data.problems import DatasetError
    from engine.models.errors import ModelSourceError
    from engine.models.resolve import model_folder

    device = devices.resolve_device(config.device)
    dtype = devices.compute_dtype(config.compute_dtype, device)
    emitter.emit(protocol.State("loading_model", config.model))
    try:
        folder = model_folder(config.model, progress=lambda m: emitter.emit(protocol.Log("info", m)))
    except ModelSourceError as exc:
        raise TrainingFailed("model", str(exc.message), exc.hint) from None
    tokenizer = _tokenizer(folder.path)

    emitter.emit(protocol.State("preparing_data", config.dataset))
    try:
        prepared = pipeline.prepare(config.dataset, tokenizer, config.data, preview_rows=0)
        prepared.require_usable()
    except DatasetError as exc:
        raise TrainingFailed("dataset", f"{exc.where}: {exc.message}" if exc.where else exc.message,
                             exc.hint) from None
    report = prepared.report
    if report.rows_skipped:
        emitter.emit(protocol.Warning(f"{report.rows_skipped} of {report.rows_read} rows were skipped "
                                      f"({', '.join(f'{c} ×{n}' for c, n in sorted(report.counts.items()))})",
                                      "run 'llamadesk-engine data check' on the dataset to see each problem"))
    train_set, eval_set = prepared.splits()
    emitter.emit(protocol.Log("info", f"data: {prepared.stats.summary()}"))

    # Before the callback opens metrics.jsonl: steps after the checkpoint are dropped and will be logged again.
    checkpoint = None
    if resuming:
        found = runs.latest_checkpoint(run_dir)
        runs.remove_partial_checkpoints(run_dir)
        if found:
            step, checkpoint = found
            runs.truncate_metrics(run_dir / "metrics.jsonl", step)
            emitter.emit(protocol.Log("info", f"resuming from step {step}"))
        else:
            runs.truncate_metrics(run_dir / "metrics.jsonl", 0)
            emitter.emit(protocol.Warning("no complete checkpoint yet: starting this run from the beginning"))

    if checkpoint is not None and _training_complete(checkpoint):
        # Killed after the last step but before the adapter was saved: publish it from the final checkpoint.
        metrics = _checkpoint_metrics(checkpoint)
        adapter = _publish_adapter(lambda tmp: _copy_adapter(checkpoint, tmp), config, metrics, run_dir)
        emitter.emit(protocol.Finished(run_dir=str(run_dir), adapter_path=str(adapter), metrics=metrics))
        emitter.emit(protocol.State("finished"))
        return 0

    budget = _gpu_free_bytes(device)  # before loading: what this run may use, for the out-of-memory advice
    model = _load_model(folder.path, config, device, dtype)
    _check_disk(model, folder.path, config, run_dir, device)
    trainer, callback = _trainer(model, tokenizer, train_set, eval_set, config, run_dir, emitter, control, device,
                                 dtype)
    for extra in callbacks:
        trainer.add_callback(extra)

    try:
        result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    except Exception as exc:
        step = trainer.state.global_step
        runs.remove_partial_checkpoints(run_dir)  # a save cut short (full disk) leaves only complete checkpoints
        kind, message, hint = _classify(exc, phase="at the first step" if step == 0 else f"at step {step + 1}",
                                        config=config, device=device)
        retry = {}
        if kind == "out_of_memory":
            from engine import fit

            peak = _gpu_peak_bytes(device)
            fix = fit.resume_safe_fix(config, budget_bytes=budget, measured_peak=peak)
            if fix is not None:
                hint, retry = f"to fit: {fix[0]}; then resume from the last checkpoint", fix[1]
        elif kind in ("disk_full", "permission"):
            good = runs.latest_checkpoint(run_dir)
            hint += f" (the last complete checkpoint is step {good[0]})" if good else ""
        raise TrainingFailed(kind, message, hint, retry) from exc
    finally:
        callback.close()

    if callback.diverged_at is not None:
        good = runs.latest_checkpoint(run_dir)
        raise TrainingFailed(
            "diverged", f"the loss became NaN or infinite at step {callback.diverged_at}; training stopped",
            "lower the learning rate (halve it, for example) and check the data for extreme values; "
            + (f"the last good checkpoint is step {good[0]}, and the run can be resumed from it" if good
               else "no checkpoint was saved before it"))

    if callback.stopped_by_user:
        emitter.emit(protocol.State("stopped", f"checkpoint at step {trainer.state.global_step}; resume any time"))
        return 0

    emitter.emit(protocol.State("saving", "adapter"))
    metrics = {k: v for k, v in result.metrics.items() if isinstance(v, (int, float))}
    metrics["global_step"] = trainer.state.global_step
    if callback.last_logs.get("eval_loss") is not None:
        metrics["eval_loss"] = callback.last_logs["eval_loss"]
    adapter = _publish_adapter(lambda tmp: (model.save_pretrained(tmp), tokenizer.save_pretrained(tmp)), config,
                               metrics, run_dir)
    if device == "cuda":
        _calibrate(config)
    emitter.emit(protocol.Finished(run_dir=str(run_dir), adapter_path=str(adapter), metrics=metrics))
    emitter.emit(protocol.State("finished"))
    return 0


def _calibrate(config) -> None:
    """Keep this run's measured peak beside its estimate, so later estimates can be compared with reality."""
    import torch

    from engine import calibration, estimator, fit

    try:
        settings = fit.settings_for(config)
        estimated = estimator.estimate(fit.spec_for(config.model), settings).total
    except Exception as exc:  # a model without catalog or config facts: nothing to compare with
        log.info("no calibration record: %s", exc)
        return
    calibration.record(config.model, settings, estimated, torch.cuda.max_memory_reserved(),
                       torch.cuda.max_memory_allocated(), torch.cuda.get_device_name())


def _tokenizer(folder: Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _load_model(folder: Path, config, device: str, dtype):
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from engine import prepare

    quantization = run_config.quantization_config(config, dtype)
    model = AutoModelForCausalLM.from_pretrained(
        folder,
        dtype=dtype,
        quantization_config=quantization,
        device_map={"": int(os.environ.get("LOCAL_RANK", 0)) if device == "cuda" else "cpu"},  # one GPU per rank
        attn_implementation="sdpa",
    )
    model.config.use_cache = False  # no KV cache in training; lets transformers see packed sequences
    prepare.for_training(model, config.train, quantized=quantization is not None, device=device)
    torch.manual_seed(config.train.seed)
    return get_peft_model(model, run_config.peft_config(config))


def _trainer(model, tokenizer, train_set, eval_set, config, run_dir, emitter, control, device, dtype):
    import torch
    from transformers import PrinterCallback, TrainingArguments

    from engine.callbacks import EngineCallback
    from engine.collator import PaddingCollator
    from engine.engine_trainer import EngineTrainer

    t = config.train
    has_eval = eval_set is not None and len(eval_set) > 0
    args = TrainingArguments(
        output_dir=str(run_dir / "checkpoints"),
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
        optim=devices.optimizer(t.optimizer, device),
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
        report_to=[],
        disable_tqdm=True,
        remove_unused_columns=False,  # position_ids is not in PeftModel.forward's signature but must reach it
        dataloader_pin_memory=device == "cuda",
    )
    collator = PaddingCollator(tokenizer.pad_token_id, padding_free=t.padding_free)
    if t.loss_chunk_tokens:
        args.prediction_loss_only = True  # evaluation needs the loss only, never the logits
    callback = EngineCallback(emitter=emitter, control=control, run_dir=run_dir, collator=collator, device=device,
                              config_dict=config.to_dict())
    trainer = EngineTrainer(model=model, args=args, train_dataset=train_set,
                            eval_dataset=eval_set if has_eval else None, data_collator=collator,
                            processing_class=tokenizer, callbacks=[callback])
    trainer.loss_chunk_tokens = t.loss_chunk_tokens
    trainer.remove_callback(PrinterCallback)  # it prints raw log dicts; the engine reports progress itself
    return trainer, callback


def _training_complete(checkpoint: Path) -> bool:
    state = json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
    return 0 < state.get("max_steps", 0) <= state.get("global_step", 0)


def _checkpoint_metrics(checkpoint: Path) -> dict:
    state = json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
    metrics = {"global_step": state["global_step"]}
    for entry in state.get("log_history", []):
        metrics.update({k: v for k, v in entry.items() if k in ("loss", "eval_loss", "train_loss")})
    return metrics


def _copy_adapter(checkpoint: Path, target: Path) -> None:
    """The adapter and tokenizer files Trainer saved in a checkpoint (not its optimizer or RNG state)."""
    target.mkdir(parents=True)
    skip = {"optimizer.pt", "scheduler.pt", "trainer_state.json", "training_args.bin", "llamadesk.json"}
    for file in checkpoint.iterdir():
        if file.is_file() and file.name not in skip and not file.name.startswith("rng_state"):
            shutil.copy2(file, target / file.name)


def _publish_adapter(write, config, metrics: dict, run_dir: Path) -> Path:
    """adapter/: the PEFT adapter, the tokenizer with its chat template, and a model card; renamed when complete.

    ``write(folder)`` puts the adapter and tokenizer files into the temporary folder."""
    final = run_dir / "adapter"
    tmp = run_dir / "adapter.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        write(tmp)
        (tmp / "llamadesk.json").write_text(json.dumps({"config": config.to_dict(), "metrics": metrics}, indent=2),
                                            encoding="utf-8")
        (tmp / "README.md").write_text(_model_card(config, metrics), encoding="utf-8")
        runs.fsync_tree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # never a half-written adapter; the final checkpoint still has it
        raise
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def _model_card(config, metrics: dict) -> str:
    lines = [
        "---", "library_name: peft", f"base_model: {config.model}", "tags: [llamadesk, lora"
        + (", qlora" if config.quantization == "nf4" else "") + "]", "---", "",
        f"# LoRA adapter for {config.model}", "",
        f"Fine-tuned with LlamaDesk on `{Path(config.dataset).name}` "
        f"({'4-bit QLoRA' if config.quantization == 'nf4' else 'LoRA'}, rank {config.lora.rank}, "
        f"alpha {config.lora.alpha}, learning rate {config.train.learning_rate}, cutoff {config.data.cutoff}).", "",
        "## Final metrics", "",
    ]
    lines += [f"- {key}: {value:.4g}" if isinstance(value, float) else f"- {key}: {value}"
              for key, value in sorted(metrics.items())]
    lines += ["", "## Configuration", "", "```yaml", config.to_yaml().rstrip(), "```", ""]
    return "\n".join(lines)


def _classify(exc: Exception, *, phase: str = "while loading the model", config=None,
              device: str = "cpu") -> tuple[str, str, str]:
    import torch

    if isinstance(exc, torch.OutOfMemoryError):
        return "out_of_memory", f"the GPU ran out of memory {phase}{_memory_facts(config, device)}", _oom_hint(config)
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        where = f" while writing {exc.filename}" if exc.filename else ""
        return "disk_full", f"the disk is full{where} ({phase})", "free disk space, then resume the run"
    if isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return ("permission", f"cannot write {exc.filename or 'to the run folder'}: {exc.strerror} ({phase})",
                "make the LlamaDesk data folder writable (or choose another one with --home), then resume the run")
    if isinstance(exc, runs.RunFolderError):
        return "run_folder", str(exc), ""
    return "internal", f"{type(exc).__name__}: {exc}", "see engine.log in the run folder for details"


def _gpu_free_bytes(device: str) -> int | None:
    if device != "cuda":
        return None
    import torch

    return torch.cuda.mem_get_info()[0]


def _gpu_peak_bytes(device: str) -> int | None:
    if device != "cuda":
        return None
    import torch

    return torch.cuda.max_memory_reserved()


def _check_disk(model, model_folder: Path, config, run_dir: Path, device: str) -> None:
    from engine import disk

    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    need = disk.run_needs(trainable, devices.optimizer(config.train.optimizer, device),
                          config.train.keep_checkpoints, disk.tokenizer_bytes(model_folder))
    problem = disk.shortfall(run_dir, need)
    if problem:
        raise TrainingFailed("disk_full", problem, "free disk space (delete old runs on the Runs page), or choose "
                             "a data folder on a larger disk, then start again")


def _memory_facts(config, device: str) -> str:
    """The measured peak against the estimate, as far as both are known."""
    parts = []
    if device == "cuda":
        import torch

        parts.append(f"measured peak {torch.cuda.max_memory_reserved() / 2**30:.1f} GiB")
    try:
        from engine import estimator, fit

        need = estimator.estimate(fit.spec_for(config.model), fit.settings_for(config)).total
        parts.append(f"estimated need {need / 2**30:.1f} GiB")
    except Exception:  # no architecture facts for this model
        pass
    return f" ({', '.join(parts)})" if parts else ""


def _oom_hint(config) -> str:
    generic = ("lower train.micro_batch (raise grad_accum to keep the effective batch), turn on gradient "
               "checkpointing, or lower data.cutoff; then resume from the last checkpoint")
    try:
        import torch

        from engine import estimator, fit

        free = torch.cuda.mem_get_info()[0] if torch.cuda.is_available() else None
        if free and config is not None:
            found = estimator.suggestions(fit.spec_for(config.model), fit.settings_for(config), free)
            if found:
                return f"to fit: {found[0].change}; then resume from the last checkpoint"
    except Exception:
        pass
    return generic


def _log_to(path: Path) -> logging.Handler:
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    import transformers

    transformers.utils.logging.disable_default_handler()
    transformers.utils.logging.enable_propagation()
    transformers.utils.logging.set_verbosity_warning()
    return handler


def _cleanup(run_dir: Path, handler: logging.Handler, control: Control) -> None:
    control.unwatch()
    runs.release_lock(run_dir)
    logging.getLogger().removeHandler(handler)
    handler.close()
