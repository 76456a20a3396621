"""``llamadesk-engine eval RUN``: the before/after comparison for a finished run, also one trained before the
comparison was part of training. The base is loaded as the run trained on it, the adapter on top, and the run's
validation split is rebuilt from its dataset and settings (from the tokenized cache when it is there)."""

from __future__ import annotations

from engine.heavy import before_after
from engine.heavy import device as devices
from engine.heavy.data import pipeline
from engine.heavy.events import Emitter
from engine.heavy.generation import Generator
from engine.heavy.models.resolve import model_folder
from engine.light import protocol
from engine.light.errors import DatasetError, UserError
from engine.light.run_folder import RunFolder


class EvaluationFailed(UserError):
    kind = "evaluation"


def run(folder: RunFolder, *, emitter: Emitter, device: str = "auto", prompts: int | None = None) -> dict:
    if not folder.has_adapter:
        raise EvaluationFailed("this run has no adapter yet: it has not finished", where=str(folder.path),
                               hint="finish or resume the run first", kind="no_adapter")
    config = folder.load_config()
    device = devices.resolve_device(device)
    emitter.emit(protocol.State("loading_model", config.model))
    generator = Generator.load(model_folder(config.model).path, folder.adapter_dir, device=device, config=config)
    emitter.emit(protocol.State("preparing_data", config.dataset))
    try:
        validation = pipeline.prepare(config.dataset, generator.tokenizer, config.data, preview_rows=0).splits()[1]
    except DatasetError as exc:
        raise EvaluationFailed(exc.message, where=exc.where or config.dataset,
                               hint="the comparison needs the dataset the run trained on") from None
    if validation is None or len(validation) == 0:
        raise EvaluationFailed("this run holds out no validation split to compare on", where=str(folder.path),
                               hint="train with data.validation_share above 0 (for example 0.1)")
    emitter.emit(protocol.State("comparing", "the base model and the fine-tune on the validation split"))
    result = before_after.evaluate(generator.model, generator.tokenizer, validation,
                                   prompts=config.train.compare_prompts if prompts is None else prompts,
                                   progress=emitter.emit)
    folder.write_evaluation(result)
    emitter.emit(protocol.Log("info", f"saved {folder.evaluation_file}"))
    emitter.emit(protocol.State("finished"))
    return result


def summary(result: dict) -> str:
    """The headline numbers and each prompt's answers, for a terminal."""

    def number(value, digits=3):
        return "—" if value is None else f"{value:.{digits}f}"

    lines = [f"{'':12}{'base model':>14}{'fine-tuned':>14}"]
    for key, label in (("loss", "loss"), ("perplexity", "perplexity"), ("rouge_l", "ROUGE-L")):
        lines.append(f"{label:12}{number(result['before'].get(key)):>14}{number(result['after'].get(key)):>14}")
    for index, answer in enumerate(result.get("answers", []), start=1):
        lines += ["", f"[{index}] reference: {answer['reference']}",
                  f"    base model ({answer['rouge_l_before']:.2f}): {answer['before']}",
                  f"    fine-tuned ({answer['rouge_l_after']:.2f}): {answer['after']}"]
    return "\n".join(lines)
