#!/usr/bin/env bash
# One prepared GPU session (see bench/README.md): installs carried wheels, runs the CUDA checks, keeps results.
set -euo pipefail
source "$(dirname "$0")/device_setup.sh"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
# The CUDA tests of the suite (skipped without a GPU): paged 8-bit AdamW + bf16, offloading, pause, calibration.
LLAMADESK_TEST_TOKENIZER=$PWD/.gpu-tokenizer python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu.py \
  -o addopts="" 2>&1 | tee "${OUT:-/tmp}/gpu-tests.txt" || true
python3 bench/gpu_check.py --tokenizer .gpu-tokenizer --model llama-3.2-1b --seq 1024 --steps 10
# 16 points on the 1B shape and 4 on the 8B shape: about 5 minutes on an H100.
python3 bench/estimator_accuracy.py --tokenizer .gpu-tokenizer --models llama-3.2-1b,llama-3.1-8b
