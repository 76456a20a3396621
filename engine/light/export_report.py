"""An export's report in plain words, for the terminal and the Export dialog: where it is (or, when it failed its
verification, where its files are kept and what became of an earlier export), how closely each part answers like the
fine-tune (and what that was required to be), and how to run it."""

from __future__ import annotations

import shlex
from pathlib import Path

from engine.light import protocol


def outcome(done: protocol.ExportFinished) -> str:
    """What became of the export, in one sentence."""
    where = done.verification.get("outcome", {})
    folder, earlier = where.get("export_folder", done.folder), where.get("earlier_export")
    if done.passed:
        return f"Verified: {done.format} export in {folder}" + (
            " (it replaced the earlier export there)" if earlier == "replaced" else "")
    after = {"unchanged": f"your earlier export at {folder} is unchanged",
             "none": f"nothing was written to {folder}"}.get(earlier)
    return f"Verification failed; the files are kept in {where.get('files_in', done.folder)}" + (
        f"; {after}." if after else ".")


def summary(done: protocol.ExportFinished) -> str:
    lines = [outcome(done), f"Files: {', '.join(done.files)}"]
    report = done.verification
    if "merged" in report:
        lines.append(_answers("Merged model", report["merged"]))
        trained = report["merged"].get("against_the_fine_tune_as_trained")
        if trained:
            lines.append(_answers("  compared with the fine-tune as it trained (on the 4-bit weights)", trained))
    gguf = report.get("gguf", {})
    if "tokenizer" in gguf:
        checks = gguf["tokenizer"]
        lines.append("GGUF in llama.cpp, tokenizer and template: " + ", ".join(
            f"{what} {'yes' if checks.get(key) else 'NO'}" for key, what in (
                ("template_stored_identical", "template stored identical"),
                ("template_renders_identical", "renders the same prompt"),
                ("prompt_ids_identical", "same prompt tokens"),
                ("check_text_ids_identical", "splits text the same"),
                ("special_ids_identical", "same special tokens"),
                ("stops_at_end_of_turn", "stops at the end of a turn"))))
        lines += [f"  differs: {text}" for text in checks.get("differences", [])]
        lines += [f"  llama.cpp is known to split this differently (not failed): {text!r}"
                  for text in checks.get("check_text_known_runtime_differences", [])]
    if "answers" in gguf:
        lines.append(_answers(f"GGUF ({', '.join(f'{n} {t}' for t, n in gguf['tensor_types'].items())})",
                              gguf["answers"]))
    if "ollama" in report:
        ollama = report["ollama"]
        lines.append(f"Ollama template: the {ollama['family']} family; stops at {', '.join(ollama['stops'])}")
    if report.get("seconds"):
        lines.append(f"Took {sum(report['seconds'].values()):.0f} s.")
    if done.passed:  # a failed one is kept to be looked into, not run
        lines += ["", "How to run it:", *how_to_run(done)]
    return "\n".join(lines)


def _answers(what: str, measure: dict) -> str:
    need = measure.get("required", {})
    verdict = "" if "passed" not in measure else (" — passes" if measure["passed"] else " — FAILS")
    required = f" (required: {need['clear_top1_agreement']:.0%}" + (
        f", KL ≤ {need['kl_divergence']:g})" if "kl_divergence" in need else ")") if need else ""
    where = f" in {measure['runtime']}" if measure.get("runtime") else ""
    if measure.get("clear_top1_agreement") is None or measure.get("verdict", "").startswith("not verified"):
        return f"{what}{where}: {measure.get('verdict', 'not verified')}"
    return (f"{what}{where}: the same next token at {measure['clear_top1_agreement']:.1%} of the "
            f"{measure['clear_positions']} positions where the fine-tune's choice is clear and at "
            f"{measure['top1_agreement']:.1%} of all {measure['positions']}, KL divergence "
            f"{measure['kl_divergence']:.2g}{required}{verdict}; greedy continuations identical for "
            f"{measure['greedy_identical_tokens']} tokens, on {measure['prompt_source']}")


def how_to_run(done: protocol.ExportFinished) -> list[str]:
    folder = Path(done.folder)
    if done.format == "ollama":
        return [done.verification["ollama"]["create"], f"ollama run {_ollama_name(done)}"]
    if done.format == "gguf":
        gguf = shlex.quote(str(folder / done.verification["gguf"]["file"]))
        return [f"llama.cpp: llama-cli -m {gguf} -cnv   (or llama-server -m {gguf})",
                f"LM Studio: lms import {gguf}   (or copy the file into LM Studio's models folder)"]
    if done.format == "merged":
        return ["Python: from transformers import pipeline; "
                f"chat = pipeline('text-generation', {str(folder)!r}); "
                "print(chat([{'role': 'user', 'content': 'Hello'}])[0]['generated_text'])"]
    return [f"Python (PEFT): PeftModel.from_pretrained(base_model, {str(folder)!r})"]


def _ollama_name(done: protocol.ExportFinished) -> str:
    return shlex.split(done.verification["ollama"]["create"])[2]
