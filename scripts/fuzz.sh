#!/usr/bin/env bash
# Runs a libFuzzer campaign on one of the fuzz/ targets:
#
#   scripts/fuzz.sh TARGET MINUTES        # e.g. scripts/fuzz.sh weights_load 30
#   scripts/fuzz.sh list                  # the targets
#
# MINUTES may be fractional (0.5 = 30 s).
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
# Builds with `cargo +nightly fuzz build` (AddressSanitizer, debug assertions
# and overflow checks on, so that an integer overflow is a crash, as it is
# under `cargo test`), then runs one fuzzing process for MINUTES.
#
# The committed seeds (fuzz/corpus/TARGET) are only read; what the campaign
# finds goes to a work dir, $FUZZ_WORK/TARGET (default target/fuzz-work/),
# corpus/ for new inputs and artifacts/ for crashes, leaks, timeouts and
# out-of-memory inputs. To keep a new seed, copy it into fuzz/corpus by hand
# (small ones only); to keep a crash, add it to the owning crate's
# tests/fuzz_regressions/ and fix the crate.
#
# Limits (libFuzzer reports going over either as a crash):
# * -malloc_limit_mb=1024: no single allocation may exceed 1 GiB, the
#   crates' own ceilings: 2^28 floats (ncnn and onnx DEFAULT_MAX_ELEMENTS),
#   a 1 GiB pickle (cnnspot-weights MAX_PICKLE_BYTES). The targets run with
#   tighter bounds still (serve's 4096x4096 pixel limit, whose largest buffer
#   is the 192 MiB normalised tensor; 2^16-element activations), so an
#   allocation near 1 GiB means a size was taken from the file unchecked.
# * -rss_limit_mb=2048: the largest legitimate working set is an image at
#   the pixel limit (16-bit RGBA decode buffer 128 MiB + RGB 48 MiB +
#   tensor 192 MiB), about 400 MiB, plus AddressSanitizer's shadow memory and
#   quarantine (256 MiB by default): 2 GiB leaves room for that and nothing
#   for a bomb.
# * -timeout=60: one input taking a minute is reported (a hang, or work not
#   bounded by the input's size).
#
# At the end it prints libFuzzer's final stats: runs (execs), cov/ft
# (coverage edges and features), peak RSS, and the artifacts found.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

targets=(image_decode weights_load weights_roundtrip ncnn_net onnx_model serve_multipart train_config)
if [[ ${1:-} == list || $# -lt 1 ]]; then
    printf '%s\n' "${targets[@]}"
    [[ $# -ge 1 ]] && exit 0
    echo "usage: scripts/fuzz.sh TARGET MINUTES" >&2
    exit 2
fi
target=$1
minutes=${2:-30}
seconds=$(awk -v m="$minutes" 'BEGIN { printf "%d", m * 60 }')
case " ${targets[*]} " in
*" $target "*) ;;
*) echo "unknown target $target; one of: ${targets[*]}" >&2; exit 2 ;;
esac

features=()
dict=
case $target in
image_decode) dict=image.dict ;;
weights_load | weights_roundtrip) dict=pickle.dict ;;
ncnn_net) dict=ncnn.dict ;;
onnx_model) dict=onnx.dict ;;
# Both pull in burn through cnnspot-core: one feature set for the two, so
# that burn is built once under the sanitizer.
serve_multipart) dict=multipart.dict; features=(--features serve,train) ;;
train_config) dict=toml.dict; features=(--features serve,train) ;;
esac

work=${FUZZ_WORK:-$root/target/fuzz-work}/$target
mkdir -p "$work/corpus" "$work/artifacts"

cd fuzz
cargo +nightly fuzz build --debug-assertions "${features[@]}" "$target"
bin=target/x86_64-unknown-linux-gnu/release/$target

args=(
    "$work/corpus" "$root/fuzz/corpus/$target"
    -max_total_time="$seconds"
    -rss_limit_mb=2048
    -malloc_limit_mb=1024
    -timeout=60
    -artifact_prefix="$work/artifacts/"
    -print_final_stats=1
)
[[ -n $dict ]] && args+=(-dict="$root/fuzz/dict/$dict")

log=$work/fuzz-$(date -u +%Y%m%dT%H%M%SZ).log
echo "fuzzing $target for $minutes min; log $log" >&2
# One thread per process for rayon (ncnn, onnx): steadier exec rates.
set +e
RAYON_NUM_THREADS=1 "$bin" "${args[@]}" 2>&1 | tee "$log" | grep -aE '^#[0-9]+[[:space:]]+(INITED|DONE|NEW|REDUCE|pulse)|^==|ERROR|panicked|Test unit written' | tail -n 40
status=${PIPESTATUS[0]}
set -e

echo "---- $target: $minutes min, exit $status"
grep -aE '^#[0-9]+[[:space:]]+(INITED|DONE)' "$log" | tail -n 2 || true
grep -aE '^stat::' "$log" || true
grep -aE 'Test unit written|^SUMMARY' "$log" || true
echo "artifacts: $(find "$work/artifacts" -type f | wc -l) in $work/artifacts"
exit "$status"
