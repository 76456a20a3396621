"""The engine protocol: newline-delimited JSON messages, engine → client on stdout, client → engine on stdin.

Standard library only: the GUI imports this module too. Every message is a frozen dataclass with a ``type`` name;
``encode``/``decode`` convert to and from one JSON line. A ``Reader`` turns a byte stream into messages and counts
(never raises on) malformed or unknown lines, so a noisy peer cannot crash its reader.

Versioning: ``PROTOCOL_VERSION`` (sent in ``hello``) changes only when a message changes meaning or loses a field. A
new message type or a new field with a default is an addition within the version: an older peer counts the unknown
type as malformed and ignores it, and ignores the unknown field.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar

PROTOCOL_VERSION = 1
log = logging.getLogger(__name__)

_REGISTRY: dict[str, type] = {}


def message(name: str):
    def register(cls):
        cls = dataclass(frozen=True)(cls)
        cls.TYPE = name
        _REGISTRY[name] = cls
        return cls

    return register


class ProtocolError(ValueError):
    pass


# An engine's last state; an engine that exits in any other state has crashed. "paused": the engine saved a checkpoint
# and exited to free the GPU; resuming starts a new engine from that checkpoint. "cancelled": an export stopped on
# request, leaving nothing that looks complete.
TERMINAL_STATES = ("finished", "stopped", "paused", "failed", "cancelled")


# ---- engine → client -------------------------------------------------------------------------------------------

@message("hello")
class Hello:
    protocol: int
    engine_version: str
    device: dict = field(default_factory=dict)  # {"kind": "cuda"|"cpu", "name": ..., "bf16": bool, ...}
    command: str = ""
    TYPE: ClassVar[str]


@message("run_started")
class RunStarted:
    """The run folder this engine writes (a new run, or the one being resumed)."""

    run_dir: str
    resumed: bool = False
    TYPE: ClassVar[str]


@message("state")
class State:
    state: str
    detail: str = ""
    TYPE: ClassVar[str]


@message("progress")
class Progress:
    step: int
    total_steps: int
    epoch: float
    loss: float | None = None
    learning_rate: float | None = None
    grad_norm: float | None = None
    tokens_per_s: float | None = None
    elapsed_s: float = 0.0
    eta_s: float | None = None
    TYPE: ClassVar[str]


@message("eval")
class Eval:
    step: int
    eval_loss: float
    TYPE: ClassVar[str]


@message("memory")
class Memory:
    step: int
    allocated_peak_bytes: int
    reserved_peak_bytes: int
    device: str = "cuda"
    TYPE: ClassVar[str]


@message("checkpoint_saved")
class CheckpointSaved:
    step: int
    path: str
    TYPE: ClassVar[str]


@message("log")
class Log:
    level: str
    message: str
    TYPE: ClassVar[str]


@message("warning")
class Warning:  # noqa: A001 - the protocol's name for it
    message: str
    hint: str = ""
    TYPE: ClassVar[str]


@message("error")
class Error:
    kind: str
    message: str
    hint: str = ""
    retry: dict = field(default_factory=dict)  # config overrides that should let a resume succeed (out of memory)
    TYPE: ClassVar[str]


@message("finished")
class Finished:
    run_dir: str
    adapter_path: str
    metrics: dict = field(default_factory=dict)
    TYPE: ClassVar[str]


@message("chat_token")
class ChatToken:
    id: str
    text: str
    TYPE: ClassVar[str]


@message("chat_done")
class ChatDone:
    id: str
    reason: str  # "end" (end-of-turn token), "length", "cancelled" or "error"
    tokens: int = 0
    elapsed_s: float = 0.0
    TYPE: ClassVar[str]


@message("export_loaded")
class ExportLoaded:
    """A chat session loaded an exported GGUF file (``load_export``): it answers requests whose ``adapter`` is
    "export", run by llama.cpp. ``quantization`` comes from the file's own header (e.g. "Q4_K_M")."""

    path: str
    name: str  # the file name
    quantization: str = ""
    detail: str = ""
    TYPE: ClassVar[str]


@message("export_progress")
class ExportProgress:
    """An export's stage (loading, merging, saving, converting, verifying) and how far it is."""

    stage: str
    done: int = 0
    total: int = 0
    eta_s: float | None = None
    detail: str = ""
    TYPE: ClassVar[str]


@message("time_estimate")
class TimeEstimate:
    """How long a run with these settings will take on this machine, from a short trial (``llamadesk-engine time``):
    the total, the steps it will make and the seconds each takes, and the parts (loading, training, evaluation,
    comparison) in seconds; ``trial_s``, how long the trial itself took."""

    seconds: float
    steps: int
    step_s: float
    parts: dict = field(default_factory=dict)
    trial_s: float = 0.0
    TYPE: ClassVar[str]


@message("compare_progress")
class CompareProgress:
    """The comparison with the base model after training (engine/heavy/before_after.py), which can take minutes:
    ``stage`` "loss" (the validation loss of each model: ``done`` of 2) or "answers" (``done`` of ``total``
    validation prompts answered by both models); ``eta_s``, the time left, measured from the prompts already answered
    (None until one is); ``elapsed_s``, since the comparison began. ``skip_comparison`` ends it."""

    stage: str
    done: int
    total: int
    eta_s: float | None = None
    elapsed_s: float = 0.0
    TYPE: ClassVar[str]


