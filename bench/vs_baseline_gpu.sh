#!/usr/bin/env bash
# The engine against the plain Hugging Face baseline on a GPU, most important first, within about 9 minutes:
#   1. Llama 3.1 8B shape at cutoff 2048, micro-batch 2: tokens/s and peak memory, engine defaults;
#   2. the longest context that trains in 24 GiB at micro-batch 1, 8B shape, engine vs baseline;
#   3. Llama 3.2 1B shape at 2048 and 1024, then 8B at 1024;
#   4. engine options one at a time on 8B at 2048 (which of them pays), as long as time is left.
# Random weights with the catalog shapes (no download). Writes bench/results/vs-baseline-<date>-<gpu>.txt (and a copy
# under $OUT when set).
# Needs bitsandbytes, datasets (and this suite's transformers and peft) on the GPU machine and the demo tokenizer in
# .gpu-tokenizer: see bench/README.md for what to carry.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONUNBUFFERED=1
BUDGET=${BUDGET_S:-540}  # the whole script's seconds
GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | tr ' ' '-')
RESULT="bench/results/vs-baseline-$(date +%Y-%m-%d)-${GPU}.txt"
MODELS=$(mktemp -d /tmp/llamadesk-bench-models.XXXX)  # each random-weight shape is written once
mkdir -p bench/results

# step LIMIT_S COMMAND…: runs the command if LIMIT_S seconds are left, under that limit.
step() {
    local limit=$1; shift
    if (( SECONDS + limit > BUDGET )); then echo "(skipped, $((BUDGET - SECONDS)) s left: $*)"; return; fi
    timeout "$limit" "$@" || echo "(did not finish within ${limit} s or failed: $*)"
}
VS="python3 bench/vs_baseline.py --tokenizer .gpu-tokenizer --models-dir $MODELS --micro-batch 2 --steps 5 --rows 200"
{
    echo "# $(date -u +%Y-%m-%dT%H:%MZ) on ${GPU}, $(nvidia-smi --query-gpu=driver_version,memory.total --format=csv,noheader)"
    python3 -c "import torch, transformers, peft, bitsandbytes; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, 'bitsandbytes', bitsandbytes.__version__)"
    echo "## 1. 8B at 2048"
    step 200 $VS --model llama-3.1-8b --seq 2048
    echo "## 2. longest context in 24 GiB, micro-batch 1"
    step 250 python3 bench/longest_context.py --model llama-3.1-8b --budget-gib 24 --tokenizer .gpu-tokenizer \
        --models-dir "$MODELS" --start 4096 --granularity 4096 --time-limit 90
    echo "## 3. the other shapes"
    step 90 $VS --model llama-3.2-1b --seq 2048
    step 90 $VS --model llama-3.2-1b --seq 1024
    step 120 $VS --model llama-3.1-8b --seq 1024
    echo "## 4. engine options on 8B at 2048, one at a time (engine side only)"
    for option in data.packing=true train.loss_chunk_tokens=0 train.padding_free=false \
                  train.fp32_frozen_layers=true train.checkpoint_offload=true train.checkpoint_every=2; do
        step 80 $VS --model llama-3.1-8b --seq 2048 --only engine --engine-set "$option"
    done
} 2>&1 | grep -v -e "it/s\]" -e "^{'loss'" | tee "$RESULT"
rm -rf "$MODELS"
if [ -n "${OUT:-}" ]; then cp "$RESULT" "$OUT/"; fi  # the device tool brings back what is under $OUT
