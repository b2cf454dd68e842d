#!/usr/bin/env python3
"""Reference fixture for the NPR detector (Tan et al., CVPR 2024).

Model: the ResNet of chuangchuangtan/NPR-DeepfakeDetection, networks/resnet.py,
built as `resnet50(num_classes=1)` (Bottleneck, layers [3, 4, 6, 3]).  The
module tree below is written to match that file: same attribute names, same
layer construction, same forward.  Notably:

* only conv1/bn1/layer1/layer2/fc1 are constructed in __init__ (layer3 and
  layer4 are never built, so they are not in the state dict, even though
  layers[2] and layers[3] are passed in);
* conv1 is 3x3, stride 2, padding 1, no bias; maxpool 3/2/1;
* fc1 = Linear(512, num_classes) (layer2's output has 128*4 = 512 channels);
* forward: NPR = x - up2(down2(x)), both nearest with
  recompute_scale_factor=True, and conv1 gets NPR*2.0/3.0; then bn1, relu,
  maxpool, layer1, layer2, avgpool(1,1), flatten, fc1.

Checkpoint format: NPR's BaseModel.save_networks does
`torch.save(self.model.state_dict(), save_path)` (the {'model': ...,
'optimizer': ..., 'total_steps': ...} wrapper there is commented out), and
test.py loads it with `model.load_state_dict(torch.load(path), strict=True)`.
So the file holds the bare state dict (an OrderedDict, with its _metadata),
here with every floating tensor stored as float16.

Writes:
  crates/cnnspot-core/tests/fixtures/npr_random_fp16.pth
  crates/cnnspot-core/tests/fixtures/npr_expected.json

Run from the repository root: python3 scripts/make_npr_fixture.py
"""

import collections
import hashlib
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

SEED = 20240617
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "crates", "cnnspot-core", "tests", "fixtures")
CKPT = os.path.join(OUT_DIR, "npr_random_fp16.pth")
JSON_OUT = os.path.join(OUT_DIR, "npr_expected.json")
SHARED_INPUT_REL = "../shared/fixtures/input_real_crop224.npy"
SHARED_INPUT = os.path.normpath(os.path.join(ROOT, SHARED_INPUT_REL))
INLINE_DECIMALS = 3  # inline inputs are rounded to 3 decimals, then float32


# --------------------------------------------------------------------------
# Model (same structure and parameter names as NPR's networks/resnet.py)
# --------------------------------------------------------------------------

def conv3x3(in_planes, out_planes, stride=1):
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride,
                     padding=1, bias=False)


def conv1x1(in_planes, out_planes, stride=1):
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride,
                     bias=False)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)  # stride on the 3x3
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    def __init__(self, block, layers, num_classes=1):
        super().__init__()
        self.unfoldSize = 2
        self.unfoldIndex = 0
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=2, padding=1,
                               bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        # layers[2], layers[3]: no layer3 / layer4 in NPR.
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc1 = nn.Linear(512, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out",
                                        nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, block, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        mods = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            mods.append(block(self.inplanes, planes))
        return nn.Sequential(*mods)

    def interpolate(self, img, factor):
        down = F.interpolate(img, scale_factor=factor, mode="nearest",
                             recompute_scale_factor=True)
        return F.interpolate(down, scale_factor=1 / factor, mode="nearest",
                             recompute_scale_factor=True)

    def npr_input(self, x):
        """What conv1 sees: NPR * 2/3."""
        npr = x - self.interpolate(x, 0.5)
        return npr * 2.0 / 3.0

    def forward(self, x, trace=None):
        def rec(name, t):
            if trace is not None:
                trace[name] = t.detach().clone()
            return t

        x = rec("npr_x2_3", self.npr_input(x))
        x = rec("conv1", self.conv1(x))
        x = rec("bn1", self.bn1(x))
        x = rec("relu", self.relu(x))
        x = rec("maxpool", self.maxpool(x))
        x = rec("layer1", self.layer1(x))
        x = rec("layer2", self.layer2(x))
        x = self.avgpool(x)
        x = rec("avgpool_flat", x.view(x.size(0), -1))
        return self.fc1(x)


def resnet50(**kwargs):
    return ResNet(Bottleneck, [3, 4, 6, 3], **kwargs)


# --------------------------------------------------------------------------

def fp16_round(t):
    return t.half().float()


def randomise(model, gen):
    """Random weights, BN affine and running stats; all rounded via fp16."""
    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1]
                std = (2.0 / fan_out) ** 0.5
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * std)
            elif isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(0.5 + torch.rand(c, generator=gen))
                m.bias.copy_(0.1 * torch.randn(c, generator=gen))
                m.running_mean.copy_(0.1 * torch.randn(c, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(c, generator=gen))
                m.num_batches_tracked.fill_(
                    int(torch.randint(1, 100000, (1,), generator=gen)))
            elif isinstance(m, nn.Linear):
                bound = 1.0 / m.in_features ** 0.5
                m.weight.copy_((torch.rand(m.weight.shape, generator=gen) * 2 - 1) * bound)
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))
        for t in list(model.parameters()) + list(model.buffers()):
            if t.is_floating_point():
                t.copy_(fp16_round(t))


