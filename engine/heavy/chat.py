"""``llamadesk-engine chat``: answer chat requests from stdin, streaming tokens back, until shutdown or end of input.

One request at a time; a ``cancel`` stops the running generation within a token or two. Besides the base model and
its adapter, the session can load an exported GGUF file (``load_export``): llama.cpp itself then answers the requests
addressed to it (``adapter: "export"``), with the chat template and end-of-turn tokens the file carries, as LM
Studio and Ollama will.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from engine.heavy import device as devices
from engine.heavy.control import Control
from engine.heavy.events import Emitter
from engine.heavy.generation import Generator, Reply
from engine.heavy.models.resolve import model_folder
from engine.light import protocol
from engine.light.config import RunConfig
from engine.light.errors import ModelSourceError
from engine.light.units import human_bytes

log = logging.getLogger("engine.chat")
EXPORT_CONTEXT = 8192  # tokens of conversation the export keeps; less when the model was made for less
_FINISH_REASONS = {"stop": "end", "length": "length"}  # llama.cpp's names → the protocol's


class ChatControl(Control):
    """The chat session's commands: loading and unloading an export wait in line with the chat requests, since the
    session does one thing at a time."""

    def handle(self, msg) -> None:
        if isinstance(msg, (protocol.LoadExport, protocol.UnloadExport)):
            self.requests.put(msg)
        else:
            super().handle(msg)


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
    export = ExportSlot(emitter)
    try:
        while True:
            request = control.requests.get()
            if request is None or isinstance(request, protocol.Shutdown):
                return 0
            if isinstance(request, protocol.LoadExport):
                export.load(Path(request.path))
            elif isinstance(request, protocol.UnloadExport):
                export.unload()
            elif request.adapter == "export":
                _answer(request, emitter, control, export.reply)
            else:
                _answer(request, emitter, control, generator.reply)
    finally:
        export.unload()


def _answer(request: protocol.Chat, emitter: Emitter, control: Control, reply_with) -> None:
    emitter.emit(protocol.State("generating", request.id))
    try:
        reply = reply_with(
            request.messages, system=request.system, adapter=request.adapter != "off",
            temperature=request.temperature, top_p=request.top_p, top_k=request.top_k,
            max_new_tokens=request.max_new_tokens, repetition_penalty=request.repetition_penalty,
            on_text=lambda text: emitter.emit(protocol.ChatToken(request.id, text)),
            should_stop=lambda: control.is_cancelled(request.id),
        )
        emitter.emit(protocol.ChatDone(request.id, reply.reason, reply.tokens, round(reply.elapsed_s, 3)))
    except ExportProblem as exc:
        log.warning("export request %s failed: %s", request.id, exc.message)
        emitter.emit(protocol.Error(kind="chat", message=exc.message, hint=exc.hint))
        emitter.emit(protocol.ChatDone(request.id, "error"))
    except Exception as exc:  # a bad request (e.g. roles the template rejects) must not end the chat session
        log.exception("chat request %s failed", request.id)
        emitter.emit(protocol.Error(kind="chat", message=f"{type(exc).__name__}: {exc}",
                                    hint="check the conversation (roles must alternate user/assistant)"))
        emitter.emit(protocol.ChatDone(request.id, "error"))
    finally:
        control.clear_cancel(request.id)
        emitter.emit(protocol.State("ready"))


# ---- the exported GGUF, in llama.cpp --------------------------------------------------------------------------------

class ExportProblem(Exception):
    """Why the export cannot be loaded or cannot answer, in the user's words, and what to do about it."""

    def __init__(self, message: str, hint: str):
        super().__init__(message)
        self.message, self.hint = message, hint


class _Stopped(Exception):
    """Raised from llama.cpp's streaming callback: llama.cpp ends a stream whose callback fails."""


