#!/usr/bin/env bash
# cnnspot's inference speed next to PyTorch and ONNX Runtime, measured in one
# session on this machine, with the ratios.
#
#   bash scripts/bench.sh            # 3 interleaved rounds, 10 runs each
#   ROUNDS=5 RUNS=20 bash scripts/bench.sh
#
# Each round runs `cnnspot bench` and `bench_reference.py` (PyTorch, then ONNX
# Runtime, as separate processes so that each has its own peak RSS) one after
# the other; the table shows the median over rounds of each engine's median
# images/s. Interleaving keeps the engines under the same background load on
# a shared machine. The Python reference is installed into a virtualenv
# ($CNNSPOT_BENCH_VENV, default ~/.cache/cnnspot/bench-venv) on first use.
set -euo pipefail

cd "$(dirname "$0")/.."
SHARED=${CNNSPOT_SHARED:-../shared}
ROUNDS=${ROUNDS:-3}
RUNS=${RUNS:-10}
THREADS=${THREADS:-2}
VENV=${CNNSPOT_BENCH_VENV:-$HOME/.cache/cnnspot/bench-venv}
WEIGHTS="$SHARED/fixtures/cnndet_random.pth"
REF="$SHARED/reference/bench_reference.py"

for f in "$WEIGHTS" "$REF"; do
    if [ ! -f "$f" ]; then
        echo "bench.sh: $f is missing; set CNNSPOT_SHARED to the shared folder" >&2
        exit 2
    fi
done

if ! "$VENV/bin/python" -c "import torch, torchvision, onnx, onnxruntime" 2>/dev/null; then
    echo "bench.sh: installing the Python reference into $VENV (once)" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q -r "$SHARED/reference/requirements.txt"
fi

cargo build --release -q --workspace
CNNSPOT=target/release/cnnspot
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

for round in $(seq 1 "$ROUNDS"); do
    echo "bench.sh: round $round of $ROUNDS (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
    /usr/bin/time -f %M -o "$OUT/cnnspot_$round.rss" \
        "$CNNSPOT" bench --weights "$WEIGHTS" --runs "$RUNS" --threads "$THREADS" \
        >"$OUT/cnnspot_$round.json"
    # The int8 mode beside it (same kernels for the stem; see README).
    /usr/bin/time -f %M -o "$OUT/cnnspot_int8_$round.rss" \
        "$CNNSPOT" bench --weights "$WEIGHTS" --runs "$RUNS" --threads "$THREADS" \
        --precision int8 >"$OUT/cnnspot_int8_$round.json"
    for what in torch ort; do
        /usr/bin/time -f %M -o "$OUT/${what}_$round.rss" \
            "$VENV/bin/python" "$REF" --what "$what" --runs "$RUNS" --threads "$THREADS" \
            >"$OUT/${what}_$round.json"
    done
done

python3 - "$OUT" "$ROUNDS" <<'EOF'
import json, statistics, sys

out, rounds = sys.argv[1], int(sys.argv[2])
settings = [("b1_224", "batch 1, 224"), ("b16_224", "batch 16, 224"), ("b1_256", "batch 1, 256x256")]

def load(name, r):
    return json.load(open(f"{out}/{name}_{r}.json"))

def rss_mib(name, r):
    return int(open(f"{out}/{name}_{r}.rss").read().split()[-1]) / 1024

def med(values):
    return statistics.median(values)

cn = [load("cnnspot", r) for r in range(1, rounds + 1)]
ci = [load("cnnspot_int8", r) for r in range(1, rounds + 1)]
th = [load("torch", r) for r in range(1, rounds + 1)]
ox = [load("ort", r) for r in range(1, rounds + 1)]
rate = {}
for key, _ in settings:
    rate[("cnnspot", key)] = med([c["settings"][key]["img_per_s"] for c in cn])
    rate[("cnnspot_int8", key)] = med([c["settings"][key]["img_per_s"] for c in ci])
    rate[("torch", key)] = med([t[f"torch_{key}"]["img_per_s"] for t in th])
    rate[("torch_cl", key)] = med([t[f"torch_channels_last_{key}"]["img_per_s"] for t in th])
    rate[("ort", key)] = med([o[f"ort_{key}"]["img_per_s"] for o in ox])

rss = {n: max(rss_mib(n, r) for r in range(1, rounds + 1))
       for n in ("cnnspot", "cnnspot_int8", "torch", "ort")}
print(f"cnnspot {cn[0]['engine']} engine ({cn[0].get('kernel', '?')} kernel), torch {th[0]['torch_version']}, "
      f"onnxruntime {ox[0].get('ort_version', '?')}, {cn[0]['threads']} threads, "
      f"median of {rounds} rounds of medians of {cn[0]['settings']['b1_224']['runs']} runs")
print()
print("| images/s | cnnspot | PyTorch | PyTorch channels_last | ONNX Runtime | cnnspot / PyTorch (best layout) | cnnspot / ONNX Runtime |")
print("|---|---|---|---|---|---|---|")
for key, label in settings:
    c, t, tc, o = (rate[(e, key)] for e in ("cnnspot", "torch", "torch_cl", "ort"))
    print(f"| {label} | {c:.1f} | {t:.1f} | {tc:.1f} | {o:.1f} | {c / max(t, tc):.2f} | {c / o:.2f} |")
print()
print()
print(f"int8 mode (`--precision int8`, {ci[0].get('int8_kernel', '?')} kernel) against the float32 engines:")
print()
print("| images/s | cnnspot int8 | cnnspot f32 | ONNX Runtime f32 | int8 / cnnspot f32 | int8 / ONNX Runtime f32 |")
print("|---|---|---|---|---|---|")
for key, label in settings:
    i, c, o = (rate[(e, key)] for e in ("cnnspot_int8", "cnnspot", "ort"))
    print(f"| {label} | {i:.1f} | {c:.1f} | {o:.1f} | {i / c:.2f} | {i / o:.2f} |")
print()
print(f"peak RSS (MiB, whole process): cnnspot {rss['cnnspot']:.0f} (int8 {rss['cnnspot_int8']:.0f}), PyTorch {rss['torch']:.0f}, "
      f"ONNX Runtime {rss['ort']:.0f}")
gaps = [c.get("max_logit_gap") for c in cn if c.get("max_logit_gap") is not None]
if gaps:
    print(f"largest logit difference from PyTorch on the fixtures: cnnspot {max(gaps):.2e}, "
          f"PyTorch {max(t['torch_max_logit_gap'] for t in th):.2e}, "
          f"ONNX Runtime {max(o['ort_max_logit_gap'] for o in ox):.2e}")
EOF
# The host: the figures only hold for it (kernels differ with the SIMD flags).
model=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p')
flags=$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' |
    grep -E '^(avx2|fma|avx512[a-z0-9_]*|avx_vnni|amx[a-z0-9_]*)$' | sort | tr '\n' ' ')
echo "host: $model, $(nproc) CPUs; SIMD flags: ${flags:-none of avx2/fma/avx512/vnni/amx}"
