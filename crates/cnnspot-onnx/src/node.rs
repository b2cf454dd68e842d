//! Graph nodes: the supported operators, their attributes (parsed and
//! checked at load time), element-type inference, and execution.

use std::sync::Arc;

use crate::ops::{
    self, bad, checked_len, BinaryOp, ConvGeom, Ctx, OpError, OpResult, PadMode, Pool, UnaryOp,
};
use crate::proto::{attr_type, AttributeProto, NodeProto, TensorProto};
use crate::value::{self, numel, DType, I64Tensor, Value};
use crate::Tensor;

/// The operators this interpreter implements (default ONNX domain).
pub const SUPPORTED_OPS: &[&str] = &[
    "Abs",
    "Add",
    "Cast",
    "Concat",
    "Constant",
    "ConstantOfShape",
    "Conv",
    "Div",
    "Exp",
    "Identity",
    "Mul",
    "Neg",
    "Pad",
    "Pow",
    "ReduceMean",
    "ReduceSum",
    "Relu",
    "Reshape",
    "Resize",
    "Sigmoid",
    "Slice",
    "Sqrt",
    "Squeeze",
    "Sub",
    "Tanh",
    "Transpose",
    "Unsqueeze",
];

/// A load-time problem with one node.
pub(crate) enum NodeErr {
    /// Valid ONNX that this interpreter does not implement.
    Unsupported(String),
    /// Invalid ONNX (missing or mistyped attribute, wrong input count, ...).
    Bad(String),
}

type NodeResult<T> = Result<T, NodeErr>;

fn unsupported<T>(msg: impl Into<String>) -> NodeResult<T> {
    Err(NodeErr::Unsupported(msg.into()))
}

fn invalid<T>(msg: impl Into<String>) -> NodeResult<T> {
    Err(NodeErr::Bad(msg.into()))
}

/// Resize coordinate transformation modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CoordMode {
    HalfPixel,
    PytorchHalfPixel,
    AlignCorners,
    Asymmetric,
}

/// Resize nearest rounding modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NearestMode {
    RoundPreferFloor,
    RoundPreferCeil,
    Floor,
    Ceil,
}

/// Conv attributes.
#[derive(Debug, Clone)]
pub(crate) struct ConvAttrs {
    auto_pad: String,
    kernel_shape: Option<[usize; 2]>,
    strides: [usize; 2],
    dilations: [usize; 2],
    /// top, left, bottom, right
    pads: [usize; 4],
    group: usize,
}

/// An operator with its attributes.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    Constant(Arc<Value>),
    ConstantOfShape(Value),
    Identity,
    Cast(DType),
    Reshape {
        allowzero: bool,
    },
    Unsqueeze(Option<Vec<i64>>),
    Squeeze(Option<Vec<i64>>),
    Concat(i64),
    Slice,
    Transpose(Option<Vec<usize>>),
    Pad(PadMode),
    Conv(ConvAttrs),
    Resize {
        linear: bool,
        coord: CoordMode,
        nearest: NearestMode,
    },
    Reduce {
        mean: bool,
        axes: Option<Vec<i64>>,
        keepdims: bool,
        noop_with_empty_axes: bool,
    },
    Binary(BinaryOp),
    Unary(UnaryOp),
}

/// A node of the graph, ready to run.
#[derive(Debug)]
pub(crate) struct Node {
    /// The node's name (or `#index` when it has none).
    pub name: String,
    pub op_type: String,
    pub op: Op,
    /// Value ids of the inputs (`None`: an omitted optional input).
    pub inputs: Vec<Option<usize>>,
    /// Value ids of the outputs (`None`: an omitted optional output).
    pub outputs: Vec<Option<usize>>,
}

// ----------------------------------------------------------- attributes ---

struct Attrs<'a>(&'a [AttributeProto]);

impl<'a> Attrs<'a> {
    fn get(&self, name: &str, ty: i32, what: &str) -> NodeResult<Option<&'a AttributeProto>> {
        match self.0.iter().find(|a| a.name == name) {
            None => Ok(None),
            Some(a) if a.r#type == ty || a.r#type == attr_type::UNDEFINED => Ok(Some(a)),
            Some(a) => invalid(format!(
                "attribute `{name}` should be {what}, has type {}",
                a.r#type
            )),
        }
    }
    fn int(&self, name: &str, default: i64) -> NodeResult<i64> {
        Ok(self
            .get(name, attr_type::INT, "an int")?
            .map_or(default, |a| a.i))
    }
    fn ints(&self, name: &str) -> NodeResult<Option<Vec<i64>>> {
        Ok(self
            .get(name, attr_type::INTS, "a list of ints")?
            .map(|a| a.ints.clone()))
    }
    fn float(&self, name: &str, default: f32) -> NodeResult<f32> {
        Ok(self
            .get(name, attr_type::FLOAT, "a float")?
            .map_or(default, |a| a.f))
    }
    fn string(&self, name: &str, default: &str) -> NodeResult<String> {
        match self.get(name, attr_type::STRING, "a string")? {
            None => Ok(default.to_string()),
            Some(a) => String::from_utf8(a.s.clone())
                .map_err(|_| NodeErr::Bad(format!("attribute `{name}` is not UTF-8"))),
        }
    }
    fn tensor(&self, name: &str) -> NodeResult<Option<&'a TensorProto>> {
        match self.get(name, attr_type::TENSOR, "a tensor")? {
            None => Ok(None),
            Some(a) => match &a.t {
                Some(t) => Ok(Some(t)),
                None => invalid(format!("attribute `{name}` has no tensor")),
            },
        }
    }
    /// Refuses attributes outside `known` (their meaning would be ignored).
    fn only(&self, known: &[&str]) -> NodeResult<()> {
        for a in self.0 {
            if !a.ref_attr_name.is_empty() {
                return unsupported(format!(
                    "attribute `{}` refers to a function attribute",
                    a.name
                ));
            }
            if !known.contains(&a.name.as_str()) {
                return unsupported(format!("attribute `{}` is not supported", a.name));
            }
        }
        Ok(())
    }
}

