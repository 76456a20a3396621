"""``chat``: a base model, optionally with a run's adapter and an exported GGUF, answering protocol commands on
stdin."""

from __future__ import annotations

import json
from pathlib import Path

from engine import __version__
from engine.light import config as run_config
from engine.light.run_folder import RunFolder


def add_commands(commands) -> None:
    chat = commands.add_parser("chat", help="chat with a base model, optionally with a run's adapter (JSON on stdin)")
    chat.add_argument("--model", default=None, help="base model reference (default: the run's model, or demo)")
    chat.add_argument("--run", help="a finished run (folder or name): chat with its adapter")
    chat.add_argument("--adapter", help="an adapter folder (instead of --run)")
    chat.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"))
    chat.add_argument("--export", metavar="GGUF", help="also load an exported GGUF file (or an export folder): "
                      "requests with adapter \"export\" are answered by it, in llama.cpp")
    chat.set_defaults(handler=_chat)


def _chat(args) -> int:
    from engine.heavy import chat
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
    control = chat.ChatControl()
    if args.export:  # loaded first, once the model is, as if the client had asked
        control.handle(protocol.LoadExport(str(Path(args.export).expanduser().resolve())))
    control.listen()
    return chat.serve(model, adapter, emitter=emitter, control=control, device=args.device, config=config)


def _adapter_config(adapter: Path) -> run_config.RunConfig | None:
    """The run config an adapter folder records (llamadesk.json), so its base loads as the run trained on it."""
    try:
        data = json.loads((adapter / "llamadesk.json").read_text(encoding="utf-8"))["config"]
        return run_config.from_mapping(data, str(adapter / "llamadesk.json"), require_dataset=False)
    except (OSError, ValueError, KeyError, TypeError, run_config.ConfigError):
        return None  # an adapter from elsewhere: the base loads with the defaults
