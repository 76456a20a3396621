"""An export's verification report for the Export dialog: what it means first, in plain words, then the engine's own
report with every measure (``export_report.summary``, as the command line prints it) under "Details"."""

from __future__ import annotations

from engine.light import export_report, protocol

DETAILS = "Details (the exact measures)"
# What each llama.cpp check proves, when it holds; export_report and in_llama_cpp name what differs otherwise.
TOKENIZER_CHECKS = {
    "template_stored_identical": "holds the fine-tune's chat template",
    "template_renders_identical": "writes a conversation the same way",
    "prompt_ids_identical": "turns a prompt into the same tokens",
    "check_text_ids_identical": "splits text into tokens the same way",
    "special_ids_identical": "knows the same start and end tokens",
    "stops_at_end_of_turn": "stops a reply at the end of a turn",
}
TOKENIZER_PROBLEMS = {
    "template_stored_identical": "the chat template in the file is not the fine-tune's",
    "template_renders_identical": "llama.cpp writes a conversation differently",
    "prompt_ids_identical": "llama.cpp turns a prompt into other tokens than training did",
    "check_text_ids_identical": "llama.cpp splits some text into tokens differently",
    "special_ids_identical": "the file marks other start or end tokens than the fine-tune's",
    "stops_at_end_of_turn": "llama.cpp does not stop a reply at the end of a turn",
}


def report(done: protocol.ExportFinished) -> str:
    """The plain summary, how to run the export (when verified), then the details."""
    lines = [export_report.outcome(done), ""]
    verification = done.verification
    if "merged" in verification:
        lines.append(answers("The merged model", verification["merged"]))
    gguf = verification.get("gguf", {})
    if "tokenizer" in gguf:
        lines.append(tokenizer(gguf["tokenizer"]))
    if "answers" in gguf:
        lines.append(answers("In llama.cpp, the GGUF file", gguf["answers"]))
    ollama = verification.get("ollama")
    if ollama:
        lines.append(f"Ollama writes its conversations in the {ollama.get('family', 'model')} family's format"
                     + (" and stops at the end of each turn." if not ollama.get("end_of_turn_not_stopped")
                        else ", but does not stop at every end of a turn."))
    if done.format == "adapter" and len(lines) == 2:
        lines.append("The adapter's files are copied as they were trained: there is nothing to convert or compare.")
    if done.passed:
        lines += ["", "How to run it:", *(f"  {line}" for line in export_report.how_to_run(done))]
    details = export_report.summary(done).split("\n\nHow to run it:", 1)[0].splitlines()[1:]
    return "\n".join(lines + ["", DETAILS, *(f"  {line}" for line in details)])


def answers(what: str, measure: dict) -> str:
    """How closely a part answers like the fine-tune: the share of next words that agree where the fine-tune's
    choice is clear, against the share required."""
    share = measure.get("clear_top1_agreement")
    verdict = measure.get("verdict", "")
    if share is None or verdict.startswith("not verified"):
        return (f"{what} could not be verified: the fine-tune was sure of its next word too rarely on these prompts "
                "to judge (see the details).")
    need = measure.get("required", {})
    wanted = need.get("clear_top1_agreement")
    close = measure.get("kl_divergence", 0) <= need.get("kl_divergence", float("inf"))
    needed = f" ({wanted:.0%} needed)" if wanted is not None else ""
    if measure.get("passed", True):
        return (f"{what} answers like the fine-tune: {_percent(share)} of the next words agree where the fine-tune "
                f"is sure of its choice{needed}.")
    how = f"only {_percent(share)} of the next words agree where the fine-tune is sure of its choice{needed}"
    if wanted is not None and share >= wanted and not close:
        how = "the next words agree, but how likely it finds each word differs more than allowed"
    return f"{what} answers differently from the fine-tune: {how}."


def tokenizer(checks: dict) -> str:
    failed = [TOKENIZER_PROBLEMS[key] for key in TOKENIZER_CHECKS if not checks.get(key)]
    if failed:
        return "In llama.cpp the file is read differently from the fine-tune: " + "; ".join(failed) + "."
    known = len(checks.get("check_text_known_runtime_differences", []))
    tail = (f" (llama.cpp is known to split {known} line{'s' if known > 1 else ''} of the check text differently; "
            "that is not counted against the export)") if known else ""
    *most, last = TOKENIZER_CHECKS.values()
    return f"In llama.cpp the file reads prompts like the fine-tune: it {', '.join(most)} and {last}{tail}."


def _percent(share: float) -> str:
    """A share as people say it: whole percents, except just below 100% (99.6% is not 100%)."""
    text = f"{share:.0%}"
    return f"{share:.1%}" if text == "100%" and share < 1 else text
