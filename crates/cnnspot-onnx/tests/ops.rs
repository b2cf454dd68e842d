//! Tiny hand-built graphs: each operator against hand-computed values or a
//! straightforward reference, and malformed models against the error they
//! must produce (never a panic). The models are encoded here by a minimal
//! protobuf writer, independent of the crate's decoder.
#![allow(clippy::needless_range_loop)] // index loops mirror the formulas

use cnnspot_onnx::{Dim, Model, OnnxError, Tensor};

// ------------------------------------------------------ protobuf writer ---

/// A protobuf message being written.
#[derive(Default, Clone)]
struct Pb(Vec<u8>);

impl Pb {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    fn key(&mut self, field: u32, wire: u8) {
        self.varint(((field as u64) << 3) | wire as u64);
    }
    fn int(mut self, field: u32, v: i64) -> Pb {
        self.key(field, 0);
        self.varint(v as u64);
        self
    }
    fn float(mut self, field: u32, v: f32) -> Pb {
        self.key(field, 5);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn bytes(mut self, field: u32, b: &[u8]) -> Pb {
        self.key(field, 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }
    fn str(self, field: u32, s: &str) -> Pb {
        self.bytes(field, s.as_bytes())
    }
    fn msg(self, field: u32, m: &Pb) -> Pb {
        self.bytes(field, &m.0)
    }
}

// onnx.proto field numbers and enum values.
const FLOAT: i64 = 1;
const INT64: i64 = 7;

fn tensor_f32(name: &str, dims: &[i64], data: &[f32]) -> Pb {
    let mut t = Pb::default();
    for &d in dims {
        t = t.int(1, d);
    }
    let raw: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    t.int(2, FLOAT).str(8, name).bytes(9, &raw)
}

/// An int64 tensor stored in `int64_data` (not raw), to cover that path.
fn tensor_i64(name: &str, dims: &[i64], data: &[i64]) -> Pb {
    let mut t = Pb::default();
    for &d in dims {
        t = t.int(1, d);
    }
    t = t.int(2, INT64).str(8, name);
    for &v in data {
        t = t.int(7, v);
    }
    t
}

fn attr_int(name: &str, v: i64) -> Pb {
    Pb::default().str(1, name).int(20, 2).int(3, v)
}
fn attr_float(name: &str, v: f32) -> Pb {
    Pb::default().str(1, name).int(20, 1).float(2, v)
}
fn attr_ints(name: &str, v: &[i64]) -> Pb {
    let mut a = Pb::default().str(1, name).int(20, 7);
    for &x in v {
        a = a.int(8, x);
    }
    a
}
fn attr_str(name: &str, s: &str) -> Pb {
    Pb::default().str(1, name).int(20, 3).str(4, s)
}
fn attr_tensor(name: &str, t: &Pb) -> Pb {
    Pb::default().str(1, name).int(20, 4).msg(5, t)
}

fn node(op: &str, inputs: &[&str], outputs: &[&str], attrs: &[Pb]) -> Pb {
    let mut n = Pb::default();
    for i in inputs {
        n = n.str(1, i);
    }
    for o in outputs {
        n = n.str(2, o);
    }
    n = n
        .str(3, &format!("{op}_{}", outputs.first().unwrap_or(&"")))
        .str(4, op);
    for a in attrs {
        n = n.msg(5, a);
    }
    n
}

/// A float32 graph input/output; `None` dims are symbolic (`dim_param`).
fn value_info(name: &str, dims: &[Option<i64>]) -> Pb {
    let mut shape = Pb::default();
    for (i, d) in dims.iter().enumerate() {
        let dim = match d {
            Some(v) => Pb::default().int(1, *v),
            None => Pb::default().str(2, &format!("d{i}")),
        };
        shape = shape.msg(1, &dim);
    }
    let tt = Pb::default().int(1, FLOAT).msg(2, &shape);
    Pb::default()
        .str(1, name)
        .msg(2, &Pb::default().msg(1, &tt))
}

struct Graph {
    nodes: Vec<Pb>,
    inits: Vec<Pb>,
    inputs: Vec<Pb>,
    outputs: Vec<Pb>,
    opset: i64,
}

impl Graph {
    fn new() -> Graph {
        Graph {
            nodes: vec![],
            inits: vec![],
            inputs: vec![],
            outputs: vec![],
            opset: 17,
        }
    }
    fn node(mut self, n: Pb) -> Graph {
        self.nodes.push(n);
        self
    }
    fn init(mut self, t: Pb) -> Graph {
        self.inits.push(t);
        self
    }
    fn input(mut self, name: &str, dims: &[Option<i64>]) -> Graph {
        self.inputs.push(value_info(name, dims));
        self
    }
    fn output(mut self, name: &str) -> Graph {
        self.outputs.push(Pb::default().str(1, name));
        self
    }
    fn bytes(&self) -> Vec<u8> {
        let mut g = Pb::default();
        for n in &self.nodes {
            g = g.msg(1, n);
        }
        g = g.str(2, "test");
        for t in &self.inits {
            g = g.msg(5, t);
        }
        for i in &self.inputs {
            g = g.msg(11, i);
        }
        for o in &self.outputs {
            g = g.msg(12, o);
        }
        let opset = Pb::default().str(1, "").int(2, self.opset);
        Pb::default()
            .int(1, 8)
            .msg(8, &opset)
            .str(2, "cnnspot-test")
            .msg(7, &g)
            .0
    }
    fn model(&self) -> Model {
        Model::from_bytes(&self.bytes()).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// A one-input, one-output graph around the given nodes.
fn single(input_dims: &[Option<i64>], nodes: Vec<Pb>, inits: Vec<Pb>) -> Model {
    let mut g = Graph::new().input("x", input_dims).output("y");
    for n in nodes {
        g = g.node(n);
    }
    for t in inits {
        g = g.init(t);
    }
    g.model()
}

fn run1(model: &Model, shape: &[usize], data: Vec<f32>) -> Tensor {
    let x = Tensor::new(shape.to_vec(), data).expect("input");
    let mut out = model.run(&[("x", &x)]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.len(), 1);
    out.remove(0).1
}

fn seq(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7 + 3) % 11) as f32 * 0.25 - 1.0)
        .collect()
}

fn assert_close(got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "lengths");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!((a - b).abs() <= tol, "element {i}: got {a}, want {b}");
    }
}

