"""Run on a cluster: a self-contained job folder that trains a run across several machines with torchrun.

The folder holds everything the cluster needs and nothing of this machine's: the engine's own code, the pinned
requirements, the dataset and its tokenized form (so no node tokenizes), the model when it is local (hub models are
downloaded on the cluster), the run folder with its resolved config, a torchrun launch script (c10d rendezvous) and
ready templates for Slurm and SkyPilot. Global rank 0 writes the run folder as the app does; copied back into the runs
folder, it opens in the Runs page and in Chat like any other run.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from engine.heavy.data import pipeline
from engine.heavy.models.resolve import model_folder
from engine.heavy.train_setup import tokenizer_for
from engine.light import paths
from engine.light.errors import UserError
from engine.light.run_folder import RunFolder

# What the engine needs on a node (the desktop app's Qt packages stay behind).
REQUIREMENTS = ("torch", "transformers", "peft", "bitsandbytes", "accelerate", "datasets", "huggingface_hub",
                "safetensors", "gguf", "sentencepiece", "protobuf", "rouge-score", "nvidia-ml-py", "PyYAML",
                "platformdirs", "keyring", "psutil", "filelock")
TRACKERS = {"tensorboard": ("tensorboard",), "mlflow": ("mlflow-skinny",), "wandb": ("wandb",)}
TEMPLATES = ("launch.sh", "slurm.sbatch", "sky.yaml")


class JobError(UserError):
    pass


@dataclass
class Job:
    folder: Path
    run: RunFolder
    nodes: int
    gpus_per_node: int

    @property
    def world_size(self) -> int:
        return self.nodes * self.gpus_per_node


def write(config, out: Path, *, nodes: int, gpus_per_node: int, accelerator: str = "A100", progress=print) -> Job:
    """Write the job folder ``out`` (new, or an empty folder) for ``config``."""
    out = Path(out).expanduser().resolve()
    if out.exists() and any(out.iterdir()):
        raise JobError("the job folder is not empty", where=str(out), hint="choose a new or empty folder")
    if nodes < 1 or gpus_per_node < 1:
        raise JobError(f"{nodes} nodes × {gpus_per_node} GPUs: both must be at least 1")
    out.mkdir(parents=True, exist_ok=True)
    name = config.run_name or f"cluster-{re.sub(r'[^A-Za-z0-9]+', '-', Path(config.dataset).stem)}"[:60]

    progress("copying the engine")
    for package in ("engine", "resources"):
        source = Path(__import__(package).__file__).parent
        shutil.copytree(source, out / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    dataset = _copy_dataset(config.dataset, out, progress)
    model_option, model_dir = _copy_model(config.model, out, progress)

    job_config = config.with_values({"dataset": dataset, "run_name": name, "distributed.gpus": [],
                                     "distributed.cpu_processes": 1})
    run = RunFolder.create(name, root=out)
    run.save_config(job_config)
    progress("tokenizing the dataset into the job's cache")
    _tokenize(job_config, out, model_dir)

    (out / "requirements.txt").write_text(_requirements(config), encoding="utf-8")
    values = {"nodes": str(nodes), "gpus_per_node": str(gpus_per_node), "job_id": f"llamadesk-{name}"[:63],
              "strategy": "fsdp" if config.distributed.strategy == "fsdp" else "ddp", "run_name": name,
              "model_option": model_option, "cpus_per_task": str(8 * gpus_per_node), "accelerator": accelerator}
    for template in TEMPLATES:
        target = out / template
        target.write_text(fill(template, values), encoding="utf-8")
        if template.endswith(".sh"):
            target.chmod(0o755)
    job = Job(out, run, nodes, gpus_per_node)
    (out / "README.txt").write_text(_readme(job, config), encoding="utf-8")
    return job


def fill(template: str, values: dict[str, str]) -> str:
    """A template from resources/cluster with its {{names}} filled in; every name must be given."""
    import resources

    text = resources.path(f"cluster/{template}").read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    left = re.findall(r"\{\{(\w+)\}\}", text)
    if left:
        raise ValueError(f"{template}: no value for {', '.join(sorted(set(left)))}")
    return text


def _copy_dataset(reference: str, out: Path, progress) -> str:
    """The dataset inside the job (a hub dataset id is left for the nodes to download); the config names it relative
    to the job folder, where the launch script runs."""
    source = Path(reference).expanduser()
    if not source.exists():
        return reference
    progress(f"copying the dataset {source.name}")
    target = out / "data" / source.name
    target.parent.mkdir()
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        shutil.copy2(source, target)
    return f"data/{source.name}"


def _copy_model(reference: str, out: Path, progress) -> tuple[str, Path]:
    """(the launch option that points the ranks at the job's copy, this machine's model folder). A local model (a
    folder, the demo model) travels with the job; a catalog or hub model is downloaded on the cluster, so the job
    stays small. The run's config keeps the reference as given, so the run opens here again."""
    local = reference == "demo" or Path(reference).expanduser().is_dir()
    folder = model_folder(reference, progress=progress).path  # here for its tokenizer
    if not local:
        return "", folder
    progress(f"copying the model {folder.name}")
    shutil.copytree(folder, out / "model", symlinks=False)
    return ' --model-folder "$JOB/model"', folder


