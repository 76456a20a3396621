"""``llamadesk-engine chat``: answer chat requests from stdin, streaming tokens back, until shutdown or end of input.

One request at a time; a ``cancel`` stops the running generation within a token or two.
"""

from __future__ import annotations

import logging
from pathlib import Path

from engine.heavy import device as devices
from engine.heavy.control import Control
from engine.heavy.events import Emitter
from engine.heavy.generation import Generator
from engine.heavy.models.resolve import model_folder
from engine.light import protocol
from engine.light.config import RunConfig
from engine.light.errors import ModelSourceError

log = logging.getLogger("engine.chat")


def serve(model_reference: str, adapter: Path | None, *, emitter: Emitter, control: Control,
          device: str = "auto", config: RunConfig | None = None) -> int:
    """``config``: the run the adapter comes from; its base is loaded the way that run trained on it."""
    emitter.emit(protocol.State("loading_model", model_reference))
    try:
        if adapter is not None and not (adapter / "adapter_config.json").is_file():
            raise ModelSourceError("no adapter here (adapter_config.json is missing)", where=str(adapter),
                                   hint="choose a finished run's adapter folder", kind="no_adapter")
        folder = model_folder(model_reference, progress=lambda m: emitter.emit(protocol.Log("info", m)))
        generator = Generator.load(folder.path, adapter, device=devices.resolve_device(device), config=config)
    except ModelSourceError as exc:
        emitter.emit(protocol.Error(kind="model", message=str(exc.message), hint=exc.hint))
        emitter.emit(protocol.State("failed"))
        return 1
    loaded = "adapter loaded" if adapter else "base model"
    emitter.emit(protocol.State("ready", f"{loaded}; base weights in {generator.base_precision}"
                                + (", as the run trained on them" if config is not None else "")))
    while True:
        request = control.requests.get()
        if request is None or isinstance(request, protocol.Shutdown):
            return 0
        _answer(generator, request, emitter, control)


def _answer(generator, request: protocol.Chat, emitter: Emitter, control: Control) -> None:
    emitter.emit(protocol.State("generating", request.id))
    try:
        reply = generator.reply(
            request.messages, system=request.system, adapter=request.adapter != "off",
            temperature=request.temperature, top_p=request.top_p, top_k=request.top_k,
            max_new_tokens=request.max_new_tokens, repetition_penalty=request.repetition_penalty,
            on_text=lambda text: emitter.emit(protocol.ChatToken(request.id, text)),
            should_stop=lambda: control.is_cancelled(request.id),
        )
        emitter.emit(protocol.ChatDone(request.id, reply.reason, reply.tokens, round(reply.elapsed_s, 3)))
    except Exception as exc:  # a bad request (e.g. roles the template rejects) must not end the chat session
        log.exception("chat request %s failed", request.id)
        emitter.emit(protocol.Error(kind="chat", message=f"{type(exc).__name__}: {exc}",
                                    hint="check the conversation (roles must alternate user/assistant)"))
        emitter.emit(protocol.ChatDone(request.id, "error"))
    finally:
        control.clear_cancel(request.id)
        emitter.emit(protocol.State("ready"))