/// Decodes a `TensorProto` (float32 or int64, data inside the message).
pub(crate) fn decode_tensor(t: &TensorProto) -> Result<Value, String> {
    if t.data_location == 1 || !t.external_data.is_empty() {
        return Err("external data is not supported".into());
    }
    if t.segment.is_some() {
        return Err("segmented tensors are not supported".into());
    }
    let mut shape = Vec::with_capacity(t.dims.len());
    for &d in &t.dims {
        shape.push(usize::try_from(d).map_err(|_| format!("negative dimension in {:?}", t.dims))?);
    }
    let n = numel(&shape).ok_or_else(|| format!("dimensions {:?} overflow", t.dims))?;
    let raw = &t.raw_data;
    let count_err =
        |got: usize, what: &str| format!("dims {:?} need {n} values, {what} holds {got}", t.dims);
    match t.data_type {
        crate::proto::data_type::FLOAT => {
            let data = if !raw.is_empty() {
                if n.checked_mul(4) != Some(raw.len()) {
                    return Err(count_err(raw.len(), "raw_data (bytes, 4 per float)"));
                }
                raw.chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect()
            } else {
                if t.float_data.len() != n {
                    return Err(count_err(t.float_data.len(), "float_data"));
                }
                t.float_data.clone()
            };
            Ok(Value::F32(Tensor { shape, data }))
        }
        crate::proto::data_type::INT64 => {
            let data = if !raw.is_empty() {
                if n.checked_mul(8) != Some(raw.len()) {
                    return Err(count_err(raw.len(), "raw_data (bytes, 8 per int64)"));
                }
                raw.chunks_exact(8)
                    .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect()
            } else {
                if t.int64_data.len() != n {
                    return Err(count_err(t.int64_data.len(), "int64_data"));
                }
                t.int64_data.clone()
            };
            Ok(Value::I64(I64Tensor { shape, data }))
        }
        other => Err(format!(
            "data type {other} ({}) is not supported (only float32 and int64)",
            dtype_name(other)
        )),
    }
}

fn dtype_name(t: i32) -> &'static str {
    match t {
        1 => "float32",
        2 => "uint8",
        3 => "int8",
        4 => "uint16",
        5 => "int16",
        6 => "int32",
        7 => "int64",
        8 => "string",
        9 => "bool",
        10 => "float16",
        11 => "double",
        12 => "uint32",
        13 => "uint64",
        16 => "bfloat16",
        _ => "other",
    }
}

/// `DataType` number to a supported element type.
pub(crate) fn elem_type(t: i32) -> Option<DType> {
    match t {
        crate::proto::data_type::FLOAT => Some(DType::F32),
        crate::proto::data_type::INT64 => Some(DType::I64),
        _ => None,
    }
}

fn pair(v: Option<Vec<i64>>, name: &str, default: usize, max: i64) -> NodeResult<[usize; 2]> {
    match v {
        None => Ok([default, default]),
        Some(v) if v.len() == 2 && v.iter().all(|&x| (1..=max).contains(&x)) => {
            Ok([v[0] as usize, v[1] as usize])
        }
        Some(v) if v.len() != 2 => unsupported(format!(
            "`{name}` {v:?}: only 2-D convolutions are supported"
        )),
        Some(v) => invalid(format!("`{name}` {v:?} out of range 1..={max}")),
    }
}

/// Largest stride, dilation or pad accepted (keeps index arithmetic small).
const MAX_GEOM: i64 = 1 << 24;

