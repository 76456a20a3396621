"""``config``: a run config printed with every field documented, the defaults or a file with ``--set`` applied."""

from __future__ import annotations

import json

from engine.cli.common import add_config_options, load_config
from engine.light import config as run_config


def add_commands(commands) -> None:
    config = commands.add_parser("config", help="print a run config with every field documented: the defaults, or a "
                                 "config file with --set changes applied")
    add_config_options(config)
    config.add_argument("--dataset", default=None, help="dataset to put in the config (same as --set dataset=FILE)")
    config.set_defaults(handler=_config)


def _config(args) -> int:
    if args.dataset is not None:
        args.set = [*args.set, f"dataset={json.dumps(args.dataset)}"]
    config = load_config(args, require_dataset=False)
    docs = run_config.docs()
    lines = ["# LlamaDesk run config. Every field is optional except dataset; fields left out take their defaults."]
    prefix: list[str] = []
    for line in config.to_yaml().splitlines():
        depth = (len(line) - len(line.lstrip())) // 2
        key = line.strip().split(":", 1)[0]
        prefix = prefix[:depth] + [key]
        text = docs.get(".".join(prefix))
        if text:
            lines.append(" " * (2 * depth) + f"# {text}")
        lines.append(line)
    print("\n".join(lines))
    return 0
