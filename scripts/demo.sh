#!/usr/bin/env bash
# The newcomer's first run: install what the build needs, build cnnspot, and
# score the sample images bundled in samples/ with the built-in model
# (compiled into the binary: no download, works offline).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
cargo build --release --locked -p cnnspot
bin="${CARGO_TARGET_DIR:-target}/release/cnnspot"

"$bin" weights list
"$bin" detect samples/