def stats(t):
    t64 = t.double()
    flat = t64.reshape(-1)
    return {
        "shape": list(t.shape),
        "sum": float(t64.sum()),
        "abs_sum": float(t64.abs().sum()),
        "first4": [float(v) for v in flat[:4]],
    }


def run_case(model32, model64, x32):
    trace = {}
    with torch.no_grad():
        y32 = model32(x32, trace=trace)
        y64 = model64(x32.double())
    npr = trace["npr_x2_3"]
    return {
        "logits": [float(v) for v in y32.reshape(-1)],
        "logits_float64": [float(v) for v in y64.reshape(-1)],
        "max_abs_diff_float32_vs_float64": float((y32.double() - y64).abs().max()),
        "npr_x2_3_mean_abs": float(npr.double().abs().mean()),
        "npr_x2_3_max_abs": float(npr.double().abs().max()),
        "activations": {k: stats(v) for k, v in trace.items()},
    }


def odd_size_behaviour(model):
    """What the original forward does on odd H/W (no cropping there)."""
    out = {}
    x = torch.arange(5, dtype=torch.float32).view(1, 1, 1, 5).repeat(1, 1, 5, 1)
    down = F.interpolate(x, scale_factor=0.5, mode="nearest",
                         recompute_scale_factor=True)
    up = F.interpolate(down, scale_factor=2.0, mode="nearest",
                       recompute_scale_factor=True)
    out["example_width5_row"] = [float(v) for v in x[0, 0, 0]]
    out["down_width5_row"] = [float(v) for v in down[0, 0, 0]]
    out["down_up_shape_for_5x5"] = list(up.shape)
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, 65, 64))
        out["forward_65x64"] = "ok"
    except Exception as e:  # noqa: BLE001
        out["forward_65x64"] = "error: " + str(e).splitlines()[0]
    return out


