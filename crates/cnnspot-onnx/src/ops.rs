//! Numeric kernels on float32 tensors: convolution (im2col + gemm),
//! broadcasting elementwise ops, reductions, padding, resizing.

use cnnspot_linalg::matmul;
use std::sync::Mutex;

use rayon::prelude::*;

use crate::value::{numel, strides};
use crate::Tensor;

/// Why a node failed at run time (the caller adds the node's name and op).
#[derive(Debug)]
pub(crate) enum OpError {
    /// Invalid or unsupported inputs.
    Msg(String),
    /// An output of this many elements (saturating) exceeds the limit.
    TooLarge(usize),
}

pub(crate) type OpResult<T> = Result<T, OpError>;

pub(crate) fn bad<T>(msg: impl Into<String>) -> OpResult<T> {
    Err(OpError::Msg(msg.into()))
}

/// Refuses a shape with an axis longer than `limit`. The element count alone
/// does not bound a shape: with one axis 0 the product is 0 whatever the
/// others, and per-axis index tables (Slice, Resize) are as long as an axis.
/// Every value of a run keeps this invariant (see `Model::run`).
pub(crate) fn axes_within(shape: &[usize], limit: usize) -> OpResult<()> {
    match shape.iter().find(|&&d| d > limit) {
        Some(&d) => Err(OpError::TooLarge(d)),
        None => Ok(()),
    }
}

/// Element count of `shape`, refused when over `limit` (or overflowing), or
/// when one axis is (see [`axes_within`]).
pub(crate) fn checked_len(shape: &[usize], limit: usize) -> OpResult<usize> {
    axes_within(shape, limit)?;
    match numel(shape) {
        Some(n) if n <= limit => Ok(n),
        Some(n) => Err(OpError::TooLarge(n)),
        None => Err(OpError::TooLarge(usize::MAX)),
    }
}

/// Float buffers released by nodes, reused for later outputs (also across
/// runs): fresh multi-megabyte allocations cost a page fault per 4 KiB on
/// every use.
#[derive(Default)]
pub(crate) struct Pool(Mutex<Vec<Vec<f32>>>);

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.lock().map_or(0, |p| p.len());
        write!(f, "Pool({n} buffers)")
    }
}

/// Buffers smaller than this are not pooled.
const POOL_MIN: usize = 1 << 16;
/// Most buffers kept.
const POOL_MAX: usize = 8;

impl Pool {
    /// Keeps `v` for reuse (if large enough to matter).
    pub(crate) fn put(&self, v: Vec<f32>) {
        if v.capacity() >= POOL_MIN {
            let mut p = self.0.lock().unwrap_or_else(|e| e.into_inner());
            p.push(v);
            if p.len() > POOL_MAX {
                p.remove(0);
            }
        }
    }

    /// An empty vector with room for `n` elements: a pooled buffer when one
    /// fits, else a new one with some slack (so that slightly larger
    /// requests later fit it too).
    pub(crate) fn empty(&self, n: usize) -> Vec<f32> {
        if n >= POOL_MIN {
            let mut p = self.0.lock().unwrap_or_else(|e| e.into_inner());
            // The smallest buffer that fits.
            let best = (0..p.len())
                .filter(|&i| p[i].capacity() >= n)
                .min_by_key(|&i| p[i].capacity());
            if let Some(i) = best {
                let mut v = p.swap_remove(i);
                v.clear();
                return v;
            }
            return Vec::with_capacity(n.saturating_add(n / 8));
        }
        Vec::with_capacity(n)
    }

    /// A vector of `n` copies of `fill`.
    pub(crate) fn filled(&self, n: usize, fill: f32) -> Vec<f32> {
        let mut v = self.empty(n);
        v.resize(n, fill);
        v
    }
}

/// Limits and buffers of one run.
pub(crate) struct Ctx<'a> {
    /// Most elements in one value.
    pub limit: usize,
    pub pool: &'a Pool,
}

/// Elements per rayon task in elementwise loops.
const BLOCK: usize = 1 << 14;

// ---------------------------------------------------------------- unary ---