@message("export_finished")
class ExportFinished:
    """The export folder (``<folder>.failed`` when verification failed), the files in it, and its verification report
    (also saved as verification.json)."""

    folder: str
    format: str
    files: list = field(default_factory=list)
    verification: dict = field(default_factory=dict)
    passed: bool = False
    TYPE: ClassVar[str]


# ---- client → engine -------------------------------------------------------------------------------------------

@message("stop")
class Stop:
    """Save a checkpoint at the next step boundary, then exit cleanly."""

    TYPE: ClassVar[str]


@message("pause")
class Pause:
    """Save a checkpoint at the next step boundary and exit, freeing the GPU (the run state becomes "paused"); the
    run continues when a new engine resumes it from that checkpoint."""

    TYPE: ClassVar[str]


@message("resume")
class Resume:
    """Call off a pause that has not yet taken effect."""

    TYPE: ClassVar[str]


@message("skip_comparison")
class SkipComparison:
    """End the comparison with the base model before its next prompt: the run finishes with its adapter and without
    evaluation.json (``llamadesk-engine eval RUN`` computes it later). A stop during the comparison does the same."""

    TYPE: ClassVar[str]


@message("chat")
class Chat:
    id: str
    messages: list = field(default_factory=list)  # [{"role": "user"|"assistant", "content": str}, ...]
    system: str = ""
    temperature: float = 0.7
    top_p: float = 0.9
    top_k: int = 50
    max_new_tokens: int = 256
    repetition_penalty: float = 1.1
    adapter: str = "on"  # "on": fine-tuned, "off": the base model alone
    # "export": the exported GGUF that load_export loaded, run by llama.cpp
    TYPE: ClassVar[str]


@message("load_export")
class LoadExport:
    """Load an exported GGUF file into the chat session, in llama.cpp, replacing one loaded before; it then answers
    chat requests whose ``adapter`` is "export". The engine replies export_loaded, or an error of kind "export" (the
    file is missing, is not a GGUF, or llama.cpp cannot load it); the session goes on either way. A request to the
    export uses its sampling settings (temperature, top p, top k, repetition penalty, length) in llama.cpp."""

    path: str
    TYPE: ClassVar[str]


@message("unload_export")
class UnloadExport:
    """Free the exported GGUF the session loaded (nothing happens when none is)."""

    TYPE: ClassVar[str]


@message("cancel")
class Cancel:
    id: str = ""
    TYPE: ClassVar[str]


@message("shutdown")
class Shutdown:
    TYPE: ClassVar[str]


# ---- encoding ----------------------------------------------------------------------------------------------------

def encode(msg: Any) -> str:
    """One JSON line (without the newline)."""
    payload = {"type": msg.TYPE, **_finite(dataclasses.asdict(msg))}
    return json.dumps(payload, ensure_ascii=False, allow_nan=False, default=_default)


def decode(line: str | bytes) -> Any:
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"not UTF-8: {exc}") from None
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"not JSON: {exc.msg}") from None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise ProtocolError("not a message object with a 'type'")
    cls = _REGISTRY.get(data.pop("type"))
    if cls is None:
        raise ProtocolError("unknown message type")
    names = {f.name for f in dataclasses.fields(cls)}
    try:
        # Fields added by a newer peer are ignored, so minor protocol additions stay compatible.
        return cls(**{k: v for k, v in data.items() if k in names})
    except TypeError as exc:
        raise ProtocolError(f"bad fields for {cls.TYPE}: {exc}") from None


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: such numbers (a diverged loss) travel as null."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    return str(value)


class Reader:
    """Splits a stream into lines and decodes them; malformed lines are counted and logged, never raised."""

    MAX_LINE = 16 << 20  # a line longer than this is dropped, not buffered forever

    def __init__(self):
        self._buffer = b""
        self.malformed = 0
        self.last_error = ""

    def feed(self, data: bytes) -> list[Any]:
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        if len(self._buffer) > self.MAX_LINE:
            self._count("line too long", self._buffer[:80])
            self._buffer = b""
        return [m for m in (self._decode(line) for line in lines if line.strip()) if m is not None]

    def _decode(self, line: bytes) -> Any:
        try:
            return decode(line)
        except ProtocolError as exc:
            self._count(str(exc), line[:200])
            return None

    def _count(self, reason: str, sample: bytes) -> None:
        self.malformed += 1
        self.last_error = reason
        log.warning("ignored malformed protocol line (%s): %r", reason, sample)


def message_types() -> dict[str, type]:
    return dict(_REGISTRY)


class FileTail:
    """The messages appended to a file (one another process writes) since the last ``read``."""

    def __init__(self, path):
        self.path = path
        self.offset = 0
        self.reader = Reader()

    def read(self) -> list[Any]:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except OSError:  # not there yet, or the folder is being moved or deleted
            return []
        self.offset += len(data)
        return self.reader.feed(data)
