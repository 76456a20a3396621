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
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    from engine.config import ConfigError
    from engine.data.problems import DatasetError
    from engine.models.errors import ModelSourceError

    try:
        return args.handler(args) or 0
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (DatasetError, ModelSourceError) as exc:
        if getattr(args, "json", False):
            print(json.dumps({"error": exc.to_dict()}))  # ASCII escapes: safe for any character in a path
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
    models.set_defaults(handler=_cmd_models)

    gpus = commands.add_parser("gpus", help="the NVIDIA GPUs: memory, load, temperature, power, other programs")
    gpus.add_argument("--json", action="store_true")
    gpus.set_defaults(handler=_cmd_gpus)

    model = commands.add_parser("model", help="fetch or check a model").add_subparsers(metavar="ACTION")
    fetch = model.add_parser("fetch", help="download a model (catalog key, hub id) or prepare the demo model")
    fetch.add_argument("reference", help="'demo', a catalog key (see 'models'), or a Hugging Face id")
    fetch.add_argument("--base", action="store_true", help="the base model instead of the instruct variant")
    fetch.set_defaults(handler=_cmd_model_fetch)
    check = model.add_parser("check", help="validate a local model folder")
    check.add_argument("folder")
    check.add_argument("--allow-pickle", action="store_true", help="accept .bin/.pt weights (they can run code)")
    check.add_argument("--json", action="store_true")
    check.set_defaults(handler=_cmd_model_check)

    selftest = commands.add_parser("selftest", help="check this engine installation: versions, device, a 4-bit "
                                   "layer forward and backward")
    selftest.add_argument("--json", action="store_true")
    selftest.set_defaults(handler=_cmd_selftest)

    token = commands.add_parser("token", help="store, check or remove the Hugging Face access token (gated models)")
    token.add_argument("action", choices=("set", "status", "clear"),
                       help="set reads the token from the terminal without echo, or from stdin")
    token.set_defaults(handler=_cmd_token)

    data = commands.add_parser("data", help="check a dataset").add_subparsers(metavar="ACTION")
    data_check = data.add_parser("check", help="detect the format, validate, tokenize and preview a dataset")
    data_check.add_argument("source", help="a .json/.jsonl/.csv/.tsv/.parquet/.txt file, a save_to_disk folder, "
                            "or a hub dataset id")
    _add_data_options(data_check)
    data_check.add_argument("--preview", type=int, default=3, metavar="N", help="rendered examples to show")
    data_check.add_argument("--problems", type=int, default=20, metavar="N", help="problems to list")
    data_check.add_argument("--json", action="store_true", help="one machine-readable JSON object")
    data_check.set_defaults(handler=_cmd_data_check)

    train = commands.add_parser("train", help="fine-tune: start a run from a config, or resume one")
    _add_config_options(train)
    train.add_argument("--resume", metavar="RUN", help="resume this run folder (or run name) from its latest "
                       "complete checkpoint; --set changes its settings (e.g. a smaller micro-batch)")
    train.add_argument("--json", action="store_true", help="protocol lines even on a terminal")
    train.set_defaults(handler=_cmd_train)

    estimate = commands.add_parser("estimate", help="GPU memory a run needs, line by line, against this GPU")
    _add_config_options(estimate)
    estimate.add_argument("--free-gib", type=float, help="judge against this much free memory instead of the GPU's")
    estimate.add_argument("--json", action="store_true")
    estimate.set_defaults(handler=_cmd_estimate)

    chat = commands.add_parser("chat", help="chat with a base model, optionally with a run's adapter (JSON on stdin)")
    chat.add_argument("--model", default=None, help="base model reference (default: the run's model, or demo)")
    chat.add_argument("--run", help="a finished run (folder or name): chat with its adapter")
    chat.add_argument("--adapter", help="an adapter folder (instead of --run)")
    chat.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"))
    chat.set_defaults(handler=_cmd_chat)

    config = commands.add_parser("config", help="print a run config with every field documented")
    config.add_argument("--dataset", default="", help="dataset to put in the config")
    config.set_defaults(handler=_cmd_config)

    demo = commands.add_parser("demo", help="the offline demo: ask, fine-tune on the bundled sample, ask again")
    demo.add_argument("--epochs", type=float, help="passes over the sample (default 3)")
    demo.set_defaults(handler=_cmd_demo)
    return parser


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", help="a run config YAML (see 'llamadesk-engine config')")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a config field, e.g. --set model=llama-3.1-8b --set train.max_steps=20")


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


def _cmd_gpus(args) -> int:
    from engine import gpu

    result = gpu.probe()
    print(json.dumps(result.to_dict(), indent=2) if args.json else gpu.describe(result))
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
    from engine.data import pipeline, readers, report_text
    from engine.models.resolve import load_tokenizer

    settings = _data_settings(args)
    readers.require_source(args.source)
    tokenizer = load_tokenizer(args.model, progress=_status)
    prepared = pipeline.prepare(args.source, tokenizer, settings, preview_rows=args.preview,
                                use_cache=not args.no_cache)
    if args.json:
        print(json.dumps(prepared.to_dict()))
    else:
        print(report_text.render(prepared, max_problems=args.problems, color=sys.stdout.isatty()))
    return 0 if prepared.usable else 1


