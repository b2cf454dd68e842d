//! cnnspot's fast inference engine: the networks of [`cnnspot_net`] (the
//! same ones `cnnspot-core` builds in burn), loaded from the same state dict,
//! evaluated in a form made for CPUs. No tensor library: plain buffers and
//! our own kernels.
//!
//! - BatchNorm is folded into the convolution weights and a bias at load.
//! - Activations are NHWC, so that one kernel row of an image is one
//!   contiguous run of memory and 1x1 convolutions are plain matrix products.
//! - Every convolution is one register-blocked kernel (see `kernel.rs`) that
//!   reads its input in place (no im2col buffer) and applies bias, the
//!   residual and ReLU before its only store.
//! - 3x3 stride-1 convolutions use Winograd's F(2x2, 3x3) (`winograd.rs`),
//!   2.25 times fewer multiply-adds, when the input has enough 2x2 tiles to
//!   pay for its larger transformed weights.
//! - Tiles are spread over rayon's pool, one thread per core by default.
//!
//! The burn model stays the reference (and the training model);
//! `cnnspot-core`'s tests check that both routes give the same logits.
//!
//! ```
//! use cnnspot_engine::FastResNet;
//! use cnnspot_net::{random_state_dict, Arch};
//! let net = FastResNet::from_state_dict(&random_state_dict(Arch::Npr, 1, 0))?;
//! let image = vec![0.5f32; 3 * 64 * 64]; // one NCHW image, normalised
//! let logits = net.forward_nchw(&image, 1, 64, 64);
//! assert!(logits.len() == 1 && logits[0].is_finite());
//! # Ok::<(), cnnspot_net::ModelError>(())
//! ```

#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod conv;
mod int8;
mod kernel;
mod layer;
mod winograd;

use std::cell::RefCell;

use conv::{global_avg_pool, max_pool_3x3s2, Act, Conv, Pool};
pub use int8::Int8Isa;
use int8::{quantize, QAct};
pub use kernel::Isa;
pub use layer::ConvLayer;

/// The arithmetic of the convolutions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    /// float32 throughout: the reference (logits within 1e-4 of PyTorch).
    #[default]
    F32,
    /// 8-bit integer convolutions (see `int8.rs`) for every convolution
    /// that reads a ReLU output, i.e. all but the stem; the stem, pooling,
    /// residual adds and the head stay float32. Fast on CPUs with AVX-512
    /// VNNI; with AVX2 only, as fast as f32; elsewhere slow. Every kernel
    /// gives the same bits.
    Int8,
}

impl Precision {
    /// Every precision.
    pub const ALL: [Precision; 2] = [Precision::F32, Precision::Int8];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Int8 => "int8",
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Precision, String> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "fp32" | "float32" => Ok(Precision::F32),
            "int8" | "i8" => Ok(Precision::Int8),
            other => Err(format!(
                "unknown precision {other:?} (expected f32 or int8)"
            )),
        }
    }
}

use cnnspot_net::{
    apply_input, spec_of_state, Arch, ConvSpec, InputTransform, ModelError, NetSpec, StateDict,
};

/// Raw pointers that several rayon tasks write through, each to its own rows
/// and columns.
#[derive(Clone, Copy)]
pub(crate) struct SyncPtr(*mut f32);
// SAFETY: a SyncPtr is only made from a buffer that outlives the parallel
// loop using it (the loop borrows the buffer's owner for its whole run), and
// every task writes a disjoint set of elements through it (its own tile of
// rows and columns), so no two threads access one element at once.
unsafe impl Send for SyncPtr {}
// SAFETY: as for Send: shared references only hand out the pointer, and the
// writes through it are to disjoint elements per task.
unsafe impl Sync for SyncPtr {}

impl SyncPtr {
    // A method, so that closures capture the whole (Sync) wrapper rather
    // than its raw-pointer field.
    pub(crate) fn get(self) -> *mut f32 {
        self.0
    }
}

const BN_EPS: f64 = 1e-5;

