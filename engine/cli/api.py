"""An OpenAI-compatible model beside the fine-tune, and what each way costs: ``compare-api``, ``costs``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from engine.light.run_folder import RunFolder


def add_commands(commands) -> None:
    api = commands.add_parser("compare-api", help="add an OpenAI-compatible model's answers to a finished run's "
                              "comparison (its validation prompts as the local models saw them, with the same "
                              "cap on answer length, scored with ROUGE-L); the key comes from the "
                              "keyring, or from $LLAMADESK_API_KEY when $LLAMADESK_API_KEY_HOST names the URL's host")
    api.add_argument("run", help="a finished run with a comparison (folder or name)")
    api.add_argument("--url", required=True, help="the API's base URL, e.g. https://api.openai.com/v1")
    api.add_argument("--model", required=True, help="the model name, e.g. gpt-4o-mini")
    api.add_argument("--max-tokens", type=int, default=256, help="the cap on each answer for a comparison saved "
                     "by an earlier LlamaDesk, which kept no caps of its own (default 256)")
    api.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each answer")
    api.add_argument("--yes", action="store_true", help="send to an endpoint off this computer without asking")
    api.set_defaults(handler=_compare_api)

    costs = commands.add_parser("costs", help="a run against the API: its dataset as OpenAI fine-tuning JSONL, the "
                                "tokens, an API fine-tune's price and N requests a month, beside the run's time and "
                                "energy (prices: the dated table, editable)")
    costs.add_argument("run", help="a run (folder or name)")
    costs.add_argument("--api-model", default="gpt-4o-mini", help="the API model to price (default gpt-4o-mini)")
    costs.add_argument("--requests", type=int, default=10_000, help="requests a month to price (default 10,000)")
    costs.add_argument("--jsonl", metavar="FILE", help="also write the dataset as OpenAI fine-tuning JSONL here")
    costs.add_argument("--json", action="store_true", help="one machine-readable JSON object")
    costs.set_defaults(handler=_costs)


def _compare_api(args) -> int:
    from engine.light import api_compare
    from engine.light.api_chat import Endpoint
    from engine.light.api_privacy import Consent

    folder = RunFolder.find(args.run)
    endpoint = Endpoint(args.url, args.model, args.timeout)
    count = len((folder.evaluation() or {}).get("answers", []))
    consent = Consent((lambda _endpoint, _question: True) if args.yes else _ask_on_terminal)
    if not consent.allows(endpoint, f"the {count} validation prompts of {folder.name}"):
        print(f"Nothing was sent to {endpoint.host} (--yes sends without asking).", file=sys.stderr)
        return 1
    result = api_compare.compare(folder, endpoint, max_tokens=args.max_tokens,
                                 progress=lambda text: print(text, file=sys.stderr))
    api = result["api"]
    cost = f", ${api['cost_usd']:.4f}" if api["cost_usd"] is not None else ""
    print(f"{endpoint.model}: ROUGE-L {api['rouge_l']:.3f} on {api['answered']} prompts "
          f"({api['prompt_tokens']} + {api['completion_tokens']} tokens{cost}, {api['seconds']:.1f} s); "
          f"fine-tuned {result['after'].get('rouge_l') or 0:.3f}, base {result['before'].get('rouge_l') or 0:.3f}")
    if api.get("note"):
        print(f"not like for like: {api['note']}", file=sys.stderr)
    if api["stopped"]:
        print(f"stopped early: {api['stopped']}", file=sys.stderr)
    return 0


def _ask_on_terminal(endpoint, question: str) -> bool:
    """The privacy question on stderr (stdout carries the result), answered on the terminal. Without one (a script,
    a pipe) nobody can answer, so the answer is no; the question is still printed, so the log says what stayed here."""
    if not sys.stdin.isatty():
        print(question, file=sys.stderr)
        return False
    print(question, "[y/N]", end=" ", file=sys.stderr, flush=True)
    try:
        return input().strip().lower() in ("y", "yes")
    except EOFError:  # Ctrl+D: no answer is a no
        print(file=sys.stderr)
        return False


def _costs(args) -> int:
    from engine.heavy import costs
    from engine.light import cost_report

    result = costs.estimate(RunFolder.find(args.run), api_model=args.api_model, requests_per_month=args.requests,
                            jsonl=Path(args.jsonl) if args.jsonl else None)
    print(json.dumps(result) if args.json else cost_report.text(result))
    return 0
