#!/usr/bin/env python3
"""Writes the committed seed corpora under fuzz/corpus/<target>/.

Run from the repository root: python3 fuzz/seeds/make_seeds.py
Needs Pillow (images) and nothing else; the small checkpoints are copied from
../shared/fixtures when present. Every file is kept small (< 50 KB).
"""
import io
import json
import os
import pickle
import struct
import sys
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")
SHARED = os.environ.get("CNNSPOT_SHARED", os.path.join(os.path.dirname(ROOT), "shared"))


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    assert len(data) < 50_000, (target, name, len(data))
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ------------------------------------------------------------------ images
def images():
    from PIL import Image

    src = os.path.join(ROOT, "samples", "real_rocket_crop_for_srmdnf-x4.png")
    base = Image.open(src).convert("RGB").crop((0, 0, 40, 36))
    out = {}

    def save(name, img, fmt, **kw):
        b = io.BytesIO()
        img.save(b, fmt, **kw)
        out[name] = b.getvalue()

    save("rgb.png", base, "PNG")
    save("rgba.png", base.convert("RGBA"), "PNG")
    save("l.png", base.convert("L"), "PNG")
    save("la.png", base.convert("LA"), "PNG")
    save("p.png", base.convert("P"), "PNG")
    save("p_trns.png", base.convert("P"), "PNG", transparency=0)
    save("i16.png", base.convert("I;16"), "PNG")
    save("one_bit.png", base.convert("1"), "PNG")
    save("interlaced.png", base, "PNG", optimize=False)
    save("base.jpg", base, "JPEG", quality=90)
    save("progressive.jpg", base, "JPEG", quality=75, progressive=True)
    save("grey.jpg", base.convert("L"), "JPEG")
    save("cmyk.jpg", base.convert("CMYK"), "JPEG")
    save("sub444.jpg", base, "JPEG", subsampling=0)
    save("tiny.jpg", base.resize((8, 8)), "JPEG")
    save("first.gif", base.convert("P"), "GIF")
    frames = [base.convert("P"), base.rotate(90).convert("P")]
    b = io.BytesIO()
    frames[0].save(b, "GIF", save_all=True, append_images=frames[1:], transparency=3)
    out["anim.gif"] = b.getvalue()
    save("rgb.bmp", base, "BMP")
    save("p.bmp", base.convert("P"), "BMP")
    save("rgb.tiff", base, "TIFF")
    save("lzw.tiff", base, "TIFF", compression="tiff_lzw")
    try:
        save("lossless.webp", base, "WEBP", lossless=True)
        save("lossy.webp", base, "WEBP", quality=50)
    except Exception as e:  # Pillow without WebP
        print("no webp:", e, file=sys.stderr)
    # Crafted: headers claiming huge sizes (the pixel limit must refuse them).
    png = out["rgb.png"]
    ihdr = bytearray(png)
    struct.pack_into(">II", ihdr, 16, 100000, 100000)
    out["huge_ihdr_badcrc.png"] = bytes(ihdr)
    out["truncated.png"] = png[: len(png) // 3]
    jpg = bytearray(out["base.jpg"])
    i = jpg.find(b"\xff\xc0")
    if i > 0:
        struct.pack_into(">HH", jpg, i + 5, 65500, 65500)
        out["huge_sof.jpg"] = bytes(jpg)
    out["soi_only.jpg"] = b"\xff\xd8"
    gif = bytearray(out["first.gif"])
    struct.pack_into("<HH", gif, 6, 65535, 65535)
    out["huge_screen.gif"] = bytes(gif)
    return out


# ----------------------------------------------------------------- weights
def safetensors(tensors, metadata=None):
    header, body = {}, b""
    if metadata:
        header["__metadata__"] = metadata
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(body), len(body) + len(raw)]}
        body += raw
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + body


def f32(*v):
    return struct.pack(f"<{len(v)}f", *v)


def zip_pth(pkl, records, prefix="archive"):
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{prefix}/data.pkl", pkl)
        z.writestr(f"{prefix}/byteorder", b"little")
        for k, v in records.items():
            z.writestr(f"{prefix}/data/{k}", v)
        z.writestr(f"{prefix}/version", b"3\n")
    return b.getvalue()