/// Sizes the thread pool the engines run on (rayon's global pool; one
/// thread per core unless set). Only the first call, before any work, has
/// an effect.
pub fn set_threads(n: usize) -> Result<(), rayon::ThreadPoolBuildError> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global()
}

/// Threads of the pool the engines run on.
pub fn threads() -> usize {
    rayon::current_num_threads()
}

/// How [`FastResNet::forward_tiled`] cuts an image: cores of
/// `core_h x core_w` pixels (multiples of the output stride) that partition
/// it, each read with `halo` more pixels on every side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tiling {
    /// Rows of the part of the image a tile contributes.
    pub core_h: usize,
    /// Columns of the part of the image a tile contributes.
    pub core_w: usize,
    /// Extra pixels read on each side.
    pub halo: usize,
}

#[derive(Debug)]
struct FastBlock {
    conv1: Conv,
    conv2: Conv,
    conv3: Option<Conv>,
    downsample: Option<Conv>,
}

/// A torchvision ResNet prepared for fast CPU inference (eval mode only).
#[derive(Debug)]
pub struct FastResNet {
    arch: Arch,
    stem: Conv,
    blocks: Vec<FastBlock>,
    /// `[num_outputs, feature_dim]`, row-major as in torchvision.
    fc_weight: Vec<f32>,
    fc_bias: Vec<f32>,
    num_outputs: usize,
    isa: Isa,
    precision: Precision,
    int8_isa: Int8Isa,
    pool: Pool,
    spec: NetSpec,
}

/// A convolution's input, with its int8 forms once made: the first
/// convolution of a block and its downsample read the same input.
struct Input<'a> {
    act: &'a Act,
    quantized: RefCell<Vec<QAct>>,
}

impl<'a> Input<'a> {
    fn new(act: &'a Act) -> Input<'a> {
        Input {
            act,
            quantized: RefCell::new(Vec::new()),
        }
    }
}

fn get<'a>(state: &'a StateDict, name: &str) -> Result<&'a (Vec<usize>, Vec<f32>), ModelError> {
    state
        .get(name)
        .ok_or_else(|| ModelError::MissingTensor(name.to_string()))
}

fn folded(
    state: &StateDict,
    conv: &str,
    bn: &str,
    stride: usize,
    pad: usize,
) -> Result<Conv, ModelError> {
    let (shape, w) = get(state, &format!("{conv}.weight"))?;
    let bn_part =
        |s: &str| -> Result<&Vec<f32>, ModelError> { Ok(&get(state, &format!("{bn}.{s}"))?.1) };
    Ok(Conv::folded(
        w,
        shape,
        bn_part("weight")?,
        bn_part("bias")?,
        bn_part("running_mean")?,
        bn_part("running_var")?,
        BN_EPS,
        stride,
        pad,
    ))
}

impl FastResNet {
    /// Builds the network a state dict describes, after the same checks as
    /// `cnnspot_core::ResNet::from_state_dict`.
    pub fn from_state_dict(state: &StateDict) -> Result<FastResNet, ModelError> {
        let spec = spec_of_state(state)?;
        let (arch, num_outputs) = (spec.arch, spec.head.outputs);
        let fold = |c: &ConvSpec| folded(state, &c.conv, &c.bn, c.stride, c.pad);
        let stem = fold(&spec.stem)?;
        let blocks =
            spec.stages
                .iter()
                .flatten()
                .map(|b| {
                    let conv = |i: usize| -> Result<Conv, ModelError> {
                        let c = b.convs.get(i).ok_or_else(|| {
                            ModelError::MissingTensor(format!("block conv{}", i + 1))
                        })?;
                        fold(c)
                    };
                    Ok(FastBlock {
                        conv1: conv(0)?,
                        conv2: conv(1)?,
                        conv3: b.convs.get(2).map(fold).transpose()?,
                        downsample: b.downsample.as_ref().map(fold).transpose()?,
                    })
                })
                .collect::<Result<Vec<_>, ModelError>>()?;
        Ok(FastResNet {
            arch,
            stem,
            blocks,
            fc_weight: get(state, &spec.head.weight())?.1.clone(),
            fc_bias: get(state, &spec.head.bias())?.1.clone(),
            num_outputs,
            isa: Isa::detect(),
            precision: Precision::F32,
            int8_isa: Int8Isa::detect(),
            pool: Pool::default(),
            spec,
        })
    }