def main():
    torch.set_num_threads(1)
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)

    model = resnet50(num_classes=1)
    randomise(model, gen)
    model.eval()

    # ---- checkpoint: bare state dict, floating tensors as float16 ----
    sd = model.state_dict()
    sd16 = collections.OrderedDict(
        (k, v.half() if v.is_floating_point() else v.clone()) for k, v in sd.items())
    sd16._metadata = sd._metadata
    os.makedirs(OUT_DIR, exist_ok=True)
    torch.save(sd16, CKPT)  # default (zip) serialization

    # ---- reload into float32 (and float64) models, like test.py does ----
    loaded = torch.load(CKPT, map_location="cpu")
    model32 = resnet50(num_classes=1)
    model32.load_state_dict(
        {k: (v.float() if v.is_floating_point() else v) for k, v in loaded.items()},
        strict=True)
    model32.eval()
    model64 = resnet50(num_classes=1)
    model64.load_state_dict(
        {k: (v.double() if v.is_floating_point() else v) for k, v in loaded.items()},
        strict=True)
    model64.double().eval()

    # ---- inputs ----
    xgen = torch.Generator().manual_seed(SEED + 1)
    def inline_input(shape):
        x = torch.randn(shape, generator=xgen, dtype=torch.float64)
        x = np.round(x.numpy(), INLINE_DECIMALS).astype(np.float32)
        return torch.from_numpy(x)

    x_b2 = inline_input((2, 3, 64, 64))
    x_r = inline_input((1, 3, 96, 128))
    shared = np.load(SHARED_INPUT)
    shared_shape = list(shared.shape)
    assert shared.dtype == np.float32, shared.dtype
    x_shared = torch.from_numpy(np.ascontiguousarray(shared))
    if x_shared.dim() == 3:
        x_shared = x_shared.unsqueeze(0)
    with open(SHARED_INPUT, "rb") as f:
        shared_sha = hashlib.sha256(f.read()).hexdigest()

    def inline_values(x):
        # shortest decimal that round-trips; these were rounded to 3 decimals
        return [float(f"{v:.{INLINE_DECIMALS}f}") for v in x.reshape(-1).tolist()]

    cases = []
    for name, x in (("random_b2_64x64", x_b2), ("random_1_96x128", x_r)):
        c = {"name": name, "shape": list(x.shape), "input_kind": "inline",
             "input_note": f"torch.randn (float64, generator seed {SEED + 1}, drawn in "
                           f"order b2_64x64 then 1_96x128) rounded to {INLINE_DECIMALS} "
                           "decimals, then float32; row-major NCHW",
             "input": inline_values(x)}
        assert np.array_equal(np.array(c["input"], dtype=np.float32).reshape(x.shape), x.numpy())
        c.update(run_case(model32, model64, x))
        cases.append(c)
    c = {"name": "shared_real_crop224", "shape": list(x_shared.shape),
         "input_kind": "npy",
         "input_file": SHARED_INPUT_REL,
         "input_file_relative_to": "repository root (/work/main)",
         "input_file_shape": shared_shape,
         "input_file_sha256": shared_sha}
    c.update(run_case(model32, model64, x_shared))
    cases.append(c)

    # batch consistency: the two images of the b2 batch one at a time
    with torch.no_grad():
        single = [float(model32(x_b2[i:i + 1]).reshape(-1)[0]) for i in range(2)]

    keys = list(loaded.keys())
    doc = {
        "description": (
            "NPR detector (chuangchuangtan/NPR-DeepfakeDetection networks/resnet.py, "
            "resnet50(num_classes=1)) with random weights, random BatchNorm affine and "
            "running statistics (weight U(0.5,1.5), bias N(0,0.1), running_mean N(0,0.1), "
            "running_var U(0.5,1.5)), every floating tensor rounded to float16. "
            "Checkpoint npr_random_fp16.pth is a bare state dict (as NPR's save_networks "
            "writes it; test.py loads it strict=True), torch.save zip format, floating "
            "tensors float16, num_batches_tracked int64. Logits: eval mode, float32 "
            "model (fp16 values widened to float32); logits_float64: same values in "
            "float64, as a numerical-noise reference."),
        "torch": torch.__version__,
        "seed": SEED,
        "checkpoint": "npr_random_fp16.pth",
        "checkpoint_wrapping": "none (bare OrderedDict state_dict, with _metadata)",
        "checkpoint_sha256": hashlib.sha256(open(CKPT, "rb").read()).hexdigest(),
        "forward": ("NPR = x - up(down(x)), down = F.interpolate(x, scale_factor=0.5, "
                    "mode='nearest', recompute_scale_factor=True), up = same with "
                    "scale_factor=2.0; conv1(NPR*2.0/3.0) -> bn1 -> relu -> maxpool(3,2,1) "
                    "-> layer1 -> layer2 -> avgpool(1,1) -> flatten -> fc1(512->1). "
                    "For even H,W: down(x)[i,j] = x[2i,2j] and up(d)[i,j] = d[i//2,j//2]."),
        "bn_eps": 1e-5,
        "state_dict_num_keys": len(keys),
        "state_dict_keys": keys,
        "state_dict_shapes": {k: list(v.shape) for k, v in loaded.items()},
        "state_dict_dtypes": {k: str(v.dtype).replace("torch.", "") for k, v in loaded.items()},
        "num_parameters": int(sum(p.numel() for p in model32.parameters())),
        "cases": cases,
        "random_b2_64x64_one_at_a_time_logits": single,
        "odd_size_behaviour": odd_size_behaviour(model32),
        "tolerance_hint": "compare logits to 'logits' at ~1e-4 abs; "
                          "'max_abs_diff_float32_vs_float64' shows PyTorch's own float32 noise",
    }
    with open(JSON_OUT, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")

    print("checkpoint", CKPT, os.path.getsize(CKPT), "bytes")
    print("json", JSON_OUT, os.path.getsize(JSON_OUT), "bytes")
    print("keys", len(keys), "params", doc["num_parameters"])
    for c in cases:
        print(c["name"], c["shape"], "logits", c["logits"], "f64", c["logits_float64"],
              "npr mean/max abs", c["npr_x2_3_mean_abs"], c["npr_x2_3_max_abs"])
    print("one at a time", single)
    print("odd", doc["odd_size_behaviour"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