def weights():
    out = {}
    for name in ("small_zip_format.pth", "small_legacy_format.pth"):
        p = os.path.join(SHARED, "fixtures", name)
        if os.path.exists(p):
            out[name] = open(p, "rb").read()
        else:
            print("missing", p, file=sys.stderr)
    out["st_f32.safetensors"] = safetensors(
        {"fc.weight": ("F32", [1, 4], f32(0.5, -1.0, 2.0, 0.25)),
         "fc.bias": ("F32", [1], f32(0.1))}, {"total_steps": "7"})
    out["st_mixed.safetensors"] = safetensors(
        {"a": ("F16", [2], b"\x00\x3c\x00\xc0"), "b": ("I64", [1], struct.pack("<q", -3)),
         "c": ("BF16", [0, 3], b""), "d": ("F64", [], struct.pack("<d", 1.5)),
         "e": ("U8", [3], b"\x01\x02\x03"), "f": ("BOOL", [1], b"\x01")})
    # Plain pickles (no tensors) in a zip checkpoint: the pickle VM's opcodes
    # for every protocol.
    obj = {"model": {}, "total_steps": 3, "epoch": 1, "lr": 1e-4,
           "optimizer": {"state": {0: {"step": 1.0}}, "param_groups": [
               {"lr": 1e-4, "betas": (0.9, 0.999), "params": [0, 1]}]},
           "names": ["a", "b", None, True, False], "big": 2 ** 70, "neg": -5,
           "bytes": b"xy", "set": {1, 2}, "frozen": frozenset([3])}
    for proto in range(0, 6):
        out[f"zip_plain_p{proto}.pth"] = zip_pth(pickle.dumps(obj, protocol=proto), {})
    # Hand-written pickle with the tensor rebuild global (protocol 2), one
    # float32 storage of 4 elements, a [2, 2] view.
    pk = (b"\x80\x02}q\x00X\x05\x00\x00\x00modelq\x01"
          b"ccollections\nOrderedDict\nq\x02)Rq\x03"
          b"X\x08\x00\x00\x00fc.biasq\x04"
          b"ctorch._utils\n_rebuild_tensor_v2\nq\x05"
          b"((X\x07\x00\x00\x00storageq\x06ctorch\nFloatStorage\nq\x07X\x01\x00\x00\x000q\x08X\x03\x00\x00\x00cpuq\tK\x04tq\nQ"
          b"K\x00K\x02K\x02\x86q\x0bK\x02K\x01\x86q\x0c\x89ccollections\nOrderedDict\nq\r)Rq\x0etq\x0fRq\x10"
          b"ss.")
    out["zip_tensor_handmade.pth"] = zip_pth(pk, {"0": f32(1.0, 2.0, 3.0, 4.0)})
    return out


