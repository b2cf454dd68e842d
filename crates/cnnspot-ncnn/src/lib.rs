//! A small, pure-Rust interpreter for [ncnn](https://github.com/Tencent/ncnn)
//! graphs: the text `.param` format (magic `7767517`) with its `.bin` weights
//! (float32, float16 or 8-bit-table storage).
//!
//! It implements the layers the super-resolution generators cnnspot runs
//! need (Real-ESRGAN, Real-CUGAN, waifu2x, SRMD, RealSR) and a few common
//! neighbours: `Input`, `Convolution` (fused activations), `ConvolutionDepthWise`
//! (grouped), `Deconvolution`, `Crop`, `Eltwise`, `BinaryOp` (broadcasting and
//! scalar forms), `Concat`, `Split`, `Interp` (nearest, bilinear, bicubic),
//! `PixelShuffle`, `PReLU`, `Pooling`, `InnerProduct`, `Scale`, `ReLU`,
//! `Sigmoid`, `Clip`, `Noop`/`Dropout`.
//!
//! No pre- or post-processing is done beyond what the graph itself contains
//! (the apps' reflect padding, /255 and x255 are the caller's job).
//!
//! Outputs match the real ncnn runtime (pip `ncnn` 1.0.20261020, CPU, fp32)
//! to within 0.005 grey levels on every graph above (`tests/parity.rs`,
//! fixtures from `scripts/ncnn_reference.py`). Convolutions run as im2col +
//! `gemm` products, split across rayon's threads by output rows.
//!
//! Loading never trusts the files: a malformed `.param` (counts, numbers,
//! unknown layer types, inconsistent weight sizes), a truncated or oversized
//! `.bin` and unsupported storage (int8) give one [`NcnnError`] naming the
//! line or layer, and weight sizes are checked against the bytes left before
//! anything is allocated. At run time every activation is checked against
//! [`Net::with_max_elements`] before it is allocated.
//!
//! ```no_run
//! use cnnspot_ncnn::{Mat, Net};
//! let net = Net::from_files("x4.param".as_ref(), "x4.bin".as_ref())?;
//! let input = Mat::new(3, 64, 64, vec![0.5; 3 * 64 * 64])?;
//! let output = net.run(&input)?;
//! assert_eq!((output.h, output.w), (256, 256));
//! # Ok::<(), cnnspot_ncnn::NcnnError>(())
//! ```
#![warn(missing_docs)]

mod layers;
mod ops;
mod param;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use layers::Layer;
use ops::Tensor;

/// Default bound on the number of floats in any one activation blob (2^28,
/// 1 GiB).
pub const DEFAULT_MAX_ELEMENTS: usize = 1 << 28;

/// Everything that can go wrong loading or running a graph.
#[derive(Debug, thiserror::Error)]
pub enum NcnnError {
    /// Reading a file failed.
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
        /// The `.param` or `.bin` file.
        path: PathBuf,
        /// What went wrong in it.
        source: Box<NcnnError>,
    },
    /// The `.param` text is malformed.
    #[error(".param line {line}: {msg}")]
    Param {
        /// 1-based line number.
        line: usize,
        /// The problem.
        msg: String,
    },
    /// A layer type this interpreter does not implement.
    #[error(".param line {line}: layer `{name}` has unsupported type `{ty}`")]
    UnknownLayer {
        /// 1-based line number.
        line: usize,
        /// The layer name.
        name: String,
        /// The layer type.
        ty: String,
    },
    /// A layer's parameters are invalid or inconsistent.
    #[error(".param line {line}: layer `{name}` ({ty}): {msg}")]
    BadLayer {
        /// 1-based line number.
        line: usize,
        /// The layer name.
        name: String,
        /// The layer type.
        ty: String,
        /// The problem.
        msg: String,
    },
    /// The `.bin` weights do not match the `.param` (truncated, oversized, bad storage tag).
    #[error(".bin: layer `{layer}`: {msg}")]
    Bin {
        /// The layer whose weights were being read (or `<end>`).
        layer: String,
        /// The problem.
        msg: String,
    },
    /// A layer could not run on the blobs it was given (shape mismatch, ...).
    #[error("layer `{layer}` ({ty}): {msg}")]
    Forward {
        /// The layer name.
        layer: String,
        /// The layer type.
        ty: String,
        /// The problem.
        msg: String,
    },
    /// An activation would exceed the element limit (see [`Net::with_max_elements`]).
    #[error("layer `{layer}`: output of {elements} floats exceeds the limit of {limit}")]
    TooLarge {
        /// The layer name.
        layer: String,
        /// Requested element count (saturating).
        elements: usize,
        /// The limit.
        limit: usize,
    },
    /// An input or output blob name that the graph does not have, or a missing input.
    #[error("{0}")]
    Blob(String),
    /// An input [`Mat`] whose data length does not match its shape.
    #[error("mat of shape c={c} h={h} w={w} needs {expected} floats, got {got}")]
    MatShape {
        /// Channels.
        c: usize,
        /// Height.
        h: usize,
        /// Width.
        w: usize,
        /// `c*h*w`.
        expected: usize,
        /// `data.len()`.
        got: usize,
    },
}