impl Op {
    /// Parses a node's operator and attributes.
    pub(crate) fn build(np: &NodeProto) -> NodeResult<Op> {
        let at = Attrs(&np.attribute);
        let op = np.op_type.as_str();
        let unary = |u| -> NodeResult<Op> {
            at.only(&[])?;
            Ok(Op::Unary(u))
        };
        let binary = |b| -> NodeResult<Op> {
            at.only(&[])?;
            Ok(Op::Binary(b))
        };
        Ok(match op {
            "Relu" => unary(UnaryOp::Relu)?,
            "Sigmoid" => unary(UnaryOp::Sigmoid)?,
            "Sqrt" => unary(UnaryOp::Sqrt)?,
            "Exp" => unary(UnaryOp::Exp)?,
            "Tanh" => unary(UnaryOp::Tanh)?,
            "Neg" => unary(UnaryOp::Neg)?,
            "Abs" => unary(UnaryOp::Abs)?,
            "Add" => binary(BinaryOp::Add)?,
            "Sub" => binary(BinaryOp::Sub)?,
            "Mul" => binary(BinaryOp::Mul)?,
            "Div" => binary(BinaryOp::Div)?,
            "Pow" => binary(BinaryOp::Pow)?,
            "Identity" => {
                at.only(&[])?;
                Op::Identity
            }
            "Constant" => {
                at.only(&[
                    "value",
                    "value_float",
                    "value_floats",
                    "value_int",
                    "value_ints",
                ])?;
                if np.attribute.len() != 1 {
                    return invalid("needs exactly one value attribute");
                }
                let v = if let Some(t) = at.tensor("value")? {
                    decode_tensor(t).map_err(NodeErr::Unsupported)?
                } else if let Some(a) = at.get("value_float", attr_type::FLOAT, "a float")? {
                    Value::F32(Tensor {
                        shape: vec![],
                        data: vec![a.f],
                    })
                } else if let Some(a) = at.get("value_floats", attr_type::FLOATS, "floats")? {
                    Value::F32(Tensor {
                        shape: vec![a.floats.len()],
                        data: a.floats.clone(),
                    })
                } else if let Some(a) = at.get("value_int", attr_type::INT, "an int")? {
                    Value::I64(I64Tensor {
                        shape: vec![],
                        data: vec![a.i],
                    })
                } else {
                    let v = at.ints("value_ints")?.unwrap_or_default();
                    Value::I64(I64Tensor {
                        shape: vec![v.len()],
                        data: v,
                    })
                };
                Op::Constant(Arc::new(v))
            }
            "ConstantOfShape" => {
                at.only(&["value"])?;
                let v = match at.tensor("value")? {
                    None => Value::F32(Tensor {
                        shape: vec![1],
                        data: vec![0.0],
                    }),
                    Some(t) => decode_tensor(t).map_err(NodeErr::Unsupported)?,
                };
                if v.len() != 1 {
                    return invalid(format!("`value` has {} elements, needs 1", v.len()));
                }
                Op::ConstantOfShape(v)
            }
            "Cast" => {
                at.only(&["to", "saturate"])?;
                let to = at.int("to", -1)?;
                match elem_type(to as i32) {
                    Some(d) if to == to as i32 as i64 => Op::Cast(d),
                    _ => return unsupported(format!("cast to data type {to}")),
                }
            }
            "Reshape" => {
                at.only(&["allowzero"])?;
                Op::Reshape {
                    allowzero: at.int("allowzero", 0)? != 0,
                }
            }
            "Unsqueeze" | "Squeeze" => {
                at.only(&["axes"])?;
                let axes = at.ints("axes")?;
                if op == "Unsqueeze" {
                    Op::Unsqueeze(axes)
                } else {
                    Op::Squeeze(axes)
                }
            }
            "Concat" => {
                at.only(&["axis"])?;
                match at.get("axis", attr_type::INT, "an int")? {
                    Some(a) => Op::Concat(a.i),
                    None => return invalid("missing attribute `axis`"),
                }
            }
            "Slice" => {
                at.only(&[])?;
                Op::Slice
            }
            "Transpose" => {
                at.only(&["perm"])?;
                let perm = match at.ints("perm")? {
                    None => None,
                    Some(p) => {
                        let mut seen = vec![false; p.len()];
                        let mut out = Vec::with_capacity(p.len());
                        for &x in &p {
                            match usize::try_from(x) {
                                Ok(i) if i < p.len() && !seen[i] => {
                                    seen[i] = true;
                                    out.push(i);
                                }
                                _ => return invalid(format!("`perm` {p:?} is not a permutation")),
                            }
                        }
                        Some(out)
                    }
                };
                Op::Transpose(perm)
            }
            "Pad" => {
                at.only(&["mode"])?;
                Op::Pad(match at.string("mode", "constant")?.as_str() {
                    "constant" => PadMode::Constant,
                    "reflect" => PadMode::Reflect,
                    "edge" => PadMode::Edge,
                    m => return unsupported(format!("pad mode `{m}`")),
                })
            }
            "Conv" => {
                at.only(&[
                    "auto_pad",
                    "dilations",
                    "group",
                    "kernel_shape",
                    "pads",
                    "strides",
                ])?;
                let auto_pad = at.string("auto_pad", "NOTSET")?;
                if !["NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"].contains(&auto_pad.as_str()) {
                    return invalid(format!("auto_pad `{auto_pad}`"));
                }
                let kernel_shape = match at.ints("kernel_shape")? {
                    None => None,
                    Some(k) => Some(pair(Some(k), "kernel_shape", 1, i64::MAX)?),
                };
                let strides = pair(at.ints("strides")?, "strides", 1, MAX_GEOM)?;
                let dilations = pair(at.ints("dilations")?, "dilations", 1, MAX_GEOM)?;
                let pads = match at.ints("pads")? {
                    None => [0; 4],
                    Some(p) if p.len() == 4 && p.iter().all(|&x| (0..=MAX_GEOM).contains(&x)) => {
                        [p[0] as usize, p[1] as usize, p[2] as usize, p[3] as usize]
                    }
                    Some(p) if p.len() != 4 => {
                        return unsupported(format!("`pads` {p:?}: only 2-D convolutions"))
                    }
                    Some(p) => return invalid(format!("`pads` {p:?} out of range")),
                };
                let group = at.int("group", 1)?;
                if !(1..=MAX_GEOM).contains(&group) {
                    return invalid(format!("`group` {group} out of range"));
                }
                Op::Conv(ConvAttrs {
                    auto_pad,
                    kernel_shape,
                    strides,
                    dilations,
                    pads,
                    group: group as usize,
                })
            }
            "Resize" => {
                at.only(&[
                    "mode",
                    "coordinate_transformation_mode",
                    "nearest_mode",
                    "cubic_coeff_a",
                    "exclude_outside",
                    "extrapolation_value",
                    "antialias",
                    "keep_aspect_ratio_policy",
                ])?;
                let linear = match at.string("mode", "nearest")?.as_str() {
                    "nearest" => false,
                    "linear" => true,
                    m => return unsupported(format!("resize mode `{m}`")),
                };
                let coord = match at
                    .string("coordinate_transformation_mode", "half_pixel")?
                    .as_str()
                {
                    "half_pixel" => CoordMode::HalfPixel,
                    "pytorch_half_pixel" => CoordMode::PytorchHalfPixel,
                    "align_corners" => CoordMode::AlignCorners,
                    "asymmetric" => CoordMode::Asymmetric,
                    m => return unsupported(format!("coordinate_transformation_mode `{m}`")),
                };
                let nearest = match at.string("nearest_mode", "round_prefer_floor")?.as_str() {
                    "round_prefer_floor" => NearestMode::RoundPreferFloor,
                    "round_prefer_ceil" => NearestMode::RoundPreferCeil,
                    "floor" => NearestMode::Floor,
                    "ceil" => NearestMode::Ceil,
                    m => return unsupported(format!("nearest_mode `{m}`")),
                };
                at.float("cubic_coeff_a", -0.75)?; // cubic only
                at.float("extrapolation_value", 0.0)?; // tf_crop_and_resize only
                at.int("exclude_outside", 0)?; // cubic only
                if at.int("antialias", 0)? != 0 {
                    return unsupported("antialias");
                }
                let policy = at.string("keep_aspect_ratio_policy", "stretch")?;
                if policy != "stretch" {
                    return unsupported(format!("keep_aspect_ratio_policy `{policy}`"));
                }
                Op::Resize {
                    linear,
                    coord,
                    nearest,
                }
            }
            "ReduceMean" | "ReduceSum" => {
                at.only(&["axes", "keepdims", "noop_with_empty_axes"])?;
                Op::Reduce {
                    mean: op == "ReduceMean",
                    axes: at.ints("axes")?,
                    keepdims: at.int("keepdims", 1)? != 0,
                    noop_with_empty_axes: at.int("noop_with_empty_axes", 0)? != 0,
                }
            }
            _ => return unsupported(format!("operator `{op}` is not supported")),
        })
    }