# ------------------------------------------------------------------- ncnn
def ncnn():
    def seq(n, scale, off):
        return [((i * 7 + 3) % 11) * scale + off for i in range(n)]

    def tagged(v):
        return struct.pack("<I", 0) + f32(*v)

    def fp16(v):
        b = struct.pack("<I", 0x01306B47) + struct.pack(f"<{len(v)}e", *v)
        return b + (b"\0\0" if len(v) % 2 else b"")

    def raw(v):
        return f32(*v)

    g = {}
    w = seq(2 * 3 * 9, 0.1, -0.3)
    g["conv_prelu"] = ("7767517\n2 2\nInput in 0 1 data\nConvolution conv 1 1 data out 0=2 1=3 4=1 5=1 6=54 9=2 -23310=1,0.2\n",
                       tagged(w) + raw([0.1, 0.2]))
    g["conv_fp16_asym"] = ("7767517\n2 2\nInput in 0 1 data\nConvolution conv 1 1 data out 0=2 1=3 11=2 2=2 12=1 3=2 13=1 4=1 15=0 14=2 16=1 5=0 6=54\n",
                           fp16(w))
    w1 = seq(4 * 3 * 9, 0.1, -0.3)
    w2 = seq(3 * 4, 0.1, -0.2)
    g["conv_same_conv1x1"] = ("7767517\n3 3\nInput in 0 1 data\nConvolution c1 1 1 data a 0=4 1=3 3=2 4=-233 6=108\nConvolution c2 1 1 a out 0=3 1=1 5=1 6=12 9=1\n",
                              tagged(w1) + tagged(w2) + raw([0.0, 0.1, 0.2]))
    g["depthwise"] = ("7767517\n2 2\nInput in 0 1 data\nConvolutionDepthWise dw 1 1 data out 0=3 1=3 4=1 5=1 6=27 7=3\n",
                      tagged(seq(27, 0.1, -0.3)) + raw([0.0, 0.1, 0.2]))
    g["deconv"] = ("7767517\n3 3\nInput in 0 1 data\nDeconvolution d1 1 1 data a 0=3 1=4 3=2 4=1 5=1 6=108\nDeconvolution d2 1 1 a out 0=2 1=2 3=2 5=1 6=24\n",
                   tagged(seq(108, 0.05, -0.2)) + raw([0.0, 0.1, 0.2]) + tagged(seq(24, 0.1, -0.3)) + raw([0.3, -0.3]))
    g["interp"] = ("7767517\n4 5\nInput in 0 1 data\nSplit sp 1 2 data a b\nInterp up 1 1 a n 0=1 1=2.0 2=3.0\nInterp bl 1 1 b l 0=2 3=3 4=5\n", b"")
    g["interp_bicubic_down"] = ("7767517\n2 2\nInput in 0 1 data\nInterp down 1 1 data out 0=3 1=0.5 2=0.5\n", b"")
    g["pixelshuffle"] = ("7767517\n3 3\nInput in 0 1 data\nConvolution c 1 1 data a 0=12 1=1 6=36\nPixelShuffle ps 1 1 a out 0=2\n",
                         tagged(seq(36, 0.1, -0.5)))
    g["binaryop_eltwise"] = ("7767517\n9 13\nInput in 0 1 data\nSplit sp 1 5 data a b c d e\nPooling gap 1 1 a v 0=1 4=1\nBinaryOp mul 2 1 b v m 0=2\nBinaryOp rsub 1 1 c r 0=7 1=1 2=1.0\nEltwise sum 2 1 m r s 0=1 -23301=2,0.5,2.0\nEltwise prod 2 1 s d t 0=0\nEltwise mx 2 1 t e u 0=2\nBinaryOp add 1 1 u out 0=0 1=1 2=0.25\n", b"")
    g["se_block"] = ("7767517\n8 11\nInput in 0 1 data\nSplit sp 1 3 data a b c\nPooling gap 1 1 a g 0=1 4=1\nInnerProduct fc1 1 1 g h 0=2 1=1 2=6 9=1\nInnerProduct fc2 1 1 h s 0=3 1=1 2=6 9=4\nScale sc 2 1 b s scaled 0=-233\nCrop cr 1 1 c cropped -23309=2,1,1 -23310=2,-1,-2 -23311=2,-2,-1\nCrop cr2 2 1 scaled cropped out 0=1 1=1\n",
                     tagged(seq(6, 0.1, -0.3)) + raw([0.1, -0.1]) + tagged(seq(6, 0.2, -0.6)) + raw([0.0, 0.5, -0.5]))
    g["concat"] = ("7767517\n3 4\nInput in 0 1 data\nSplit sp 1 2 data a b\nConcat cat 2 1 a b out 0=0\n", b"")
    g["activations"] = ("7767517\n7 7\nInput in 0 1 data\nPReLU pr 1 1 data a 0=3\nScale sc 1 1 a b 0=3 1=1\nPooling mp 1 1 b c 0=0 1=2 2=2\nReLU lr 1 1 c d 0=0.5\nClip cl 1 1 d e 0=-0.3 1=0.6\nSigmoid sg 1 1 e out\n",
                        raw([0.1, 0.2, 0.3]) + raw([1.0, 2.0, 0.5]) + raw([0.0, 0.1, -0.1]))
    g["unet_mix"] = ("7767517\n9 12\nInput in 0 1 data\nConvolution c1 1 1 data a 0=2 1=3 4=1 5=1 6=54 9=2 -23310=1,0.1\nSplit sp 1 3 a b c d\nPooling gap 1 1 b g 0=1 4=1\nBinaryOp mul 2 1 c g m 0=2\nDeconvolution dc 1 1 m e 0=2 1=2 3=2 5=0 6=16\nInterp up 1 1 d f 0=3 1=2.0 2=2.0\nCrop cr 2 1 f e h 0=0 1=0\nEltwise add 2 1 e h out 0=1\n",
                     tagged(w) + raw([0.1, 0.2]) + fp16(seq(16, 0.1, -0.3)))
    g["noop_dropout"] = ("7767517\n3 3\nInput in 0 1 data 0=16 1=16 2=3\nNoop n 1 1 data a\nDropout d 1 1 a out\n", b"")
    g["int8_tag"] = ("7767517\n2 2\nInput in 0 1 data\nConvolution c 1 1 data out 0=1 1=1 6=3\n",
                     struct.pack("<I", 0x000D4B38) + b"\x01\x02\x03\x00")
    return {k + ".ncnn": p.encode() + b"\0" + b for k, (p, b) in g.items()}


