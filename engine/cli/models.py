"""What this machine has and which models it can use: ``models``, ``gpus``, ``model fetch|check``, ``selftest``,
``token``."""

from __future__ import annotations

import json
import sys

from engine.cli.common import status


def add_commands(commands) -> None:
    models = commands.add_parser("models", help="list the LLaMA models you can pick")
    models.add_argument("--json", action="store_true", help="machine-readable output")
    models.set_defaults(handler=_models)

    gpus = commands.add_parser("gpus", help="the NVIDIA GPUs: memory, load, temperature, power, other programs")
    gpus.add_argument("--json", action="store_true")
    gpus.set_defaults(handler=_gpus)

    model = commands.add_parser("model", help="fetch or check a model").add_subparsers(metavar="ACTION")
    fetch = model.add_parser("fetch", help="download a model (catalog key, hub id) or prepare the demo model")
    fetch.add_argument("reference", help="'demo', a catalog key (see 'models'), or a Hugging Face id")
    fetch.add_argument("--base", action="store_true", help="the base model instead of the instruct variant")
    fetch.set_defaults(handler=_model_fetch)
    check = model.add_parser("check", help="validate a local model folder")
    check.add_argument("folder")
    check.add_argument("--allow-pickle", action="store_true", help="accept .bin/.pt weights (they can run code)")
    check.add_argument("--json", action="store_true")
    check.set_defaults(handler=_model_check)

    selftest = commands.add_parser("selftest", help="check this engine installation: versions, device, a 4-bit "
                                   "layer forward and backward")
    selftest.add_argument("--json", action="store_true")
    selftest.set_defaults(handler=_selftest)

    token = commands.add_parser("token", help="store, check or remove the Hugging Face access token (gated models)")
    token.add_argument("action", choices=("set", "status", "clear"),
                       help="set reads the token from the terminal without echo, or from stdin")
    token.set_defaults(handler=_token)


def _models(args) -> int:
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


def _gpus(args) -> int:
    from engine.light import gpu

    result = gpu.probe()
    print(json.dumps(result.to_dict(), indent=2) if args.json else gpu.describe(result))
    return 0


def _model_fetch(args) -> int:
    from engine.heavy.models.resolve import model_folder

    folder = model_folder(args.reference, progress=status, instruct=not args.base)
    print(folder.path)
    return 0


def _model_check(args) -> int:
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


def _selftest(args) -> int:
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


def _token(args) -> int:
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


def _table(rows: list[tuple]) -> None:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())