// ------------------------------------------------------------------ pad ---

#[test]
fn reflect_pad() {
    let m = single(
        &[Some(1), Some(1), Some(2), Some(3)],
        vec![node(
            "Pad",
            &["x", "pads"],
            &["y"],
            &[attr_str("mode", "reflect")],
        )],
        vec![tensor_i64("pads", &[8], &[0, 0, 1, 2, 0, 0, 1, 2])],
    );
    let y = run1(&m, &[1, 1, 2, 3], vec![1., 2., 3., 4., 5., 6.]);
    assert_eq!(y.shape(), &[1, 1, 4, 7]);
    #[rustfmt::skip]
    let want = [
        6., 5., 4., 5., 6., 5., 4.,
        3., 2., 1., 2., 3., 2., 1.,
        6., 5., 4., 5., 6., 5., 4.,
        3., 2., 1., 2., 3., 2., 1.,
    ];
    assert_eq!(y.data(), &want);
}

#[test]
fn constant_and_edge_pad_and_crop() {
    // Constant 9 before the rows, one column cropped on the right.
    let m = single(
        &[Some(2), Some(3)],
        vec![node("Pad", &["x", "pads", "v"], &["y"], &[])],
        vec![
            tensor_i64("pads", &[4], &[1, 0, 0, -1]),
            tensor_f32("v", &[], &[9.0]),
        ],
    );
    let y = run1(&m, &[2, 3], vec![1., 2., 3., 4., 5., 6.]);
    assert_eq!(y.shape(), &[3, 2]);
    assert_eq!(y.data(), &[9., 9., 1., 2., 4., 5.]);

    let m = single(
        &[Some(2), Some(2)],
        vec![node(
            "Pad",
            &["x", "pads"],
            &["y"],
            &[attr_str("mode", "edge")],
        )],
        vec![tensor_i64("pads", &[4], &[0, 2, 1, 0])],
    );
    let y = run1(&m, &[2, 2], vec![1., 2., 3., 4.]);
    assert_eq!(y.shape(), &[3, 4]);
    assert_eq!(y.data(), &[1., 1., 1., 2., 3., 3., 3., 4., 3., 3., 3., 4.]);
}

#[test]
fn reflect_pad_wider_than_input_is_an_error() {
    let m = single(
        &[Some(1), Some(2)],
        vec![node(
            "Pad",
            &["x", "pads"],
            &["y"],
            &[attr_str("mode", "reflect")],
        )],
        vec![tensor_i64("pads", &[4], &[0, 2, 0, 0])],
    );
    let x = Tensor::new(vec![1, 2], vec![1., 2.]).unwrap();
    let e = m.run(&[("x", &x)]).unwrap_err();
    assert!(
        matches!(e, OnnxError::Run { ref op, .. } if op == "Pad"),
        "{e}"
    );
}

/// PyTorch's export of `F.pad(x, (1, 2, 3, 4), mode="reflect")`, as in the
/// style network: the ONNX pads are computed by a chain of int64 ops
/// (ConstantOfShape, Concat, Reshape, Slice with step -1, Transpose, Cast).
#[test]
fn pytorch_pad_subgraph() {
    let c = |name: &str, t: Pb| node("Constant", &[], &[name], &[attr_tensor("value", &t)]);
    let nodes = vec![
        c("four", tensor_i64("", &[1], &[4])),
        c("p", tensor_i64("", &[4], &[1, 2, 3, 4])),
        node(
            "ConstantOfShape",
            &["four"],
            &["zeros"],
            &[attr_tensor("value", &tensor_i64("", &[1], &[0]))],
        ),
        node("Concat", &["p", "zeros"], &["cat"], &[attr_int("axis", 0)]),
        c("shape2", tensor_i64("", &[2], &[-1, 2])),
        node("Reshape", &["cat", "shape2"], &["r"], &[]),
        c("st", tensor_i64("", &[1], &[-1])),
        c("en", tensor_i64("", &[1], &[-9223372036854775807])),
        c("ax", tensor_i64("", &[1], &[0])),
        c("sp", tensor_i64("", &[1], &[-1])),
        node("Slice", &["r", "st", "en", "ax", "sp"], &["s"], &[]),
        node("Transpose", &["s"], &["t"], &[attr_ints("perm", &[1, 0])]),
        c("flat", tensor_i64("", &[1], &[-1])),
        node("Reshape", &["t", "flat"], &["pads"], &[]),
        node("Cast", &["pads"], &["pads64"], &[attr_int("to", 7)]),
        node(
            "Pad",
            &["x", "pads64"],
            &["y"],
            &[attr_str("mode", "reflect")],
        ),
    ];
    let m = single(&[Some(1), Some(1), Some(5), Some(5)], nodes, vec![]);
    let x: Vec<f32> = (0..25).map(|v| v as f32).collect();
    let y = run1(&m, &[1, 1, 5, 5], x);
    // H: 3 before, 4 after; W: 1 before, 2 after.
    assert_eq!(y.shape(), &[1, 1, 12, 8]);
    let refl = |i: i64, n: i64| {
        let i = i.abs();
        if i >= n {
            2 * (n - 1) - i
        } else {
            i
        }
    };
    for oy in 0..12 {
        for ox in 0..8 {
            let (sy, sx) = (refl(oy - 3, 5), refl(ox - 1, 5));
            assert_eq!(y.data()[(oy * 8 + ox) as usize], (sy * 5 + sx) as f32);
        }
    }
}