/// One image in CHW layout (channels, rows, columns), row-major float32.
#[derive(Debug, Clone, PartialEq)]
pub struct Mat {
    /// Channels.
    pub c: usize,
    /// Height (rows).
    pub h: usize,
    /// Width (columns).
    pub w: usize,
    /// `c*h*w` values, channel by channel, row by row.
    pub data: Vec<f32>,
}

impl Mat {
    /// A mat of the given shape; errors when `data.len() != c*h*w`.
    pub fn new(c: usize, h: usize, w: usize, data: Vec<f32>) -> Result<Mat, NcnnError> {
        let m = Mat { c, h, w, data };
        m.check()?;
        Ok(m)
    }

    fn check(&self) -> Result<(), NcnnError> {
        let expected = self
            .c
            .checked_mul(self.h)
            .and_then(|v| v.checked_mul(self.w));
        if expected != Some(self.data.len()) {
            return Err(NcnnError::MatShape {
                c: self.c,
                h: self.h,
                w: self.w,
                expected: expected.unwrap_or(usize::MAX),
                got: self.data.len(),
            });
        }
        Ok(())
    }
}

/// A loaded ncnn graph. Immutable and `Sync`: one `Net` can serve several
/// threads.
#[derive(Debug)]
pub struct Net {
    layers: Vec<Layer>,
    blob_names: Vec<String>,
    blob_index: HashMap<String, usize>,
    /// Producer layer of each blob.
    producer: Vec<usize>,
    inputs: Vec<usize>,
    outputs: Vec<usize>,
    max_elements: usize,
}

impl Net {
    /// Loads a graph from a `.param` text file and its `.bin` weights.
    pub fn from_files(param: &Path, bin: &Path) -> Result<Net, NcnnError> {
        let text = std::fs::read_to_string(param).map_err(|source| NcnnError::Io {
            path: param.to_path_buf(),
            source,
        })?;
        let bytes = std::fs::read(bin).map_err(|source| NcnnError::Io {
            path: bin.to_path_buf(),
            source,
        })?;
        Net::from_bytes(&text, &bytes).map_err(|e| {
            let path = match e {
                NcnnError::Bin { .. } => bin,
                _ => param,
            };
            NcnnError::InFile {
                path: path.to_path_buf(),
                source: Box::new(e),
            }
        })
    }

    /// Loads a graph from `.param` text and `.bin` bytes.
    pub fn from_bytes(param: &str, bin: &[u8]) -> Result<Net, NcnnError> {
        let pf = param::parse_param(param)?;
        let mut reader = param::BinReader::new(bin);
        let mut blob_names: Vec<String> = Vec::new();
        let mut blob_index: HashMap<String, usize> = HashMap::new();
        let mut producer: Vec<usize> = Vec::new();
        let mut consumed: Vec<bool> = Vec::new();
        let mut inputs = Vec::new();
        let mut layers = Vec::with_capacity(pf.layers.len());
        for (li, line) in pf.layers.into_iter().enumerate() {
            let mut bottoms = Vec::with_capacity(line.bottoms.len());
            for b in &line.bottoms {
                let &idx = blob_index.get(b).ok_or_else(|| NcnnError::Param {
                    line: line.line,
                    msg: format!(
                        "layer `{}`: bottom blob `{b}` is not produced by any earlier layer",
                        line.name
                    ),
                })?;
                consumed[idx] = true;
                bottoms.push(idx);
            }
            let mut tops = Vec::with_capacity(line.tops.len());
            for t in &line.tops {
                if blob_index.contains_key(t) {
                    return Err(NcnnError::Param {
                        line: line.line,
                        msg: format!("layer `{}`: blob `{t}` is produced twice", line.name),
                    });
                }
                let idx = blob_names.len();
                if idx >= pf.blob_count {
                    return Err(NcnnError::Param {
                        line: line.line,
                        msg: format!(
                            "layer `{}`: more blobs than the {} declared",
                            line.name, pf.blob_count
                        ),
                    });
                }
                blob_names.push(t.clone());
                blob_index.insert(t.clone(), idx);
                producer.push(li);
                consumed.push(false);
                tops.push(idx);
            }
            if line.ty == "Input" {
                inputs.extend(tops.iter().copied());
            }
            let layer = Layer::build(line, bottoms, tops, &mut reader)?;
            layers.push(layer);
        }
        if reader.remaining() != 0 {
            return Err(NcnnError::Bin {
                layer: "<end>".into(),
                msg: format!(
                    "{} unused bytes after the last weight (at offset {}): the .bin does not belong to this .param",
                    reader.remaining(),
                    reader.position()
                ),
            });
        }
        let outputs = (0..blob_names.len()).filter(|&b| !consumed[b]).collect();
        Ok(Net {
            layers,
            blob_names,
            blob_index,
            producer,
            inputs,
            outputs,
            max_elements: DEFAULT_MAX_ELEMENTS,
        })
    }

