"""The guided path through the app: where each step stands (engine ready → model → dataset → train → chat) and the
next thing to do, shown in the sidebar and in each page's header. A pure function of what the window knows, so it is
recomputed whenever something changes and tested without a window."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DONE, TODO, ATTENTION, BUSY = "done", "todo", "attention", "busy"


@dataclass(frozen=True)
class Facts:
    engine_needs_setup: bool = False
    engine_text: str = ""
    model: str = ""
    dataset: str = ""
    dataset_rows: int | None = None  # usable rows of the last check; None when not checked
    dataset_problem: str = ""
    dataset_checking: bool = False  # a check of that dataset is running
    training: str = ""  # "step 12/60" while a run trains here
    finished_runs: tuple[str, ...] = ()  # newest first
    runs: int = 0
    chatted: bool = False  # a fine-tune has been loaded on the Chat page in this session


@dataclass(frozen=True)
class Step:
    page: str
    text: str
    mark: str


@dataclass(frozen=True)
class Next:
    page: str  # where the next action is
    text: str  # what to do, in a sentence
    button: str = ""  # the button that does it on that page
    action: str = ""  # what the button does: "use_sample", "check", "start", "chat" (the window maps them)


def steps(f: Facts) -> dict[str, Step]:
    dataset_name = Path(f.dataset).name if f.dataset else ""
    if not f.dataset:
        dataset = Step("Dataset", "not chosen", TODO)
    elif f.dataset_problem or f.dataset_rows == 0:
        dataset = Step("Dataset", f"needs fixing · {dataset_name}", ATTENTION)
    elif f.dataset_checking:
        dataset = Step("Dataset", f"checking · {dataset_name}", BUSY)
    elif f.dataset_rows is None:
        dataset = Step("Dataset", f"not checked · {dataset_name}", TODO)
    else:
        dataset = Step("Dataset", f"{f.dataset_rows:,} rows · {dataset_name}", DONE)  # the count stays in view
    if f.training:
        train = Step("Train", f.training.split(" · ")[0], BUSY)  # "Step 12 of 60": the time left is on the page
    elif f.finished_runs:
        train = Step("Train", f"finished: {f.finished_runs[0]}", DONE)
    else:
        train = Step("Train", "not started", TODO)
    return {
        "Model": Step("Model", f.model or "not chosen", DONE if f.model else TODO),
        "Dataset": dataset,
        "Train": train,
        "Chat": _chat_step(f),
        "Runs": Step("Runs", f"{f.runs} run{'s' if f.runs != 1 else ''}" if f.runs else "none yet", ""),
        "Engine": Step("Engine", "needs setting up" if f.engine_needs_setup else (f.engine_text or "ready"),
                       ATTENTION if f.engine_needs_setup else DONE),
    }


def _chat_step(f: Facts) -> Step:
    if not f.finished_runs:
        return Step("Chat", "after a finished run", TODO)
    if f.chatted:
        return Step("Chat", f"tried · {f.finished_runs[0]}", DONE)
    return Step("Chat", f"to try · {f.finished_runs[0]}", TODO)  # a run can be loaded; none is yet


def next_step(f: Facts) -> Next | None:
    """The first thing left to do on the path, or None once a fine-tune has been tried on the Chat page."""
    if f.engine_needs_setup:
        return Next("Engine", "First, set up the engine that trains your model (a one-time install).")
    if not f.model:
        return Next("Model", "Choose a model to fine-tune (the demo model trains on any computer).")
    if not f.dataset:
        return Next("Dataset", "Choose your training data (open a file or drop it here), or start with the bundled "
                    "sample.", "Use the sample", "use_sample")
    if f.dataset_problem or f.dataset_rows == 0:
        return Next("Dataset", "Fix the dataset's problems listed below, or choose its format and map its columns.")
    if f.dataset_checking:
        return Next("Dataset", "Checking the dataset: every row, and the examples as the model will see them.")
    if f.dataset_rows is None:
        return Next("Dataset", "Check the dataset: every problem with its row, and the examples as the model sees "
                    "them.", "Check", "check")
    if f.training:
        if f.training.startswith("Comparing"):  # after the steps: the comparison with the base model
            return Next("Train", f"{f.training}. Chat with the result when it ends.")
        return Next("Train", f"Training ({f.training}). Watch the loss fall; chat with the result when it ends.")
    if not f.finished_runs:
        return Next("Train", "Check that the run fits your GPU (the memory panel), then start training.",
                    "Start training", "start")
    if not f.chatted:
        return Next("Chat", f"Your fine-tune {f.finished_runs[0]} is ready: talk to it, beside the base model.",
                    "Chat with it", "chat")
    return None