    /// The architecture inferred at load.
    pub fn arch(&self) -> Arch {
        self.arch
    }

    /// Outputs of the head per image.
    pub fn num_outputs(&self) -> usize {
        self.num_outputs
    }

    /// The kernel in use.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Forces a kernel (tests and benchmarks compare them); one the CPU
    /// does not have is ignored.
    pub fn with_isa(mut self, isa: Isa) -> FastResNet {
        if isa.supported() {
            self.isa = isa;
        }
        self
    }

    /// The arithmetic in use.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The int8 kernel, used when the precision is [`Precision::Int8`].
    pub fn int8_isa(&self) -> Int8Isa {
        self.int8_isa
    }

    /// Switches the arithmetic. Int8 quantises the weights of every
    /// convolution but the stem (which reads the signed, normalised image)
    /// once, here.
    pub fn with_precision(mut self, precision: Precision) -> FastResNet {
        self.set_precision(precision);
        self
    }

    /// [`FastResNet::with_precision`] in place.
    pub fn set_precision(&mut self, precision: Precision) {
        if precision == Precision::Int8 {
            for b in &mut self.blocks {
                for c in [&mut b.conv1, &mut b.conv2]
                    .into_iter()
                    .chain(b.conv3.as_mut())
                    .chain(b.downsample.as_mut())
                {
                    c.prepare_int8();
                }
            }
        }
        self.precision = precision;
    }

    /// Forces an int8 kernel (tests compare them); one the CPU does not
    /// have is ignored.
    pub fn with_int8_isa(mut self, isa: Int8Isa) -> FastResNet {
        if isa.supported() {
            self.int8_isa = isa;
        }
        self
    }

    /// Drops the Winograd form of the 3x3 convolutions, so that every
    /// convolution runs directly (it is used by default; tests compare).
    pub fn without_winograd(self) -> FastResNet {
        let mut net = self;
        net.stem.disable_winograd();
        for b in &mut net.blocks {
            for c in [&mut b.conv1, &mut b.conv2]
                .into_iter()
                .chain(b.conv3.as_mut())
                .chain(b.downsample.as_mut())
            {
                c.disable_winograd();
            }
        }
        net
    }

    /// All logits, `[n, num_outputs]` row-major, for the NCHW batch the burn
    /// model takes (`n * 3 * h * w` values).
    pub fn forward_nchw(&self, data: &[f32], n: usize, h: usize, w: usize) -> Vec<f32> {
        let x = self.features(data, n, h, w);
        let pooled = global_avg_pool(&x);
        self.pool.give(x.data);
        self.head(&pooled)
    }

    /// The last stage's activations, before the global average pool.
    fn features(&self, data: &[f32], n: usize, h: usize, w: usize) -> Act {
        assert_eq!(data.len(), n * 3 * h * w, "input is not [n, 3, h, w]");
        let residual;
        let data = match self.spec.input {
            InputTransform::Rgb => data,
            other => {
                residual = {
                    let mut v = data.to_vec();
                    apply_input(other, &mut v, h, w);
                    v
                };
                &residual[..]
            }
        };
        let pool = &self.pool;
        pool.begin(n * h * w);
        let input = nchw_to_nhwc(pool, data, n, 3, h, w);
        let x = self.stem.forward(self.isa, pool, &input, None, true);
        pool.give(input.data);
        let mut x = max_pool_3x3s2(pool, &x).recycle(pool, x);
        for block in &self.blocks {
            x = self.block(block, x);
        }
        x
    }

    /// The fully connected layer on pooled features, `[n, feature_dim]`.
    fn head(&self, pooled: &[f32]) -> Vec<f32> {
        let feat = self.fc_weight.len() / self.num_outputs.max(1);
        let mut out = Vec::with_capacity(pooled.len() / feat.max(1) * self.num_outputs);
        for p in pooled.chunks(feat) {
            for o in 0..self.num_outputs {
                let w = &self.fc_weight[o * feat..(o + 1) * feat];
                let dot: f64 = w.iter().zip(p).map(|(&a, &b)| a as f64 * b as f64).sum();
                out.push((dot + self.fc_bias[o] as f64) as f32);
            }
        }
        out
    }