    /// Checks the input count and element types; returns the output types.
    pub(crate) fn infer(&self, ins: &[Option<DType>], n_out: usize) -> NodeResult<Vec<DType>> {
        use DType::{F32, I64};
        let arity = |min: usize, max: usize, outs: usize| -> NodeResult<()> {
            if ins.len() < min || ins.len() > max {
                return invalid(format!(
                    "has {} inputs, needs {min}{}",
                    ins.len(),
                    if max == min {
                        String::new()
                    } else if max == usize::MAX {
                        " or more".into()
                    } else {
                        format!(" to {max}")
                    }
                ));
            }
            if ins.iter().take(min).any(Option::is_none) {
                return invalid("a required input is empty");
            }
            if n_out != outs {
                return invalid(format!("has {n_out} outputs, needs {outs}"));
            }
            Ok(())
        };
        // Input `i` (if given) must have type `want`.
        let want = |i: usize, want: DType| -> NodeResult<()> {
            match ins.get(i).copied().flatten() {
                Some(d) if d != want => {
                    invalid(format!("input {i} is {}, needs {}", d.name(), want.name()))
                }
                _ => Ok(()),
            }
        };
        let first = ins.first().copied().flatten().unwrap_or(F32);
        match self {
            Op::Constant(v) => {
                arity(0, 0, 1)?;
                Ok(vec![v.dtype()])
            }
            Op::ConstantOfShape(v) => {
                arity(1, 1, 1)?;
                want(0, I64)?;
                Ok(vec![v.dtype()])
            }
            Op::Identity | Op::Transpose(_) => {
                arity(1, 1, 1)?;
                Ok(vec![first])
            }
            Op::Cast(to) => {
                arity(1, 1, 1)?;
                Ok(vec![*to])
            }
            Op::Reshape { .. } => {
                arity(2, 2, 1)?;
                want(1, I64)?;
                Ok(vec![first])
            }
            Op::Unsqueeze(axes) | Op::Squeeze(axes) => {
                if axes.is_some() {
                    arity(1, 1, 1)?;
                } else if matches!(self, Op::Unsqueeze(_)) {
                    arity(2, 2, 1)?;
                } else {
                    arity(1, 2, 1)?;
                }
                want(1, I64)?;
                Ok(vec![first])
            }
            Op::Concat(_) => {
                arity(1, usize::MAX, 1)?;
                for i in 0..ins.len() {
                    want(i, first)?;
                }
                Ok(vec![first])
            }
            Op::Slice => {
                arity(3, 5, 1)?;
                for i in 1..5 {
                    want(i, I64)?;
                }
                Ok(vec![first])
            }
            Op::Pad(_) => {
                arity(2, 4, 1)?;
                want(0, F32)?;
                want(1, I64)?;
                want(2, F32)?;
                want(3, I64)?;
                Ok(vec![F32])
            }
            Op::Conv(_) => {
                arity(2, 3, 1)?;
                (0..3).try_for_each(|i| want(i, F32))?;
                Ok(vec![F32])
            }
            Op::Resize { .. } => {
                arity(1, 4, 1)?;
                want(0, F32)?;
                want(2, F32)?;
                want(3, I64)?;
                // roi (input 1) is only used by tf_crop_and_resize: ignored.
                Ok(vec![F32])
            }
            Op::Reduce { axes, .. } => {
                if axes.is_some() {
                    arity(1, 1, 1)?;
                } else {
                    arity(1, 2, 1)?;
                }
                want(0, F32)?;
                want(1, I64)?;
                Ok(vec![F32])
            }
            Op::Binary(_) => {
                arity(2, 2, 1)?;
                want(0, F32)?;
                want(1, F32)?;
                Ok(vec![F32])
            }
            Op::Unary(_) => {
                arity(1, 1, 1)?;
                want(0, F32)?;
                Ok(vec![F32])
            }
        }
    }

