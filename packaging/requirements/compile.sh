#!/usr/bin/env bash
# Regenerates the engine lock files, one per platform, with hashes (uv pip compile). Run after changing engine.in.
set -euo pipefail
cd "$(dirname "$0")"
UV=${UV:-uv}
export MACOSX_DEPLOYMENT_TARGET=14.0  # bitsandbytes ships macOS wheels for 14 and newer
for target in linux:x86_64-manylinux_2_28 windows:x86_64-pc-windows-msvc macos:aarch64-apple-darwin; do
    name=${target%%:*} platform=${target#*:}
    "$UV" pip compile engine.in --python-version 3.11 --python-platform "$platform" --override no-torch.txt \
        --generate-hashes --no-header -q -o "engine-$name.txt"
done