// --------------------------------------------------------------- resize ---

#[test]
fn resize_nearest_asymmetric_floor() {
    let m = single(
        &[Some(1), Some(1), Some(2), Some(2)],
        vec![node(
            "Resize",
            &["x", "", "scales"],
            &["y"],
            &[
                attr_str("coordinate_transformation_mode", "asymmetric"),
                attr_float("cubic_coeff_a", -0.75),
                attr_str("mode", "nearest"),
                attr_str("nearest_mode", "floor"),
            ],
        )],
        vec![tensor_f32("scales", &[4], &[1., 1., 2., 2.])],
    );
    let y = run1(&m, &[1, 1, 2, 2], vec![1., 2., 3., 4.]);
    assert_eq!(y.shape(), &[1, 1, 4, 4]);
    #[rustfmt::skip]
    let want = [
        1., 1., 2., 2.,
        1., 1., 2., 2.,
        3., 3., 4., 4.,
        3., 3., 4., 4.,
    ];
    assert_eq!(y.data(), &want);
}

#[test]
fn resize_nearest_half_pixel_by_sizes() {
    // 3 -> 2 with half_pixel + round_prefer_floor: x = (o+0.5)*1.5-0.5 =
    // 0.25, 1.75 -> 0, 2.
    let m = single(
        &[Some(1), Some(3)],
        vec![node("Resize", &["x", "", "", "sizes"], &["y"], &[])],
        vec![tensor_i64("sizes", &[2], &[1, 2])],
    );
    let y = run1(&m, &[1, 3], vec![10., 20., 30.]);
    assert_eq!(y.data(), &[10., 30.]);
}

#[test]
fn resize_linear_half_pixel() {
    let m = single(
        &[Some(1), Some(1), Some(1), Some(2)],
        vec![node(
            "Resize",
            &["x", "", "scales"],
            &["y"],
            &[attr_str("mode", "linear")],
        )],
        vec![tensor_f32("scales", &[4], &[1., 1., 2., 2.])],
    );
    let y = run1(&m, &[1, 1, 1, 2], vec![0., 4.]);
    assert_eq!(y.shape(), &[1, 1, 2, 4]);
    // x = (o + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25, clamped to [0, 1].
    assert_close(y.data(), &[0., 1., 3., 4., 0., 1., 3., 4.], 1e-6);
}

#[test]
fn resize_of_the_channel_axis_is_refused() {
    let m = single(
        &[Some(1), Some(1), Some(1), Some(1)],
        vec![node("Resize", &["x", "", "scales"], &["y"], &[])],
        vec![tensor_f32("scales", &[4], &[1., 2., 1., 1.])],
    );
    let x = Tensor::new(vec![1, 1, 1, 1], vec![1.]).unwrap();
    let e = m.run(&[("x", &x)]).unwrap_err();
    assert!(e.to_string().contains("not one of the last two"), "{e}");
}

// ------------------------------------------------- reductions, elementwise ---

/// The conditional instance norm of the style network:
/// `(x - mean) / sqrt(var + eps) * gamma(style) + beta(style)`, with
/// `gamma(style) = sum_s style[s] * G[s]` by Unsqueeze, Mul, ReduceSum
/// (axes input, keepdims 0) and Reshape.
#[test]
fn conditional_instance_norm_chain() {
    let c = |name: &str, t: Pb| node("Constant", &[], &[name], &[attr_tensor("value", &t)]);
    let nodes = vec![
        c("one_axis", tensor_i64("", &[1], &[1])),
        node("Unsqueeze", &["style", "one_axis"], &["su"], &[]),
        node("Mul", &["su", "G"], &["sg"], &[]),
        c("ax0", tensor_i64("", &[1], &[0])),
        node(
            "ReduceSum",
            &["sg", "ax0"],
            &["gamma"],
            &[attr_int("keepdims", 0)],
        ),
        c("shape", tensor_i64("", &[4], &[1, -1, 1, 1])),
        node("Reshape", &["gamma", "shape"], &["g4"], &[]),
        node(
            "ReduceMean",
            &["x"],
            &["mean"],
            &[attr_ints("axes", &[2, 3]), attr_int("keepdims", 1)],
        ),
        node("Sub", &["x", "mean"], &["xc"], &[]),
        c("two", tensor_f32("", &[], &[2.0])),
        node("Pow", &["xc", "two"], &["sq"], &[]),
        node(
            "ReduceMean",
            &["sq"],
            &["var"],
            &[attr_ints("axes", &[2, 3]), attr_int("keepdims", 1)],
        ),
        c("eps", tensor_f32("", &[], &[1e-5])),
        node("Add", &["var", "eps"], &["ve"], &[]),
        node("Sqrt", &["ve"], &["sd"], &[]),
        c("one", tensor_f32("", &[], &[1.0])),
        node("Div", &["one", "sd"], &["inv"], &[]),
        node("Mul", &["xc", "inv"], &["xn"], &[]),
        node("Mul", &["xn", "g4"], &["y"], &[]),
    ];
    let mut g = Graph::new()
        .input("x", &[Some(1), Some(2), None, None])
        .input("style", &[Some(3)])
        .output("y")
        .init(tensor_f32("G", &[3, 2], &[1., 10., 2., 20., 3., 30.]));
    for n in nodes {
        g = g.node(n);
    }
    let m = g.model();
    assert_eq!(
        m.inputs()[0].shape.as_deref(),
        Some(
            &[
                Dim::Fixed(1),
                Dim::Fixed(2),
                Dim::Named("d2".into()),
                Dim::Named("d3".into())
            ][..]
        )
    );
    let x = Tensor::new(vec![1, 2, 2, 2], vec![1., 2., 3., 4., 5., 5., 5., 7.]).unwrap();
    let style = Tensor::new(vec![3], vec![0.5, 0.25, 0.25]).unwrap();
    let y = m.run(&[("x", &x), ("style", &style)]).unwrap();
    let gamma = [0.5 + 0.5 + 0.75, 5.0 + 5.0 + 7.5];
    let mut want = Vec::new();
    for c in 0..2 {
        let v: Vec<f64> = x.data()[c * 4..c * 4 + 4]
            .iter()
            .map(|&v| v as f64)
            .collect();
        let mean = v.iter().sum::<f64>() / 4.0;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 4.0;
        for x in &v {
            want.push(((x - mean) / (var + 1e-5).sqrt() * gamma[c]) as f32);
        }
    }
    assert_eq!(y[0].1.shape(), &[1, 2, 2, 2]);
    assert_close(y[0].1.data(), &want, 1e-5);
}