/// Elementwise functions of one tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum UnaryOp {
    Relu,
    Sigmoid,
    Sqrt,
    Exp,
    Tanh,
    Neg,
    Abs,
    /// `Pow` with the constant exponent 2.
    Square,
    /// `Pow` with any other constant exponent.
    Powf(f32),
}

impl UnaryOp {
    #[inline]
    fn apply(self, v: f32) -> f32 {
        match self {
            UnaryOp::Relu => v.max(0.0),
            UnaryOp::Sigmoid => 1.0 / (1.0 + (-v).exp()),
            UnaryOp::Sqrt => v.sqrt(),
            UnaryOp::Exp => v.exp(),
            UnaryOp::Tanh => v.tanh(),
            UnaryOp::Neg => -v,
            UnaryOp::Abs => v.abs(),
            UnaryOp::Square => v * v,
            UnaryOp::Powf(e) => v.powf(e),
        }
    }
}

/// `op` of every element of `src`, into a new vector.
pub(crate) fn unary_map(op: UnaryOp, src: &[f32], pool: &Pool) -> Vec<f32> {
    let mut out = pool.filled(src.len(), 0.0);
    fn run(out: &mut [f32], src: &[f32], f: impl Fn(f32) -> f32 + Sync) {
        out.par_chunks_mut(BLOCK)
            .zip(src.par_chunks(BLOCK))
            .for_each(|(o, s)| {
                for (o, &v) in o.iter_mut().zip(s) {
                    *o = f(v);
                }
            });
    }
    match op {
        UnaryOp::Relu => run(&mut out, src, |v| v.max(0.0)),
        UnaryOp::Square => run(&mut out, src, |v| v * v),
        UnaryOp::Sqrt => run(&mut out, src, f32::sqrt),
        other => run(&mut out, src, |v| other.apply(v)),
    }
    out
}

/// Applies `op` to every element, in place.
pub(crate) fn unary_inplace(op: UnaryOp, data: &mut [f32]) {
    fn run(data: &mut [f32], f: impl Fn(f32) -> f32 + Sync) {
        data.par_chunks_mut(BLOCK).for_each(|c| {
            for v in c {
                *v = f(*v);
            }
        });
    }
    // One monomorphised loop per function.
    match op {
        UnaryOp::Relu => run(data, |v| v.max(0.0)),
        UnaryOp::Square => run(data, |v| v * v),
        UnaryOp::Sqrt => run(data, f32::sqrt),
        UnaryOp::Sigmoid => run(data, |v| UnaryOp::Sigmoid.apply(v)),
        other => run(data, |v| other.apply(v)),
    }
}

// --------------------------------------------------------------- binary ---

/// Broadcasting elementwise functions of two tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
}

/// Multidirectional (numpy) broadcast of two shapes.
pub(crate) fn broadcast_shape(a: &[usize], b: &[usize]) -> OpResult<Vec<usize>> {
    let r = a.len().max(b.len());
    let mut out = Vec::with_capacity(r);
    for i in 0..r {
        let da = if i + a.len() >= r {
            a[i + a.len() - r]
        } else {
            1
        };
        let db = if i + b.len() >= r {
            b[i + b.len() - r]
        } else {
            1
        };
        out.push(match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return bad(format!("shapes {a:?} and {b:?} do not broadcast")),
        });
    }
    Ok(out)
}

/// Strides of `shape` broadcast to `out` (0 on broadcast axes).
fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let st = strides(shape);
    let off = out.len() - shape.len();
    (0..out.len())
        .map(|i| {
            if i < off || shape[i - off] == 1 {
                0
            } else {
                st[i - off]
            }
        })
        .collect()
}

