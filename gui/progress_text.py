"""The words the Train and Runs pages use for a run's progress and its losses: plain sentences first (the exact
terms go in tooltips), and one wording of each number, so both pages say the same of the same run."""

from __future__ import annotations

from engine.light import protocol

COMPARING = "Comparing with the base model"
PROGRESS_TIP = ("A step is one update of the fine-tune from a batch of examples. The time left is measured from the "
                "steps done so far. After training, the fine-tune is compared with the base model on the validation "
                "split (the examples held out from training): each model's loss there, then both answer the first "
                "validation prompts, each answer scored with ROUGE-L against the dataset's reply.")
STATUS_TIP = ("Loss: how far the model's predictions are from the training examples (lower is better). Learning "
              "rate: how large each update is. Tokens a second: how fast training reads the examples, counted in "
              "tokens (pieces of words).")
LOSS_TIP = ("The training loss at the last step logged (the loss so far, for a run still training). The run's "
            "details below also give the average over the whole run, which the end of training reports.")


def time_left(seconds: float | None) -> str:
    """"about 3 min left", as a person says it; empty when unknown."""
    if seconds is None or seconds != seconds:
        return ""
    minutes = round(seconds / 60)
    if seconds < 45:
        return "less than a minute left"
    if minutes < 60:
        return f"about {max(1, minutes)} min left"
    hours, rest = divmod(minutes, 60)
    return f"about {hours} h {rest} min left" if rest else f"about {hours} h left"


def step_text(step: int, total: int, eta_s: float | None) -> str:
    left = time_left(eta_s)
    return f"Step {step:,} of {total:,}" + (f" · {left}" if left else "")


def compare_text(msg: protocol.CompareProgress, trial_s: float | None = None) -> str:
    """The comparison's progress. Until the engine has measured a prompt, the time left comes from the time trial's
    estimate of the whole comparison (``trial_s``), if there is one."""
    eta = msg.eta_s
    from_trial = eta is None and trial_s is not None and msg.done < msg.total
    if from_trial:
        eta = max(0.0, trial_s - msg.elapsed_s)
    left = time_left(eta) if msg.done < msg.total else ""
    if left and from_trial:
        left += " (by the time trial)"
    if msg.stage == "loss":
        which = "the fine-tune" if msg.done else "the base model"
        text = f"{COMPARING}: scoring {which} on the held-out examples"
    else:
        text = f"{COMPARING}: {msg.done} of {msg.total} answers"
    return text + (f" · {left}" if left else "")


def number(value: float) -> str:
    return f"{value:.3g}"


def loss_summary(average: float | None, last: float | None) -> str:
    """"average training loss 0.78 · last 0.049": the run's average (the Trainer's train_loss) and its last step's
    loss, each named; empty when neither is known."""
    parts = ([f"average training loss {number(average)}"] if average is not None else []) + (
        [("last " if average is not None else "last training loss ") + number(last)] if last is not None else [])
    return " · ".join(parts)


def loss_so_far(last: float | None, step: int, total: int) -> str:
    if last is None:
        return ""
    return f"training loss so far {number(last)}" + (f" (step {step:,} of {total:,})" if total else "")
