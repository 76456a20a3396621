"""Starting a run and sizing it first: ``train`` (or resume), ``estimate`` (memory) and ``time`` (a short trial)."""

from __future__ import annotations

import json
import os
import sys

from engine import __version__
from engine.cli.common import add_config_options, load_config
from engine.light import gpu, ranks
from engine.light.run_folder import RunFolder


def add_commands(commands) -> None:
    train = commands.add_parser("train", help="fine-tune: start a run from a config, or resume one")
    add_config_options(train)
    train.add_argument("--resume", metavar="RUN", help="resume this run folder (or run name) from its latest "
                       "complete checkpoint; --set changes its settings (e.g. a smaller micro-batch)")
    train.add_argument("--json", action="store_true", help="protocol lines even on a terminal")
    train.set_defaults(handler=_train)

    estimate = commands.add_parser("estimate", help="GPU memory a run needs, line by line, against this GPU")
    add_config_options(estimate)
    estimate.add_argument("--free-gib", type=float, help="judge against this much free memory instead of the GPU's")
    estimate.add_argument("--json", action="store_true")
    estimate.set_defaults(handler=_estimate)

    timing = commands.add_parser("time", help="how long a run will take here: a short trial with its settings and "
                                 "data (loading, a few steps, an evaluation pass, generation), extrapolated")
    add_config_options(timing)
    timing.add_argument("--steps", type=int, default=3, help="trial steps measured (after one warm-up step)")
    timing.add_argument("--json", action="store_true", help="protocol lines even on a terminal")
    timing.set_defaults(handler=_time)


def _train(args) -> int:
    from engine.heavy import train
    from engine.heavy.control import Control
    from engine.heavy.device import describe
    from engine.heavy.events import Emitter, claim_stdout
    from engine.light import protocol

    human = sys.stdout.isatty() and not args.json
    if args.resume:
        folder = RunFolder.find(args.resume)
        if not folder.is_run():
            print(f"error: {args.resume}: not a run folder (no config.yaml)", file=sys.stderr)
            return 1
        run_dir, config = folder.path, None
        if args.set:  # resume with changed settings, e.g. a smaller micro-batch after running out of memory
            config = folder.load_config(args.set)
    else:
        if not args.config and not args.set:
            print("error: give a run config (or --resume RUN)", file=sys.stderr)
            return 2
        config, run_dir = load_config(args), None
    chosen = config if config is not None else RunFolder(run_dir).load_config()
    if not _show_one_gpu(chosen):
        return 1
    emitter = Emitter(claim_stdout(), human=human)
    world = ranks.world_size(chosen)
    # A launcher of several ranks leaves CUDA alone: a CUDA context here would hold memory on a GPU all run long.
    device = describe() if world == 1 else {"kind": chosen.device, "ranks": world, "launcher": True}
    emitter.emit(protocol.Hello(protocol.PROTOCOL_VERSION, __version__, device, "train"))
    control = Control()
    control.on_client_gone = emitter.detach_if_client_gone
    control.listen()
    return train.run(config, emitter=emitter, control=control, resume_dir=run_dir)


def _show_one_gpu(config) -> bool:
    """A single-process run on one chosen GPU: before torch starts CUDA, let it see that GPU only (several GPUs are
    handed to the ranks by the launcher). False, with the message printed, when the GPU is not on this machine."""
    first = config.distributed.gpus[:1]
    if not first or config.device == "cpu" or ranks.world_size(config) > 1:
        return True
    try:
        os.environ["CUDA_VISIBLE_DEVICES"] = ranks.visible_devices(
            ranks.selected_gpus(config.with_values({"distributed.gpus": first}), gpu.probe()))
    except ranks.GpuSelectionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return False
    return True


def _estimate(args) -> int:
    from engine.light import fit

    config = load_config(args, require_dataset=False)
    free = int(args.free_gib * 2**30) if args.free_gib else None
    report = fit.check(config, free_bytes=free, gpu_name="the given free memory" if free else None)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.text())
    return 0


def _time(args) -> int:
    from engine.heavy import time_trial
    from engine.heavy.control import Control
    from engine.heavy.device import describe
    from engine.heavy.events import Emitter, claim_stdout
    from engine.heavy.train_failures import TrainingFailed
    from engine.light import protocol
    from engine.light.units import format_duration

    config = load_config(args)
    if not _show_one_gpu(config.with_values({"distributed.gpus": config.distributed.gpus[:1]})):  # one rank timed
        return 1
    human = sys.stdout.isatty() and not args.json
    emitter = Emitter(claim_stdout(), human=human)
    emitter.emit(protocol.Hello(protocol.PROTOCOL_VERSION, __version__, describe(config.device), "time"))
    control = Control()
    control.listen()  # a client's cancel (or closed stdin) ends the trial
    try:
        estimate = time_trial.run(config, emitter=emitter, control=control, steps=max(2, args.steps))
    except TrainingFailed as exc:
        emitter.emit(protocol.Error(kind=exc.kind, message=exc.message, hint=exc.hint))
        emitter.emit(protocol.State("failed"))
        return 1
    emitter.emit(estimate)
    if human:
        parts = ", ".join(f"{name} {format_duration(s)}" for name, s in estimate.parts.items() if s)
        print(f"about {format_duration(estimate.seconds)}: {estimate.steps} steps × {estimate.step_s:.2f} s ({parts})")
    return 0