/// `out = a (op) b`, broadcast to `out_shape`. An operand given as `None`
/// is `out` itself (its current contents, same shape as the output): the
/// operation then runs in place.
pub(crate) fn binary_kernel(
    op: BinaryOp,
    out_shape: &[usize],
    out: &mut [f32],
    a: Option<&Tensor>,
    b: Option<&Tensor>,
) {
    let own = strides(out_shape);
    let sa = a.map_or_else(|| own.clone(), |t| broadcast_strides(&t.shape, out_shape));
    let sb = b.map_or_else(|| own.clone(), |t| broadcast_strides(&t.shape, out_shape));
    // Coalesce axes: drop size-1 axes, merge neighbours that are contiguous
    // for both operands.
    let mut dims: Vec<(usize, usize, usize)> = Vec::new();
    for i in 0..out_shape.len() {
        let (d, x, y) = (out_shape[i], sa[i], sb[i]);
        if d == 1 {
            continue;
        }
        match dims.last_mut() {
            Some(l) if l.1 == x * d && l.2 == y * d => *l = (l.0 * d, x, y),
            _ => dims.push((d, x, y)),
        }
    }
    if dims.is_empty() {
        dims.push((1, 0, 0));
    }
    let (n, ia, ib) = dims[dims.len() - 1];
    let outer = &dims[..dims.len() - 1];
    let av = a.map(|t| t.data.as_slice());
    let bv = b.map(|t| t.data.as_slice());
    let k = Kernel {
        outer,
        n,
        ia,
        ib,
        a: av,
        b: bv,
    };
    match op {
        BinaryOp::Add => k.run(out, |x, y| x + y),
        BinaryOp::Sub => k.run(out, |x, y| x - y),
        BinaryOp::Mul => k.run(out, |x, y| x * y),
        BinaryOp::Div => k.run(out, |x, y| x / y),
        BinaryOp::Pow => k.run(out, f32::powf),
    }
}

/// A coalesced broadcast: output rows of `n` elements over the `outer`
/// axes (size, stride in a, stride in b); inner strides `ia`, `ib`.
struct Kernel<'a> {
    outer: &'a [(usize, usize, usize)],
    n: usize,
    ia: usize,
    ib: usize,
    a: Option<&'a [f32]>,
    b: Option<&'a [f32]>,
}

impl Kernel<'_> {
    fn offsets(&self, mut r: usize) -> (usize, usize) {
        let (mut oa, mut ob) = (0, 0);
        for &(d, x, y) in self.outer.iter().rev() {
            oa += (r % d) * x;
            ob += (r % d) * y;
            r /= d;
        }
        (oa, ob)
    }

    /// Output row `r`, elements `j0..j0+piece.len()`.
    #[inline(always)]
    fn piece<F: Fn(f32, f32) -> f32>(&self, piece: &mut [f32], r: usize, j0: usize, f: F) {
        let (oa, ob) = self.offsets(r);
        let (oa, ob) = (oa + j0 * self.ia, ob + j0 * self.ib);
        let m = piece.len();
        // Strides 1 and 0 get their own loops (vectorised).
        match (self.a, self.b) {
            (Some(a), Some(b)) => match (self.ia, self.ib) {
                (1, 1) => {
                    for ((o, &x), &y) in piece.iter_mut().zip(&a[oa..oa + m]).zip(&b[ob..ob + m]) {
                        *o = f(x, y);
                    }
                }
                (1, 0) => {
                    let y = b[ob];
                    for (o, &x) in piece.iter_mut().zip(&a[oa..oa + m]) {
                        *o = f(x, y);
                    }
                }
                (0, 1) => {
                    let x = a[oa];
                    for (o, &y) in piece.iter_mut().zip(&b[ob..ob + m]) {
                        *o = f(x, y);
                    }
                }
                (ia, ib) => {
                    for (j, o) in piece.iter_mut().enumerate() {
                        *o = f(a[oa + j * ia], b[ob + j * ib]);
                    }
                }
            },
            (None, Some(b)) => match self.ib {
                1 => {
                    for (o, &y) in piece.iter_mut().zip(&b[ob..ob + m]) {
                        *o = f(*o, y);
                    }
                }
                0 => {
                    let y = b[ob];
                    for o in piece.iter_mut() {
                        *o = f(*o, y);
                    }
                }
                ib => {
                    for (j, o) in piece.iter_mut().enumerate() {
                        *o = f(*o, b[ob + j * ib]);
                    }
                }
            },
            (Some(a), None) => match self.ia {
                1 => {
                    for (o, &x) in piece.iter_mut().zip(&a[oa..oa + m]) {
                        *o = f(x, *o);
                    }
                }
                0 => {
                    let x = a[oa];
                    for o in piece.iter_mut() {
                        *o = f(x, *o);
                    }
                }
                ia => {
                    for (j, o) in piece.iter_mut().enumerate() {
                        *o = f(a[oa + j * ia], *o);
                    }
                }
            },
            (None, None) => {
                for o in piece.iter_mut() {
                    *o = f(*o, *o);
                }
            }
        }
    }

    fn run<F: Fn(f32, f32) -> f32 + Sync + Copy>(&self, out: &mut [f32], f: F) {
        let n = self.n.max(1);
        let rows = out.len() / n;
        if rows >= 8 {
            out.par_chunks_mut(n)
                .enumerate()
                .with_min_len((BLOCK / n).max(1))
                .for_each(|(r, row)| self.piece(row, r, 0, f));
        } else {
            for (r, row) in out.chunks_mut(n).enumerate() {
                row.par_chunks_mut(BLOCK)
                    .enumerate()
                    .for_each(|(bi, p)| self.piece(p, r, bi * BLOCK, f));
            }
        }
    }
}