    /// Pixels between neighbouring positions of the last stage (32).
    pub fn output_stride(&self) -> usize {
        self.layers().map(|(_, stride)| stride).product()
    }

    /// How far, in input pixels, a position of the last stage sees on each
    /// side of its centre: every padded convolution (and the max pool) adds
    /// its half-width times the stride accumulated before it. 213 for
    /// ResNet-50, 485 for ResNet-101.
    pub fn receptive_radius(&self) -> usize {
        let mut jump = 1;
        let mut radius = 0;
        for (half_width, stride) in self.layers() {
            radius += half_width * jump;
            jump *= stride;
        }
        radius
    }

    /// (half kernel width, stride) of every layer on the longest path.
    fn layers(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.spec.path().into_iter()
    }

    /// The tiles [`FastResNet::forward_tiled`] would use for an `h x w`
    /// image with at most `max_pixels` per forward pass: `(rows, columns)`
    /// of tiles, or `None` when even the smallest tile (one output position
    /// and its receptive field on both sides) is over the budget.
    pub fn tiling(&self, h: usize, w: usize, max_pixels: u64) -> Option<Tiling> {
        let stride = self.output_stride();
        // Whole positions, so that every tile keeps the stride grid of the image.
        let halo = self.receptive_radius().div_ceil(stride) * stride;
        let axis = |len: usize, parts: usize| -> (usize, usize) {
            let core = len.div_ceil(parts).div_ceil(stride) * stride;
            (core, len.min(core + 2 * halo))
        };
        let mut best: Option<(u64, Tiling)> = None;
        for rows in 1..=h.div_ceil(stride).min(256) {
            let (core_h, tile_h) = axis(h, rows);
            for cols in 1..=w.div_ceil(stride).min(256) {
                let (core_w, tile_w) = axis(w, cols);
                let pixels = (tile_h * tile_w) as u64;
                if pixels > max_pixels {
                    continue;
                }
                // Tiles past the image (when the cores round up) are skipped.
                let tiles = (h.div_ceil(core_h) * w.div_ceil(core_w)) as u64;
                let work = tiles * pixels;
                if best.as_ref().is_none_or(|(b, _)| work < *b) {
                    best = Some((
                        work,
                        Tiling {
                            core_h,
                            core_w,
                            halo,
                        },
                    ));
                }
                // More columns only shrink tiles that already fit.
                break;
            }
        }
        best.map(|(_, t)| t)
    }

    /// Runs the network on each tile of `t` and hands every kept position
    /// of the last stage to `visit` as (row, column, channels), in image
    /// coordinates of that stage; every position is visited once.
    fn tiled_features(
        &self,
        image: &[f32],
        h: usize,
        w: usize,
        t: Tiling,
        mut visit: impl FnMut(usize, usize, &[f32]),
    ) {
        assert_eq!(image.len(), 3 * h * w, "input is not [3, h, w]");
        let stride = self.output_stride();
        for y0 in (0..h).step_by(t.core_h) {
            let y1 = (y0 + t.core_h).min(h);
            let (ty0, ty1) = (y0.saturating_sub(t.halo), (y1 + t.halo).min(h));
            for x0 in (0..w).step_by(t.core_w) {
                let x1 = (x0 + t.core_w).min(w);
                let (tx0, tx1) = (x0.saturating_sub(t.halo), (x1 + t.halo).min(w));
                let (th, tw) = (ty1 - ty0, tx1 - tx0);
                let mut tile = Vec::with_capacity(3 * th * tw);
                for c in 0..3 {
                    for y in ty0..ty1 {
                        let row = (c * h + y) * w;
                        tile.extend_from_slice(&image[row + tx0..row + tx1]);
                    }
                }
                let x = self.features(&tile, 1, th, tw);
                // Positions whose centre (stride * index) lies in the core.
                for gy in y0.div_ceil(stride)..y1.div_ceil(stride) {
                    for gx in x0.div_ceil(stride)..x1.div_ceil(stride) {
                        let (ly, lx) = (gy - ty0 / stride, gx - tx0 / stride);
                        let at = (ly * x.w + lx) * x.c;
                        visit(gy, gx, &x.data[at..at + x.c]);
                    }
                }
                self.pool.give(x.data);
            }
        }
    }

