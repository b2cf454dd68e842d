//! The simulator networks as flat lists of operations over named parameters.
//!
//! Parameters are kept as flat `Tensor<1>` values and reshaped where used, so
//! that one Adam loop and one safetensors writer serve every architecture.

use burn::tensor::activation::{leaky_relu, relu};
use burn::tensor::module::{conv2d, conv_transpose2d, interpolate};
use burn::tensor::ops::{
    ConvOptions, ConvTransposeOptions, InterpolateMode, InterpolateOptions, PadMode,
};
use burn::tensor::Tensor;

/// The upsampling operator of an `up-*` simulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UpKind {
    /// ConvTranspose2d k4 s2 p1.
    ConvT4,
    /// ConvTranspose2d k3 s2 p1 output_padding 1.
    ConvT3,
    /// Nearest x2, then a 3x3 convolution.
    Nearest,
    /// Bilinear x2 (align_corners = false), then a 3x3 convolution.
    Bilinear,
    /// 3x3 convolution to 4C channels, then pixel shuffle x2.
    Shuffle,
}

/// One step of a network.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    /// Reflection padding on all four sides.
    ReflectPad(usize),
    /// Convolution with zero padding (weight `[cout, cin, k, k]`, bias).
    Conv {
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        pad: usize,
    },
    /// Transposed convolution (weight `[cin, cout, k, k]`, bias).
    ConvT {
        cin: usize,
        cout: usize,
        k: usize,
        pad: usize,
        out_pad: usize,
    },
    /// Instance normalisation without affine parameters (PyTorch's default,
    /// and CycleGAN's).
    Norm,
    Relu,
    Leaky,
    Tanh,
    /// Remembers the current activation for a residual connection.
    Push,
    /// Adds the last remembered activation.
    AddPop,
    /// Interpolation x2.
    Up(InterpolateMode),
    /// Pixel shuffle x2 (`[n, 4c, h, w]` -> `[n, c, 2h, 2w]`).
    Shuffle,
}

/// An architecture: its operations and the factor its input sides must be
/// a multiple of.
#[derive(Debug, Clone)]
pub(crate) struct Arch {
    pub ops: Vec<Op>,
    pub multiple: usize,
    /// A one-line description (for reports and the safetensors metadata).
    pub describe: String,
}

impl Arch {
    /// Names and shapes of the parameters, in the order `forward` uses them.
    pub fn param_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        for (i, op) in self.ops.iter().enumerate() {
            match *op {
                Op::Conv { cin, cout, k, .. } => {
                    out.push((format!("{i}.weight"), vec![cout, cin, k, k]));
                    out.push((format!("{i}.bias"), vec![cout]));
                }
                Op::ConvT { cin, cout, k, .. } => {
                    out.push((format!("{i}.weight"), vec![cin, cout, k, k]));
                    out.push((format!("{i}.bias"), vec![cout]));
                }
                _ => {}
            }
        }
        out
    }

    /// Initial values: He-uniform weights (bound `sqrt(6 / fan_in)`, the
    /// fan-in of a stride-2 transposed convolution counted per output pixel),
    /// zero biases; the last convolution (before tanh) is scaled down by 4 so
    /// that the untrained output starts near grey.
    pub fn init(&self, rng: &mut SplitMix64) -> Vec<Vec<f32>> {
        let last_conv = self
            .ops
            .iter()
            .rposition(|op| matches!(op, Op::Conv { .. } | Op::ConvT { .. }));
        let mut out = Vec::new();
        for (i, op) in self.ops.iter().enumerate() {
            let (fan_in, numel, cout) = match *op {
                Op::Conv { cin, cout, k, .. } => (cin * k * k, cout * cin * k * k, cout),
                Op::ConvT { cin, cout, k, .. } => (cin * k * k / 4, cin * cout * k * k, cout),
                _ => continue,
            };
            let mut bound = (6.0 / fan_in.max(1) as f64).sqrt();
            if Some(i) == last_conv {
                bound *= 0.25;
            }
            out.push(
                (0..numel)
                    .map(|_| (rng.uniform() * 2.0 - 1.0) * bound as f32)
                    .collect(),
            );
            out.push(vec![0.0; cout]);
        }
        out
    }
}

fn norm(x: Tensor<4>) -> Tensor<4> {
    let mean = x.clone().mean_dim(3).mean_dim(2);
    let centred = x - mean;
    let var = centred.clone().square().mean_dim(3).mean_dim(2);
    centred / var.add_scalar(1e-5).sqrt()
}

fn pixel_shuffle(x: Tensor<4>) -> Tensor<4> {
    let [n, c4, h, w] = x.dims();
    let c = c4 / 4;
    let x: Tensor<6> = x.reshape([n, c, 2, 2, h, w]);
    x.permute([0, 1, 4, 2, 5, 3]).reshape([n, c, 2 * h, 2 * w])
}

