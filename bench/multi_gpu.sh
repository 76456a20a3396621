#!/usr/bin/env bash
# The multi-GPU session (see bench/README.md): DDP and FSDP QLoRA on every GPU of a machine with two or more; results
# under bench/results/. The FSDP path is unverified until this has run. In the result, FSDP's checkpoint_files
# should show sharded state (pytorch_model_fsdp_0/, optimizer_0/) and its adapter_tensors equal DDP's (gathered whole).
set -euo pipefail
source "$(dirname "$0")/device_setup.sh"
nvidia-smi --query-gpu=index,name,pci.bus_id,memory.total --format=csv
count=$(nvidia-smi --query-gpu=index --format=csv,noheader | wc -l)
if [ "$count" -lt 2 ]; then
  echo "only $count GPU here: the multi-GPU bench needs two or more" >&2
  exit 3
fi
# Llama 3.1 8B's shape at 1024 tokens: DDP holds the whole 4-bit model per GPU, FSDP shards it.
python3 bench/multi_gpu.py --tokenizer .gpu-tokenizer --model llama-3.1-8b --seq 1024 --steps 10
