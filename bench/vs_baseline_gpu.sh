#!/usr/bin/env bash
# The engine against the plain Hugging Face baseline on a GPU: the Llama 3.2 1B and Llama 3.1 8B shapes (random
# weights, no download) at cutoffs 1024 and 2048, with the engine's chunked loss on. Writes
# bench/results/vs-baseline-<date>-<gpu>.txt. About 6-8 minutes on an H100. Needs bitsandbytes and datasets on the
# GPU machine and the demo tokenizer in .gpu-tokenizer (see bench/README.md for what to carry).
set -uo pipefail
cd "$(dirname "$0")/.."
GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | tr ' ' '-')
OUT="bench/results/vs-baseline-$(date +%Y-%m-%d)-${GPU}.txt"
mkdir -p bench/results
{
    echo "# $(date -u +%Y-%m-%dT%H:%MZ) on ${GPU}: python bench/vs_baseline.py …"
    for model in llama-3.2-1b llama-3.1-8b; do
        for seq in 1024 2048; do
            timeout 150 python bench/vs_baseline.py --model "$model" --seq "$seq" --micro-batch 2 --steps 5 \
                --rows 200 --tokenizer .gpu-tokenizer --engine-set train.loss_chunk_tokens=4096 || echo "($model at $seq did not finish)"
        done
    done
} 2>&1 | grep -v "it/s\]" | tee "$OUT"