    /// Runs the operator. `args` holds the inputs (`None`: omitted); an
    /// input whose `Arc` is unique may be taken and reused for the output.
    pub(crate) fn run(
        &self,
        args: &mut [Option<Arc<Value>>],
        cx: &Ctx<'_>,
    ) -> OpResult<Vec<Arc<Value>>> {
        let limit = cx.limit;
        let out = match self {
            Op::Constant(v) => return Ok(vec![v.clone()]),
            Op::Identity => return Ok(vec![take_arc(args, 0)?]),
            Op::Cast(to) => {
                let v = take_arc(args, 0)?;
                if v.dtype() == *to {
                    return Ok(vec![v]);
                }
                match &*v {
                    Value::F32(t) => Value::I64(I64Tensor {
                        shape: t.shape.clone(),
                        data: t.data.iter().map(|&x| x as i64).collect(),
                    }),
                    Value::I64(t) => Value::F32(Tensor {
                        shape: t.shape.clone(),
                        data: t.data.iter().map(|&x| x as f32).collect(),
                    }),
                }
            }
            Op::ConstantOfShape(v) => {
                let dims = int_list(args, 0)?.unwrap_or_default();
                let shape = dims_to_shape(&dims)?;
                let n = checked_len(&shape, limit)?;
                match v {
                    Value::F32(t) => Value::F32(Tensor {
                        shape,
                        data: vec![t.data[0]; n],
                    }),
                    Value::I64(t) => Value::I64(I64Tensor {
                        shape,
                        data: vec![t.data[0]; n],
                    }),
                }
            }
            Op::Reshape { allowzero } => {
                let spec = int_list(args, 1)?.unwrap_or_default();
                let v = take(args, 0)?;
                let shape = reshape_target(v.shape(), &spec, *allowzero)?;
                v.with_shape(shape)
            }
            Op::Unsqueeze(attr) => {
                let axes = match attr {
                    Some(a) => a.clone(),
                    None => int_list(args, 1)?.unwrap_or_default(),
                };
                let v = take(args, 0)?;
                let r = v.shape().len() + axes.len();
                let mut flags = vec![false; r];
                for &a in &axes {
                    let i = norm_axis(a, r)?;
                    if flags[i] {
                        return bad(format!("axis {a} repeated in {axes:?}"));
                    }
                    flags[i] = true;
                }
                let mut it = v.shape().iter();
                let shape = flags
                    .iter()
                    .map(|&f| {
                        if f {
                            1
                        } else {
                            it.next().copied().unwrap_or(1)
                        }
                    })
                    .collect();
                v.with_shape(shape)
            }
            Op::Squeeze(attr) => {
                let axes = match attr {
                    Some(a) => Some(a.clone()),
                    None => int_list(args, 1)?,
                };
                let v = take(args, 0)?;
                let r = v.shape().len();
                let mut drop = vec![false; r];
                match axes {
                    None => {
                        for (d, &s) in drop.iter_mut().zip(v.shape()) {
                            *d = s == 1;
                        }
                    }
                    Some(axes) => {
                        for &a in &axes {
                            let i = norm_axis(a, r)?;
                            if v.shape()[i] != 1 {
                                return bad(format!(
                                    "cannot squeeze axis {a} of size {}",
                                    v.shape()[i]
                                ));
                            }
                            drop[i] = true;
                        }
                    }
                }
                let shape = v
                    .shape()
                    .iter()
                    .zip(&drop)
                    .filter(|(_, &d)| !d)
                    .map(|(&s, _)| s)
                    .collect();
                v.with_shape(shape)
            }
            Op::Concat(axis) => concat(args, *axis, limit)?,
            Op::Slice => slice(args, limit)?,
            Op::Transpose(perm) => {
                let v = arg(args, 0)?;
                let r = v.shape().len();
                let perm = match perm {
                    None => (0..r).rev().collect(),
                    Some(p) if p.len() == r => p.clone(),
                    Some(p) => {
                        return bad(format!("perm {p:?} does not fit rank {r}"));
                    }
                };
                let shape: Vec<usize> = perm.iter().map(|&p| v.shape()[p]).collect();
                match v {
                    Value::F32(t) => Value::F32(Tensor {
                        data: value::transpose(&t.shape, &t.data, &perm),
                        shape,
                    }),
                    Value::I64(t) => Value::I64(I64Tensor {
                        data: value::transpose(&t.shape, &t.data, &perm),
                        shape,
                    }),
                }
            }
            Op::Pad(mode) => pad(args, *mode, cx)?,
            Op::Conv(c) => conv(args, c, cx)?,
            Op::Resize {
                linear,
                coord,
                nearest,
            } => resize(args, *linear, *coord, *nearest, cx)?,
            Op::Reduce {
                mean,
                axes,
                keepdims,
                noop_with_empty_axes,
            } => {
                let axes = match axes {
                    Some(a) => Some(a.clone()),
                    None => int_list(args, 1)?,
                };
                let x = f32_arg(args, 0)?;
                reduce(x, axes, *mean, *keepdims, *noop_with_empty_axes)?
            }
            Op::Binary(op) => binary(args, *op, cx)?,
            Op::Unary(op) => unary(take_arc(args, 0)?, *op, cx.pool)?,
        };
        Ok(vec![Arc::new(out)])
    }
}

// ------------------------------------------------------------- helpers ---

fn arg(args: &[Option<Arc<Value>>], i: usize) -> OpResult<&Value> {
    match args.get(i) {
        Some(Some(v)) => Ok(v),
        _ => bad(format!("input {i} is missing")),
    }
}

fn f32_arg(args: &[Option<Arc<Value>>], i: usize) -> OpResult<&Tensor> {
    match arg(args, i)? {
        Value::F32(t) => Ok(t),
        Value::I64(_) => bad(format!("input {i} is int64, needs float32")),
    }
}

fn take_arc(args: &mut [Option<Arc<Value>>], i: usize) -> OpResult<Arc<Value>> {
    match args.get_mut(i).and_then(Option::take) {
        Some(v) => Ok(v),
        None => bad(format!("input {i} is missing")),
    }
}

/// Input `i`, owned (copied when shared).
fn take(args: &mut [Option<Arc<Value>>], i: usize) -> OpResult<Value> {
    let v = take_arc(args, i)?;
    Ok(Arc::try_unwrap(v).unwrap_or_else(|a| (*a).clone()))
}

/// Optional int64 input `i` as a list (a scalar is a list of one).
fn int_list(args: &[Option<Arc<Value>>], i: usize) -> OpResult<Option<Vec<i64>>> {
    match args.get(i) {
        None | Some(None) => Ok(None),
        Some(Some(v)) => match &**v {
            Value::I64(t) if t.shape.len() <= 1 => Ok(Some(t.data.clone())),
            Value::I64(t) => bad(format!("input {i} should be 1-D, has shape {:?}", t.shape)),
            Value::F32(_) => bad(format!("input {i} should be int64")),
        },
    }
}

fn dims_to_shape(dims: &[i64]) -> OpResult<Vec<usize>> {
    dims.iter()
        .map(|&d| usize::try_from(d).map_err(|_| OpError::Msg(format!("negative dim in {dims:?}"))))
        .collect()
}

/// Normalises a possibly negative axis for rank `r`.
fn norm_axis(a: i64, r: usize) -> OpResult<usize> {
    let ri = r as i64;
    if a < -ri || a >= ri {
        return bad(format!("axis {a} out of range for rank {r}"));
    }
    Ok(if a < 0 { (a + ri) as usize } else { a as usize })
}

fn reshape_target(input: &[usize], spec: &[i64], allowzero: bool) -> OpResult<Vec<usize>> {
    let n = numel(input).unwrap_or(usize::MAX);
    let mut shape = Vec::with_capacity(spec.len());
    let mut infer = None;
    for (i, &s) in spec.iter().enumerate() {
        shape.push(match s {
            -1 if infer.is_none() => {
                infer = Some(i);
                1
            }
            0 if !allowzero => match input.get(i) {
                Some(&d) => d,
                None => return bad(format!("shape {spec:?}: 0 at {i} beyond the input rank")),
            },
            s if s >= 0 => s as usize,
            _ => return bad(format!("invalid shape {spec:?}")),
        });
    }
    let known = numel(&shape);
    match (infer, known) {
        (Some(i), Some(k)) if k != 0 && n.is_multiple_of(k) => shape[i] = n / k,
        (None, Some(k)) if k == n => {}
        _ => {
            return bad(format!(
                "cannot reshape {input:?} ({n} elements) to {spec:?}"
            ))
        }
    }
    Ok(shape)
}

