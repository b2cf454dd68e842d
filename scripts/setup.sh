#!/usr/bin/env bash
# Installs what cnnspot needs to build and test on a fresh Debian machine.
# Safe to run again: it only installs what is missing.
set -euo pipefail

need_apt=()
# (Debian packages the build or tests need are listed here.)
packages=(gcc chromium)
for p in "${packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || need_apt+=("$p")
done
if [ ${#need_apt[@]} -gt 0 ]; then
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi

if ! command -v cargo >/dev/null; then
    echo "cnnspot needs a Rust toolchain (cargo); install it with rustup: https://rustup.rs" >&2
    exit 1
fi
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    rustup component add rustfmt clippy >/dev/null 2>&1 || true
fi
