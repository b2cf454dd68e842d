"""Regenerate the fixtures of cnnspot-augment's tests (SciPy, Pillow, OpenCV).

    pip install scipy numpy pillow opencv-python-headless
    python3 generate.py

Writes input_24x20.png, input_64x48.png, blur_sigma*.png, resize_*.png,
pil_q*.jpg, cv2_q*.jpg and versions.json next to this script. The augment
calls copy CNNDetection's data/datasets.py (uint8 in, uint8 out per channel).

SciPy's Gaussian kernel goes through numpy's exp, which on CPUs with AVX-512
is numpy's own SIMD exp and elsewhere the C library's; the two differ by an
ulp for some arguments, which flips SciPy's uint8 truncations on some
pixels: on a photo (shared/fixtures/real.png, 30 random sigmas) 0.4% of
samples by one grey level; on images with large flat areas up to 1% of
samples, by up to two (each of the two truncations can flip). blur_sigma*.png are made with numpy's AVX-512 dispatch
disabled (the C library's exp, as Rust's f64::exp); for the four sigmas used
here both dispatches give the same bytes (checked with numpy 2.4.6).
"""
import json
import os
import subprocess
import sys
from io import BytesIO

import numpy as np
import PIL
import PIL.features
import scipy
from PIL import Image
from scipy.ndimage import gaussian_filter

HERE = os.path.dirname(os.path.abspath(__file__))


def structured(w, h, seed):
    """Gradients, a checkerboard, a bright disc, hard edges and noise."""
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 255 * x / (w - 1)
    g = 255 * y / (h - 1)
    b = np.where(((x // 4) + (y // 4)) % 2 == 0, 230.0, 20.0)
    disc = (x - w * 0.6) ** 2 + (y - h * 0.4) ** 2 < (min(w, h) * 0.25) ** 2
    r[disc] = 250
    g[disc] = 250
    b[disc] = 5
    img = np.stack([r, g, b], axis=-1) + rng.randint(-12, 13, size=(h, w, 3))
    img[:, : w // 6, :] = 0  # flat black band: edge reflection of a constant
    img[-2:, :, :] = 255  # flat white rows at the bottom edge
    img[1 : h // 3, -w // 4 :, :] = 128  # flat mid grey: truncation boundary
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def save_png(arr, name):
    Image.fromarray(arr).save(os.path.join(HERE, name))


def cnndetection_blur(img, sigma):
    img = img.copy()
    gaussian_filter(img[:, :, 0], output=img[:, :, 0], sigma=sigma)
    gaussian_filter(img[:, :, 1], output=img[:, :, 1], sigma=sigma)
    gaussian_filter(img[:, :, 2], output=img[:, :, 2], sigma=sigma)
    return img


def torchvision_resize(pil, size, resample):
    # torchvision.transforms.functional.resize(img, size) for an int size
    w, h = pil.size
    short, long = (w, h) if w <= h else (h, w)
    if short == size:
        return pil
    new_short, new_long = size, int(size * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    return pil.resize((new_w, new_h), resample)


def pil_jpg_bytes(img, q):
    out = BytesIO()
    Image.fromarray(img).save(out, format="jpeg", quality=q)
    return out.getvalue()


def blur_fixtures(suffix):
    small = np.array(Image.open(os.path.join(HERE, "input_24x20.png")))
    for sigma in (0.5, 1.0, 1.5, 3.0):
        save_png(cnndetection_blur(small, sigma), f"blur_sigma{sigma}{suffix}.png")


def main():
    if sys.argv[1:] == ["--blur-only"]:
        blur_fixtures("")
        return
    small = structured(24, 20, 1)
    save_png(small, "input_24x20.png")
    env = dict(os.environ, NPY_DISABLE_CPU_FEATURES="X86_V4 AVX512_ICL AVX512_SPR")
    subprocess.run([sys.executable, __file__, "--blur-only"], env=env, check=True)

    big = structured(64, 48, 2)
    save_png(big, "input_64x48.png")
    pil = Image.fromarray(big)
    filters = {
        "bilinear": Image.BILINEAR,
        "bicubic": Image.BICUBIC,
        "lanczos": Image.LANCZOS,
        "nearest": Image.NEAREST,
    }
    for name, f in filters.items():
        for size in (30, 72):
            out = np.array(torchvision_resize(pil, size, f))
            save_png(out, f"resize_{name}_{size}.png")

    versions = {
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "pillow": PIL.__version__,
        "pillow_libjpeg_turbo": PIL.features.version("libjpeg_turbo"),
    }
    for q in (30, 65, 95):
        with open(os.path.join(HERE, f"pil_q{q}.jpg"), "wb") as f:
            f.write(pil_jpg_bytes(big, q))
    try:
        import cv2

        versions["opencv"] = cv2.__version__
        for q in (30, 65, 95):
            ok, enc = cv2.imencode(".jpg", big[:, :, ::-1], [int(cv2.IMWRITE_JPEG_QUALITY), q])
            assert ok
            with open(os.path.join(HERE, f"cv2_q{q}.jpg"), "wb") as f:
                f.write(enc.tobytes())
    except ImportError:
        pass
    with open(os.path.join(HERE, "versions.json"), "w") as f:
        json.dump(versions, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
