"""``demo``: the offline demo: ask the demo model, fine-tune it on the bundled sample, ask again."""

from __future__ import annotations


def add_commands(commands) -> None:
    demo = commands.add_parser("demo", help="the offline demo: ask, fine-tune on the bundled sample, ask again")
    demo.add_argument("--epochs", type=float, help="passes over the sample (default 3)")
    demo.set_defaults(handler=_demo)


def _demo(args) -> int:
    from engine.heavy import demo_job

    overrides = {"train.epochs": args.epochs} if args.epochs else {}
    return demo_job.run(**overrides)