fn concat(args: &[Option<Arc<Value>>], axis: i64, limit: usize) -> OpResult<Value> {
    let vals: Vec<&Value> = (0..args.len())
        .map(|i| arg(args, i))
        .collect::<OpResult<_>>()?;
    let first = vals[0];
    let r = first.shape().len();
    let axis = norm_axis(axis, r)?;
    let mut shape = first.shape().to_vec();
    shape[axis] = 0;
    for v in &vals {
        let s = v.shape();
        if v.dtype() != first.dtype()
            || s.len() != r
            || (0..r).any(|a| a != axis && s[a] != first.shape()[a])
        {
            return bad(format!(
                "cannot concatenate shapes {:?} on axis {axis}",
                vals.iter().map(|v| v.shape()).collect::<Vec<_>>()
            ));
        }
        shape[axis] = shape[axis].saturating_add(s[axis]);
    }
    let n = checked_len(&shape, limit)?;
    Ok(match first {
        Value::F32(_) => {
            let parts: Vec<(&[usize], &[f32])> = vals
                .iter()
                .filter_map(|v| match v {
                    Value::F32(t) => Some((t.shape.as_slice(), t.data.as_slice())),
                    Value::I64(_) => None,
                })
                .collect();
            Value::F32(Tensor {
                data: value::concat(&parts, axis, n),
                shape,
            })
        }
        Value::I64(_) => {
            let parts: Vec<(&[usize], &[i64])> = vals
                .iter()
                .filter_map(|v| match v {
                    Value::I64(t) => Some((t.shape.as_slice(), t.data.as_slice())),
                    Value::F32(_) => None,
                })
                .collect();
            Value::I64(I64Tensor {
                data: value::concat(&parts, axis, n),
                shape,
            })
        }
    })
}

fn slice(args: &[Option<Arc<Value>>], limit: usize) -> OpResult<Value> {
    let v = arg(args, 0)?;
    let shape = v.shape();
    let r = shape.len();
    let starts = int_list(args, 1)?.unwrap_or_default();
    let ends = int_list(args, 2)?.unwrap_or_default();
    let axes = int_list(args, 3)?.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = int_list(args, 4)?.unwrap_or_else(|| vec![1; starts.len()]);
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return bad("starts, ends, axes and steps differ in length");
    }
    let mut idx: Vec<Vec<usize>> = Vec::with_capacity(r);
    let mut spec: Vec<Option<(i64, i64)>> = vec![None; r]; // (start, step), count
    let mut counts = shape.to_vec();
    for i in 0..starts.len() {
        let a = norm_axis(axes[i], r)?;
        if spec[a].is_some() {
            return bad(format!("axis {} repeated", axes[i]));
        }
        let d = shape[a] as i64;
        let step = steps[i];
        if step == 0 {
            return bad("step 0");
        }
        let fix = |x: i64| if x < 0 { x.saturating_add(d) } else { x };
        let (s, e) = (fix(starts[i]), fix(ends[i]));
        let (s, e) = if step > 0 {
            (s.clamp(0, d), e.clamp(0, d))
        } else if d > 0 {
            (s.clamp(0, d - 1), e.clamp(-1, d - 1))
        } else {
            (0, 0) // an empty axis: nothing to take
        };
        // s and e are within [-1, d]; |step| may be anything but 0.
        let (s128, e128, st) = (s as i128, e as i128, step as i128);
        let n = if step > 0 && e128 > s128 {
            (e128 - s128 - 1) / st + 1
        } else if step < 0 && s128 > e128 {
            (s128 - e128 - 1) / -st + 1
        } else {
            0
        } as i64;
        spec[a] = Some((s, step));
        counts[a] = n.max(0) as usize;
    }
    // An empty result needs no index tables (an input axis may be long when
    // another is 0).
    if checked_len(&counts, limit)? == 0 {
        return Ok(match v {
            Value::F32(_) => Value::F32(Tensor {
                data: Vec::new(),
                shape: counts,
            }),
            Value::I64(_) => Value::I64(I64Tensor {
                data: Vec::new(),
                shape: counts,
            }),
        });
    }
    for a in 0..r {
        idx.push(match spec[a] {
            None => (0..shape[a]).collect(),
            Some((s, step)) => (0..counts[a] as i64)
                .map(|k| (s + k * step) as usize)
                .collect(),
        });
    }
    Ok(match v {
        Value::F32(t) => Value::F32(Tensor {
            data: value::gather_axes(&t.shape, &t.data, &idx, Vec::new()),
            shape: counts,
        }),
        Value::I64(t) => Value::I64(I64Tensor {
            data: value::gather_axes(&t.shape, &t.data, &idx, Vec::new()),
            shape: counts,
        }),
    })
}

fn pad(args: &[Option<Arc<Value>>], mode: PadMode, cx: &Ctx<'_>) -> OpResult<Value> {
    let x = f32_arg(args, 0)?;
    let r = x.shape.len();
    let pads = int_list(args, 1)?.unwrap_or_default();
    let value = match args.get(2) {
        Some(Some(v)) => match &**v {
            Value::F32(t) if t.data.len() == 1 => t.data[0],
            Value::F32(t) if t.data.is_empty() => 0.0,
            _ => return bad("constant_value should be one float"),
        },
        _ => 0.0,
    };
    let axes: Vec<usize> = match int_list(args, 3)? {
        None => (0..r).collect(),
        Some(a) => a
            .iter()
            .map(|&a| norm_axis(a, r))
            .collect::<OpResult<_>>()?,
    };
    if pads.len() != 2 * axes.len() {
        return bad(format!(
            "{} pads for {} axes (needs twice as many)",
            pads.len(),
            axes.len()
        ));
    }
    let mut begins = vec![0i64; r];
    let mut ends = vec![0i64; r];
    for (i, &a) in axes.iter().enumerate() {
        begins[a] = pads[i];
        ends[a] = pads[i + axes.len()];
    }
    Ok(Value::F32(ops::pad(x, &begins, &ends, mode, value, cx)?))
}