    /// The logits of one `[3, h, w]` image computed in the overlapping
    /// tiles of `t` (from [`FastResNet::tiling`]), so that memory stays
    /// bounded however large the image. Each tile reaches `halo` pixels (a whole number of
    /// output positions, at least the receptive radius) past the part it
    /// contributes, so every kept position of the last stage saw exactly
    /// the pixels it sees in the whole image, including the true image
    /// borders; their average is the whole image's global average pool,
    /// up to the order of the additions.
    pub fn forward_tiled(&self, image: &[f32], h: usize, w: usize, t: Tiling) -> Vec<f32> {
        let mut sum: Vec<f64> = Vec::new();
        let mut kept = 0usize;
        self.tiled_features(image, h, w, t, |_, _, px| {
            sum.resize(px.len(), 0.0);
            for (a, &v) in sum.iter_mut().zip(px) {
                *a += f64::from(v);
            }
            kept += 1;
        });
        let stride = self.output_stride();
        debug_assert_eq!(kept, h.div_ceil(stride) * w.div_ceil(stride));
        let pooled: Vec<f32> = sum.iter().map(|a| (a / kept as f64) as f32).collect();
        self.head(&pooled)
    }

    /// The first logit of each image (the detector's output).
    pub fn logits_nchw(&self, data: &[f32], n: usize, h: usize, w: usize) -> Vec<f32> {
        let all = self.forward_nchw(data, n, h, w);
        all.chunks(self.num_outputs.max(1)).map(|c| c[0]).collect()
    }

    fn block(&self, b: &FastBlock, x: Act) -> Act {
        let pool = &self.pool;
        let input = Input::new(&x);
        let identity = b
            .downsample
            .as_ref()
            .map(|d| self.conv(d, &input, None, false));
        let shortcut = identity.as_ref().unwrap_or(&x);
        let out = match &b.conv3 {
            Some(conv3) => {
                let o = self.conv(&b.conv1, &input, None, true);
                let o = self
                    .conv(&b.conv2, &Input::new(&o), None, true)
                    .recycle(pool, o);
                self.conv(conv3, &Input::new(&o), Some(shortcut), true)
                    .recycle(pool, o)
            }
            None => {
                let o = self.conv(&b.conv1, &input, None, true);
                self.conv(&b.conv2, &Input::new(&o), Some(shortcut), true)
                    .recycle(pool, o)
            }
        };
        drop(input);
        if let Some(id) = identity {
            pool.give(id.data);
        }
        pool.give(x.data);
        out
    }

    /// One convolution of a block, in the network's precision. In int8,
    /// 3x3 stride-1 convolutions keep f32 Winograd where it applies when
    /// `CNNSPOT_INT8_WINOGRAD=1` (for comparing the two).
    fn conv(&self, c: &Conv, input: &Input, residual: Option<&Act>, relu: bool) -> Act {
        let x = input.act;
        let int8 = self.precision == Precision::Int8
            && c.has_int8()
            && !(int8_keeps_winograd() && c.uses_winograd(x));
        if !int8 {
            return c.forward(self.isa, &self.pool, x, residual, relu);
        }
        let mut cache = input.quantized.borrow_mut();
        let at = match cache.iter().position(|q| q.pad == c.pad) {
            Some(i) => i,
            None => {
                cache.push(quantize(x, c.pad));
                cache.len() - 1
            }
        };
        c.forward_int8(self.int8_isa, &self.pool, &cache[at], residual, relu)
    }
}

/// `CNNSPOT_INT8_WINOGRAD=1`, read once.
fn int8_keeps_winograd() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("CNNSPOT_INT8_WINOGRAD").is_some_and(|v| v == "1"))
}

