"""``export``: a finished run as a merged model, GGUF, an Ollama model or the adapter, verified against the
fine-tune."""

from __future__ import annotations

import sys
from pathlib import Path

from engine import __version__
from engine.light.errors import UserError
from engine.light.export_options import FORMATS, MERGE_INTO, QUANTS, ExportOptions
from engine.light.run_folder import RunFolder


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