// ----------------------------------------------------------- reductions ---

/// Sum in double precision, eight independent lanes (vectorisable).
fn sum_f64(v: &[f32]) -> f64 {
    let mut acc = [0.0f64; 8];
    let chunks = v.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += x as f64;
        }
    }
    acc.iter().sum::<f64>() + rest.iter().map(|&x| x as f64).sum::<f64>()
}

/// Sums over the axes flagged in `reduce`; returns the data of the result
/// with the reduced axes kept as 1 (and that shape).
pub(crate) fn reduce_sum(shape: &[usize], data: &[f32], reduce: &[bool]) -> (Vec<usize>, Vec<f32>) {
    let mut shape = shape.to_vec();
    let mut cur: Option<Vec<f32>> = None;
    // Runs of consecutive reduced axes, last run first.
    let mut a = shape.len();
    while a > 0 {
        if !reduce[a - 1] {
            a -= 1;
            continue;
        }
        let g1 = a;
        while a > 0 && reduce[a - 1] {
            a -= 1;
        }
        let g0 = a;
        let outer: usize = shape[..g0].iter().product();
        let r: usize = shape[g0..g1].iter().product();
        let inner: usize = shape[g1..].iter().product();
        let src: &[f32] = cur.as_deref().unwrap_or(data);
        let mut out = vec![0.0f32; outer * inner];
        if inner == 1 {
            out.par_iter_mut()
                .enumerate()
                .with_min_len((BLOCK / r.max(1)).max(1))
                .for_each(|(o, v)| {
                    *v = sum_f64(&src[o * r..(o + 1) * r]) as f32;
                });
        } else if inner > 0 {
            out.par_chunks_mut(inner)
                .enumerate()
                .with_min_len((BLOCK / (r * inner).max(1)).max(1))
                .for_each(|(o, dst)| {
                    let mut acc = vec![0.0f64; inner];
                    for k in 0..r {
                        let row = &src[(o * r + k) * inner..(o * r + k + 1) * inner];
                        for (s, &x) in acc.iter_mut().zip(row) {
                            *s += x as f64;
                        }
                    }
                    for (d, s) in dst.iter_mut().zip(acc) {
                        *d = s as f32;
                    }
                });
        }
        for d in &mut shape[g0..g1] {
            *d = 1;
        }
        cur = Some(out);
    }
    let out = cur.unwrap_or_else(|| data.to_vec());
    (shape, out)
}

// ------------------------------------------------------------------ pad ---

/// Pad modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PadMode {
    Constant,
    Reflect,
    Edge,
}

