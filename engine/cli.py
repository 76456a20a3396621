"""``llamadesk-engine``: the engine's command line. The GUI, the tests and a terminal user run the same commands.

Heavy libraries are imported inside the commands, so ``--help`` and ``models`` answer instantly.
"""

from __future__ import annotations

import argparse
import json
import sys

from engine import __version__, paths


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.home:
        paths.set_home(args.home)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    from engine.data.problems import DatasetError
    from engine.models.errors import ModelSourceError

    try:
        return args.run(args) or 0
    except (DatasetError, ModelSourceError) as exc:
        if getattr(args, "json", False):
            print(json.dumps({"error": exc.to_dict()}, ensure_ascii=False))
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llamadesk-engine", description="LlamaDesk engine: data, models, training.")
    parser.add_argument("--version", action="version", version=f"llamadesk-engine {__version__}")
    parser.add_argument("--home", help=f"LlamaDesk's data folder (models, runs, caches); default: ${paths.ENV_HOME} "
                        "or the per-user data folder")
    commands = parser.add_subparsers(metavar="COMMAND")

    models = commands.add_parser("models", help="list the LLaMA models you can pick")
    models.add_argument("--json", action="store_true", help="machine-readable output")
    models.set_defaults(run=_cmd_models)

    model = commands.add_parser("model", help="fetch or check a model").add_subparsers(metavar="ACTION")
    fetch = model.add_parser("fetch", help="download a model (catalog key, hub id) or prepare the demo model")
    fetch.add_argument("reference", help="'demo', a catalog key (see 'models'), or a Hugging Face id")
    fetch.add_argument("--base", action="store_true", help="the base model instead of the instruct variant")
    fetch.set_defaults(run=_cmd_model_fetch)
    check = model.add_parser("check", help="validate a local model folder")
    check.add_argument("folder")
    check.add_argument("--allow-pickle", action="store_true", help="accept .bin/.pt weights (they can run code)")
    check.add_argument("--json", action="store_true")
    check.set_defaults(run=_cmd_model_check)

    data = commands.add_parser("data", help="check a dataset").add_subparsers(metavar="ACTION")
    data_check = data.add_parser("check", help="detect the format, validate, tokenize and preview a dataset")
    data_check.add_argument("source", help="a .json/.jsonl/.csv/.tsv/.parquet/.txt file, a save_to_disk folder, "
                            "or a hub dataset id")
    _add_data_options(data_check)
    data_check.add_argument("--preview", type=int, default=3, metavar="N", help="rendered examples to show")
    data_check.add_argument("--problems", type=int, default=20, metavar="N", help="problems to list")
    data_check.add_argument("--json", action="store_true", help="one machine-readable JSON object")
    data_check.set_defaults(run=_cmd_data_check)

    demo = commands.add_parser("demo", help="the offline demo: demo model + bundled sample dataset")
    demo.set_defaults(run=_cmd_demo)
    return parser


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    from engine.data.formats import FORMATS

    parser.add_argument("--format", choices=FORMATS, help="override the detected format")
    parser.add_argument("--columns", nargs="*", default=[], metavar="FIELD=COLUMN",
                        help="map your column names, e.g. instruction=question output=answer")
    parser.add_argument("--model", default="demo", help="whose tokenizer and chat template to use (default: demo)")
    parser.add_argument("--cutoff", type=int, default=1024, help="longest sequence in tokens")
    parser.add_argument("--train-on", choices=("assistant", "all"), default="assistant")
    parser.add_argument("--packing", action="store_true", help="pack short examples into full sequences")
    parser.add_argument("--validation-share", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--keep-duplicates", action="store_true")
    parser.add_argument("--no-cache", action="store_true", help="tokenize again even if a cached result exists")


def _data_settings(args):
    from engine.data.pipeline import DataSettings
    from engine.data.problems import DatasetError

    columns = {}
    for item in args.columns:
        field, sep, column = item.partition("=")
        if not sep or not field or not column:
            raise DatasetError(f"--columns: '{item}' is not FIELD=COLUMN", hint="e.g. --columns output=answer")
        columns[field] = column
    return DataSettings(format=args.format, columns=columns, cutoff=args.cutoff, train_on=args.train_on,
                        packing=args.packing, validation_share=args.validation_share, seed=args.seed,
                        drop_duplicates=not args.keep_duplicates)


def _status(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _cmd_models(args) -> int:
    from engine.models.catalog import human_bytes, human_count, load_catalog

    specs = load_catalog()
    if args.json:
        print(json.dumps([{"key": s.key, "name": s.name, "hub_id": s.hub_id, "instruct_hub_id": s.instruct_hub_id,
                           "params": s.param_count, "context": s.max_position_embeddings, "gated": s.gated,
                           "license": s.license, "download_bytes": s.download_bytes} for s in specs], indent=2))
        return 0
    rows = [("KEY", "NAME", "PARAMS", "CONTEXT", "GATED", "LICENSE", "DOWNLOAD")]
    rows += [(s.key, s.name, human_count(s.param_count), f"{s.max_position_embeddings:,}", "yes" if s.gated else "no",
              s.license, human_bytes(s.download_bytes)) for s in specs]
    _table(rows)
    print("\nAlso: 'demo' (SmolLM2-135M-Instruct, works offline), any Hugging Face id, or a local folder.")
    return 0


def _cmd_model_fetch(args) -> int:
    from engine.models.resolve import model_folder

    folder = model_folder(args.reference, progress=_status, instruct=not args.base)
    print(folder.path)
    return 0


def _cmd_model_check(args) -> int:
    from engine.models.catalog import human_bytes, human_count
    from engine.models.local import inspect_folder

    folder = inspect_folder(args.folder, allow_pickle=args.allow_pickle)
    if args.json:
        print(json.dumps(folder.to_dict(), indent=2))
        return 0
    info = folder.to_dict()
    params = human_count(info["params"]) if info["params"] else "?"
    print(f"OK: {info['architecture']}, {params} parameters, {len(info['weights'])} {info['weight_format']} file(s), "
          f"{human_bytes(info['size_bytes'])}")
    return 0


def _cmd_data_check(args) -> int:
    from engine.data import pipeline, report_text
    from engine.models.resolve import load_tokenizer

    settings = _data_settings(args)
    tokenizer = load_tokenizer(args.model, progress=_status)
    prepared = pipeline.prepare(args.source, tokenizer, settings, preview_rows=args.preview,
                                use_cache=not args.no_cache)
    if args.json:
        print(json.dumps(prepared.to_dict(), ensure_ascii=False))
    else:
        print(report_text.render(prepared, max_problems=args.problems, color=sys.stdout.isatty()))
    return 0 if prepared.usable else 1


def _cmd_demo(args) -> int:
    import resources
    from engine.data import pipeline, report_text
    from engine.models.resolve import DEMO, load_tokenizer

    sample = str(resources.path("sample/harbor_lights.json"))
    _status("LlamaDesk demo: preparing the demo model (first time only) and checking the bundled sample dataset.")
    tokenizer = load_tokenizer(DEMO, progress=_status)
    prepared = pipeline.prepare(sample, tokenizer, pipeline.DataSettings(), preview_rows=2)
    print(report_text.render(prepared, max_problems=10, color=sys.stdout.isatty()))
    return 0 if prepared.usable else 1


def _table(rows: list[tuple]) -> None:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())
