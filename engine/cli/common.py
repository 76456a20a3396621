"""What several command groups share: the run config arguments and progress lines on stderr (stdout carries a
command's result or protocol lines only)."""

from __future__ import annotations

import argparse
import sys

from engine.light import config as run_config


def add_config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", help="a run config YAML (see 'llamadesk-engine config')")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a config field, e.g. --set model=llama-3.1-8b --set train.max_steps=20")


def load_config(args, *, require_dataset: bool = True) -> run_config.RunConfig:
    return run_config.load(args.config, args.set, require_dataset=require_dataset)


def status(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
