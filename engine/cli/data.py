"""``data check``: detect a dataset's format, validate, tokenize and preview it with a run's data settings."""

from __future__ import annotations

import argparse
import json
import sys

from engine.cli.common import status
from engine.light import config as run_config

# Shorthands of ``data check`` for the settings it uses most: each names a run config field, whose type, default,
# bounds and documentation come from the schema.
DATA_FLAGS = {"--model": "model", "--format": "data.format", "--cutoff": "data.cutoff", "--train-on": "data.train_on",
              "--validation-share": "data.validation_share", "--seed": "data.seed"}


def add_commands(commands) -> None:
    data = commands.add_parser("data", help="check a dataset").add_subparsers(metavar="ACTION")
    data_check = data.add_parser("check", help="detect the format, validate, tokenize and preview a dataset")
    data_check.add_argument("inputs", nargs="*", metavar="SOURCE|CONFIG",
                            help="the dataset (a .json/.jsonl/.csv/.tsv/.parquet/.txt file, a save_to_disk folder or a "
                            "hub dataset id) and/or a run config .yaml whose model, dataset and data settings to use")
    data_check.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                            help="override a run config field, e.g. --set data.cutoff=512")
    _add_data_options(data_check)
    data_check.add_argument("--preview", type=int, default=3, metavar="N", help="rendered examples to show")
    data_check.add_argument("--problems", type=int, default=20, metavar="N", help="problems to list")
    data_check.add_argument("--json", action="store_true", help="one machine-readable JSON object")
    data_check.set_defaults(handler=_data_check)


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    for flag, path in DATA_FLAGS.items():
        setting = run_config.BY_PATH[path]
        parser.add_argument(flag, dest=path, type=setting.base_type, choices=setting.choices,
                            metavar=None if setting.choices else flag[2:].upper().replace("-", "_"),
                            help=f"{setting.doc} (--set {path}=…)")
    parser.add_argument("--columns", nargs="*", default=None, metavar="FIELD=COLUMN",
                        help="map your column names, e.g. instruction=question output=answer (data.columns)")
    parser.add_argument("--packing", dest="data.packing", action="store_const", const=True,
                        help=run_config.BY_PATH["data.packing"].doc)
    parser.add_argument("--keep-duplicates", dest="data.drop_duplicates", action="store_const", const=False,
                        help="keep rows that repeat an earlier row exactly (data.drop_duplicates=false)")
    parser.add_argument("--no-cache", action="store_true", help="tokenize again even if a cached result exists")


def _data_check(args) -> int:
    from engine.heavy.data import pipeline, readers, report_text
    from engine.heavy.models.resolve import load_tokenizer

    config = _data_check_config(args)
    readers.require_source(config.dataset)
    tokenizer = load_tokenizer(config.model, progress=status)
    prepared = pipeline.prepare(config.dataset, tokenizer, config.data, preview_rows=args.preview,
                                use_cache=not args.no_cache)
    if args.json:
        print(json.dumps(prepared.to_dict()))
    else:
        print(report_text.render(prepared, max_problems=args.problems, color=sys.stdout.isatty()))
    return 0 if prepared.usable else 1


def _data_check_config(args) -> run_config.RunConfig:
    """The run config a data check uses: a config file if given, its source, ``--set`` and the shorthand flags."""
    configs = [item for item in args.inputs if item.lower().endswith((".yaml", ".yml"))]
    sources = [item for item in args.inputs if item not in configs]
    if len(configs) > 1 or len(sources) > 1:
        raise run_config.ConfigError(["give at most one dataset and one run config"])
    overrides = {path: getattr(args, path) for path in [*DATA_FLAGS.values(), "data.packing", "data.drop_duplicates"]
                 if getattr(args, path) is not None}
    if args.columns is not None:
        overrides["data.columns"] = _columns(args.columns)
    if sources:
        overrides["dataset"] = sources[0]
    data = run_config.read_yaml(configs[0]) if configs else {}
    if isinstance(data, dict):
        data = run_config.apply_overrides(run_config.apply_overrides(data, args.set), overrides)
    config = run_config.from_mapping(data, configs[0] if configs else "", require_dataset=False)
    if not config.dataset:
        raise run_config.ConfigError(["dataset: no dataset given; name the file, or a run config that has one"])
    return config


def _columns(items: list[str]) -> dict[str, str]:
    columns = {}
    for item in items:
        field, sep, column = item.partition("=")
        if not sep or not field or not column:
            raise run_config.ConfigError([f"--columns: '{item}' is not FIELD=COLUMN, e.g. --columns output=answer"])
        columns[field] = column
    return columns
