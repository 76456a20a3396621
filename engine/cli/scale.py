"""Beyond one process: ``cluster`` writes a job folder, and ``rank`` is the command the engine's launcher and a
cluster job's torchrun start once per GPU."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from engine.cli.common import add_config_options, load_config


def add_commands(commands) -> None:
    cluster = commands.add_parser("cluster", help="write a self-contained job folder that trains a run on a cluster "
                                  "with torchrun (launch script, Slurm and SkyPilot templates)")
    add_config_options(cluster)
    cluster.add_argument("--out", required=True, metavar="FOLDER", help="the job folder to write (new or empty)")
    cluster.add_argument("--nodes", type=int, default=2, help="machines (default 2)")
    cluster.add_argument("--gpus-per-node", type=int, default=8, help="GPUs on each machine (default 8)")
    cluster.add_argument("--accelerator", default="A100", help="SkyPilot's GPU type for sky.yaml (default A100)")
    cluster.add_argument("--json", action="store_true", help="the result as one JSON object")
    cluster.set_defaults(handler=_cluster)

    # One rank of a multi-process run: started by the engine's launcher, or by torchrun from a cluster job folder.
    rank = commands.add_parser("rank")
    rank.add_argument("run_dir")
    rank.add_argument("--resume", action="store_true")
    rank.add_argument("--human", action="store_true", help="readable progress on stdout (a cluster job's log)")
    rank.add_argument("--model-folder", help="load the base model from here (a cluster job's copy); the run's config "
                      "keeps naming the model as it was chosen")
    rank.set_defaults(handler=_rank)


def _cluster(args) -> int:
    from engine.heavy import cluster_job

    config = load_config(args)
    job = cluster_job.write(config, Path(args.out), nodes=args.nodes, gpus_per_node=args.gpus_per_node,
                            accelerator=args.accelerator, progress=lambda text: print(text, file=sys.stderr))
    commands = {"slurm": f"cd {job.folder} && sbatch slurm.sbatch",
                "skypilot": f"cd {job.folder} && sky launch -c {job.run.name} sky.yaml",
                "torchrun": f"NNODES={job.nodes} NPROC_PER_NODE={job.gpus_per_node} RDZV_ENDPOINT=FIRST_NODE:29500 "
                            f"bash {job.folder / 'launch.sh'}   (on every node)"}
    if args.json:
        print(json.dumps({"folder": str(job.folder), "run": job.run.name, "nodes": job.nodes,
                          "gpus_per_node": job.gpus_per_node, "commands": commands}))
        return 0
    print(f"Job folder: {job.folder}\n{job.nodes} node(s) × {job.gpus_per_node} GPU(s); run folder {job.run.name}/")
    for name, command in commands.items():
        print(f"{name}: {command}")
    print("See README.txt there.")
    return 0


def _rank(args) -> int:
    from engine.heavy import distributed, train
    from engine.heavy.control import Control
    from engine.heavy.events import Emitter, claim_stdout

    out = claim_stdout()
    # Rank 0 writes the run folder (the launcher passes its events on); on a cluster it also prints progress.
    emitter = Emitter(out if args.human and distributed.is_main() else None, human=True)
    return train.run_rank(Path(args.run_dir), emitter=emitter, control=Control(), resume=args.resume,
                          model_dir=Path(args.model_folder) if args.model_folder else None)