/// Pads (or, with negative pads, crops) every axis: `begins[a]` and
/// `ends[a]` elements before and after axis `a`.
pub(crate) fn pad(
    x: &Tensor,
    begins: &[i64],
    ends: &[i64],
    mode: PadMode,
    value: f32,
    cx: &Ctx<'_>,
) -> OpResult<Tensor> {
    let r = x.shape.len();
    let mut out_shape = Vec::with_capacity(r);
    for a in 0..r {
        let d = x.shape[a] as i128;
        let o = d + begins[a] as i128 + ends[a] as i128;
        if o < 0 {
            return bad(format!(
                "pads {} and {} on axis {a} of size {d} leave a negative size",
                begins[a], ends[a]
            ));
        }
        out_shape.push(usize::try_from(o).map_err(|_| OpError::TooLarge(usize::MAX))?);
    }
    let total = checked_len(&out_shape, cx.limit)?;
    if total == 0 {
        return Ok(Tensor {
            shape: out_shape,
            data: Vec::new(),
        });
    }
    // Source index (or None: the constant) of each output position, per axis.
    let mut maps: Vec<Vec<Option<usize>>> = Vec::with_capacity(r);
    for a in 0..r {
        let d = x.shape[a] as i64;
        let b = begins[a];
        if mode == PadMode::Reflect && (b >= d.max(1) || ends[a] >= d.max(1)) {
            return bad(format!(
                "reflect pads {b} and {} on axis {a} need a size larger than both, got {d}",
                ends[a]
            ));
        }
        if mode == PadMode::Edge && d == 0 {
            return bad(format!("edge padding of an empty axis {a}"));
        }
        let map = (0..out_shape[a] as i64)
            .map(|i| {
                let s = i.saturating_sub(b);
                match mode {
                    PadMode::Constant => (0..d).contains(&s).then_some(s as usize),
                    PadMode::Edge => Some(s.clamp(0, d - 1) as usize),
                    PadMode::Reflect => {
                        // One reflection suffices: both pads are below d.
                        let s = s.saturating_abs();
                        let s = if s >= d { 2 * (d - 1) - s } else { s };
                        Some(s.clamp(0, d - 1) as usize)
                    }
                }
            })
            .collect();
        maps.push(map);
    }
    if r == 0 {
        return Ok(x.clone());
    }
    let st = strides(&x.shape);
    let ow = out_shape[r - 1];
    let last = &maps[r - 1];
    // Output positions of the last axis that read the input unshifted.
    let d = x.shape[r - 1] as i64;
    let b = begins[r - 1];
    let inner = (
        b.clamp(0, ow as i64) as usize,
        b.saturating_add(d).clamp(0, ow as i64) as usize,
    );
    let inner = (inner.0, inner.1.max(inner.0));
    let mut out = cx.pool.filled(total, value);
    out.par_chunks_mut(ow)
        .enumerate()
        .with_min_len((BLOCK / ow).max(1))
        .for_each(|(row, dst)| {
            let mut rem = row;
            let mut base = 0;
            for a in (0..r - 1).rev() {
                let p = rem % out_shape[a];
                rem /= out_shape[a];
                match maps[a][p] {
                    Some(s) => base += s * st[a],
                    None => return, // a padded row: the constant
                }
            }
            let src = &x.data[base..base + x.shape[r - 1]];
            // The unpadded middle is one copy; the borders go one by one.
            let (lo, hi) = inner;
            if lo < hi {
                let s0 = (lo as i64 - begins[r - 1]) as usize;
                dst[lo..hi].copy_from_slice(&src[s0..s0 + (hi - lo)]);
            }
            for (i, (o, m)) in dst.iter_mut().zip(last).enumerate() {
                if i >= lo && i < hi {
                    continue;
                }
                if let Some(s) = m {
                    *o = src[*s];
                }
            }
        });
    Ok(Tensor {
        shape: out_shape,
        data: out,
    })
}

// --------------------------------------------------------------- resize ---