def _tokenize(config, out: Path, model_dir: Path) -> None:
    """Fill the job's own cache (its home folder) with the tokenized dataset, under the key the nodes will compute."""
    previous_home, previous_cwd = os.environ.get(paths.ENV_HOME), Path.cwd()
    paths.set_home(out / "home")
    os.chdir(out)
    try:
        prepared = pipeline.prepare(config.dataset, tokenizer_for(model_dir), config.data, preview_rows=0)
        prepared.require_usable()
    finally:
        os.chdir(previous_cwd)
        if previous_home is None:
            os.environ.pop(paths.ENV_HOME, None)
        else:
            os.environ[paths.ENV_HOME] = previous_home


def _requirements(config) -> str:
    names = list(REQUIREMENTS) + [n for tracker in config.train.report_to for n in TRACKERS.get(tracker, ())]
    lines = ["# The engine's packages, at the versions this job was written with. Install the torch build that",
             "# matches the cluster's CUDA first if the line below would not (see pytorch.org)."]
    for name in names:
        try:
            version = metadata.version(name).split("+")[0]  # "2.13.0+cpu": the public version only
        except metadata.PackageNotFoundError:
            lines.append(name)
            continue
        lines.append(f"{name}=={version}")
    return "\n".join(lines) + "\n"


def _readme(job: Job, config) -> str:
    t = config.train
    batch = t.micro_batch * t.grad_accum * job.world_size
    return f"""LlamaDesk cluster job: {job.run.name}

Trains {config.model} on {config.dataset} across {job.nodes} node(s) × {job.gpus_per_node} GPU(s) = {job.world_size} \
ranks, with PyTorch's torchrun (c10d rendezvous). Effective batch: micro-batch {t.micro_batch} × accumulation \
{t.grad_accum} × {job.world_size} ranks = {batch} sequences per step.

What is here
  {job.run.name}/     the run folder: config.yaml now; global rank 0 adds checkpoints, metrics, the adapter
  engine/, resources/   the LlamaDesk engine (Python; run as python -m engine)
  requirements.txt      the packages it needs, pinned
  data/                 the dataset; home/ holds it tokenized, so no node tokenizes again
  model/                the base model, when it is a local one (hub models are downloaded by each node)
  launch.sh             torchrun across nodes: run once per node with NNODES, NPROC_PER_NODE, RDZV_ENDPOINT set
  slurm.sbatch          Slurm: cd into this folder on a shared filesystem, then: sbatch slurm.sbatch
  sky.yaml              SkyPilot: sky launch -c {job.run.name} sky.yaml (set the accelerator you want first)

Set up once per cluster: python3 -m pip install -r requirements.txt
A gated model (Llama) needs a Hugging Face token on every node: export HF_TOKEN=...

Started again (a requeued job, a new sbatch), the run resumes from its latest checkpoint.
Without a shared filesystem (SkyPilot), the node that ran global rank 0 holds the run folder; its log says so.

When it is done, copy {job.run.name}/ into LlamaDesk's runs folder ({paths.runs_dir()} on the machine that wrote \
this job): it opens in the Runs page and in Chat like any other run.
"""
