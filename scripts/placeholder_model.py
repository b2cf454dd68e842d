# Writes an untrained NPR network as fp16 safetensors (He-normal convs,
# BN 1/0, head N(0, 0.02)): only so that the library builds before the
# built-in model has been trained. Never shipped as a release model.
import json, random, struct, sys
random.seed(0)
names = []
def conv(name, cout, cin, k): names.append((name + ".weight", [cout, cin, k, k], "conv"))
def bn(name, c):
    for p in ["weight", "bias", "running_mean", "running_var"]:
        names.append((f"{name}.{p}", [c], p))
conv("conv1", 64, 3, 3); bn("bn1", 64)
inp = 64
for stage, (count, width) in enumerate([(3, 64), (4, 128)]):
    out = width * 4
    for b in range(count):
        p = f"layer{stage+1}.{b}"
        conv(p + ".conv1", width, inp, 1); bn(p + ".bn1", width)
        conv(p + ".conv2", width, width, 3); bn(p + ".bn2", width)
        conv(p + ".conv3", out, width, 1); bn(p + ".bn3", out)
        if b == 0:
            conv(p + ".downsample.0", out, inp, 1); bn(p + ".downsample.1", out)
        inp = out
names.append(("fc1.weight", [1, 512], "fc")); names.append(("fc1.bias", [1], "bias"))
header, blobs, off = {}, [], 0
for name, shape, kind in names:
    n = 1
    for d in shape: n *= d
    if kind == "conv":
        std = (2.0 / (shape[0] * shape[2] * shape[3])) ** 0.5
        vals = [random.gauss(0, std) for _ in range(n)]
    elif kind == "fc": vals = [random.gauss(0, 0.02) for _ in range(n)]
    elif kind in ("weight", "running_var"): vals = [1.0] * n
    else: vals = [0.0] * n
    blob = struct.pack(f"<{n}e", *vals)
    header[name] = {"dtype": "F16", "shape": shape, "data_offsets": [off, off + len(blob)]}
    off += len(blob); blobs.append(blob)
h = json.dumps(header).encode()
h += b" " * ((8 - len(h) % 8) % 8)
with open(sys.argv[1], "wb") as f:
    f.write(struct.pack("<Q", len(h))); f.write(h)
    for b in blobs: f.write(b)