/// Resizes the last two axes: linear (two taps per output coordinate on
/// each axis: `(i0, i1, frac)`, value `(1-frac)*x[i0] + frac*x[i1]`).
pub(crate) fn resize_linear(
    x: &Tensor,
    ytaps: &[(usize, usize, f32)],
    xtaps: &[(usize, usize, f32)],
) -> Tensor {
    let r = x.shape.len();
    let (h, w) = (x.shape[r - 2], x.shape[r - 1]);
    let (oh, ow) = (ytaps.len(), xtaps.len());
    let mut shape = x.shape.clone();
    shape[r - 2] = oh;
    shape[r - 1] = ow;
    let planes: usize = x.shape[..r - 2].iter().product();
    let mut out = vec![0.0f32; planes * oh * ow];
    if h * w > 0 && oh * ow > 0 {
        out.par_chunks_mut(oh * ow)
            .zip(x.data.par_chunks(h * w))
            .for_each(|(o, src)| {
                let mut tmp = vec![0.0f32; h * ow];
                for y in 0..h {
                    let s = &src[y * w..(y + 1) * w];
                    for (t, &(i0, i1, f)) in tmp[y * ow..(y + 1) * ow].iter_mut().zip(xtaps) {
                        *t = s[i0] * (1.0 - f) + s[i1] * f;
                    }
                }
                for (oy, &(i0, i1, f)) in ytaps.iter().enumerate() {
                    let t0 = &tmp[i0 * ow..(i0 + 1) * ow];
                    let t1 = &tmp[i1 * ow..(i1 + 1) * ow];
                    for ((ov, &a), &b) in o[oy * ow..(oy + 1) * ow].iter_mut().zip(t0).zip(t1) {
                        *ov = a * (1.0 - f) + b * f;
                    }
                }
            });
    }
    Tensor { shape, data: out }
}

// ----------------------------------------------------------------- conv ---

/// 2-D convolution geometry, padding resolved (`pl`, `pt`: left and top
/// pads; right and bottom ones are implied by `outw`, `outh`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConvGeom {
    pub kh: usize,
    pub kw: usize,
    pub dh: usize,
    pub dw: usize,
    pub sh: usize,
    pub sw: usize,
    pub pt: usize,
    pub pl: usize,
    pub outh: usize,
    pub outw: usize,
}

