"""What a finished run publishes in its adapter/ folder: the PEFT adapter, the tokenizer with its chat template, the
config and final metrics (llamadesk.json) and a model card (README.md); and how a final checkpoint becomes one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from engine.light.run_folder import RunFolder

CHECKPOINT_ONLY = {"optimizer.pt", "scheduler.pt", "trainer_state.json", "training_args.bin", "llamadesk.json"}


def publish(folder: RunFolder, write, config, metrics: dict) -> Path:
    """``write(tmp)`` puts the adapter and tokenizer files into the temporary folder; the rest is added here."""

    def complete(tmp: Path) -> None:
        write(tmp)
        (tmp / "llamadesk.json").write_text(json.dumps({"config": config.to_dict(), "metrics": metrics}, indent=2),
                                            encoding="utf-8")
        (tmp / "README.md").write_text(model_card(config, metrics), encoding="utf-8")

    return folder.publish_adapter(complete)


def copy_from_checkpoint(checkpoint: Path, target: Path) -> None:
    """The adapter and tokenizer files Trainer saved in a checkpoint (not its optimizer or RNG state)."""
    target.mkdir(parents=True)
    for file in checkpoint.iterdir():
        if file.is_file() and file.name not in CHECKPOINT_ONLY and not file.name.startswith("rng_state"):
            shutil.copy2(file, target / file.name)


def training_complete(checkpoint: Path) -> bool:
    state = json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
    return 0 < state.get("max_steps", 0) <= state.get("global_step", 0)


def checkpoint_metrics(checkpoint: Path) -> dict:
    state = json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
    metrics = {"global_step": state["global_step"]}
    for entry in state.get("log_history", []):
        metrics.update({k: v for k, v in entry.items() if k in ("loss", "eval_loss", "train_loss")})
    return metrics


def model_card(config, metrics: dict) -> str:
    lines = [
        "---", "library_name: peft", f"base_model: {config.model}", "tags: [llamadesk, lora"
        + (", qlora" if config.quantization == "nf4" else "") + "]", "---", "",
        f"# LoRA adapter for {config.model}", "",
        f"Fine-tuned with LlamaDesk on `{Path(config.dataset).name}` "
        f"({'4-bit QLoRA' if config.quantization == 'nf4' else 'LoRA'}, rank {config.lora.rank}, "
        f"alpha {config.lora.alpha}, learning rate {config.train.learning_rate}, cutoff {config.data.cutoff}).", "",
        "## Final metrics", "",
    ]
    lines += [f"- {key}: {value:.4g}" if isinstance(value, float) else f"- {key}: {value}"
              for key, value in sorted(metrics.items())]
    lines += ["", "## Configuration", "", "```yaml", config.to_yaml().rstrip(), "```", ""]
    return "\n".join(lines)