class ExportSlot:
    """At most one exported GGUF, loaded in llama.cpp, answering like the generator does."""

    def __init__(self, emitter: Emitter):
        self._emitter = emitter
        self._llama = None
        self._context = 0  # tokens the loaded export keeps

    def load(self, path: Path) -> bool:
        """Load ``path`` (a GGUF file, or an export folder holding one) in place of the export loaded before. A
        problem is reported as an error of kind "export"; the session goes on without an export."""
        self.unload()  # first, so two large files never share the memory
        self._emitter.emit(protocol.State("loading_export", str(path)))
        try:
            self._llama, self._context, loaded = _open_export(path)
            self._emitter.emit(loaded)
        except ExportProblem as exc:
            self._emitter.emit(protocol.Error(kind="export", message=exc.message, hint=exc.hint))
        except Exception as exc:  # whatever else goes wrong with one file must not end the chat session
            log.exception("loading %s failed", path)
            self._emitter.emit(protocol.Error(kind="export", message=f"{path.name} cannot be loaded: {exc}"))
        self._emitter.emit(protocol.State("ready"))
        return self._llama is not None

    def unload(self) -> None:
        if self._llama is not None:
            self._llama.close()
            self._llama = None

    def reply(self, messages: list[dict], *, system: str = "", temperature: float = 0.0, max_new_tokens: int = 256,
              top_p: float | None = None, top_k: int | None = None, repetition_penalty: float | None = None,
              on_text=None, should_stop=None, **_other) -> Reply:
        """The export's answer to the conversation, with the same sampling settings as the fine-tune's. llama.cpp
        renders the GGUF's chat template and stops at its end-of-turn tokens."""
        if self._llama is None:
            raise ExportProblem("no exported model is loaded in this chat session", "load an exported GGUF file first")
        pieces, stopped = [], []

        def received(text: str) -> None:
            if should_stop is not None and should_stop():
                stopped.append(True)
                raise _Stopped
            pieces.append(text)
            if on_text is not None:
                on_text(text)

        chat = ([{"role": "system", "content": system}] if system else []) + list(messages)
        started = time.monotonic()
        try:
            found = self._llama.chat(chat, max_tokens=max_new_tokens, temperature=temperature, top_p=top_p, top_k=top_k,
                                     repetition_penalty=repetition_penalty, on_text=received)
        except RuntimeError as exc:  # llama.cpp refused the conversation
            raise ExportProblem(str(exc), "the file's chat template may not take a system prompt, or the "
                                f"conversation may be longer than the {self._context} tokens it keeps: Clear "
                                "starts afresh") from None
        reason = "cancelled" if stopped else _FINISH_REASONS.get(found["finish_reason"], "end")
        tokens = (found.get("usage") or {}).get("completion_tokens") or len(pieces)  # streamed, a piece is a token
        return Reply("".join(pieces), reason, tokens, time.monotonic() - started)


def _open_export(path: Path):
    """llama.cpp with the GGUF ``path`` names loaded, the tokens of conversation it keeps, and the export_loaded
    message that describes it."""
    gguf = gguf_in(path)
    header = _header(gguf)
    context = min(header["context"] or 4096, EXPORT_CONTEXT)
    llama = _load_in_llama_cpp(gguf, context=context)
    quantization = header["quantization"]
    detail = f"{quantization or 'unknown type'}, {human_bytes(gguf.stat().st_size)}, run by llama.cpp"
    return llama, context, protocol.ExportLoaded(str(gguf), gguf.name, quantization, detail)


def gguf_in(path: Path) -> Path:
    """The GGUF file ``path`` names: the file itself, or the one in an export folder."""
    if path.is_dir():
        found = sorted(path.glob("*.gguf"))
        if len(found) != 1:
            raise ExportProblem(f"{path} holds {len(found) or 'no'} GGUF files",
                                "choose the .gguf file itself")
        return found[0]
    if not path.is_file():
        raise ExportProblem(f"there is no file at {path}", "choose an exported .gguf file that is still there")
    return path


def _header(gguf: Path) -> dict:
    """The file's quantization and trained context length, from its header; refuses a file that is no GGUF."""
    from engine.heavy.export import gguf_metadata

    try:
        metadata = gguf_metadata.read(gguf)
    except OSError as exc:
        raise ExportProblem(f"{gguf.name} cannot be read ({exc.strerror or exc})",
                            "check that the file is there and readable") from None
    except ValueError:  # the first bytes are not GGUF's
        raise ExportProblem(f"{gguf.name} is not a GGUF file", "choose the .gguf file of an export") from None
    except Exception:  # a header cut short (struct.error) or garbled
        raise ExportProblem(f"the header of {gguf.name} is damaged or incomplete",
                            "export the run again") from None
    architecture = metadata.get("general.architecture", "")
    return {"quantization": _quantization(metadata.get("general.file_type")),
            "context": metadata.get(f"{architecture}.context_length")}


def _quantization(file_type) -> str:
    """"Q4_K_M" for llama.cpp's file type MOSTLY_Q4_K_M; empty when the header does not say."""
    import gguf

    try:
        return gguf.LlamaFileType(int(file_type)).name.removeprefix("MOSTLY_").removeprefix("ALL_")
    except (TypeError, ValueError):
        return ""


def _load_in_llama_cpp(gguf: Path, *, context: int):
    from engine.heavy.llama_cpp import LlamaCpp, LlamaCppUnavailable

    try:
        return LlamaCpp(gguf, context=context)
    except LlamaCppUnavailable as exc:
        raise ExportProblem(str(exc), "reinstall LlamaDesk's engine") from None
    except RuntimeError:  # llama.cpp says only that it failed (its reasons go to stderr)
        raise ExportProblem(f"llama.cpp cannot load {gguf.name}",
                            "the file may be damaged or incomplete, or made for a newer llama.cpp: export the run "
                            "again") from None