# ------------------------------------------------------------------- onnx
class Pb:
    def __init__(self):
        self.b = bytearray()

    def varint(self, v):
        v &= (1 << 64) - 1
        while v >= 0x80:
            self.b.append((v & 0x7F) | 0x80)
            v >>= 7
        self.b.append(v)

    def key(self, field, wire):
        self.varint((field << 3) | wire)

    def int(self, field, v):
        self.key(field, 0)
        self.varint(v)
        return self

    def float(self, field, v):
        self.key(field, 5)
        self.b += struct.pack("<f", v)
        return self

    def bytes(self, field, data):
        self.key(field, 2)
        self.varint(len(data))
        self.b += data
        return self

    def str(self, field, s):
        return self.bytes(field, s.encode())

    def msg(self, field, m):
        return self.bytes(field, bytes(m.b))


def t_f32(name, dims, data):
    t = Pb()
    for d in dims:
        t.int(1, d)
    return t.int(2, 1).str(8, name).bytes(9, f32(*data))


def t_f32_floatdata(name, dims, data):
    t = Pb()
    for d in dims:
        t.int(1, d)
    t.int(2, 1).str(8, name)
    for v in data:
        t.float(4, v)
    return t


def t_i64(name, dims, data):
    t = Pb()
    for d in dims:
        t.int(1, d)
    t.int(2, 7).str(8, name)
    for v in data:
        t.int(7, v)
    return t


def a_int(n, v):
    return Pb().str(1, n).int(20, 2).int(3, v)


def a_float(n, v):
    return Pb().str(1, n).int(20, 1).float(2, v)


def a_ints(n, vs):
    a = Pb().str(1, n).int(20, 7)
    for v in vs:
        a.int(8, v)
    return a


def a_str(n, s):
    return Pb().str(1, n).int(20, 3).str(4, s)


def a_tensor(n, t):
    return Pb().str(1, n).int(20, 4).msg(5, t)


def node(op, ins, outs, attrs=()):
    n = Pb()
    for i in ins:
        n.str(1, i)
    for o in outs:
        n.str(2, o)
    n.str(3, f"{op}_{outs[0] if outs else ''}").str(4, op)
    for a in attrs:
        n.msg(5, a)
    return n


def vinfo(name, dims):
    shape = Pb()
    for i, d in enumerate(dims):
        shape.msg(1, Pb().int(1, d) if d is not None else Pb().str(2, f"d{i}"))
    tt = Pb().int(1, 1).msg(2, shape)
    return Pb().str(1, name).msg(2, Pb().msg(1, tt))


def model(nodes, inits=(), inputs=(("x", [1, 3, 4, 4]),), outputs=("y",), opset=17):
    g = Pb()
    for n in nodes:
        g.msg(1, n)
    g.str(2, "seed")
    for t in inits:
        g.msg(5, t)
    for name, dims in inputs:
        g.msg(11, vinfo(name, dims))
    for o in outputs:
        g.msg(12, Pb().str(1, o))
    return bytes(Pb().int(1, 8).msg(8, Pb().str(1, "").int(2, opset)).str(2, "seed").msg(7, g).b)


