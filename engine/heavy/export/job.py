"""``llamadesk-engine export RUN``, top to bottom: check → the fine-tune's reference answers → merge → convert →
verify → publish.

A folder holding files LlamaDesk did not write is refused before anything is written. Everything is written into
``<folder>.partial`` and takes the export folder's name only when complete and verified (``publish``: an earlier
export is swapped out, never deleted first); one that fails verification is kept as ``<folder>.failed`` instead. So a
cancel, a kill or a full disk never leaves a partial file that looks complete, nor loses an earlier export; a rerun
removes the leftover and starts over. Progress and the report go to the client as protocol events; verification.json
stays in the folder and marks it as an export.
"""

from __future__ import annotations

import errno
import json
import logging
import shutil
import time
from pathlib import Path

from engine.heavy import device as devices
from engine.heavy.control import Control
from engine.heavy.end_of_turn import end_of_turn_tokens
from engine.heavy.events import Emitter
from engine.heavy.export import gguf_file, in_llama_cpp, merge, ollama, publish, verify
from engine.heavy.generation import Generator
from engine.heavy.llama_cpp import LlamaCpp
from engine.heavy.models.resolve import model_folder
from engine.light import disk, export_report, protocol
from engine.light.errors import ModelSourceError, UserError
from engine.light.export_options import (
    BUILDING,
    MERGE_INTO,
    REPORT,
    ExportOptions,
    failed_folder,
    holds_our_export,
    needed_bytes,
    parameter_count,
    partial_folder,
    target_refusal,
)
from engine.light.run_folder import RunFolder

log = logging.getLogger("engine.export")


class ExportFailed(UserError):
    kind = "export"


class _Steps:
    """Progress events with an estimate of the time left in the current stage."""

    def __init__(self, emitter: Emitter, control: Control):
        self.emitter, self.control = emitter, control
        self._stage, self._began = "", time.monotonic()
        self.seconds: dict[str, float] = {}  # time spent in each stage, for the report

    def stage(self, name: str, detail: str = "") -> None:
        self.check()
        self._close()
        self._stage, self._began = name, time.monotonic()
        self.emitter.emit(protocol.ExportProgress(name, detail=detail))

    def _close(self) -> None:
        if self._stage:
            spent = time.monotonic() - self._began
            self.seconds[self._stage] = round(self.seconds.get(self._stage, 0.0) + spent, 1)

    def advance(self, done: int, total: int) -> None:
        spent = time.monotonic() - self._began
        eta = spent * (total - done) / done if done else None
        self.emitter.emit(protocol.ExportProgress(self._stage, done, total, eta))

    def cancelled(self) -> bool:
        return self.control.stop.is_set() or self.control.is_cancelled("")

    def check(self) -> None:
        if self.cancelled():
            raise gguf_file.Cancelled


def run(folder: RunFolder, options: ExportOptions, *, emitter: Emitter, control: Control, device: str = "auto") -> int:
    problems = options.problems()
    if problems:
        raise ExportFailed("; ".join(problems), hint="see llamadesk-engine export --help")
    if not folder.has_adapter:
        raise ExportFailed("this run has no adapter to export: it has not finished", where=str(folder.path),
                           hint="finish or resume the run first (a stopped run can be resumed from the Runs page)",
                           kind="no_adapter")
    config = folder.load_config()
    if options.format == "ollama":
        ollama.check_system(options.system)  # refused before any work, not after the conversion
    target = _claim(options, folder.name)
    partial = partial_folder(target)
    steps = _Steps(emitter, control)
    emitter.emit(protocol.State("exporting", f"{options.format} of {folder.name}"))
    try:
        report = _export(folder, config, options, partial, steps, devices.resolve_device(device))
        steps.stage("publishing")
        report["seconds"] = steps.seconds
        kept = _publish(partial, target, report)
    except gguf_file.Cancelled:
        publish.discard_build(partial)
        emitter.emit(protocol.State("cancelled", "nothing was written"))
        return 1
    except Exception as exc:
        publish.discard_build(partial)
        if _disk_full(exc):
            raise ExportFailed(f"the disk filled up while writing the export ({exc})", where=str(target),
                               hint="free disk space, or choose a folder on a larger disk; nothing was kept",
                               kind="disk_full") from None
        raise
    except BaseException:
        publish.discard_build(partial)
        raise
    done = protocol.ExportFinished(str(kept), options.format, sorted(p.name for p in kept.iterdir()), report,
                                   report["passed"])
    emitter.emit(done)
    emitter.emit(protocol.State("finished", "verified") if done.passed else
                 protocol.State("failed", export_report.outcome(done)))
    return 0 if done.passed else 1