#[test]
fn reductions_axes_and_keepdims() {
    // ReduceSum over all axes (no axes input), keepdims 1.
    let m = single(
        &[Some(2), Some(3)],
        vec![node("ReduceSum", &["x"], &["y"], &[])],
        vec![],
    );
    let y = run1(&m, &[2, 3], vec![1., 2., 3., 4., 5., 6.]);
    assert_eq!((y.shape(), y.data()), (&[1usize, 1][..], &[21.0f32][..]));
    // ReduceMean over non-adjacent axes 0 and 2, keepdims 0.
    let m = single(
        &[Some(2), Some(2), Some(2)],
        vec![node(
            "ReduceMean",
            &["x"],
            &["y"],
            &[attr_ints("axes", &[0, -1]), attr_int("keepdims", 0)],
        )],
        vec![],
    );
    let y = run1(&m, &[2, 2, 2], (1..=8).map(|v| v as f32).collect());
    assert_eq!(y.shape(), &[2]);
    assert_close(
        y.data(),
        &[(1. + 2. + 5. + 6.) / 4., (3. + 4. + 7. + 8.) / 4.],
        1e-6,
    );
}

#[test]
fn broadcasting_binary_ops() {
    // [2,1,3] op [4,1] -> [2,4,3], both operand orders (in-place paths).
    let a: Vec<f32> = seq(6).iter().map(|v| v + 2.0).collect();
    let b: Vec<f32> = (1..=4).map(|v| v as f32 * 0.5).collect();
    for (op, f) in [
        ("Add", (|x, y| x + y) as fn(f32, f32) -> f32),
        ("Sub", |x, y| x - y),
        ("Mul", |x, y| x * y),
        ("Div", |x, y| x / y),
        ("Pow", f32::powf),
    ] {
        for swap in [false, true] {
            let (i0, i1) = if swap { ("b", "x") } else { ("x", "b") };
            let m = single(
                &[Some(2), Some(1), Some(3)],
                vec![node(op, &[i0, i1], &["y"], &[])],
                vec![tensor_f32("b", &[4, 1], &b)],
            );
            let y = run1(&m, &[2, 1, 3], a.clone());
            assert_eq!(y.shape(), &[2, 4, 3]);
            let mut want = Vec::new();
            for i in 0..2 {
                for j in 0..4 {
                    for k in 0..3 {
                        let (p, q) = (a[i * 3 + k], b[j]);
                        want.push(if swap { f(q, p) } else { f(p, q) });
                    }
                }
            }
            assert_close(y.data(), &want, 1e-5);
        }
    }
}

#[test]
fn scalar_operand_on_the_left_and_unary_ops() {
    // 1 / sqrt(x), then relu(x - 1), sigmoid, and x^3.
    let c = |name: &str, v: f32| {
        node(
            "Constant",
            &[],
            &[name],
            &[attr_tensor("value", &tensor_f32("", &[], &[v]))],
        )
    };
    let m = single(
        &[Some(4)],
        vec![
            c("one", 1.0),
            c("three", 3.0),
            node("Sqrt", &["x"], &["s"], &[]),
            node("Div", &["one", "s"], &["inv"], &[]),
            node("Sub", &["inv", "one"], &["d"], &[]),
            node("Relu", &["d"], &["r"], &[]),
            node("Sigmoid", &["r"], &["sg"], &[]),
            node("Pow", &["sg", "three"], &["y"], &[]),
        ],
        vec![],
    );
    let x = vec![0.25, 1.0, 4.0, 0.5];
    let y = run1(&m, &[4], x.clone());
    let want: Vec<f32> = x
        .iter()
        .map(|&v: &f32| {
            let r = (1.0 / v.sqrt() - 1.0).max(0.0);
            (1.0 / (1.0 + (-r).exp())).powi(3)
        })
        .collect();
    assert_close(y.data(), &want, 1e-6);
}

// ----------------------------------------------------------------- conv ---

/// Straightforward ONNX Conv (NCHW, OIHW weights).
#[allow(clippy::too_many_arguments)]
fn conv_ref(
    x: &[f32],
    (n, c, h, w): (usize, usize, usize, usize),
    wt: &[f32],
    (m, kh, kw): (usize, usize, usize),
    bias: &[f32],
    group: usize,
    stride: [usize; 2],
    dil: [usize; 2],
    pads: [usize; 4],
) -> (Vec<usize>, Vec<f32>) {
    let oh = (h + pads[0] + pads[2] - ((kh - 1) * dil[0] + 1)) / stride[0] + 1;
    let ow = (w + pads[1] + pads[3] - ((kw - 1) * dil[1] + 1)) / stride[1] + 1;
    let cg = c / group;
    let mg = m / group;
    let mut out = vec![0.0f32; n * m * oh * ow];
    for b in 0..n {
        for oc in 0..m {
            let g = oc / mg;
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut s = bias[oc] as f64;
                    for ic in 0..cg {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy = (oy * stride[0] + ky * dil[0]) as isize - pads[0] as isize;
                                let ix = (ox * stride[1] + kx * dil[1]) as isize - pads[1] as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                    continue;
                                }
                                let xv =
                                    x[((b * c + g * cg + ic) * h + iy as usize) * w + ix as usize];
                                let wv = wt[((oc * cg + ic) * kh + ky) * kw + kx];
                                s += xv as f64 * wv as f64;
                            }
                        }
                    }
                    out[((b * m + oc) * oh + oy) * ow + ox] = s as f32;
                }
            }
        }
    }
    (vec![n, m, oh, ow], out)
}

