"""The run's experiment trackers, through the Trainer's own integrations (``report_to``). They are configured by
environment variables, read when training starts; this engine process trains one run, so setting them here touches
nothing else."""

from __future__ import annotations

import importlib.util
import os

from engine.heavy.train_failures import TrainingFailed
from engine.light import tracking
from engine.light.run_folder import RunFolder

# tracker → (the module transformers needs, how to install it)
NEEDS = {"tensorboard": ("tensorboard", "pip install 'llamadesk[tracking]'"),
         "mlflow": ("mlflow", "pip install 'llamadesk[tracking]'"),
         "wandb": ("wandb", "pip install wandb")}


def configure(trackers: list[str], folder: RunFolder) -> list[str]:
    """Point each chosen tracker at its place and return the Trainer's ``report_to``; a tracker whose library is
    missing stops the run before training starts, with the command that installs it."""
    for name in trackers:
        module, install = NEEDS[name]
        if importlib.util.find_spec(module) is None:
            raise TrainingFailed("tracking", f"train.report_to asks for {name}, which is not installed",
                                 f"{install}, or leave {name} out of train.report_to")
    if "tensorboard" in trackers:
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(folder.path / tracking.TENSORBOARD_DIR)
    if "mlflow" in trackers:
        os.environ["MLFLOW_TRACKING_URI"] = tracking.mlflow_uri()
        os.environ["MLFLOW_EXPERIMENT_NAME"] = tracking.MLFLOW_EXPERIMENT
        # A folder store needs no database server or SQLAlchemy (mlflow-skinny has neither); MLflow 3 keeps it in
        # maintenance mode and asks for this opt-in.
        os.environ[tracking.MLFLOW_FILE_STORE_OPT_IN] = "true"
    if "wandb" in trackers:
        os.environ["WANDB_MODE"] = "offline"  # never uploads; `wandb sync` does, when the user wants it
        os.environ["WANDB_DIR"] = str(folder.path)
        os.environ.setdefault("WANDB_PROJECT", tracking.WANDB_PROJECT)
    return list(trackers)