thread_local! {
    /// Each thread's im2col and product buffers, kept between convolutions
    /// (fresh multi-megabyte buffers cost page faults every time).
    static SCRATCH: std::cell::RefCell<(Vec<f32>, Vec<f32>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// Largest scratch buffer kept (floats); larger ones are freed after use.
const SCRATCH_KEEP: usize = 1 << 21;

/// Rows of the output processed per im2col chunk.
fn rows_per_chunk(k: usize, outw: usize, outh: usize) -> usize {
    let budget = 1usize << 19; // floats in one im2col buffer (2 MiB)
    let rows = (budget / (k * outw).max(1)).max(1);
    let min_chunks = 2 * rayon::current_num_threads().max(1);
    rows.min(outh.div_ceil(min_chunks)).max(1)
}

/// Grouped 2-D convolution of one image `x` (`[cin][h][w]`) into `out`
/// (`[cout][outh][outw]`). `weights` is `[cout][cin/groups][kh][kw]`. The
/// caller checked that `k*outw` (one im2col row block) is within bounds.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv2d(
    x: &[f32],
    (cin, h, w): (usize, usize, usize),
    out: &mut [f32],
    cout: usize,
    groups: usize,
    g: &ConvGeom,
    weights: &[f32],
    bias: Option<&[f32]>,
) {
    let (outh, outw) = (g.outh, g.outw);
    let cin_g = cin / groups;
    let cout_g = cout / groups;
    let k = cin_g * g.kh * g.kw;
    let plane_out = outh * outw;
    if plane_out == 0 || cout == 0 {
        return;
    }
    let rows = rows_per_chunk(k, outw, outh);
    let nchunks = outh.div_ceil(rows);
    let direct = g.kh * g.kw == 1 && g.sw == 1 && g.sh == 1 && g.pl == 0 && g.pt == 0 && outw == w;
    for (gi, out_g) in out.chunks_mut(cout_g * plane_out).enumerate().take(groups) {
        let wg = &weights[gi * cout_g * k..(gi + 1) * cout_g * k];
        let xg = &x[gi * cin_g * h * w..(gi + 1) * cin_g * h * w];
        // For each chunk of output rows, the part of each channel it writes.
        let mut parts: Vec<Vec<&mut [f32]>> =
            (0..nchunks).map(|_| Vec::with_capacity(cout_g)).collect();
        for ch in out_g.chunks_mut(plane_out) {
            let mut rest = ch;
            for part in parts.iter_mut() {
                let len = (rows * outw).min(rest.len());
                let (a, b) = std::mem::take(&mut rest).split_at_mut(len);
                part.push(a);
                rest = b;
            }
        }
        parts
            .into_par_iter()
            .enumerate()
            .for_each(|(ci, mut dsts)| {
                let r0 = ci * rows;
                let r1 = (r0 + rows).min(outh);
                let n = (r1 - r0) * outw;
                SCRATCH.with(|s| {
                    // Not re-entered: nothing below yields to rayon.
                    let mut s = s.borrow_mut();
                    let (col, dst) = &mut *s;
                    dst.clear();
                    dst.resize(cout_g * n, 0.0);
                    if direct {
                        matmul(dst, cout_g, n, k, wg, k, &xg[r0 * w..], h * w);
                    } else {
                        // A row stride that is not a multiple of a large power
                        // of two (those make gemm's packing reads collide in cache).
                        let ns = if n.is_multiple_of(128) { n + 16 } else { n };
                        im2col(col, ns, xg, cin_g, h, w, g, r0, r1);
                        matmul(dst, cout_g, n, k, wg, k, col, ns);
                    }
                    for (oc, o) in dsts.iter_mut().enumerate() {
                        let bv = bias.map_or(0.0, |b| b[gi * cout_g + oc]);
                        for (o, &d) in o.iter_mut().zip(&dst[oc * n..(oc + 1) * n]) {
                            *o = d + bv;
                        }
                    }
                    for v in [col, dst] {
                        if v.capacity() > SCRATCH_KEEP {
                            *v = Vec::new();
                        }
                    }
                });
            });
    }
}

/// im2col for output rows `r0..r1` into `col`: a `[cin*kh*kw][(r1-r0)*outw]`
/// matrix with rows `ns` apart (zeros where the kernel reads padding). Every element is
/// written, so `col` can be reused without clearing.
#[allow(clippy::too_many_arguments)]
fn im2col(
    col: &mut Vec<f32>,
    ns: usize,
    x: &[f32],
    cin: usize,
    h: usize,
    w: usize,
    g: &ConvGeom,
    r0: usize,
    r1: usize,
) {
    let outw = g.outw;
    let n = (r1 - r0) * outw;
    let maxk = g.kh * g.kw;
    col.resize(cin * maxk * ns, 0.0);
    for c in 0..cin {
        let xc = &x[c * h * w..(c + 1) * h * w];
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let row = &mut col[((c * maxk) + ky * g.kw + kx) * ns..][..n];
                // Input x for output column ox: ox*sw + kx*dw - pl.
                let xoff = (kx * g.dw) as isize - g.pl as isize;
                // Valid ox range: 0 <= ox*sw + xoff < w.
                let ox_lo = if xoff >= 0 {
                    0
                } else {
                    ((-xoff) as usize).div_ceil(g.sw).min(outw)
                };
                let ox_hi = if (w as isize) - xoff <= 0 {
                    0
                } else {
                    (((w as isize - xoff) as usize).div_ceil(g.sw)).min(outw)
                };
                for oy in r0..r1 {
                    let dst = &mut row[(oy - r0) * outw..(oy - r0 + 1) * outw];
                    let iy = (oy * g.sh + ky * g.dh) as isize - g.pt as isize;
                    if iy < 0 || iy >= h as isize || ox_lo >= ox_hi {
                        dst.fill(0.0);
                        continue;
                    }
                    dst[..ox_lo].fill(0.0);
                    dst[ox_hi..].fill(0.0);
                    let src = &xc[iy as usize * w..(iy as usize + 1) * w];
                    if g.sw == 1 {
                        let s0 = (ox_lo as isize + xoff) as usize;
                        dst[ox_lo..ox_hi].copy_from_slice(&src[s0..s0 + (ox_hi - ox_lo)]);
                    } else {
                        for ox in ox_lo..ox_hi {
                            dst[ox] = src[(ox as isize * g.sw as isize + xoff) as usize];
                        }
                    }
                }
            }
        }
    }
}
