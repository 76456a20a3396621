"""``llamadesk-engine``: the engine's command line. The GUI, the tests and a terminal user run the same commands.

Only ``engine.light`` is imported here; each command imports the ``engine.heavy`` modules it runs, so ``--help`` and
``models`` answer instantly. Every command that takes run settings reads them the same way: an optional run config
YAML, then ``--set field.path=value`` overrides by the schema's dotted names.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from engine import __version__
from engine.light import config as run_config
from engine.light import gpu, paths, ranks
from engine.light.errors import UserError
from engine.light.export_options import FORMATS, MERGE_INTO, QUANTS, ExportOptions
from engine.light.run_folder import RunFolder


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llamadesk-engine", description="LlamaDesk engine: data, models, training.")
    parser.add_argument("--version", action="version", version=f"llamadesk-engine {__version__}")
    parser.add_argument("--home", help=f"LlamaDesk's data folder (models, runs, caches); default: ${paths.ENV_HOME} "
                        "or the per-user data folder")
    commands = parser.add_subparsers(metavar="COMMAND")
    _add_model_commands(commands)
    _add_data_commands(commands)
    _add_run_commands(commands)
    _add_scale_commands(commands)
    _add_api_commands(commands)
    return parser


def _add_model_commands(commands) -> None:
    """What this machine has and which models it can use."""
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


def _add_data_commands(commands) -> None:
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
    data_check.set_defaults(handler=_cmd_data_check)


def _add_run_commands(commands) -> None:
    """Runs and what surrounds them: train, estimate, chat, the config, the demo."""
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

    timing = commands.add_parser("time", help="how long a run will take here: a short trial with its settings and "
                                 "data (loading, a few steps, an evaluation pass, generation), extrapolated")
    _add_config_options(timing)
    timing.add_argument("--steps", type=int, default=3, help="trial steps measured (after one warm-up step)")
    timing.add_argument("--json", action="store_true", help="protocol lines even on a terminal")
    timing.set_defaults(handler=_cmd_time)

    chat = commands.add_parser("chat", help="chat with a base model, optionally with a run's adapter (JSON on stdin)")
    chat.add_argument("--model", default=None, help="base model reference (default: the run's model, or demo)")
    chat.add_argument("--run", help="a finished run (folder or name): chat with its adapter")
    chat.add_argument("--adapter", help="an adapter folder (instead of --run)")
    chat.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"))
    chat.set_defaults(handler=_cmd_chat)

    config = commands.add_parser("config", help="print a run config with every field documented: the defaults, or a "
                                 "config file with --set changes applied")
    _add_config_options(config)
    config.add_argument("--dataset", default=None, help="dataset to put in the config (same as --set dataset=FILE)")
    config.set_defaults(handler=_cmd_config)

    evaluate = commands.add_parser("eval", help="compare a finished run's fine-tune with its base model on the "
                                   "validation split: loss, perplexity and greedy answers scored with ROUGE-L")
    evaluate.add_argument("run", help="the run (folder or name)")
    evaluate.add_argument("--prompts", type=int, help="validation prompts both models answer (default: the run's "
                          "train.compare_prompts)")
    evaluate.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"))
    evaluate.add_argument("--json", action="store_true", help="protocol lines even on a terminal")
    evaluate.set_defaults(handler=_cmd_eval)
    export = commands.add_parser("export", help="export a finished run: merged model, GGUF, Ollama or the adapter, "
                                 "verified against the fine-tune")
    export.add_argument("run", help="the run (folder or name)")
    export.add_argument("--format", choices=list(FORMATS), default="gguf", help="; ".join(
        f"{k}: {v}" for k, v in FORMATS.items()))
    export.add_argument("--quant", choices=list(QUANTS), default="q4_k_m", help="GGUF and Ollama: " + "; ".join(
        f"{k}: {v}" for k, v in QUANTS.items()))
    export.add_argument("--merge-into", choices=list(MERGE_INTO), default="trained",
                        help="a 4-bit run's adapter merged into: "
                        + "; ".join(f"{k}: {v}" for k, v in MERGE_INTO.items()))
    export.add_argument("--system", default="", help="Ollama: the Modelfile's system prompt")
    export.add_argument("--out", type=Path, help="the export folder (default: <home>/exports/<run>-<format>)")
    export.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"))
    export.add_argument("--json", action="store_true", help="protocol lines even on a terminal")
    export.set_defaults(handler=_cmd_export)

    demo = commands.add_parser("demo", help="the offline demo: ask, fine-tune on the bundled sample, ask again")
    demo.add_argument("--epochs", type=float, help="passes over the sample (default 3)")
    demo.set_defaults(handler=_cmd_demo)


def _add_scale_commands(commands) -> None:
    """Beyond one process: a cluster job folder, and the rank command that the launcher and torchrun start."""
    cluster = commands.add_parser("cluster", help="write a self-contained job folder that trains a run on a cluster "
                                  "with torchrun (launch script, Slurm and SkyPilot templates)")
    _add_config_options(cluster)
    cluster.add_argument("--out", required=True, metavar="FOLDER", help="the job folder to write (new or empty)")
    cluster.add_argument("--nodes", type=int, default=2, help="machines (default 2)")
    cluster.add_argument("--gpus-per-node", type=int, default=8, help="GPUs on each machine (default 8)")
    cluster.add_argument("--accelerator", default="A100", help="SkyPilot's GPU type for sky.yaml (default A100)")
    cluster.add_argument("--json", action="store_true", help="the result as one JSON object")
    cluster.set_defaults(handler=_cmd_cluster)

    # One rank of a multi-process run: started by the engine's launcher, or by torchrun from a cluster job folder.
    rank = commands.add_parser("rank")
    rank.add_argument("run_dir")
    rank.add_argument("--resume", action="store_true")
    rank.add_argument("--human", action="store_true", help="readable progress on stdout (a cluster job's log)")
    rank.add_argument("--model-folder", help="load the base model from here (a cluster job's copy); the run's config "
                      "keeps naming the model as it was chosen")
    rank.set_defaults(handler=_cmd_rank)


def _add_api_commands(commands) -> None:
    """An OpenAI-compatible model beside the fine-tune, and what each way costs."""
    api = commands.add_parser("compare-api", help="add an OpenAI-compatible model's answers to a finished run's "
                              "comparison (its validation prompts, scored with ROUGE-L); the key comes from the "
                              "keyring or $LLAMADESK_API_KEY")
    api.add_argument("run", help="a finished run with a comparison (folder or name)")
    api.add_argument("--url", required=True, help="the API's base URL, e.g. https://api.openai.com/v1")
    api.add_argument("--model", required=True, help="the model name, e.g. gpt-4o-mini")
    api.add_argument("--max-tokens", type=int, default=256)
    api.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each answer")
    api.add_argument("--yes", action="store_true", help="send to an endpoint off this computer without asking")
    api.set_defaults(handler=_cmd_compare_api)

    costs = commands.add_parser("costs", help="a run against the API: its dataset as OpenAI fine-tuning JSONL, the "
                                "tokens, an API fine-tune's price and N requests a month, beside the run's time and "
                                "energy (prices: the dated table, editable)")
    costs.add_argument("run", help="a run (folder or name)")
    costs.add_argument("--api-model", default="gpt-4o-mini", help="the API model to price (default gpt-4o-mini)")
    costs.add_argument("--requests", type=int, default=10_000, help="requests a month to price (default 10,000)")
    costs.add_argument("--jsonl", metavar="FILE", help="also write the dataset as OpenAI fine-tuning JSONL here")
    costs.add_argument("--json", action="store_true", help="one machine-readable JSON object")
    costs.set_defaults(handler=_cmd_costs)


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", help="a run config YAML (see 'llamadesk-engine config')")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a config field, e.g. --set model=llama-3.1-8b --set train.max_steps=20")


# Shorthands of ``data check`` for the settings it uses most: each names a run config field, whose type, default,
# bounds and documentation come from the schema.
DATA_FLAGS = {"--model": "model", "--format": "data.format", "--cutoff": "data.cutoff", "--train-on": "data.train_on",
              "--validation-share": "data.validation_share", "--seed": "data.seed"}


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


def _status(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _cmd_models(args) -> int:
    from engine.light.catalog import load_catalog
    from engine.light.units import human_bytes, human_count

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
    from engine.light import gpu

    result = gpu.probe()
    print(json.dumps(result.to_dict(), indent=2) if args.json else gpu.describe(result))
    return 0


def _cmd_model_fetch(args) -> int:
    from engine.heavy.models.resolve import model_folder

    folder = model_folder(args.reference, progress=_status, instruct=not args.base)
    print(folder.path)
    return 0


def _cmd_model_check(args) -> int:
    from engine.light.model_folder import inspect_folder
    from engine.light.units import human_bytes, human_count

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
    from engine.heavy.data import pipeline, readers, report_text
    from engine.heavy.models.resolve import load_tokenizer

    config = _data_check_config(args)
    readers.require_source(config.dataset)
    tokenizer = load_tokenizer(config.model, progress=_status)
    prepared = pipeline.prepare(config.dataset, tokenizer, config.data, preview_rows=args.preview,
                                use_cache=not args.no_cache)
    if args.json:
        print(json.dumps(prepared.to_dict()))
    else:
        print(report_text.render(prepared, max_problems=args.problems, color=sys.stdout.isatty()))
    return 0 if prepared.usable else 1


def _cmd_selftest(args) -> int:
    from engine.heavy import install_check

    report = install_check.run()
    if args.json:
        print(json.dumps(report))
    else:
        device = report.get("device") or {}
        print("\n".join(f"{name} {version}" for name, version in report["versions"].items()))
        print(f"device: {device.get('kind', 'unknown')} ({device.get('name', 'unknown')})")
        print("self-test passed" if report["ok"] else "self-test FAILED:\n  " + "\n  ".join(report["problems"]))
    return 0 if report["ok"] else 1


def _cmd_token(args) -> int:
    from engine.light import hf_token

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


def _load_config(args, *, require_dataset: bool = True) -> run_config.RunConfig:
    return run_config.load(args.config, args.set, require_dataset=require_dataset)


def _cmd_train(args) -> int:
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
        config, run_dir = _load_config(args), None
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


def _cmd_rank(args) -> int:
    from engine.heavy import distributed, train
    from engine.heavy.control import Control
    from engine.heavy.events import Emitter, claim_stdout

    out = claim_stdout()
    # Rank 0 writes the run folder (the launcher passes its events on); on a cluster it also prints progress.
    emitter = Emitter(out if args.human and distributed.is_main() else None, human=True)
    return train.run_rank(Path(args.run_dir), emitter=emitter, control=Control(), resume=args.resume,
                          model_dir=Path(args.model_folder) if args.model_folder else None)


def _cmd_costs(args) -> int:
    from engine.heavy import costs
    from engine.light import cost_report

    result = costs.estimate(RunFolder.find(args.run), api_model=args.api_model, requests_per_month=args.requests,
                            jsonl=Path(args.jsonl) if args.jsonl else None)
    print(json.dumps(result) if args.json else cost_report.text(result))
    return 0


def _cmd_compare_api(args) -> int:
    from engine.light import api_compare
    from engine.light.api_chat import Endpoint

    folder = RunFolder.find(args.run)
    endpoint = Endpoint(args.url, args.model, args.timeout)
    if not endpoint.is_local() and not args.yes:
        count = len((folder.evaluation() or {}).get("answers", []))
        print(f"The {count} validation prompts of {folder.name} will be sent to {endpoint.host}, off this computer.",
              file=sys.stderr)
        if not sys.stdin.isatty() or input("Send them? [y/N] ").strip().lower() not in ("y", "yes"):
            print("Nothing was sent (--yes sends without asking).", file=sys.stderr)
            return 1
    result = api_compare.compare(folder, endpoint, max_tokens=args.max_tokens,
                                 progress=lambda text: print(text, file=sys.stderr))
    api = result["api"]
    cost = f", ${api['cost_usd']:.4f}" if api["cost_usd"] is not None else ""
    print(f"{endpoint.model}: ROUGE-L {api['rouge_l']:.3f} on {api['answered']} prompts "
          f"({api['prompt_tokens']} + {api['completion_tokens']} tokens{cost}, {api['seconds']:.1f} s); "
          f"fine-tuned {result['after'].get('rouge_l') or 0:.3f}, base {result['before'].get('rouge_l') or 0:.3f}")
    if api["stopped"]:
        print(f"stopped early: {api['stopped']}", file=sys.stderr)
    return 0


def _cmd_cluster(args) -> int:
    from engine.heavy import cluster_job

    config = _load_config(args)
    job = cluster_job.write(config, Path(args.out), nodes=args.nodes, gpus_per_node=args.gpus_per_node,
                            accelerator=args.accelerator, progress=lambda text: print(text, file=sys.stderr))
    commands = {"slurm": f"cd {job.folder} && sbatch slurm.sbatch",
                "skypilot": f"cd {job.folder} && sky launch -c {job.run.name} sky.yaml",
                "torchrun": f"NNODES={job.nodes} NPROC_PER_NODE={job.gpus_per_node} RDZV_ENDPOINT=FIRST_NODE:29500 "
                            f"bash {job.folder / 'launch.sh'}   (on every node)"}
    if args.json:
        print(json.dumps({"folder": str(job.folder), "run": job.run.name, "nodes": job.nodes,
                          "gpus_per_node": job.gpus_per_node, "commands": commands}))
        return 0
    print(f"Job folder: {job.folder}\n{job.nodes} node(s) × {job.gpus_per_node} GPU(s); run folder {job.run.name}/")
    for name, command in commands.items():
        print(f"{name}: {command}")
    print("See README.txt there.")
    return 0


def _cmd_time(args) -> int:
    from engine.heavy import time_trial
    from engine.heavy.control import Control
    from engine.heavy.device import describe
    from engine.heavy.events import Emitter, claim_stdout
    from engine.heavy.train_failures import TrainingFailed
    from engine.light import protocol
    from engine.light.units import format_duration

    config = _load_config(args)
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


def _cmd_estimate(args) -> int:
    from engine.light import fit

    config = _load_config(args, require_dataset=False)
    free = int(args.free_gib * 2**30) if args.free_gib else None
    report = fit.check(config, free_bytes=free, gpu_name="the given free memory" if free else None)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.text())
    return 0


def _cmd_chat(args) -> int:
    from engine.heavy import chat
    from engine.heavy.control import Control
    from engine.heavy.device import describe
    from engine.heavy.events import Emitter, claim_stdout
    from engine.light import protocol

    adapter, model, config = (Path(args.adapter) if args.adapter else None), args.model, None
    if args.run:
        folder = RunFolder.find(args.run)
        adapter, config = folder.adapter_dir, folder.load_config()
    elif adapter is not None:
        config = _adapter_config(adapter)
    model = model or (config.model if config else "demo")
    emitter = Emitter(claim_stdout())
    emitter.emit(protocol.Hello(protocol.PROTOCOL_VERSION, __version__, describe(args.device), "chat"))
    control = Control()
    control.listen()
    return chat.serve(model, adapter, emitter=emitter, control=control, device=args.device, config=config)


def _adapter_config(adapter: Path) -> run_config.RunConfig | None:
    """The run config an adapter folder records (llamadesk.json), so its base loads as the run trained on it."""
    try:
        data = json.loads((adapter / "llamadesk.json").read_text(encoding="utf-8"))["config"]
        return run_config.from_mapping(data, str(adapter / "llamadesk.json"), require_dataset=False)
    except (OSError, ValueError, KeyError, TypeError, run_config.ConfigError):
        return None  # an adapter from elsewhere: the base loads with the defaults


def _cmd_eval(args) -> int:
    from engine.heavy import evaluate_run
    from engine.heavy.device import describe
    from engine.heavy.events import Emitter, claim_stdout
    from engine.light import protocol

    folder = RunFolder.find(args.run)
    if not folder.is_run():
        print(f"error: {args.run}: not a run folder (no config.yaml)", file=sys.stderr)
        return 1
    human = sys.stdout.isatty() and not args.json
    emitter = Emitter(claim_stdout(), human=human)
    emitter.emit(protocol.Hello(protocol.PROTOCOL_VERSION, __version__, describe(args.device), "eval"))
    try:
        result = evaluate_run.run(folder, emitter=emitter, device=args.device, prompts=args.prompts)
    except UserError as exc:
        emitter.emit(protocol.Error(kind=exc.kind, message=f"{exc.where}: {exc.message}" if exc.where else exc.message,
                                    hint=exc.hint))
        emitter.emit(protocol.State("failed"))
        return 1
    if human:
        print(evaluate_run.summary(result))
    return 0


def _cmd_export(args) -> int:
    from engine.heavy.control import Control
    from engine.heavy.device import describe
    from engine.heavy.events import Emitter, claim_stdout
    from engine.heavy.export import job
    from engine.light import protocol

    folder = RunFolder.find(args.run)
    if not folder.is_run():
        print(f"error: {args.run}: not a run folder (no config.yaml)", file=sys.stderr)
        return 1
    options = ExportOptions(args.format, args.quant, args.merge_into, args.system, args.out)
    emitter = Emitter(claim_stdout(), human=sys.stdout.isatty() and not args.json)
    emitter.emit(protocol.Hello(protocol.PROTOCOL_VERSION, __version__, describe(args.device), "export"))
    control = Control()
    control.listen()
    try:
        return job.run(folder, options, emitter=emitter, control=control, device=args.device)
    except UserError as exc:
        emitter.emit(protocol.Error(kind=exc.kind, message=f"{exc.where}: {exc.message}" if exc.where else exc.message,
                                    hint=exc.hint))
        emitter.emit(protocol.State("failed"))
        return 1


def _cmd_config(args) -> int:
    if args.dataset is not None:
        args.set = [*args.set, f"dataset={json.dumps(args.dataset)}"]
    config = _load_config(args, require_dataset=False)
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


def _cmd_demo(args) -> int:
    from engine.heavy import demo_job

    overrides = {"train.epochs": args.epochs} if args.epochs else {}
    return demo_job.run(**overrides)


def _table(rows: list[tuple]) -> None:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())