#[test]
fn grouped_conv_hand_computed() {
    // Two groups of one channel, 1x2 kernels, no padding.
    let m = single(
        &[Some(1), Some(2), Some(1), Some(3)],
        vec![node(
            "Conv",
            &["x", "w", "b"],
            &["y"],
            &[attr_int("group", 2)],
        )],
        vec![
            tensor_f32("w", &[2, 1, 1, 2], &[1., 10., -1., 2.]),
            tensor_f32("b", &[2], &[0.5, 0.0]),
        ],
    );
    let y = run1(&m, &[1, 2, 1, 3], vec![1., 2., 3., 4., 5., 6.]);
    assert_eq!(y.shape(), &[1, 2, 1, 2]);
    // group 0: 1*1+10*2+0.5, 1*2+10*3+0.5; group 1: -4+10, -5+12.
    assert_eq!(y.data(), &[21.5, 32.5, 6., 7.]);
}

#[test]
fn conv_against_reference() {
    // (n, c, h, w), (m, kh, kw), group, strides, dilations, pads
    type Case = (
        (usize, usize, usize, usize),
        (usize, usize, usize),
        usize,
        [usize; 2],
        [usize; 2],
        [usize; 4],
    );
    // Wider ones too: a batch of 2, stride 2 whose bottom padding is never
    // read, asymmetric padding, 1x1 with many outputs.
    let cases: [Case; 9] = [
        ((1, 3, 9, 11), (4, 3, 3), 1, [1, 1], [1, 1], [1, 1, 1, 1]),
        ((2, 4, 8, 7), (6, 3, 3), 2, [2, 2], [1, 1], [0, 1, 2, 0]),
        ((1, 6, 10, 9), (6, 3, 2), 3, [1, 2], [2, 1], [2, 0, 1, 3]),
        ((1, 4, 6, 6), (4, 3, 3), 4, [1, 1], [1, 1], [1, 1, 1, 1]),
        ((1, 8, 5, 5), (16, 1, 1), 1, [1, 1], [1, 1], [0, 0, 0, 0]),
        ((2, 5, 12, 10), (64, 3, 3), 1, [1, 1], [1, 1], [1, 1, 1, 1]),
        ((1, 3, 8, 8), (64, 3, 3), 1, [2, 2], [1, 1], [1, 1, 0, 0]),
        ((1, 4, 7, 7), (64, 3, 3), 1, [1, 1], [1, 1], [0, 1, 2, 0]),
        ((1, 8, 5, 6), (128, 1, 1), 1, [1, 1], [1, 1], [0, 0, 0, 0]),
    ];
    for (xs, (m, kh, kw), group, stride, dil, pads) in cases {
        let (n, c, h, w) = xs;
        let x = seq(n * c * h * w);
        let wt: Vec<f32> = seq(m * (c / group) * kh * kw)
            .iter()
            .map(|v| v * 0.3)
            .collect();
        let bias: Vec<f32> = (0..m).map(|i| i as f32 * 0.1 - 0.2).collect();
        let model = single(
            &[
                Some(n as i64),
                Some(c as i64),
                Some(h as i64),
                Some(w as i64),
            ],
            vec![node(
                "Conv",
                &["x", "w", "b"],
                &["y"],
                &[
                    attr_int("group", group as i64),
                    attr_ints("kernel_shape", &[kh as i64, kw as i64]),
                    attr_ints("strides", &stride.map(|v| v as i64)),
                    attr_ints("dilations", &dil.map(|v| v as i64)),
                    attr_ints("pads", &pads.map(|v| v as i64)),
                ],
            )],
            vec![
                tensor_f32(
                    "w",
                    &[m as i64, (c / group) as i64, kh as i64, kw as i64],
                    &wt,
                ),
                tensor_f32("b", &[m as i64], &bias),
            ],
        );
        let y = run1(&model, &[n, c, h, w], x.clone());
        let (shape, want) = conv_ref(&x, xs, &wt, (m, kh, kw), &bias, group, stride, dil, pads);
        assert_eq!(y.shape(), shape.as_slice(), "{xs:?}");
        assert_close(y.data(), &want, 1e-4);
    }
}

#[test]
fn conv_auto_pad_same_upper() {
    let model = single(
        &[Some(1), Some(1), Some(5), Some(5)],
        vec![node(
            "Conv",
            &["x", "w"],
            &["y"],
            &[
                attr_str("auto_pad", "SAME_UPPER"),
                attr_ints("strides", &[2, 2]),
            ],
        )],
        vec![tensor_f32("w", &[1, 1, 2, 2], &[1., 2., 3., 4.])],
    );
    let x = seq(25);
    let y = run1(&model, &[1, 1, 5, 5], x.clone());
    // out = ceil(5/2) = 3; total pad = (3-1)*2 + 2 - 5 = 1: 0 before, 1 after.
    let (shape, want) = conv_ref(
        &x,
        (1, 1, 5, 5),
        &[1., 2., 3., 4.],
        (1, 2, 2),
        &[0.0],
        1,
        [2, 2],
        [1, 1],
        [0, 0, 1, 1],
    );
    assert_eq!(y.shape(), shape.as_slice());
    assert_close(y.data(), &want, 1e-5);
}