fn conv(args: &[Option<Arc<Value>>], c: &ConvAttrs, cx: &Ctx<'_>) -> OpResult<Value> {
    let limit = cx.limit;
    let x = f32_arg(args, 0)?;
    let w = f32_arg(args, 1)?;
    let bias = match args.get(2) {
        Some(Some(_)) => Some(f32_arg(args, 2)?),
        _ => None,
    };
    let (&[n, cin, h, wd], &[m, cg, kh, kw]) = (x.shape.as_slice(), w.shape.as_slice()) else {
        return bad(format!(
            "only 2-D convolutions: input {:?}, weights {:?}",
            x.shape, w.shape
        ));
    };
    if let Some(k) = c.kernel_shape {
        if k != [kh, kw] {
            return bad(format!("kernel_shape {k:?} but weights {:?}", w.shape));
        }
    }
    let g = c.group;
    if cg.checked_mul(g) != Some(cin) || m % g != 0 {
        return bad(format!(
            "input {:?}, weights {:?} and group {g} do not fit",
            x.shape, w.shape
        ));
    }
    if let Some(b) = bias {
        if b.shape != [m] {
            return bad(format!("bias {:?} for {m} output channels", b.shape));
        }
    }
    if kh == 0 || kw == 0 {
        return bad(format!("empty kernel {:?}", w.shape));
    }
    // Kernel extent, output size and padding per spatial axis.
    let axis = |inn: usize, k: usize, s: usize, d: usize, p0: usize, p1: usize| {
        let ext = (k - 1).checked_mul(d).and_then(|e| e.checked_add(1));
        let ext = ext.ok_or(OpError::TooLarge(usize::MAX))?;
        let (p0, out) = match c.auto_pad.as_str() {
            "VALID" => (0, if inn >= ext { (inn - ext) / s + 1 } else { 0 }),
            "SAME_UPPER" | "SAME_LOWER" => {
                let out = inn.div_ceil(s);
                let need = (out.saturating_sub(1) * s + ext).saturating_sub(inn);
                let p0 = if c.auto_pad == "SAME_UPPER" {
                    need / 2
                } else {
                    need - need / 2
                };
                (p0, out)
            }
            _ => {
                let padded = inn + p0 + p1;
                if padded < ext {
                    return bad(format!(
                        "kernel extent {ext} larger than the padded input {padded}"
                    ));
                }
                (p0, (padded - ext) / s + 1)
            }
        };
        Ok((p0, out))
    };
    let (pt, outh) = axis(h, kh, c.strides[0], c.dilations[0], c.pads[0], c.pads[2])?;
    let (pl, outw) = axis(wd, kw, c.strides[1], c.dilations[1], c.pads[1], c.pads[3])?;
    let out_shape = [n, m, outh, outw];
    let total = checked_len(&out_shape, limit)?;
    // One im2col row block: k * outw floats.
    checked_len(&[cg, kh, kw, outw], limit)?;
    let geom = ConvGeom {
        kh,
        kw,
        dh: c.dilations[0],
        dw: c.dilations[1],
        sh: c.strides[0],
        sw: c.strides[1],
        pt,
        pl,
        outh,
        outw,
    };
    let mut out = cx.pool.filled(total, 0.0);
    let (isz, osz) = (cin * h * wd, m * outh * outw);
    if osz > 0 {
        for b in 0..n {
            ops::conv2d(
                &x.data[b * isz..(b + 1) * isz],
                (cin, h, wd),
                &mut out[b * osz..(b + 1) * osz],
                m,
                g,
                &geom,
                &w.data,
                bias.map(|b| b.data.as_slice()),
            );
        }
    }
    Ok(Value::F32(Tensor {
        shape: out_shape.to_vec(),
        data: out,
    }))
}

fn resize(
    args: &[Option<Arc<Value>>],
    linear: bool,
    coord: CoordMode,
    nearest: NearestMode,
    cx: &Ctx<'_>,
) -> OpResult<Value> {
    let x = f32_arg(args, 0)?;
    let r = x.shape.len();
    let scales = match args.get(2) {
        Some(Some(_)) => Some(f32_arg(args, 2)?.data.clone()).filter(|s| !s.is_empty()),
        _ => None,
    };
    let sizes = int_list(args, 3)?.filter(|s| !s.is_empty());
    // (output size, scale) per axis.
    let mut axes: Vec<(usize, f32)> = Vec::with_capacity(r);
    match (scales, sizes) {
        (Some(s), None) if s.len() == r => {
            for (a, &sc) in s.iter().enumerate() {
                if !(sc > 0.0 && sc.is_finite()) {
                    return bad(format!("scale {sc} on axis {a}"));
                }
                let out = (x.shape[a] as f32 * sc) as usize; // saturating
                axes.push((out, sc));
            }
        }
        (None, Some(s)) if s.len() == r => {
            for (a, &o) in s.iter().enumerate() {
                let o = usize::try_from(o).map_err(|_| OpError::Msg(format!("size {o}")))?;
                axes.push((o, o as f32 / x.shape[a] as f32));
            }
        }
        _ => return bad(format!("needs scales or sizes (one, {r} values)")),
    }
    if r < 2 {
        return bad("input rank below 2");
    }
    for (a, &(o, _)) in axes.iter().enumerate().take(r - 2) {
        if o != x.shape[a] {
            return bad(format!(
                "resizing axis {a} (not one of the last two) is not supported"
            ));
        }
    }
    let mut shape = x.shape.clone();
    shape[r - 2] = axes[r - 2].0;
    shape[r - 1] = axes[r - 1].0;
    // checked_len bounds each axis too, so the index tables below are as
    // long as an allowed axis even when an empty batch makes the product 0
    // (found by the onnx_model fuzz target: a scale of 1e30 on an empty
    // batch overflowed an index table's capacity).
    let n = checked_len(&shape, cx.limit)?;
    for (a, (&i, &o)) in x.shape.iter().zip(&shape).enumerate().skip(r - 2) {
        if i == 0 && o > 0 {
            return bad(format!("cannot resize an empty axis {a}"));
        }
    }
    // Source coordinate of output position `o` on axis `a`.
    let src = |a: usize, o: usize| -> f32 {
        let (out, scale) = axes[a];
        let inn = x.shape[a];
        let o = o as f32;
        match coord {
            CoordMode::HalfPixel => (o + 0.5) / scale - 0.5,
            CoordMode::PytorchHalfPixel if out > 1 => (o + 0.5) / scale - 0.5,
            CoordMode::PytorchHalfPixel => 0.0,
            CoordMode::AlignCorners if out > 1 => o * (inn as f32 - 1.0) / (out as f32 - 1.0),
            CoordMode::AlignCorners => 0.0,
            CoordMode::Asymmetric => o / scale,
        }
    };
    if linear {
        let taps = |a: usize| -> Vec<(usize, usize, f32)> {
            let last = x.shape[a].saturating_sub(1);
            (0..axes[a].0)
                .map(|o| {
                    let s = src(a, o).clamp(0.0, last as f32);
                    let i0 = (s as usize).min(last);
                    let i1 = (i0 + 1).min(last);
                    let f = if i0 == i1 { 0.5 } else { s - i0 as f32 };
                    (i0, i1, f)
                })
                .collect()
        };
        return Ok(Value::F32(ops::resize_linear(
            x,
            &taps(r - 2),
            &taps(r - 1),
        )));
    }
    let mut idx: Vec<Vec<usize>> = x.shape[..r - 2].iter().map(|&d| (0..d).collect()).collect();
    for (a, &(out, _)) in axes.iter().enumerate().skip(r - 2) {
        let last = x.shape[a].saturating_sub(1) as f32;
        idx.push(
            (0..out)
                .map(|o| {
                    let s = src(a, o);
                    let i = match nearest {
                        NearestMode::Floor => s.floor(),
                        NearestMode::Ceil => s.ceil(),
                        NearestMode::RoundPreferFloor if s.fract() == 0.5 => s.floor(),
                        NearestMode::RoundPreferCeil if s.fract() == 0.5 => s.ceil(),
                        _ => s.round(),
                    };
                    i.clamp(0.0, last) as usize
                })
                .collect(),
        );
    }
    Ok(Value::F32(Tensor {
        data: value::gather_axes(&x.shape, &x.data, &idx, cx.pool.empty(n)),
        shape,
    }))
}

