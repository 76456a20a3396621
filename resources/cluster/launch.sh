#!/usr/bin/env bash
# Trains this job's run across $NNODES machines with $NPROC_PER_NODE GPUs each, with PyTorch's torchrun.
# Run it once on every node (slurm.sbatch and sky.yaml do that); each node's processes meet at $RDZV_ENDPOINT, the
# first node's address and a free port (c10d rendezvous).
set -euo pipefail
JOB="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
NNODES="${NNODES:-{{nodes}}}"
NPROC_PER_NODE="${NPROC_PER_NODE:-{{gpus_per_node}}}"
RDZV_ENDPOINT="${RDZV_ENDPOINT:?set RDZV_ENDPOINT to host:port of the first node, e.g. node001:29500}"
RDZV_ID="${RDZV_ID:-{{job_id}}}"
PYTHON="${PYTHON:-python3}"
export LLAMADESK_STRATEGY="${LLAMADESK_STRATEGY:-{{strategy}}}"  # ddp: a whole model per GPU; fsdp: sharded
cd "$JOB"  # the config names its dataset relative to the job folder
exec "$PYTHON" -m torch.distributed.run --nnodes "$NNODES" --nproc-per-node "$NPROC_PER_NODE" \
    --rdzv-backend c10d --rdzv-endpoint "$RDZV_ENDPOINT" --rdzv-id "$RDZV_ID" --max-restarts 0 \
    -m engine --home "$JOB/home" rank "$JOB/{{run_name}}" --human{{model_option}}