def onnx():
    m = {}
    w = [((i * 7 + 3) % 11) * 0.1 - 0.5 for i in range(2 * 3 * 9)]
    m["conv_relu"] = model([node("Conv", ["x", "w", "b"], ["c"], [a_ints("pads", [1, 1, 1, 1]), a_ints("kernel_shape", [3, 3])]),
                            node("Relu", ["c"], ["y"])],
                           [t_f32("w", [2, 3, 3, 3], w), t_f32("b", [2], [0.1, -0.1])])
    m["conv_stride_group"] = model([node("Conv", ["x", "w"], ["y"], [a_ints("strides", [2, 2]), a_int("group", 3), a_ints("dilations", [1, 1])])],
                                   [t_f32_floatdata("w", [3, 1, 2, 2], [0.5] * 12)])
    m["instnorm_like"] = model([
        node("ReduceMean", ["x"], ["m"], [a_ints("axes", [2, 3]), a_int("keepdims", 1)]),
        node("Sub", ["x", "m"], ["d"]),
        node("Mul", ["d", "d"], ["sq"]),
        node("ReduceMean", ["sq"], ["v"], [a_ints("axes", [2, 3])]),
        node("Add", ["v", "eps"], ["ve"]),
        node("Sqrt", ["ve"], ["s"]),
        node("Div", ["d", "s"], ["n"]),
        node("Tanh", ["n"], ["y"])],
        [t_f32("eps", [], [1e-5])])
    m["resize_pad_slice"] = model([
        node("Pad", ["x", "pads"], ["p"], [a_str("mode", "reflect")]),
        node("Resize", ["p", "", "scales"], ["r"], [a_str("mode", "nearest")]),
        node("Slice", ["r", "st", "en", "ax"], ["y"])],
        [t_i64("pads", [8], [0, 0, 1, 1, 0, 0, 1, 1]), t_f32("scales", [4], [1, 1, 2, 2]),
         t_i64("st", [2], [1, 1]), t_i64("en", [2], [-1, -1]), t_i64("ax", [2], [2, 3])])
    m["resize_linear_sizes"] = model([node("Resize", ["x", "", "", "sizes"], ["y"], [a_str("mode", "linear"), a_str("coordinate_transformation_mode", "align_corners")])],
                                     [t_i64("sizes", [4], [1, 3, 7, 5])])
    m["reshape_transpose"] = model([
        node("Shape", ["x"], ["s"]) if False else node("Reshape", ["x", "shp"], ["r"]),
        node("Transpose", ["r"], ["t"], [a_ints("perm", [0, 2, 1])]),
        node("Unsqueeze", ["t", "ax0"], ["u"]),
        node("Squeeze", ["u", "ax0"], ["y"])],
        [t_i64("shp", [3], [1, 3, -1]), t_i64("ax0", [1], [0])])
    m["consts_concat"] = model([
        node("Constant", [], ["k"], [a_tensor("value", t_f32("kv", [1, 1, 4, 4], [0.25] * 16))]),
        node("ConstantOfShape", ["cs"], ["z"], [a_tensor("value", t_f32("zv", [1], [0.0]))]),
        node("Concat", ["x", "k", "z"], ["c"], [a_int("axis", 1)]),
        node("Cast", ["c"], ["cc"], [a_int("to", 1)]),
        node("Exp", ["cc"], ["e"]), node("Neg", ["e"], ["n"]), node("Abs", ["n"], ["a"]),
        node("Pow", ["a", "two"], ["p"]), node("Sigmoid", ["p"], ["q"]),
        node("ReduceSum", ["q", "axs"], ["y"], [a_int("keepdims", 0)]),
        node("Identity", ["y"], ["y2"])],
        [t_i64("cs", [4], [1, 1, 4, 4]), t_f32("two", [], [2.0]), t_i64("axs", [1], [1])],
        outputs=("y2",))
    m["two_inputs_symbolic"] = model([node("Mul", ["x", "s"], ["y"])],
                                     inputs=(("x", [1, 3, None, None]), ("s", [1, 3, 1, 1])))
    m["opset11"] = model([node("Relu", ["x"], ["y"])], opset=11)
    m["opset9"] = model([node("Relu", ["x"], ["y"])], opset=9)
    return {k + ".onnx": v for k, v in m.items()}