// ---------------------------------------------------------- run checks ---

#[test]
fn inputs_are_checked() {
    let m = single(
        &[Some(1), None, None],
        vec![node("Relu", &["x"], &["y"], &[])],
        vec![],
    );
    assert_eq!(m.outputs()[0].name, "y");
    let bad = Tensor::new(vec![2, 1, 1], vec![1., 2.]).unwrap();
    assert!(matches!(m.run(&[("x", &bad)]), Err(OnnxError::Input(_))));
    assert!(matches!(m.run(&[]), Err(OnnxError::Input(_))));
    let ok = Tensor::new(vec![1, 1, 2], vec![-1., 2.]).unwrap();
    assert!(matches!(m.run(&[("z", &ok)]), Err(OnnxError::Input(_))));
    assert_eq!(m.run(&[("x", &ok)]).unwrap()[0].1.data(), &[0., 2.]);
    assert!(matches!(
        Tensor::new(vec![2, 2], vec![1.0]),
        Err(OnnxError::TensorShape {
            expected: 4,
            got: 1,
            ..
        })
    ));
}

#[test]
fn element_limit_is_enforced_before_allocating() {
    let m = single(
        &[Some(1), Some(1), Some(2), Some(2)],
        vec![node("Resize", &["x", "", "scales"], &["y"], &[])],
        vec![tensor_f32("scales", &[4], &[1., 1., 2., 2.])],
    )
    .with_max_elements(10);
    let x = Tensor::new(vec![1, 1, 2, 2], vec![1.; 4]).unwrap();
    let e = m.run(&[("x", &x)]).unwrap_err();
    assert!(
        matches!(
            e,
            OnnxError::TooLarge {
                elements: 16,
                limit: 10,
                ..
            }
        ),
        "{e}"
    );

    // A hostile shape: 2^62 elements from ConstantOfShape, with the
    // default limit.
    let m = single(
        &[Some(1)],
        vec![
            node(
                "Constant",
                &[],
                &["shape"],
                &[attr_tensor(
                    "value",
                    &tensor_i64("", &[2], &[1 << 31, 1 << 31]),
                )],
            ),
            node("ConstantOfShape", &["shape"], &["big"], &[]),
            node("Add", &["x", "big"], &["y"], &[]),
        ],
        vec![],
    );
    let x = Tensor::new(vec![1], vec![1.]).unwrap();
    let e = m.run(&[("x", &x)]).unwrap_err();
    assert!(
        matches!(e, OnnxError::TooLarge { ref op, .. } if op == "ConstantOfShape"),
        "{e}"
    );
}