    /// Sets the bound on the number of floats in any one activation (default
    /// [`DEFAULT_MAX_ELEMENTS`]); a layer whose output would be larger fails
    /// with [`NcnnError::TooLarge`] before allocating.
    pub fn with_max_elements(mut self, max: usize) -> Net {
        self.max_elements = max;
        self
    }

    /// Names of the blobs produced by `Input` layers.
    pub fn input_names(&self) -> Vec<&str> {
        self.inputs
            .iter()
            .map(|&b| self.blob_names[b].as_str())
            .collect()
    }

    /// Names of the blobs no layer consumes (the graph's outputs).
    pub fn output_names(&self) -> Vec<&str> {
        self.outputs
            .iter()
            .map(|&b| self.blob_names[b].as_str())
            .collect()
    }

    /// Runs the graph: feeds the named input blobs and returns blob `output`.
    /// Only the layers `output` depends on are run.
    pub fn forward(&self, inputs: &[(&str, &Mat)], output: &str) -> Result<Mat, NcnnError> {
        let &out_blob = self
            .blob_index
            .get(output)
            .ok_or_else(|| NcnnError::Blob(format!("the graph has no blob named `{output}`")))?;
        let nblobs = self.blob_names.len();
        let mut blobs: Vec<Option<Arc<Tensor>>> = vec![None; nblobs];
        for (name, m) in inputs {
            let &b = self.blob_index.get(*name).ok_or_else(|| {
                NcnnError::Blob(format!("the graph has no input blob named `{name}`"))
            })?;
            if !self.inputs.contains(&b) {
                return Err(NcnnError::Blob(format!(
                    "blob `{name}` is not an Input layer's output"
                )));
            }
            m.check()?;
            if m.c == 0 || m.h == 0 || m.w == 0 {
                return Err(NcnnError::Blob(format!(
                    "input `{name}` is empty ({}x{}x{})",
                    m.c, m.h, m.w
                )));
            }
            if m.data.len() > self.max_elements {
                return Err(NcnnError::TooLarge {
                    layer: format!("input `{name}`"),
                    elements: m.data.len(),
                    limit: self.max_elements,
                });
            }
            blobs[b] = Some(Arc::new(Tensor::new3(m.c, m.h, m.w, m.data.clone())));
        }
        // Which layers are needed.
        let mut needed = vec![false; self.layers.len()];
        let mut stack = vec![self.producer[out_blob]];
        while let Some(li) = stack.pop() {
            if needed[li] {
                continue;
            }
            needed[li] = true;
            for &b in &self.layers[li].bottoms {
                stack.push(self.producer[b]);
            }
        }
        let mut uses = vec![0usize; nblobs];
        for (li, l) in self.layers.iter().enumerate() {
            if needed[li] {
                for &b in &l.bottoms {
                    uses[b] += 1;
                }
            }
        }
        for (li, layer) in self.layers.iter().enumerate() {
            if !needed[li] {
                continue;
            }
            if layer.is_input() {
                for &t in &layer.tops {
                    if blobs[t].is_none() {
                        return Err(NcnnError::Blob(format!(
                            "input blob `{}` was not given",
                            self.blob_names[t]
                        )));
                    }
                }
                continue;
            }
            let mut args = Vec::with_capacity(layer.bottoms.len());
            for &b in &layer.bottoms {
                uses[b] -= 1;
                let t = if uses[b] == 0 && b != out_blob {
                    blobs[b].take()
                } else {
                    blobs[b].clone()
                };
                args.push(t.ok_or_else(|| {
                    NcnnError::Blob(format!("blob `{}` is missing", self.blob_names[b]))
                })?);
            }
            let outs = layer.forward(args, self.max_elements)?;
            for (&t, o) in layer.tops.iter().zip(outs) {
                blobs[t] = Some(o);
            }
        }
        let t = blobs[out_blob]
            .take()
            .ok_or_else(|| NcnnError::Blob(format!("blob `{output}` was not computed")))?;
        let t = Arc::try_unwrap(t).unwrap_or_else(|a| (*a).clone());
        Ok(Mat {
            c: t.c,
            h: t.h,
            w: t.w,
            data: t.data,
        })
    }

    /// Runs a graph with exactly one input and one output.
    pub fn run(&self, input: &Mat) -> Result<Mat, NcnnError> {
        if self.inputs.len() != 1 || self.outputs.len() != 1 {
            return Err(NcnnError::Blob(format!(
                "run() needs one input and one output; the graph has inputs {:?} and outputs {:?}",
                self.input_names(),
                self.output_names()
            )));
        }
        let inp = self.blob_names[self.inputs[0]].clone();
        let out = self.blob_names[self.outputs[0]].clone();
        self.forward(&[(&inp, input)], &out)
    }
}
