"""Where each experiment tracker keeps a run's records, and the command that opens them (torch-free: the Train page
shows the commands). The app starts no tracker server itself: the user runs the command when they want the UI."""

from __future__ import annotations

import shlex
from pathlib import Path

from engine.light import paths

TENSORBOARD_DIR = "tensorboard"  # inside the run folder
MLFLOW_DIR = "mlruns"  # inside LlamaDesk's folder: one store for every run
MLFLOW_EXPERIMENT = "LlamaDesk"
WANDB_PROJECT = "llamadesk"
MLFLOW_FILE_STORE_OPT_IN = "MLFLOW_ALLOW_FILE_STORE"  # MLflow 3 refuses a folder store without it


def mlflow_store() -> Path:
    return paths.home() / MLFLOW_DIR


def mlflow_uri() -> str:
    return mlflow_store().as_uri()


def open_commands(trackers: list[str], run_dir: Path | None = None) -> list[str]:
    """The commands that show the records of ``trackers`` (for the runs folder, or one run's)."""
    commands = []
    if "tensorboard" in trackers:
        commands.append(f"tensorboard --logdir {shlex.quote(str(run_dir or paths.runs_dir()))}")
    if "mlflow" in trackers:
        # The UI server comes with the full mlflow package (pip install mlflow), not with mlflow-skinny.
        commands.append(f"{MLFLOW_FILE_STORE_OPT_IN}=true mlflow ui --backend-store-uri {shlex.quote(mlflow_uri())}")
    if "wandb" in trackers:  # offline records; syncing uploads them to the user's W&B account
        where = run_dir / "wandb" if run_dir else paths.runs_dir() / "*" / "wandb"
        commands.append(f"wandb sync {where}/offline-run-*")
    return commands