fn nchw_to_nhwc(pool: &Pool, data: &[f32], n: usize, c: usize, h: usize, w: usize) -> Act {
    let mut out = pool.take(n * h * w * c);
    for img in 0..n {
        for ch in 0..c {
            let plane = &data[(img * c + ch) * h * w..(img * c + ch + 1) * h * w];
            let dst = &mut out[img * h * w * c..(img + 1) * h * w * c];
            for (p, &v) in plane.iter().enumerate() {
                dst[p * c + ch] = v;
            }
        }
    }
    Act {
        n,
        h,
        w,
        c,
        data: out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cnnspot_net::{random_input, random_state_dict as random_state};

    fn assert_close(tiled: &[f32], whole: &[f32], what: &str) {
        cnnspot_testdata::assert_close(tiled, whole, 1e-4, &format!("{what} (tiled vs whole)"));
    }

    #[test]
    fn receptive_radius_of_the_torchvision_resnets() {
        for (arch, radius) in [
            (Arch::ResNet18, 217),
            (Arch::ResNet34, 449),
            (Arch::ResNet50, 213),
            (Arch::ResNet101, 485),
        ] {
            let net = FastResNet::from_state_dict(&random_state(arch, 1, 1)).unwrap();
            assert_eq!(net.output_stride(), 32, "{arch:?}");
            // Computed by hand from the layer lists (pad x accumulated stride).
            assert_eq!(net.receptive_radius(), radius, "{arch:?}");
        }
    }

    #[test]
    fn an_image_gives_the_same_logit_whatever_it_is_batched_with() {
        // Small images, where the choice between Winograd and the direct
        // convolution of the last stages sits near its threshold.
        for (arch, (h, w)) in [
            (Arch::Npr, (48, 56)),
            (Arch::Npr, (96, 80)),
            (Arch::ResNet18, (64, 72)),
        ] {
            let net = FastResNet::from_state_dict(&random_state(arch, 1, 5)).unwrap();
            let plane = 3 * h * w;
            let x = random_input(4 * plane, (h * w) as u32);
            let batched = net.forward_nchw(&x, 4, h, w);
            for i in 0..4 {
                let alone = net.forward_nchw(&x[i * plane..(i + 1) * plane], 1, h, w);
                assert_eq!(
                    alone[0].to_bits(),
                    batched[i].to_bits(),
                    "{arch:?} {h}x{w} image {i}: alone {} batched {}",
                    alone[0],
                    batched[i]
                );
            }
        }
    }

    /// int8 logits follow the f32 ones (8-bit rounding of weights and
    /// activations only), every int8 kernel gives the same bits, and an
    /// image's logit does not depend on what it is batched with (its
    /// activation scales are its own).
    #[test]
    fn int8_follows_f32_and_is_the_same_on_every_kernel_and_batch() {
        for (arch, (h, w)) in [(Arch::Npr, (64, 48)), (Arch::ResNet18, (64, 64))] {
            let state = random_state(arch, 3, 17);
            let f32_net = FastResNet::from_state_dict(&state).unwrap();
            let int8_net = FastResNet::from_state_dict(&state)
                .unwrap()
                .with_precision(Precision::Int8);
            assert_eq!(int8_net.precision(), Precision::Int8);
            let plane = 3 * h * w;
            let x = random_input(3 * plane, 4242);
            let want = f32_net.forward_nchw(&x, 3, h, w);
            let got = int8_net.forward_nchw(&x, 3, h, w);
            let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
            let worst = got
                .iter()
                .zip(&want)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                worst <= 0.05 * scale && worst > 0.0,
                "{arch:?}: int8 {got:?} vs f32 {want:?}"
            );
            for isa in Int8Isa::ALL.into_iter().filter(|i| i.supported()) {
                let net = FastResNet::from_state_dict(&state)
                    .unwrap()
                    .with_precision(Precision::Int8)
                    .with_int8_isa(isa);
                let again = net.forward_nchw(&x, 3, h, w);
                for (a, b) in again.iter().zip(&got) {
                    assert_eq!(a.to_bits(), b.to_bits(), "{arch:?} {isa:?}: {a} vs {b}");
                }
                for i in 0..3 {
                    let alone = net.forward_nchw(&x[i * plane..(i + 1) * plane], 1, h, w);
                    let n = f32_net.num_outputs();
                    for (a, b) in alone.iter().zip(&got[i * n..(i + 1) * n]) {
                        assert_eq!(a.to_bits(), b.to_bits(), "{arch:?} {isa:?} image {i} alone");
                    }
                }
            }
        }
    }

    #[test]
    fn tiled_images_give_the_whole_image_logits() {
        for (arch, seed) in [(Arch::ResNet18, 21), (Arch::ResNet50, 23)] {
            let state = random_state(arch, 2, seed);
            let net = FastResNet::from_state_dict(&state).unwrap();
            // Odd sizes: the last positions sit on a partial stride. ResNet-50
            // (slow on the portable kernels CI may run) is covered by the
            // position-by-position comparison below, which is stricter.
            let sizes: &[(usize, usize, u64)] = if arch == Arch::ResNet18 {
                &[
                    (610, 650, 300_000),
                    (500, 1210, 350_000),
                    (700, 480, 250_000),
                ]
            } else {
                &[]
            };
            for &(h, w, budget) in sizes {
                let x = random_input(3 * h * w, (h + w) as u32);
                let whole = net.forward_nchw(&x, 1, h, w);
                let t = net.tiling(h, w, budget).expect("a tiling fits");
                let tiles = h.div_ceil(t.core_h) * w.div_ceil(t.core_w);
                assert!(tiles > 1, "{arch:?} {h}x{w}: one tile, nothing tested");
                let tiled = net.forward_tiled(&x, h, w, t);
                assert_close(
                    &tiled,
                    &whole,
                    &format!("{arch:?} {h}x{w} in {tiles} tiles"),
                );
            }
            // Position by position, against the whole image's last stage.
            // A halo short of the receptive radius shows, though far pixels
            // weigh little (ResNet-18 one position short differs by 2.7e-5;
            // ResNet-50, deeper and narrower in its effective field, only
            // beyond rounding from three positions short).
            let short_by = if arch == Arch::ResNet18 { 1 } else { 3 };
            // ResNet-50's 224-pixel halo cuts 300,000-pixel tiles of this
            // image into many thin strips, each mostly halo; 350,000 needs
            // fewer (the test's time halves), with borders still between them.
            let budget = if arch == Arch::ResNet18 {
                300_000
            } else {
                350_000
            };
            let (h, w) = (610, 650);
            let x = random_input(3 * h * w, 99);
            let whole = net.features(&x, 1, h, w);
            let scale = whole.data.iter().fold(0f32, |m, v| m.max(v.abs()));
            for (cut, should_match) in [(0, true), (short_by, false)] {
                let mut t = net.tiling(h, w, budget).unwrap();
                assert!(t.core_w < w || t.core_h < h, "{arch:?}: one tile");
                t.halo -= cut * 32;
                let mut worst = 0f32;
                let mut seen = 0;
                net.tiled_features(&x, h, w, t, |gy, gx, px| {
                    let at = (gy * whole.w + gx) * whole.c;
                    for (a, b) in px.iter().zip(&whole.data[at..at + whole.c]) {
                        worst = worst.max((a - b).abs());
                    }
                    seen += 1;
                });
                assert_eq!(seen, whole.h * whole.w);
                assert_eq!(
                    worst <= 2e-6 * scale,
                    should_match,
                    "{arch:?}, halo {}: largest difference {worst} (scale {scale})",
                    t.halo
                );
            }
            // Below one tile with its halo on both sides, nothing fits.
            assert!(net.tiling(2000, 2000, 100_000).is_none());
        }
    }

    #[test]
    fn mismatched_state_dicts_are_refused_with_names() {
        let mut state = random_state(Arch::ResNet18, 1, 3);
        state.remove("layer2.0.bn1.running_var");
        let err = FastResNet::from_state_dict(&state).unwrap_err().to_string();
        assert!(err.contains("layer2.0.bn1.running_var"), "{err}");
    }
}