fn reduce(
    x: &Tensor,
    axes: Option<Vec<i64>>,
    mean: bool,
    keepdims: bool,
    noop_with_empty_axes: bool,
) -> OpResult<Value> {
    let r = x.shape.len();
    let mut flags = vec![false; r];
    match axes.filter(|a| !a.is_empty()) {
        None if noop_with_empty_axes => return Ok(Value::F32(x.clone())),
        None => flags.fill(true),
        Some(a) => {
            for &ax in &a {
                flags[norm_axis(ax, r)?] = true;
            }
        }
    }
    let (kept, mut data) = ops::reduce_sum(&x.shape, &x.data, &flags);
    if mean {
        let count: usize = x
            .shape
            .iter()
            .zip(&flags)
            .filter(|(_, &f)| f)
            .map(|(&d, _)| d)
            .product();
        let c = count as f32;
        for v in &mut data {
            *v /= c;
        }
    }
    let shape = if keepdims {
        kept
    } else {
        kept.iter()
            .zip(&flags)
            .filter(|(_, &f)| !f)
            .map(|(&d, _)| d)
            .collect()
    };
    Ok(Value::F32(Tensor { shape, data }))
}

/// `op` of `a`, in place when `a` is not shared.
fn unary(a: Arc<Value>, op: UnaryOp, pool: &Pool) -> OpResult<Value> {
    match Arc::try_unwrap(a) {
        Ok(Value::F32(mut t)) => {
            ops::unary_inplace(op, &mut t.data);
            Ok(Value::F32(t))
        }
        Err(shared) => match &*shared {
            Value::F32(t) => Ok(Value::F32(Tensor {
                shape: t.shape.clone(),
                data: ops::unary_map(op, &t.data, pool),
            })),
            Value::I64(_) => bad("input is not float32"),
        },
        Ok(Value::I64(_)) => bad("input is not float32"),
    }
}

fn binary(args: &mut [Option<Arc<Value>>], op: BinaryOp, cx: &Ctx<'_>) -> OpResult<Value> {
    let mut a = take_arc(args, 0)?;
    let mut b = take_arc(args, 1)?;
    let (sa, sb) = match (&*a, &*b) {
        (Value::F32(x), Value::F32(y)) => (x.shape.clone(), y.shape.clone()),
        _ => return bad("inputs are not float32"),
    };
    let out_shape = ops::broadcast_shape(&sa, &sb)?;
    let n = checked_len(&out_shape, cx.limit)?;
    // x^c with a constant scalar exponent.
    if let (BinaryOp::Pow, Value::F32(tb)) = (op, &*b) {
        if tb.data.len() == 1 && sa == out_shape {
            let u = match tb.data[0] {
                2.0 => UnaryOp::Square,
                0.5 => UnaryOp::Sqrt,
                e => UnaryOp::Powf(e),
            };
            drop(b);
            return unary(a, u, cx.pool);
        }
    }
    // In place in a uniquely owned operand of the output's shape.
    if sa == out_shape {
        match Arc::try_unwrap(a) {
            Ok(Value::F32(mut t)) => {
                if let Value::F32(tb) = &*b {
                    ops::binary_kernel(op, &out_shape, &mut t.data, None, Some(tb));
                    return Ok(Value::F32(t));
                }
                a = Arc::new(Value::F32(t));
            }
            Ok(other) => a = Arc::new(other),
            Err(shared) => a = shared,
        }
    }
    if sb == out_shape {
        match Arc::try_unwrap(b) {
            Ok(Value::F32(mut t)) => {
                if let Value::F32(ta) = &*a {
                    ops::binary_kernel(op, &out_shape, &mut t.data, Some(ta), None);
                    return Ok(Value::F32(t));
                }
                b = Arc::new(Value::F32(t));
            }
            Ok(other) => b = Arc::new(other),
            Err(shared) => b = shared,
        }
    }
    let (Value::F32(ta), Value::F32(tb)) = (&*a, &*b) else {
        return bad("inputs are not float32");
    };
    let mut out = cx.pool.filled(n, 0.0);
    ops::binary_kernel(op, &out_shape, &mut out, Some(ta), Some(tb));
    Ok(Value::F32(Tensor {
        shape: out_shape,
        data: out,
    }))
}