def _cmd_selftest(args) -> int:
    from engine import selftest

    report = selftest.run()
    if args.json:
        print(json.dumps(report))
    else:
        device = report.get("device") or {}
        print("\n".join(f"{name} {version}" for name, version in report["versions"].items()))
        print(f"device: {device.get('kind', 'unknown')} ({device.get('name', 'unknown')})")
        print("self-test passed" if report["ok"] else "self-test FAILED:\n  " + "\n  ".join(report["problems"]))
    return 0 if report["ok"] else 1


def _cmd_token(args) -> int:
    from engine.models import hf_token

    if args.action == "clear":
        hf_token.delete_token()
        print("The stored token is removed.")
        return 0
    if args.action == "status":
        print("A Hugging Face token is available." if hf_token.get_token() else "No Hugging Face token is stored.")
        return 0
    if sys.stdin.isatty():
        import getpass

        value = getpass.getpass("Hugging Face access token: ")
    else:
        value = sys.stdin.readline()
    if not value.strip():
        print("error: no token given", file=sys.stderr)
        return 1
    where = hf_token.set_token(value)
    if where == "keyring":
        print("The token is stored in the system keyring.")
    else:
        print("warning: " + hf_token.fallback_warning(where), file=sys.stderr)
    return 0


def _load_config(args):
    import yaml

    from engine import config as run_config
    from engine.settings import set_path

    data = {}
    if args.config:
        try:
            data = yaml.safe_load(open(args.config, encoding="utf-8")) or {}
        except OSError as exc:
            raise run_config.ConfigError([f"cannot read the config: {exc.strerror}"], args.config) from None
        except yaml.YAMLError as exc:
            raise run_config.ConfigError([f"not valid YAML: {exc}"], args.config) from None
    for item in args.set:
        path, sep, value = item.partition("=")
        if not sep:
            raise run_config.ConfigError([f"--set {item}: expected FIELD=VALUE"])
        set_path(data, path, yaml.safe_load(value))
    return run_config.from_mapping(data, args.config or "")


def _cmd_train(args) -> int:
    from pathlib import Path

    from engine import protocol, train
    from engine.control import Control
    from engine.device import describe
    from engine.events import Emitter, claim_stdout

    human = sys.stdout.isatty() and not args.json
    if args.resume:
        run_dir = Path(args.resume) if Path(args.resume).is_dir() else paths.runs_dir() / args.resume
        if not (run_dir / "config.yaml").is_file():
            print(f"error: {args.resume}: not a run folder (no config.yaml)", file=sys.stderr)
            return 1
        config = None
        if args.set:  # resume with changed settings, e.g. a smaller micro-batch after running out of memory
            args.config = str(run_dir / "config.yaml")
            config = _load_config(args)
    else:
        if not args.config and not args.set:
            print("error: give a run config (or --resume RUN)", file=sys.stderr)
            return 2
        config, run_dir = _load_config(args), None
    emitter = Emitter(claim_stdout(), human=human)
    emitter.emit(protocol.Hello(protocol.PROTOCOL_VERSION, __version__, describe(), "train"))
    control = Control()
    control.on_client_gone = emitter.detach_if_client_gone
    control.listen()
    return train.run(config, emitter=emitter, control=control, resume_dir=run_dir)


def _cmd_estimate(args) -> int:
    from engine import fit

    if not any(item.startswith("dataset=") for item in args.set):
        args.set = [*args.set, "dataset=(not needed for the estimate)"]
    config = _load_config(args)
    free = int(args.free_gib * 2**30) if args.free_gib else None
    report = fit.check(config, free_bytes=free, gpu_name="the given free memory" if free else None)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.text())
    return 0


def _cmd_chat(args) -> int:
    from pathlib import Path

    from engine import chat, protocol
    from engine.config import load as load_config
    from engine.control import Control
    from engine.device import describe
    from engine.events import Emitter, claim_stdout

    adapter, model = (Path(args.adapter) if args.adapter else None), args.model
    if args.run:
        run_dir = Path(args.run) if Path(args.run).is_dir() else paths.runs_dir() / args.run
        adapter = run_dir / "adapter"
        model = model or load_config(run_dir / "config.yaml").model
    emitter = Emitter(claim_stdout())
    emitter.emit(protocol.Hello(protocol.PROTOCOL_VERSION, __version__, describe(args.device), "chat"))
    control = Control()
    control.listen()
    return chat.serve(model or "demo", adapter, emitter=emitter, control=control, device=args.device)


def _cmd_config(args) -> int:
    from engine import config as run_config

    config = run_config.RunConfig(dataset=args.dataset)
    docs = run_config.docs()
    lines = ["# LlamaDesk run config. Every field is optional except dataset; the values shown are the defaults."]
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


def _cmd_demo(args) -> int:
    from engine import demo

    overrides = {"train.epochs": args.epochs} if args.epochs else {}
    return demo.run(**overrides)


def _table(rows: list[tuple]) -> None:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())
