"""``eval``: a finished run's fine-tune against its base model on the validation split (evaluation.json)."""

from __future__ import annotations

from engine.cli.common import failed, protocol_emitter, run_folder
from engine.light.errors import UserError


def add_commands(commands) -> None:
    evaluate = commands.add_parser("eval", help="compare a finished run's fine-tune with its base model on the "
                                   "validation split: loss, perplexity and greedy answers scored with ROUGE-L")
    evaluate.add_argument("run", help="the run (folder or name)")
    evaluate.add_argument("--prompts", type=int, help="validation prompts both models answer (default: the run's "
                          "train.compare_prompts)")
    evaluate.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"))
    evaluate.add_argument("--json", action="store_true", help="protocol lines even on a terminal")
    evaluate.set_defaults(handler=_eval)


def _eval(args) -> int:
    from engine.heavy import evaluate_run

    folder = run_folder(args.run)
    if folder is None:
        return 1
    emitter = protocol_emitter(args, "eval")
    try:
        result = evaluate_run.run(folder, emitter=emitter, device=args.device, prompts=args.prompts)
    except UserError as exc:
        return failed(emitter, exc)
    if emitter.human:
        print(evaluate_run.summary(result))
    return 0
