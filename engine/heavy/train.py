"""The training recipe, top to bottom: setup → load → prepare data → train → save the adapter → clean up.

transformers' Trainer runs the loop; PEFT adds the LoRA adapters; bitsandbytes holds the base model in 4-bit.
Everything this run does is written to its run folder, and every event also goes to the client.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import traceback
from pathlib import Path

import torch
import transformers

from engine.heavy import adapter_files, distributed, rank_launcher, sharding, train_failures
from engine.heavy import device as devices
from engine.heavy.control import Control
from engine.heavy.events import Emitter
from engine.heavy.run_inputs import model_dir_for, prepare_data
from engine.heavy.train_failures import TrainingFailed
from engine.heavy.train_setup import build_trainer, load_model, tokenizer_for
from engine.light import calibration, disk, estimator, fit, protocol, ranks
from engine.light import config as run_config
from engine.light.errors import ModelSourceError
from engine.light.run_folder import RunFolder, busy_runs

log = logging.getLogger("engine.train")


def run(config: run_config.RunConfig | None, *, emitter: Emitter, control: Control,
        resume_dir: Path | None = None, callbacks: tuple = ()) -> int:
    """Train one run (or resume ``resume_dir``); returns the process exit code.

    ``callbacks`` are extra TrainerCallbacks (benchmarks, fault injection in tests)."""
    folder, config = _open(config, resume_dir)
    folder.acquire_lock()
    launching = ranks.world_size(config) > 1
    if launching:  # the ranks' rank 0 takes the commands from the run folder; this process passes the client's on
        control.forward_to(folder.commands_file)
    else:
        control.watch_file(folder.commands_file)
    emitter.attach_run(folder)
    emitter.emit(protocol.RunStarted(str(folder.path), resumed=resume_dir is not None))
    log_handler = _log_to(folder.log_file)
    _warn_about_other_runs(folder, emitter)
    try:
        if launching:
            return rank_launcher.run(config, folder, emitter, control, resuming=resume_dir is not None)
        return _train(config, folder, emitter, control, resuming=resume_dir is not None, callbacks=callbacks)
    except TrainingFailed as exc:
        log.error("%s: %s", exc.kind, exc.message, exc_info=exc.__cause__)
        emitter.emit(protocol.Error(kind=exc.kind, message=exc.message, hint=exc.hint, retry=exc.retry))
    except Exception as exc:  # the run folder keeps the traceback; the client gets one clear message
        log.error("training failed:\n%s", traceback.format_exc())
        failed = train_failures.classify(exc)
        emitter.emit(protocol.Error(kind=failed.kind, message=failed.message, hint=failed.hint))
    finally:
        _cleanup(folder, log_handler, control)
    emitter.emit(protocol.State("failed"))
    return 1


def run_rank(run_dir: Path, *, emitter: Emitter, control: Control, resume: bool, callbacks: tuple = (),
             model_dir: Path | None = None) -> int:
    """Train as one rank of a multi-process run (started by the engine's launcher or by torchrun on a cluster).

    Every rank runs the recipe; rank 0 alone reports and writes the run folder. A failure is recorded in the run
    folder's ``ranks/`` for the launcher, which tells the client; rank 0 also reports its own failures itself."""
    folder = RunFolder(run_dir)
    config = folder.load_config()
    distributed.join(devices.resolve_device(config.device))
    main, rank = distributed.is_main(), distributed.rank()
    launched = os.environ.get(distributed.RENDEZVOUS_FILE) is not None  # else torchrun on a cluster
    resuming = resume or folder.latest_checkpoint() is not None  # a cluster job started again resumes
    if main:
        control.watch_file(folder.commands_file, fresh=not launched)
        emitter.attach_run(folder)
        if not launched:
            emitter.emit(protocol.RunStarted(str(folder.path), resumed=resuming))
            emitter.emit(protocol.Log("info", f"rank 0 of {distributed.world_size()} writes the run folder "
                                              f"{socket.gethostname()}:{folder.path}"))
    log_handler = _log_to(folder.log_file if main else folder.rank_log(rank))
    try:
        return _train(config, folder, emitter, control, resuming=resuming, callbacks=callbacks, model_dir=model_dir)
    except Exception as exc:  # noqa: BLE001 - every failure ends this rank with a record of why
        failed = exc if isinstance(exc, TrainingFailed) else train_failures.classify(exc)
        peer = distributed.is_peer_failure(exc.__cause__ or exc)
        log.error("rank %d failed (%s): %s\n%s", rank, failed.kind, failed.message, traceback.format_exc())
        folder.record_rank_failure(rank, {"kind": failed.kind, "message": failed.message, "hint": failed.hint,
                                          "retry": getattr(failed, "retry", None), "peer": peer})
        if main and not peer:
            emitter.emit(protocol.Error(kind=failed.kind, message=failed.message, hint=failed.hint,
                                        retry=getattr(failed, "retry", None)))
            emitter.emit(protocol.State("failed"))
        return 1
    finally:
        control.unwatch()
        logging.getLogger().removeHandler(log_handler)
        log_handler.close()
        distributed.leave()


def _open(config, resume_dir: Path | None) -> tuple[RunFolder, run_config.RunConfig]:
    """The run folder, new or resumed, with the config it runs under recorded in it."""
    if resume_dir is None:
        folder = RunFolder.create(config.run_name)
        folder.save_config(config)
    else:
        folder = RunFolder(resume_dir)
        if config is None:
            config = folder.load_config()
        else:  # resumed with changed settings (a retry after out-of-memory): the folder records what ran
            folder.save_config(config)
    return folder, config


def _warn_about_other_runs(folder: RunFolder, emitter: Emitter) -> None:
    others = [other.name for other, _ in busy_runs() if other != folder]
    if others:
        emitter.emit(protocol.Warning(f"another training run is active ({', '.join(others)}); both share the "
                                      "GPU, so each is slower and either may run out of memory",
                                      "stop or pause the other run from its Train page, or wait for it"))


def _train(config, folder: RunFolder, emitter: Emitter, control: Control, *, resuming: bool,
           callbacks: tuple, model_dir: Path | None = None) -> int:
    device = devices.resolve_device(config.device)
    dtype = devices.compute_dtype(config.compute_dtype, device)
    main = distributed.is_main()
    model_dir = model_dir or model_dir_for(config, emitter)
    tokenizer = tokenizer_for(model_dir)
    train_set, eval_set = prepare_data(config, tokenizer, emitter)
    checkpoint = _resume_point(folder, emitter) if resuming else None
    distributed.barrier()  # rank 0 has tidied the folder for resuming before any rank reads a checkpoint
    if checkpoint is not None and adapter_files.training_complete(checkpoint) and _holds_whole_adapter(checkpoint):
        if not main:
            return 0
        # Killed after the last step but before the adapter was saved: publish it from the final checkpoint. (A
        # sharded checkpoint holds shards only: the ranks resume from it, train no step, and gather the adapter.)
        metrics = adapter_files.checkpoint_metrics(checkpoint)
        return _finish(folder, config, metrics, emitter,
                       lambda tmp: adapter_files.copy_from_checkpoint(checkpoint, tmp))

    budget = torch.cuda.mem_get_info()[0] if device == "cuda" else None  # what this run may use, for OOM advice
    model = load_model(model_dir, config, device, dtype)
    if main:
        _check_disk(model, model_dir, config, folder, device)
    trainer, callback = build_trainer(model, tokenizer, train_set, eval_set, config, folder, emitter, control, device,
                                      dtype)
    for extra in callbacks:
        trainer.add_callback(extra)
    try:
        result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    except Exception as exc:
        if main:  # a save cut short (a full disk) leaves only complete checkpoints; rank 0 alone, which publishes them
            folder.remove_partial_checkpoints()
        raise train_failures.during_training(exc, step=trainer.state.global_step, config=config, device=device,
                                             folder=folder, budget=budget) from exc
    finally:
        callback.close()

    done = callback.diverged_at is None and not callback.stopped_by_user and not callback.paused_by_user
    staged = _gather_sharded_adapter(trainer, folder) if done and distributed.sharded() else None
    if not main:  # rank 0 saves and reports what the run made
        return 0
    if callback.diverged_at is not None:
        raise train_failures.diverged(callback.diverged_at, folder)
    if callback.stopped_by_user:
        emitter.emit(protocol.State("stopped", f"checkpoint at step {trainer.state.global_step}; resume any time"))
        return 0
    if callback.paused_by_user:  # the engine exits: the GPU is free until the run is resumed from this checkpoint
        emitter.emit(protocol.State("paused", f"at step {trainer.state.global_step}; the GPU is free, and resuming "
                                              "continues from this step"))
        return 0
    metrics = {k: v for k, v in result.metrics.items() if isinstance(v, (int, float))}
    metrics["global_step"] = trainer.state.global_step
    if callback.last_logs.get("eval_loss") is not None:
        metrics["eval_loss"] = callback.last_logs["eval_loss"]
    if callback.last_logs.get("loss") is not None:  # train_loss is the average over the run; this, the last step's
        metrics["last_loss"] = callback.last_logs["loss"]
    if staged is not None:  # FSDP: the ranks gathered the adapter together; the comparison needs one whole model
        emitter.emit(protocol.Log("info", "the weights were sharded: compare with the base model afterwards with "
                                          "'llamadesk-engine eval RUN' on a GPU that holds the model"))
        code = _finish(folder, config, metrics, emitter,
                       lambda tmp: (shutil.copytree(staged, tmp, dirs_exist_ok=True), tokenizer.save_pretrained(tmp)))
        shutil.rmtree(staged, ignore_errors=True)
    else:
        code = _finish(folder, config, metrics, emitter,
                       lambda tmp: (model.save_pretrained(tmp), tokenizer.save_pretrained(tmp)),
                       compare=lambda: _compare(trainer.model, tokenizer, eval_set, config, emitter, control))
    if device == "cuda":
        _calibrate(config)
    return code


def _gather_sharded_adapter(trainer, folder: RunFolder) -> Path:
    """With FSDP every rank holds a shard of the adapter: all of them gather it, and rank 0 writes it here."""
    staged = folder.path / ".adapter-gathered"
    sharding.save_whole_adapter(trainer, staged)
    distributed.barrier()
    return staged


def _holds_whole_adapter(checkpoint: Path) -> bool:
    """Whether a checkpoint holds the adapter as one file, as DDP and one process save it (FSDP saves shards)."""
    return (checkpoint / "adapter_model.safetensors").is_file()


def _resume_point(folder: RunFolder, emitter: Emitter) -> Path | None:
    """The latest complete checkpoint. Before the callback opens metrics.jsonl, the steps after it are dropped:
    they run again and are logged again."""
    found = folder.latest_checkpoint()
    if not distributed.is_main():  # rank 0 alone tidies the folder; the others wait for it at a barrier
        return found[1] if found else None
    folder.remove_partial_checkpoints()
    if not found:
        folder.truncate_metrics(0)
        emitter.emit(protocol.Warning("no complete checkpoint yet: starting this run from the beginning"))
        return None
    step, checkpoint = found
    folder.truncate_metrics(step)
    emitter.emit(protocol.Log("info", f"resuming from step {step}"))
    return checkpoint


def _finish(folder: RunFolder, config, metrics: dict, emitter: Emitter, write, compare=None) -> int:
    emitter.emit(protocol.State("saving", "adapter"))
    adapter = adapter_files.publish(folder, write, config, metrics)
    detail = ""
    if compare is not None:
        result = compare()
        if result is SKIPPED:
            detail = skipped_text(folder.name)
            emitter.emit(protocol.Log("info", detail))
        elif result is not None:
            folder.write_evaluation(result)
            metrics = {**metrics, **_headline(result)}
    emitter.emit(protocol.Finished(run_dir=str(folder.path), adapter_path=str(adapter), metrics=metrics))
    emitter.emit(protocol.State("finished", detail))
    return 0


SKIPPED = object()  # what _compare returns when the client skipped the comparison


def skipped_text(run: str) -> str:
    return f"the comparison with the base model was skipped; compute it later with 'llamadesk-engine eval {run}'"


def _compare(model, tokenizer, validation, config, emitter: Emitter, control: Control):
    """The base model against the fine-tune (engine/heavy/before_after.py); None when the run holds out no
    validation split, the setting is off, or the comparison fails (the adapter is saved: the run stays finished);
    SKIPPED when the client asked to skip it (or to stop) before it was complete."""
    if not config.train.compare_base:
        return None
    if validation is None or len(validation) == 0:
        emitter.emit(protocol.Log("info", "no validation split: the base model and the fine-tune are not compared "
                                          "(set data.validation_share to hold one out)"))
        return None
    from engine.heavy import before_after

    emitter.emit(protocol.State("comparing", "the base model and the fine-tune on the validation split"))
    try:
        return before_after.evaluate(model, tokenizer, validation, prompts=config.train.compare_prompts,
                                     progress=emitter.emit, skip=control.comparison_skipped)
    except before_after.Skipped:
        return SKIPPED
    except Exception as exc:  # noqa: BLE001 - the comparison is a report; the adapter is what the run made
        emitter.emit(protocol.Warning(f"the comparison with the base model failed: {exc}",
                                      "run 'llamadesk-engine eval RUN' to try again"))
        return None


def _headline(result: dict) -> dict:
    """The comparison's numbers for the Finished message and the run's summary."""
    found = {}
    for side in ("before", "after"):
        for key in ("loss", "perplexity", "rouge_l"):
            value = result.get(side, {}).get(key)
            if value is not None:
                found[f"{side}_{key}"] = value
    return found


def _check_disk(model, model_dir: Path, config, folder: RunFolder, device: str) -> None:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    need = disk.run_needs(trainable, sharding.optimizer(config.train.optimizer, device),
                          config.train.keep_checkpoints, disk.tokenizer_bytes(model_dir))
    problem = disk.shortfall(folder.path, need)
    if problem:
        raise TrainingFailed("disk_full", problem, "free disk space (delete old runs on the Runs page), or choose "
                             "a data folder on a larger disk, then start again")


def _calibrate(config) -> None:
    """Keep this run's measured peak beside its estimate, so later estimates can be compared with reality."""
    try:
        estimated = estimator.estimate(fit.spec_for(config.model), config).total
    except ModelSourceError as exc:  # a model without catalog or config facts: nothing to compare with
        log.info("no calibration record: %s", exc)
        return
    calibration.record(config, estimated, torch.cuda.max_memory_reserved(), torch.cuda.max_memory_allocated(),
                       torch.cuda.get_device_name())


def _log_to(path: Path) -> logging.Handler:
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    transformers.utils.logging.disable_default_handler()
    transformers.utils.logging.enable_propagation()
    transformers.utils.logging.set_verbosity_warning()
    return handler


def _cleanup(folder: RunFolder, handler: logging.Handler, control: Control) -> None:
    control.unwatch()
    folder.release_lock()
    logging.getLogger().removeHandler(handler)
    handler.close()
