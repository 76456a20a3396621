"""``export``: a finished run as a merged model, GGUF, an Ollama model or the adapter, verified against the
fine-tune."""

from __future__ import annotations

from pathlib import Path

from engine.cli.common import failed, protocol_emitter, run_folder
from engine.light.errors import UserError
from engine.light.export_options import FORMATS, MERGE_INTO, QUANTS, ExportOptions


def add_commands(commands) -> None:
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
    export.add_argument("--out", type=Path, help="the export folder: new, empty, or an earlier export to replace (default: <home>/exports/<run>-<format>)")
    export.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"))
    export.add_argument("--json", action="store_true", help="protocol lines even on a terminal")
    export.set_defaults(handler=_export)


def _export(args) -> int:
    from engine.heavy.control import Control
    from engine.heavy.export import job

    folder = run_folder(args.run)
    if folder is None:
        return 1
    options = ExportOptions(args.format, args.quant, args.merge_into, args.system, args.out)
    emitter = protocol_emitter(args, "export")
    control = Control()
    control.listen()
    try:
        return job.run(folder, options, emitter=emitter, control=control, device=args.device)
    except UserError as exc:
        return failed(emitter, exc)
