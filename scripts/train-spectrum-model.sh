#!/usr/bin/env bash
# Trains the comparison detector of MODEL.md: Zhang et al.'s AutoGAN
# classifier (WIFS 2019) re-made with cnnspot: the built-in model's backbone
# and recipe on a spectrum input (per-channel centred log-magnitude DFT),
# trained on fakes of the `autogan` simulator (a CycleGAN-generator
# autoencoder fitted on the training photos), then compared with the
# built-in model on ../shared/data/dev.
# Long: run it in the background; every step resumes where it stopped.
# Usage: bash scripts/train-spectrum-model.sh [WORK_DIR]   (default: work/spectrum)
set -euo pipefail
cd "$(dirname "$0")/.."

work=${1:-work/spectrum}
reals=${CNNSPOT_TRAIN_REALS:-../shared/data/train/real}
seed=0

cargo build --release --locked --workspace
bin=target/release/cnnspot

"$bin" synth "$reals" --generators autogan --per-generator 1200 \
    --size 160 --seed "$seed" --split train=0.9,val=0.1 --out "$work/synth"

resume=()
[ -f "$work/runs/autogan-spectrum/latest.json" ] && resume=(--resume)
time "$bin" train --config scripts/spectrum-model.toml \
    --data "$work/synth/train" --val "$work/synth/val" \
    --checkpoints-dir "$work/runs" --name autogan-spectrum --seed "$seed" "${resume[@]}"

"$bin" eval ../shared/data/dev --weights "builtin,$work/runs/autogan-spectrum/best.pth" \
    --out "$work/eval_dev_nocrop"
"$bin" eval ../shared/data/dev --crop 224 --weights "builtin,$work/runs/autogan-spectrum/best.pth" \
    --out "$work/eval_dev_crop224"