def _claim(options: ExportOptions, run_name: str) -> Path:
    """The export folder, once what an interrupted export left there is undone; refused (nothing touched) when it, or
    a sibling the export would replace, holds files LlamaDesk did not write."""
    target = options.folder_for(run_name)
    if target.is_symlink():  # a swap renames the link, not the folder: work on the folder it names
        target = target.resolve()
    for folder in (target, failed_folder(target)):
        publish.recover(folder)
    refusal = target_refusal(target, suggestion=options.default_name(run_name))
    if refusal is not None:
        raise refusal
    return target


def _publish(build: Path, target: Path, report: dict) -> Path:
    """Writes the report that marks ``build`` as an export, then moves it to the export folder when verified, or to
    ``<folder>.failed`` beside an earlier export it leaves in place; returns where its files are."""
    kept = target if report["passed"] else failed_folder(target)
    earlier = holds_our_export(target)
    report["files"] = sorted(p.name for p in build.iterdir() if p.name != BUILDING)
    report["outcome"] = {"export_folder": str(target), "files_in": str(kept), "earlier_export": (
        ("replaced" if report["passed"] else "unchanged") if earlier else "none")}
    (build / REPORT).write_text(json.dumps(report, indent=2), encoding="utf-8")
    (build / BUILDING).unlink()
    publish.publish(build, kept)
    return kept


def _export(folder: RunFolder, config, options: ExportOptions, partial: Path, steps: _Steps, device: str) -> dict:
    steps.stage("checking", "the base model, the architecture and the disk")
    base = _base_model(config)
    _check_disk(base, options, folder, partial)
    partial.mkdir(parents=True, exist_ok=True)  # absent, or empty (target_refusal)
    (partial / BUILDING).touch()  # from now on the folder is recognised as ours, to be removed if left behind
    report = {"run": folder.name, "format": options.format, "base_model": config.model, "passed": True}
    if options.format == "adapter":
        shutil.copytree(folder.adapter_dir, partial, dirs_exist_ok=True)
        report["adapter"] = {"files": sorted(p.name for p in partial.iterdir() if p.name != BUILDING)}
        return report

    # The merged model is checked against the adapter on the weights it was merged into: a 4-bit run's dequantized
    # base ("trained", the default) or its original weights. Merging into the original ones also measures how far
    # that is from the fine-tune as it trained.
    original = options.merge_into == "original" and config.quantization == "nf4"
    steps.stage("reference", "the fine-tune's own answers to the run's prompts")
    fine_tune = Generator.load(base, folder.adapter_dir, device=device, config=config)
    prompts, source = verify.prompts_from_run(config, fine_tune.tokenizer)
    as_trained = verify.reference(fine_tune.model, prompts, source)
    tokenizer = fine_tune.tokenizer
    del fine_tune
    devices.release_memory()
    reference = as_trained
    if original:
        steps.stage("reference", "the adapter's answers on the original weights")
        unmerged = Generator.load(base, folder.adapter_dir, device=device, config=config.with_values(
            {"quantization": "none"}))
        reference = verify.reference(unmerged.model, prompts, source)
        del unmerged
        devices.release_memory()

    steps.stage("merging", f"into {MERGE_INTO[options.merge_into] if config.quantization == 'nf4' else 'the base'}")
    merged_dir = partial if options.format == "merged" else partial / "merged.tmp"
    model = merge.merged(base, folder.adapter_dir, config, into=options.merge_into, device=device)
    steps.stage("saving", "the merged model in bfloat16")
    merge.save(model, folder.adapter_dir, merged_dir, merge.model_card(config, _metrics(folder), options.merge_into),
               base_dir=base)
    del model
    devices.release_memory()
    steps.stage("verifying", "the merged model against the adapter on its base")
    merged_model = verify.load_merged(merged_dir, device)
    report["merged"] = verify.against(merged_model, reference)
    report["merged"]["merged_into"] = options.merge_into if config.quantization == "nf4" else "the base"
    if original:
        report["merged"]["against_the_fine_tune_as_trained"] = verify.against(merged_model, as_trained)
    del merged_model
    devices.release_memory()
    report["passed"] = verify.judge(report["merged"], "merged")
    if options.makes_gguf:
        _gguf(folder, config, options, partial, merged_dir, tokenizer, reference, report, steps, device)
        shutil.rmtree(merged_dir)
    return report