/// Runs the network on an NCHW batch in [-1, 1]; `params` as listed by
/// [`Arch::param_shapes`] (flat), `shapes` their shapes.
pub(crate) fn forward(
    arch: &Arch,
    params: &[Tensor<1>],
    shapes: &[(String, Vec<usize>)],
    x: Tensor<4>,
) -> Tensor<4> {
    let mut x = x;
    let mut stack: Vec<Tensor<4>> = Vec::new();
    let mut p = 0usize;
    let weight = |p: usize| -> Tensor<4> {
        let s = &shapes[p].1;
        params[p].clone().reshape([s[0], s[1], s[2], s[3]])
    };
    for op in &arch.ops {
        x = match *op {
            Op::ReflectPad(n) => x.pad((n, n, n, n), PadMode::Reflect),
            Op::Conv { stride, pad, .. } => {
                let out = conv2d(
                    x,
                    weight(p),
                    Some(params[p + 1].clone()),
                    ConvOptions::new([stride, stride], [pad, pad], [1, 1], 1),
                );
                p += 2;
                out
            }
            Op::ConvT { pad, out_pad, .. } => {
                let out = conv_transpose2d(
                    x,
                    weight(p),
                    Some(params[p + 1].clone()),
                    ConvTransposeOptions::new([2, 2], [pad, pad], [out_pad, out_pad], [1, 1], 1),
                );
                p += 2;
                out
            }
            Op::Norm => norm(x),
            Op::Relu => relu(x),
            Op::Leaky => leaky_relu(x, 0.2),
            Op::Tanh => x.tanh(),
            Op::Push => {
                stack.push(x.clone());
                x
            }
            Op::AddPop => match stack.pop() {
                Some(skip) => x + skip,
                None => x,
            },
            Op::Up(ref mode) => {
                let [_, _, h, w] = x.dims();
                interpolate(
                    x,
                    InterpolateOptions::new(mode.clone())
                        .with_align_corners(false)
                        .with_output_size([2 * h, 2 * w]),
                )
            }
            Op::Shuffle => pixel_shuffle(x),
        };
    }
    x
}

/// CycleGAN's ResNet generator (`resnet_9blocks` with `ngf` and `blocks`
/// chosen by the caller), InstanceNorm without affine parameters, biases on.
pub(crate) fn cyclegan(ngf: usize, blocks: usize) -> Arch {
    let mut ops = vec![
        Op::ReflectPad(3),
        Op::Conv {
            cin: 3,
            cout: ngf,
            k: 7,
            stride: 1,
            pad: 0,
        },
        Op::Norm,
        Op::Relu,
    ];
    for m in [1, 2] {
        ops.extend([
            Op::Conv {
                cin: ngf * m,
                cout: ngf * m * 2,
                k: 3,
                stride: 2,
                pad: 1,
            },
            Op::Norm,
            Op::Relu,
        ]);
    }
    let c = ngf * 4;
    for _ in 0..blocks {
        ops.extend([
            Op::Push,
            Op::ReflectPad(1),
            Op::Conv {
                cin: c,
                cout: c,
                k: 3,
                stride: 1,
                pad: 0,
            },
            Op::Norm,
            Op::Relu,
            Op::ReflectPad(1),
            Op::Conv {
                cin: c,
                cout: c,
                k: 3,
                stride: 1,
                pad: 0,
            },
            Op::Norm,
            Op::AddPop,
        ]);
    }
    for m in [4, 2] {
        ops.extend([
            Op::ConvT {
                cin: ngf * m,
                cout: ngf * m / 2,
                k: 3,
                pad: 1,
                out_pad: 1,
            },
            Op::Norm,
            Op::Relu,
        ]);
    }
    ops.extend([
        Op::ReflectPad(3),
        Op::Conv {
            cin: ngf,
            cout: 3,
            k: 7,
            stride: 1,
            pad: 0,
        },
        Op::Tanh,
    ]);
    Arch {
        ops,
        multiple: 4,
        describe: format!("cyclegan-resnet ngf={ngf} blocks={blocks}"),
    }
}

/// A small upsampling autoencoder: `depth` stride-2 3x3 convolutions with
/// `channels` channels, then `depth` x2 upsamplings by `up`, a final 3x3
/// convolution to RGB and tanh.
pub(crate) fn upsampler(
    up: UpKind,
    norm: bool,
    depth: usize,
    channels: usize,
    leaky: bool,
) -> Arch {
    let act = if leaky { Op::Leaky } else { Op::Relu };
    let c = channels;
    let mut ops = Vec::new();
    let post = |ops: &mut Vec<Op>| {
        if norm {
            ops.push(Op::Norm);
        }
        ops.push(act.clone());
    };
    for d in 0..depth {
        ops.push(Op::Conv {
            cin: if d == 0 { 3 } else { c },
            cout: c,
            k: 3,
            stride: 2,
            pad: 1,
        });
        post(&mut ops);
    }
    let conv3 = |cout| Op::Conv {
        cin: c,
        cout,
        k: 3,
        stride: 1,
        pad: 1,
    };
    for _ in 0..depth {
        match up {
            UpKind::ConvT4 => ops.push(Op::ConvT {
                cin: c,
                cout: c,
                k: 4,
                pad: 1,
                out_pad: 0,
            }),
            UpKind::ConvT3 => ops.push(Op::ConvT {
                cin: c,
                cout: c,
                k: 3,
                pad: 1,
                out_pad: 1,
            }),
            UpKind::Nearest => ops.extend([Op::Up(InterpolateMode::Nearest), conv3(c)]),
            UpKind::Bilinear => ops.extend([Op::Up(InterpolateMode::Bilinear), conv3(c)]),
            UpKind::Shuffle => ops.extend([conv3(4 * c), Op::Shuffle]),
        }
        post(&mut ops);
    }
    ops.extend([conv3(3), Op::Tanh]);
    Arch {
        ops,
        multiple: 1 << depth,
        describe: format!(
            "{up:?} norm={norm} depth={depth} channels={channels} act={}",
            if leaky { "leaky_relu(0.2)" } else { "relu" }
        ),
    }
}

/// SplitMix64: a small, fast, well-mixed seeded generator (weights
/// initialisation, architecture choice and crop sampling).
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}
