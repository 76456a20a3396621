"""``llamadesk-engine``: the engine's command line. The GUI, the tests and a terminal user run the same commands.

One module per command group, each adding its commands to the parser. Only ``engine.light`` is imported at the top
of them; each command imports the ``engine.heavy`` modules it runs, so ``--help`` and ``models`` answer instantly.
Every command that takes run settings reads them the same way: an optional run config YAML, then
``--set field.path=value`` overrides by the schema's dotted names (``common.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from engine import __version__
from engine.cli import api, chat, config, data, demo, evaluate, export, models, scale, training
from engine.light import config as run_config
from engine.light import gpu, paths
from engine.light.errors import UserError

# In the order ``--help`` lists their commands.
GROUPS = (models, data, training, chat, config, evaluate, export, demo, scale, api)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    os.environ.update(gpu.CUDA_ORDER)  # before torch starts CUDA: its device numbers are NVML's, in PCI order
    if args.home:
        paths.set_home(args.home)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return args.handler(args) or 0
    except run_config.ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except UserError as exc:
        if getattr(args, "json", False):
            print(json.dumps({"error": exc.to_dict()}))  # ASCII escapes: safe for any character in a path
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llamadesk-engine", description="LlamaDesk engine: data, models, training.")
    parser.add_argument("--version", action="version", version=f"llamadesk-engine {__version__}")
    parser.add_argument("--home", help=f"LlamaDesk's data folder (models, runs, caches); default: ${paths.ENV_HOME} "
                        "or the per-user data folder")
    commands = parser.add_subparsers(metavar="COMMAND")
    for group in GROUPS:
        group.add_commands(commands)
    return parser
