"""``eval``: a finished run's fine-tune against its base model on the validation split (evaluation.json)."""

from __future__ import annotations

import sys

from engine import __version__
from engine.light.errors import UserError
from engine.light.run_folder import RunFolder


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
    from engine.heavy.device import describe
    from engine.heavy.events import Emitter, claim_stdout
    from engine.light import protocol

    folder = RunFolder.find(args.run)
    if not folder.is_run():
        print(f"error: {args.run}: not a run folder (no config.yaml)", file=sys.stderr)
        return 1
    human = sys.stdout.isatty() and not args.json
    emitter = Emitter(claim_stdout(), human=human)
    emitter.emit(protocol.Hello(protocol.PROTOCOL_VERSION, __version__, describe(args.device), "eval"))
    try:
        result = evaluate_run.run(folder, emitter=emitter, device=args.device, prompts=args.prompts)
    except UserError as exc:
        emitter.emit(protocol.Error(kind=exc.kind, message=f"{exc.where}: {exc.message}" if exc.where else exc.message,
                                    hint=exc.hint))
        emitter.emit(protocol.State("failed"))
        return 1
    if human:
        print(evaluate_run.summary(result))
    return 0