/// A value with no elements but one huge axis ([0, 2^40]: 0 elements, so
/// an element count alone lets it through) is refused where it is made, by
/// the op that makes it or by the check every node output gets, before any
/// later op (Slice, Resize) builds a per-axis table as long as that axis.
#[test]
fn an_empty_value_with_a_huge_axis_is_too_large_where_it_is_made() {
    let huge = 1i64 << 40;
    let refused_at = |nodes: Vec<Pb>, inits: Vec<Pb>| -> String {
        let m = single(&[Some(1)], nodes, inits);
        let x = Tensor::new(vec![1], vec![1.]).unwrap();
        match m.run(&[("x", &x)]) {
            Err(OnnxError::TooLarge { op, elements, .. }) => {
                assert_eq!(elements, huge as usize);
                op
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
    };
    let slice_rest = || {
        vec![
            node("Slice", &["big", "st", "en", "ax"], &["s"], &[]),
            node("ReduceSum", &["s"], &["r"], &[attr_int("keepdims", 0)]),
            node("Add", &["x", "r"], &["y"], &[]),
        ]
    };
    let slice_inits = || {
        vec![
            tensor_i64("st", &[1], &[0]),
            tensor_i64("en", &[1], &[1]),
            tensor_i64("ax", &[1], &[0]),
        ]
    };
    let huge_shape = || {
        let shape = tensor_i64("", &[2], &[0, huge]);
        node("Constant", &[], &["shape"], &[attr_tensor("value", &shape)])
    };
    // ConstantOfShape makes it: refused by its own element check.
    let mut nodes = vec![
        huge_shape(),
        node("ConstantOfShape", &["shape"], &["big"], &[]),
    ];
    nodes.extend(slice_rest());
    assert_eq!(refused_at(nodes, slice_inits()), "ConstantOfShape");
    // Reshape with allowzero makes it from an empty input: refused as the
    // node's output.
    let mut nodes = vec![
        huge_shape(),
        node(
            "Constant",
            &[],
            &["empty"],
            &[attr_tensor("value", &tensor_f32("", &[0], &[]))],
        ),
        node(
            "Reshape",
            &["empty", "shape"],
            &["big"],
            &[attr_int("allowzero", 1)],
        ),
    ];
    nodes.extend(slice_rest());
    assert_eq!(refused_at(nodes, slice_inits()), "Reshape");
    // An initializer declared so: refused before any node runs.
    let mut inits = slice_inits();
    inits.push(tensor_f32("big", &[0, huge], &[]));
    assert_eq!(refused_at(slice_rest(), inits), "initializer");
}

// ------------------------------------------------------------ malformed ---

fn relu_graph() -> Graph {
    Graph::new()
        .input("x", &[Some(1), Some(4)])
        .output("y")
        .init(tensor_f32("w", &[1, 4], &[1., 2., 3., 4.]))
        .node(node("Mul", &["x", "w"], &["xw"], &[]))
        .node(node("Relu", &["xw"], &["y"], &[]))
}

#[test]
fn truncated_bytes_never_panic() {
    let bytes = relu_graph().bytes();
    assert!(Model::from_bytes(&bytes).is_ok());
    let mut decode_errors = 0;
    for len in 0..bytes.len() {
        // Any error is fine (a cut at a field boundary can still decode
        // but then lacks the graph, a node or an output); a panic is not.
        if let Err(OnnxError::Decode(_)) = Model::from_bytes(&bytes[..len]) {
            decode_errors += 1;
        }
    }
    assert!(
        decode_errors > bytes.len() / 2,
        "{decode_errors} of {}",
        bytes.len()
    );
    // Cut inside the graph message: a protobuf error.
    let e = Model::from_bytes(&bytes[..bytes.len() - 3]).unwrap_err();
    assert!(matches!(e, OnnxError::Decode(_)), "{e}");
    assert!(e.to_string().starts_with("not an ONNX model"), "{e}");
    // Garbage.
    for junk in [
        &b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"[..],
        b"PK\x03\x04",
        b"\x0a",
    ] {
        assert!(Model::from_bytes(junk).is_err());
    }
}

#[test]
fn unsupported_op_names_node_and_op() {
    let g = relu_graph().node(node("LSTM", &["y"], &["z"], &[]));
    match Model::from_bytes(&g.bytes()) {
        Err(OnnxError::Unsupported { node, op, msg }) => {
            assert_eq!((node.as_str(), op.as_str()), ("LSTM_z", "LSTM"));
            assert!(msg.contains("not supported"), "{msg}");
        }
        other => panic!("{other:?}"),
    }
    // Another domain.
    let n = node("Relu", &["y"], &["z"], &[]).str(7, "com.microsoft");
    let e = Model::from_bytes(&relu_graph().node(n).bytes()).unwrap_err();
    assert!(
        matches!(e, OnnxError::Unsupported { ref op, .. } if op == "com.microsoft:Relu"),
        "{e}"
    );
    // An attribute this interpreter does not know.
    let n = node("Relu", &["y"], &["z"], &[attr_int("alpha", 1)]);
    let e = Model::from_bytes(&relu_graph().node(n).bytes()).unwrap_err();
    assert!(matches!(e, OnnxError::Unsupported { .. }), "{e}");
    // A mode it does not implement.
    let n = node("Pad", &["y", "p"], &["z"], &[attr_str("mode", "wrap")]);
    let g = relu_graph().init(tensor_i64("p", &[4], &[0; 4])).node(n);
    let e = Model::from_bytes(&g.bytes()).unwrap_err();
    assert!(e.to_string().contains("pad mode `wrap`"), "{e}");
    // An old opset.
    let mut g = relu_graph();
    g.opset = 9;
    assert!(matches!(
        Model::from_bytes(&g.bytes()),
        Err(OnnxError::Graph(_))
    ));
}

#[test]
fn bad_initializers_are_refused() {
    // raw_data of 3 floats for dims [1, 4].
    let raw: Vec<u8> = [1f32, 2., 3.]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let t = Pb::default()
        .int(1, 1)
        .int(1, 4)
        .int(2, FLOAT)
        .str(8, "w")
        .bytes(9, &raw);
    let mut g = relu_graph();
    g.inits = vec![t];
    match Model::from_bytes(&g.bytes()) {
        Err(OnnxError::Initializer { name, msg }) => {
            assert_eq!(name, "w");
            assert!(msg.contains("raw_data"), "{msg}");
        }
        other => panic!("{other:?}"),
    }
    // Negative dims.
    g.inits = vec![tensor_f32("w", &[-1, -4], &[1., 2., 3., 4.])];
    let e = Model::from_bytes(&g.bytes()).unwrap_err();
    assert!(matches!(e, OnnxError::Initializer { .. }), "{e}");
    // Huge dims and no data: refused before allocating.
    g.inits = vec![Pb::default()
        .int(1, 1 << 40)
        .int(1, 1 << 20)
        .int(2, FLOAT)
        .str(8, "w")];
    let e = Model::from_bytes(&g.bytes()).unwrap_err();
    assert!(matches!(e, OnnxError::Initializer { .. }), "{e}");
    // An unsupported data type (float16).
    g.inits = vec![Pb::default()
        .int(1, 4)
        .int(2, 10)
        .str(8, "w")
        .bytes(9, &[0; 8])];
    let e = Model::from_bytes(&g.bytes()).unwrap_err();
    assert!(e.to_string().contains("float16"), "{e}");
}

#[test]
fn malformed_nodes_are_refused() {
    // Concat without its required axis.
    let g = relu_graph().node(node("Concat", &["y", "y"], &["z"], &[]));
    let e = Model::from_bytes(&g.bytes()).unwrap_err();
    assert!(
        matches!(e, OnnxError::BadNode { ref op, .. } if op == "Concat"),
        "{e}"
    );
    // An input no one produces.
    let g = relu_graph().node(node("Relu", &["nowhere"], &["z"], &[]));
    let e = Model::from_bytes(&g.bytes()).unwrap_err();
    assert!(e.to_string().contains("`nowhere`"), "{e}");
    // A value defined twice.
    let g = relu_graph().node(node("Relu", &["x"], &["y"], &[]));
    assert!(matches!(
        Model::from_bytes(&g.bytes()),
        Err(OnnxError::BadNode { .. })
    ));
    // Wrong input count, wrong attribute type.
    let g = relu_graph().node(node("Add", &["y"], &["z"], &[]));
    assert!(matches!(
        Model::from_bytes(&g.bytes()),
        Err(OnnxError::BadNode { .. })
    ));
    let g = relu_graph().node(node("Conv", &["y", "w"], &["z"], &[attr_str("group", "2")]));
    assert!(matches!(
        Model::from_bytes(&g.bytes()),
        Err(OnnxError::BadNode { .. })
    ));
    // An int64 value where a float32 one is needed.
    let g =
        relu_graph()
            .init(tensor_i64("i", &[1], &[1]))
            .node(node("Add", &["y", "i"], &["z"], &[]));
    assert!(matches!(
        Model::from_bytes(&g.bytes()),
        Err(OnnxError::BadNode { .. })
    ));
    // A graph output no node computes.
    let g = relu_graph().output("missing");
    assert!(matches!(
        Model::from_bytes(&g.bytes()),
        Err(OnnxError::Graph(_))
    ));
}

#[test]
fn run_time_shape_errors_are_errors() {
    // Reshape to an impossible shape, Conv with mismatched channels.
    let m = single(
        &[Some(2), Some(3)],
        vec![node("Reshape", &["x", "s"], &["y"], &[])],
        vec![tensor_i64("s", &[2], &[4, -1])],
    );
    let x = Tensor::new(vec![2, 3], seq(6)).unwrap();
    let e = m.run(&[("x", &x)]).unwrap_err();
    assert!(
        matches!(e, OnnxError::Run { ref op, .. } if op == "Reshape"),
        "{e}"
    );
    let m = single(
        &[Some(1), Some(2), Some(3), Some(3)],
        vec![node("Conv", &["x", "w"], &["y"], &[])],
        vec![tensor_f32("w", &[1, 3, 1, 1], &[1., 1., 1.])],
    );
    let x = Tensor::new(vec![1, 2, 3, 3], seq(18)).unwrap();
    let e = m.run(&[("x", &x)]).unwrap_err();
    assert!(
        matches!(e, OnnxError::Run { ref op, .. } if op == "Conv"),
        "{e}"
    );
}

/// Random byte mutations of a graph using most operators: loading and
/// running must give results or errors, never panics. `CNNSPOT_FUZZ_ITERS`
/// (default 3000) and `CNNSPOT_FUZZ_SEED` run more or other mutants.
#[test]
fn mutated_models_never_panic() {
    let c = |name: &str, t: Pb| node("Constant", &[], &[name], &[attr_tensor("value", &t)]);
    let g = Graph::new()
        .input("x", &[Some(1), Some(2), None, None])
        .output("y")
        .init(tensor_f32("w", &[2, 1, 3, 3], &seq(18)))
        .init(tensor_f32("scales", &[4], &[1., 1., 2., 2.]))
        .node(c("p", tensor_i64("", &[8], &[0, 0, 1, 1, 0, 0, 1, 1])))
        .node(node(
            "Pad",
            &["x", "p"],
            &["xp"],
            &[attr_str("mode", "reflect")],
        ))
        .node(node(
            "Conv",
            &["xp", "w"],
            &["cv"],
            &[attr_int("group", 2), attr_ints("strides", &[1, 1])],
        ))
        .node(node(
            "ReduceMean",
            &["cv"],
            &["mu"],
            &[attr_ints("axes", &[2, 3]), attr_int("keepdims", 1)],
        ))
        .node(node("Sub", &["cv", "mu"], &["d"], &[]))
        .node(node(
            "Resize",
            &["d", "", "scales"],
            &["r"],
            &[attr_str("mode", "nearest")],
        ))
        .node(c("st", tensor_i64("", &[1], &[-1])))
        .node(c("en", tensor_i64("", &[1], &[i64::MIN + 1])))
        .node(c("ax", tensor_i64("", &[1], &[3])))
        .node(node("Slice", &["r", "st", "en", "ax", "st"], &["s"], &[]))
        .node(node(
            "Transpose",
            &["s"],
            &["t"],
            &[attr_ints("perm", &[0, 1, 3, 2])],
        ))
        .node(node("Sigmoid", &["t"], &["y"], &[]));
    let bytes = g.bytes();
    let model = Model::from_bytes(&bytes).unwrap_or_else(|e| panic!("{e}"));
    let x = Tensor::new(vec![1, 2, 3, 4], seq(24)).unwrap();
    assert_eq!(model.run(&[("x", &x)]).unwrap()[0].1.shape(), &[1, 2, 8, 6]);

    let iters: usize = std::env::var("CNNSPOT_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let seed: u64 = std::env::var("CNNSPOT_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut state = 0x2545_f491_4f6c_dd1du64 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut rand = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut loaded, mut ran) = (0, 0);
    for _ in 0..iters {
        let mut b = bytes.clone();
        for _ in 0..1 + rand() % 3 {
            let i = (rand() % b.len() as u64) as usize;
            b[i] = match rand() % 4 {
                0 => 0,
                1 => 0xff,
                2 => b[i] ^ (1 << (rand() % 8)),
                _ => rand() as u8,
            };
        }
        let Ok(m) = Model::from_bytes(&b) else {
            continue;
        };
        loaded += 1;
        let m = m.with_max_elements(1 << 16);
        // Inputs of the declared shape (symbolic dims: 3).
        let mut tensors = Vec::new();
        for info in m.inputs() {
            let shape: Vec<usize> = match &info.shape {
                None => vec![4],
                Some(d) => d
                    .iter()
                    .map(|d| match d {
                        Dim::Fixed(v) => *v,
                        _ => 3,
                    })
                    .collect(),
            };
            if shape.iter().product::<usize>() > 1 << 12 {
                continue;
            }
            let n = shape.iter().product();
            tensors.push((info.name.clone(), Tensor::new(shape, seq(n)).unwrap()));
        }
        let feeds: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
        if m.run(&feeds).is_ok() {
            ran += 1;
        }
    }
    println!("{loaded} of {iters} mutants loaded, {ran} ran");
    assert!(loaded > 0);
}

#[test]
fn model_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Model>();
    check::<Tensor>();
    check::<OnnxError>();
}
