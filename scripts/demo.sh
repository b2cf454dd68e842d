#!/usr/bin/env bash
# The newcomer's first run: install, build, fetch the official weights, and
# score the sample images bundled in samples/.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
cargo build --release --locked -p cnnspot
bin=target/release/cnnspot

"$bin" weights fetch
"$bin" detect samples/