# ----------------------------------------------------------------- serve
def serve(imgs):
    out = {}

    def form(parts, boundary="XyZ"):
        body = b""
        for name, filename, ctype, data in parts:
            body += b"--" + boundary.encode() + b"\r\n"
            disp = f'Content-Disposition: form-data; name="{name}"'
            if filename is not None:
                disp += f'; filename="{filename}"'
            body += disp.encode() + b"\r\n"
            if ctype:
                body += f"Content-Type: {ctype}\r\n".encode()
            body += b"\r\n" + data + b"\r\n"
        body += b"--" + boundary.encode() + b"--\r\n"
        return f"multipart/form-data; boundary={boundary}".encode() + b"\n" + body

    out["one_png"] = form([("file", "a.png", "image/png", imgs["rgb.png"])])
    out["two_files_and_field"] = form([("note", None, None, b"hello"),
                                       ("file", "a.jpg", "image/jpeg", imgs["tiny.jpg"]),
                                       ("file", "b.gif", "image/gif", imgs["first.gif"])])
    out["quoted_boundary"] = form([("f", "x y.png", "", imgs["l.png"])], boundary="--a'b(c)")
    out["empty_form"] = b"multipart/form-data; boundary=B\n--B--\r\n"
    out["raw_body"] = b"image/png\n" + imgs["p.png"]
    out["no_boundary"] = b"multipart/form-data\n--B\r\n\r\n--B--\r\n"
    return out


# ----------------------------------------------------------- train config
def train():
    return {
        "builtin.toml": open(os.path.join(ROOT, "scripts", "builtin-model.toml"), "rb").read(),
        "small.toml": b'arch = "resnet18"\nbatch_size = 4\nepochs = 5\nseed = 3\n\n[augment]\nload_size = 64\ncrop_size = 48\n',
        "full.toml": b'name = "run"\ndata = "data/train"\nval = "data/val"\nclasses = ["car", "cat"]\n'
                     b'checkpoints_dir = "runs"\narch = "resnet50"\ninit = "init.pth"\nbatch_size = 64\nlr = 1e-4\n'
                     b'beta1 = 0.9\nepochs = 1000\npatience = 5\nseed = 18446744073709551615\nworkers = 2\n'
                     b'class_balance = false\nsave_every_steps = 2000\nmax_pixels = 134217728\npreset = "blur+jpeg-0.5"\n\n'
                     b'[augment]\nload_size = 256\nrz_interp = ["bilinear", "bicubic", "lanczos", "nearest"]\nblur_prob = 0.5\n'
                     b'blur_sig = [0.0, 3.0]\njpg_prob = 0.5\njpg_qual = [30, 100]\njpg_method = ["libjpeg-turbo"]\n'
                     b'crop_size = 224\nno_flip = false\nno_resize = false\n',
        "inline.toml": b'name = "x"\naugment = { load_size = 1, crop_size = 0, blur_sig = [nan, inf] }\nlr = -inf\n',
        "empty.toml": b"",
    }


def main():
    imgs = images()
    for k, v in imgs.items():
        put("image_decode", k, b"\x00" + v)  # first byte: crop selector
    imgs["crop224_rgb.png"] = imgs["rgb.png"]
    put("image_decode", "crop224_rgb.png", b"\x01" + imgs["rgb.png"])
    for k, v in weights().items():
        put("weights_load", k, v)
        put("weights_roundtrip", k, v)
    for k, v in ncnn().items():
        put("ncnn_net", k, v)
    for k, v in onnx().items():
        put("onnx_model", k, v)
    for k, v in serve(imgs).items():
        put("serve_multipart", k, v)
    for k, v in train().items():
        put("train_config", k, v)


if __name__ == "__main__":
    main()