def _gguf(folder, config, options, partial, merged_dir, tokenizer, reference, report, steps, device) -> None:
    name = options.gguf_name(folder.name)
    steps.stage("converting", f"to GGUF {options.quant.upper()}")
    written = gguf_file.write(merged_dir, partial / name, options.quant, name=f"{folder.name} ({config.model})",
                              progress=steps.advance, cancelled=steps.cancelled)
    report["gguf"] = {"file": name, "bytes": written.bytes, "tensor_types": dict(written.types)}
    steps.stage("verifying", "the GGUF in llama.cpp: its template, tokens and special tokens")
    llama = LlamaCpp(partial / name, context=_verification_context(merged_dir, reference))
    try:
        checks = in_llama_cpp.tokenizer_checks(llama, partial / name, tokenizer)
        checks["differences"] = in_llama_cpp.differences(checks)
        report["gguf"]["tokenizer"] = checks
        report["passed"] &= in_llama_cpp.tokenizer_checks_passed(checks)
        steps.stage("verifying", "the GGUF's answers in llama.cpp against the fine-tune")
        measured = in_llama_cpp.answers(llama, reference)
    finally:
        llama.close()
    report["gguf"]["answers"] = measured
    report["passed"] &= verify.judge(measured, options.quant)
    if options.format == "ollama":
        steps.stage("writing", "the Modelfile")
        context = min(_context(merged_dir), max(config.data.cutoff, 4096))
        text, made = ollama.modelfile(tokenizer, name, context=context, system=options.system)
        (partial / "Modelfile").write_text(text, encoding="utf-8", newline="\n")  # Ollama keeps a \r in TEMPLATE
        written_stops = ollama.stops_in(text)
        missing = [t for t in end_of_turn_tokens(tokenizer) if t not in written_stops]
        report["ollama"] = {**made, "end_of_turn_not_stopped": missing,
                            "create": ollama.create_command(options.folder_for(folder.name), _ollama_name(folder))}
        report["passed"] &= not missing


def _disk_full(exc: BaseException) -> bool:
    """A write refused for space or size, also when a library (safetensors, the GGUF writer) wraps the OS error."""
    full = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in full:
            return True
        if any(f"os error {code})" in str(exc) for code in full):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _ollama_name(folder: RunFolder) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in folder.name.lower())


def _base_model(config) -> Path:
    try:
        base = model_folder(config.model, progress=lambda m: None).path
    except ModelSourceError as exc:
        if exc.kind == "not_llama":
            raise ExportFailed(f"exporting supports LLaMA-architecture models: this base is {exc.message}",
                               where=exc.where, hint="export the adapter alone instead", kind="unsupported") from None
        raise ExportFailed(f"the base model is not available: {exc.message}", where=exc.where or config.model,
                           hint=exc.hint or "download it on the Model page first") from None
    kind = json.loads((base / "config.json").read_text(encoding="utf-8")).get("model_type")
    if kind != "llama":
        raise ExportFailed(f"exporting supports LLaMA-architecture models, not '{kind}'", where=str(base),
                           hint="export the adapter alone instead", kind="unsupported")
    return base


def _check_disk(base: Path, options: ExportOptions, folder: RunFolder, partial: Path) -> None:
    adapter = sum(p.stat().st_size for p in folder.adapter_dir.rglob("*") if p.is_file())
    problem = disk.shortfall(partial.parent, needed_bytes(parameter_count(base), options, adapter), "the export's files")
    if problem:
        raise ExportFailed(problem, hint="free disk space, or choose a folder on a larger disk", kind="disk_full")


def _metrics(folder: RunFolder) -> dict:
    try:
        return json.loads((folder.adapter_dir / "llamadesk.json").read_text(encoding="utf-8")).get("metrics", {})
    except (OSError, ValueError):
        return {}


def _verification_context(model_dir: Path, reference) -> int:
    """Room for the longest prompt and its continuation (and the fixed conversation), within the model's own."""
    longest = max((len(p) for p in reference.prompts), default=0) + verify.NEW_TOKENS
    return min(_context(model_dir), max(1024, longest + 64))


def _context(model_dir: Path) -> int:
    return int(json.loads((model_dir / "config.json").read_text(encoding="utf-8"))["max_position_embeddings"])

