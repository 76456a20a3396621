"""What several command groups share: the run config arguments, progress lines on stderr (stdout carries a
command's result or protocol lines only), and the frame of a command that works on a finished run (its folder
checked, the protocol's hello, a user error as the protocol's error)."""

from __future__ import annotations

import argparse
import sys

from engine import __version__
from engine.light import config as run_config
from engine.light.errors import UserError
from engine.light.run_folder import RunFolder


def add_config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", help="a run config YAML (see 'llamadesk-engine config')")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a config field, e.g. --set model=llama-3.1-8b --set train.max_steps=20")


def load_config(args, *, require_dataset: bool = True) -> run_config.RunConfig:
    return run_config.load(args.config, args.set, require_dataset=require_dataset)


def status(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_folder(name: str) -> RunFolder | None:
    """The run a command names, or None after saying it is not one."""
    folder = RunFolder.find(name)
    if not folder.is_run():
        print(f"error: {name}: not a run folder (no config.yaml)", file=sys.stderr)
        return None
    return folder


def protocol_emitter(args, command: str):
    """The command's emitter on stdout (words on a terminal unless --json) after its hello."""
    from engine.heavy.device import describe
    from engine.heavy.events import Emitter, claim_stdout
    from engine.light import protocol

    emitter = Emitter(claim_stdout(), human=sys.stdout.isatty() and not args.json)
    emitter.emit(protocol.Hello(protocol.PROTOCOL_VERSION, __version__, describe(args.device), command))
    return emitter


def failed(emitter, exc: UserError) -> int:
    from engine.light import protocol

    emitter.emit(protocol.Error(kind=exc.kind, message=f"{exc.where}: {exc.message}" if exc.where else exc.message,
                                hint=exc.hint))
    emitter.emit(protocol.State("failed"))
    return 1
