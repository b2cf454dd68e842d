//! Convolutions with BatchNorm folded in, on NHWC activations.

use std::sync::{Mutex, OnceLock};

use rayon::prelude::*;

use super::int8::{Int8Isa, QAct, QuantConv};
use super::kernel::{Isa, Tile, MR, NR};
use super::winograd::Winograd;
use super::SyncPtr;

/// An NHWC activation: `n` images of `h x w` pixels with `c` channels each.
#[derive(Debug, Clone)]
pub struct Act {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub data: Vec<f32>,
}

impl Act {
    /// Returns `used` to the pool once `self` (computed from it) exists.
    pub fn recycle(self, pool: &Pool, used: Act) -> Act {
        pool.give(used.data);
        self
    }
}

/// A convolution (no bias in torchvision's ResNet) followed by eval-mode
/// BatchNorm, folded into one weight and one bias.
#[derive(Debug)]
pub struct Conv {
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub pad: usize,
    pub cin: usize,
    pub cout: usize,
    /// `ceil(cout / NR)` panels of `K x NR`, K ordered (ky, kx, cin) as an
    /// NHWC image row is laid out, so that one kernel row of the input is
    /// one contiguous segment of the reduction.
    packed: Vec<f32>,
    /// Padded to whole panels with zeros.
    bias: Vec<f32>,
    /// The same convolution in Winograd form, for 3x3 stride-1 ones.
    winograd: Option<Winograd>,
    /// The int8 form, once [`Conv::prepare_int8`] made it.
    int8: Option<QuantConv>,
}

impl Conv {
    /// Folds `bn(conv(x))` with BatchNorm in eval mode:
    /// `w' = w * gamma / sqrt(var + eps)`, `b' = beta - mean * gamma / sqrt(var + eps)`,
    /// computed in f64 so that folding adds no error of its own beyond the
    /// final rounding.
    #[allow(clippy::too_many_arguments)]
    pub fn folded(
        weight: &[f32],
        shape: &[usize],
        gamma: &[f32],
        beta: &[f32],
        mean: &[f32],
        var: &[f32],
        eps: f64,
        stride: usize,
        pad: usize,
    ) -> Conv {
        let (cout, cin, kh, kw) = (shape[0], shape[1], shape[2], shape[3]);
        let scale: Vec<f64> = (0..cout)
            .map(|o| gamma[o] as f64 / (var[o] as f64 + eps).sqrt())
            .collect();
        let k = kh * kw * cin;
        let panels = cout.div_ceil(NR);
        let mut packed = vec![0f32; panels * k * NR];
        for o in 0..cout {
            let (p, j) = (o / NR, o % NR);
            for ci in 0..cin {
                for y in 0..kh {
                    for x in 0..kw {
                        let w = weight[((o * cin + ci) * kh + y) * kw + x] as f64;
                        let kk = (y * kw + x) * cin + ci;
                        packed[(p * k + kk) * NR + j] = (w * scale[o]) as f32;
                    }
                }
            }
        }
        let mut bias = vec![0f32; panels * NR];
        for o in 0..cout {
            bias[o] = (beta[o] as f64 - mean[o] as f64 * scale[o]) as f32;
        }
        let winograd = (kh == 3 && kw == 3 && stride == 1 && pad == 1)
            .then(|| Winograd::new(weight, &scale, &bias, cout, cin));
        Conv {
            kh,
            kw,
            stride,
            pad,
            cin,
            cout,
            packed,
            bias,
            winograd,
            int8: None,
        }
    }

    /// Makes the int8 form of the weights, for a convolution whose input is
    /// never negative (a ReLU output). Needs whole groups of 4 input
    /// channels (every ResNet convolution but the stem's 3); returns whether
    /// it was made.
    pub fn prepare_int8(&mut self) -> bool {
        if self.cin.is_multiple_of(4) {
            let k = self.kh * self.kw * self.cin;
            self.int8 = Some(QuantConv::from_panels(&self.packed, k, self.cout));
        }
        self.int8.is_some()
    }

    /// Whether the int8 form exists.
    pub fn has_int8(&self) -> bool {
        self.int8.is_some()
    }

    /// Whether [`Conv::forward`] would use Winograd on `x`.
    pub fn uses_winograd(&self, x: &Act) -> bool {
        self.winograd.is_some() && Winograd::worth_it(x)
    }

    /// `relu?(conv(x) + bias + residual?)` in int8, `x` quantised with this
    /// convolution's padding. Falls back to nothing: call only when
    /// [`Conv::has_int8`].
    pub fn forward_int8(
        &self,
        isa: Int8Isa,
        pool: &Pool,
        x: &QAct,
        residual: Option<&Act>,
        relu: bool,
    ) -> Act {
        assert_eq!(x.c, self.cin, "channel count");
        assert_eq!(x.pad, self.pad, "input padding");
        let int8 = self.int8.as_ref().expect("forward_int8 needs prepare_int8");
        let t0 = profiling().then(std::time::Instant::now);
        let (oh, ow) = self.out_size(x.h, x.w);
        let shape = DirectShape {
            hp: x.h + 2 * x.pad,
            wp: x.w + 2 * x.pad,
            cin: self.cin,
            kh: self.kh,
            kw: self.kw,
            stride: self.stride,
            oh,
            ow,
            m: x.n * oh * ow,
            cout: self.cout,
        };
        let out = int8.forward(isa, pool, x, &shape, &self.bias, residual, relu);
        if let Some(t0) = t0 {
            let secs = t0.elapsed().as_secs_f64();
            let ops = 2.0 * (shape.m * self.kh * self.kw * self.cin * self.cout) as f64;
            eprintln!(
                "cnnspot profile: int8 conv {}x{}/{} {}->{} on {} px: {:.3} ms, {:.1} GOP/s",
                self.kh,
                self.kw,
                self.stride,
                self.cin,
                self.cout,
                shape.m,
                secs * 1e3,
                ops / secs / 1e9
            );
        }
        Act {
            n: x.n,
            h: oh,
            w: ow,
            c: self.cout,
            data: out,
        }
    }

    /// Drops the Winograd form, so that every call runs the direct
    /// convolution (tests compare the two).
    pub fn disable_winograd(&mut self) {
        self.winograd = None;
    }

    pub fn out_size(&self, h: usize, w: usize) -> (usize, usize) {
        (
            (h + 2 * self.pad - self.kh) / self.stride + 1,
            (w + 2 * self.pad - self.kw) / self.stride + 1,
        )
    }

    /// `relu?(conv(x) + bias + residual?)`.
    pub fn forward(
        &self,
        isa: Isa,
        pool: &Pool,
        x: &Act,
        residual: Option<&Act>,
        relu: bool,
    ) -> Act {
        assert_eq!(x.c, self.cin, "channel count");
        let t0 = profiling().then(std::time::Instant::now);
        if let Some(w) = self.winograd.as_ref().filter(|_| Winograd::worth_it(x)) {
            let out = w.forward(isa, pool, x, residual, relu);
            if let Some(t0) = t0 {
                eprintln!(
                    "cnnspot profile: winograd 3x3 {}->{} on {} px: {:.3} ms",
                    self.cin,
                    self.cout,
                    out.n * out.h * out.w,
                    t0.elapsed().as_secs_f64() * 1e3
                );
            }
            return out;
        }
        let padded = (self.pad > 0).then(|| pad_nhwc(pool, x, self.pad));
        let (src, hp, wp) = match &padded {
            Some(p) => (&p[..], x.h + 2 * self.pad, x.w + 2 * self.pad),
            None => (&x.data[..], x.h, x.w),
        };
        let (oh, ow) = self.out_size(x.h, x.w);
        let m = x.n * oh * ow;
        let cout = self.cout;
        let mut out = pool.take(m * cout);
        if let Some(r) = residual {
            assert_eq!(r.data.len(), m * cout, "residual shape");
        }

        let k = self.kh * self.kw * self.cin;
        let shape = DirectShape {
            hp,
            wp,
            cin: self.cin,
            kh: self.kh,
            kw: self.kw,
            stride: self.stride,
            oh,
            ow,
            m,
            cout,
        };
        let c_ptr = SyncPtr(out.as_mut_ptr());
        let res_ptr = residual.map(|r| SyncPtr(r.data.as_ptr() as *mut f32));
        shape.for_each_tile(src, 4, |at| {
            let off = at.row0 * cout + at.col0;
            let tile = Tile {
                rows: at.rows,
                cols: at.cols,
                seg_len: shape.seg_len(),
                a: at.a,
                // SAFETY: panel p < panels starts inside the packed
                // weights (panels * k * NR floats).
                b: unsafe { self.packed.as_ptr().add(at.panel * k * NR) },
                // SAFETY: col0 < cout <= bias.len() (padded to NR).
                bias: unsafe { self.bias.as_ptr().add(at.col0) },
                // SAFETY: row0 < m and col0 < cout, so off is inside
                // the m x cout output.
                c: unsafe { c_ptr.get().add(off) },
                ldc: cout,
                residual: match res_ptr {
                    // SAFETY: the residual has the output's shape.
                    Some(r) => unsafe { r.get().add(off) as *const f32 },
                    None => std::ptr::null(),
                },
                relu,
            };
            // SAFETY: the tile's pointers were built within bounds, and
            // tasks write disjoint tiles.
            unsafe { isa.run(&tile) };
        });
        if let Some(p) = padded {
            pool.give(p);
        }
        if let Some(t0) = t0 {
            let secs = t0.elapsed().as_secs_f64();
            let flops = 2.0 * (m * k * cout) as f64;
            eprintln!(
                "cnnspot profile: conv {}x{}/{} {}->{} on {m} px: {:.3} ms, {:.1} GFLOP/s",
                self.kh,
                self.kw,
                self.stride,
                self.cin,
                cout,
                secs * 1e3,
                flops / secs / 1e9
            );
        }
        Act {
            n: x.n,
            h: oh,
            w: ow,
            c: cout,
            data: out,
        }
    }
}

/// Whether to time every convolution (`CNNSPOT_PROFILE=1`), read once.
fn profiling() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("CNNSPOT_PROFILE").is_some_and(|v| v == "1"))
}

/// The geometry of a direct convolution over a padded NHWC input of
/// `hp x wp` pixels: what the f32 and int8 routes share.
pub(crate) struct DirectShape {
    pub hp: usize,
    pub wp: usize,
    pub cin: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub oh: usize,
    pub ow: usize,
    /// Output pixels of all images.
    pub m: usize,
    pub cout: usize,
}

/// One output tile's place and the row pointers of its reduction.
pub(crate) struct TileAt<'a, T> {
    /// `kh * MR` row pointers, segment-major.
    pub a: &'a [*const T],
    pub panel: usize,
    pub row0: usize,
    pub rows: usize,
    pub col0: usize,
    pub cols: usize,
}

impl DirectShape {
    /// Length of one reduction segment: one kernel row of the input.
    pub fn seg_len(&self) -> usize {
        self.kw * self.cin
    }

    /// Runs `kernel` on every `MR x NR` output tile, spread over the
    /// thread pool in cache-sized blocks. `src` is the padded input and
    /// `elem_bytes` the size of its elements (the blocking keeps a block's
    /// rows in L2).
    pub fn for_each_tile<T: Sync>(
        &self,
        src: &[T],
        elem_bytes: usize,
        kernel: impl Fn(TileAt<T>) + Sync,
    ) {
        let (m, cout, kh) = (self.m, self.cout, self.kh);
        let k = kh * self.seg_len();
        let n_panels = cout.div_ceil(NR);
        let m_panels = m.div_ceil(MR);
        let (mc_panels, nc_panels) = blocking(m_panels, n_panels, k * elem_bytes / 4);
        let m_blocks = m_panels.div_ceil(mc_panels);
        let n_blocks = n_panels.div_ceil(nc_panels);
        let per_image = self.oh * self.ow;
        (0..m_blocks * n_blocks).into_par_iter().for_each(|task| {
            let (mb, nb) = (task / n_blocks, task % n_blocks);
            let mp0 = mb * mc_panels;
            let mp1 = (mp0 + mc_panels).min(m_panels);
            let p0 = nb * nc_panels;
            let p1 = (p0 + nc_panels).min(n_panels);
            // Row pointers of every tile of this block: [panel][segment][MR].
            let mut table = Vec::with_capacity((mp1 - mp0) * kh * MR);
            for mp in mp0..mp1 {
                for ky in 0..kh {
                    for r in 0..MR {
                        let row = (mp * MR + r).min(m - 1);
                        let (img, pix) = (row / per_image, row % per_image);
                        let (oy, ox) = (pix / self.ow, pix % self.ow);
                        let iy = oy * self.stride + ky;
                        let ix = ox * self.stride;
                        let off = ((img * self.hp + iy) * self.wp + ix) * self.cin;
                        table.push(src[off..off + self.seg_len()].as_ptr());
                    }
                }
            }
            let stride_t = kh * MR;
            for p in p0..p1 {
                let col0 = p * NR;
                let cols = (cout - col0).min(NR);
                for (i, mp) in (mp0..mp1).enumerate() {
                    let row0 = mp * MR;
                    kernel(TileAt {
                        a: &table[i * stride_t..(i + 1) * stride_t],
                        panel: p,
                        row0,
                        rows: (m - row0).min(MR),
                        col0,
                        cols,
                    });
                }
            }
        });
    }
}

/// Splits the output into tasks: blocks of `MR`-row panels by blocks of
/// `NR`-column panels, enough of them to keep every thread busy, each
/// small enough that its inputs stay in the core's cache.
fn blocking(m_panels: usize, n_panels: usize, k: usize) -> (usize, usize) {
    let threads = rayon::current_num_threads().max(1);
    // The rows of a block (MR * K floats per panel) are read once per column
    // panel: keep them within about half of a 1 MiB L2.
    let mc = (98_304 / (MR * k).max(1)).clamp(1, 32);
    let mut mc = mc.min(m_panels).max(1);
    let mut nc = n_panels;
    let tasks = |mc: usize, nc: usize| m_panels.div_ceil(mc) * n_panels.div_ceil(nc);
    while tasks(mc, nc) < 4 * threads && nc > 1 {
        nc = nc.div_ceil(2);
    }
    while tasks(mc, nc) < 4 * threads && mc > 1 {
        mc = mc.div_ceil(2);
    }
    (mc, nc)
}

/// Activation buffers kept between layers and between calls.
///
/// Fresh large allocations come from the kernel as untouched pages, and the
/// first write to each page faults (about a tenth of the time of a forward
/// pass when profiled); reusing buffers avoids that, also when batches of
/// different image sizes alternate (as in a folder of uncropped images).
/// What the pool keeps is capped, the smallest buffers going first.
#[derive(Debug, Default)]
pub struct Pool {
    inner: Mutex<PoolInner>,
}

#[derive(Debug, Default)]
struct PoolInner {
    /// Bytes the pool may keep: see [`Pool::begin`].
    cap: usize,
    bufs: Vec<Vec<f32>>,
}

/// Bytes of activations per input pixel, about (measured: 285-292).
pub const BYTES_PER_PIXEL: usize = 300;

/// The pool keeps at least this much, so that a stream of small batches
/// never reallocates.
const MIN_POOL_BYTES: usize = 512 << 20;

impl Pool {
    /// Starts a forward pass on `pixels` input pixels (all images): the pool
    /// may keep what twice such a pass uses.
    pub fn begin(&self, pixels: usize) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.cap = MIN_POOL_BYTES.max(2 * BYTES_PER_PIXEL * pixels);
        trim(&mut inner);
    }

    /// A buffer of `len` values whose contents are unspecified: the caller
    /// writes every element before reading it.
    pub fn take(&self, len: usize) -> Vec<f32> {
        let found = {
            let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            let best = inner
                .bufs
                .iter()
                .enumerate()
                .filter(|(_, b)| b.capacity() >= len)
                .min_by_key(|(_, b)| b.capacity())
                .map(|(i, _)| i);
            best.map(|i| inner.bufs.swap_remove(i))
        };
        match found {
            Some(mut v) => {
                // A returned buffer is initialised up to its length; only a
                // part past it (rare: buffers are reused at their own sizes)
                // is zeroed.
                if v.len() >= len {
                    v.truncate(len);
                } else {
                    v.resize(len, 0.0);
                }
                v
            }
            None => zeroed_vec(len),
        }
    }

    /// Returns a buffer for reuse.
    pub fn give(&self, v: Vec<f32>) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.bufs.push(v);
        trim(&mut inner);
    }
}

fn trim(inner: &mut PoolInner) {
    let bytes = |bufs: &[Vec<f32>]| bufs.iter().map(|b| b.capacity() * 4).sum::<usize>();
    while bytes(&inner.bufs) > inner.cap {
        let Some(smallest) = (0..inner.bufs.len()).min_by_key(|&i| inner.bufs[i].capacity()) else {
            break;
        };
        inner.bufs.swap_remove(smallest);
    }
}

/// A new buffer. `vec![0.0; len]` allocates zeroed memory (calloc), which
/// for large buffers is fresh zero pages from the OS, not a pass over them;
/// handing out uninitialised `f32`s instead would be undefined behaviour.
fn zeroed_vec(len: usize) -> Vec<f32> {
    vec![0.0; len]
}

/// Copies `x` into a buffer with `pad` zero pixels on every side.
fn pad_nhwc(pool: &Pool, x: &Act, pad: usize) -> Vec<f32> {
    let (hp, wp, c) = (x.h + 2 * pad, x.w + 2 * pad, x.c);
    let mut out = pool.take(x.n * hp * wp * c);
    let row_len = x.w * c;
    let side = pad * c;
    out.par_chunks_mut(wp * c)
        .enumerate()
        .for_each(|(row, dst)| {
            let (img, y) = (row / hp, row % hp);
            if y < pad || y >= pad + x.h {
                dst.fill(0.0);
                return;
            }
            let s = (img * x.h + y - pad) * row_len;
            dst[..side].fill(0.0);
            dst[side..side + row_len].copy_from_slice(&x.data[s..s + row_len]);
            dst[side + row_len..].fill(0.0);
        });
    out
}

/// torchvision's `MaxPool2d(3, stride=2, padding=1)` on NHWC (padding never
/// wins: it acts as minus infinity).
pub fn max_pool_3x3s2(pool: &Pool, x: &Act) -> Act {
    let oh = (x.h + 2 - 3) / 2 + 1;
    let ow = (x.w + 2 - 3) / 2 + 1;
    let c = x.c;
    let mut out = pool.take(x.n * oh * ow * c);
    out.par_chunks_mut(ow * c)
        .enumerate()
        .for_each(|(row, dst)| {
            let (img, oy) = (row / oh, row % oh);
            let base = img * x.h * x.w * c;
            for ox in 0..ow {
                let d = &mut dst[ox * c..(ox + 1) * c];
                d.fill(f32::NEG_INFINITY);
                for dy in 0..3 {
                    let iy = (oy * 2 + dy) as isize - 1;
                    if iy < 0 || iy as usize >= x.h {
                        continue;
                    }
                    for dx in 0..3 {
                        let ix = (ox * 2 + dx) as isize - 1;
                        if ix < 0 || ix as usize >= x.w {
                            continue;
                        }
                        let s = base + (iy as usize * x.w + ix as usize) * c;
                        for (o, &v) in d.iter_mut().zip(&x.data[s..s + c]) {
                            *o = o.max(v);
                        }
                    }
                }
            }
        });
    Act {
        n: x.n,
        h: oh,
        w: ow,
        c,
        data: out,
    }
}

/// Global average pooling: `[n, c]`.
pub fn global_avg_pool(x: &Act) -> Vec<f32> {
    let c = x.c;
    let hw = x.h * x.w;
    let mut out = vec![0f32; x.n * c];
    for (img, dst) in out.chunks_mut(c).enumerate() {
        let mut acc = vec![0f64; c];
        for px in x.data[img * hw * c..(img + 1) * hw * c].chunks(c) {
            for (a, &v) in acc.iter_mut().zip(px) {
                *a += v as f64;
            }
        }
        for (d, a) in dst.iter_mut().zip(acc) {
            *d = (a / hw as f64) as f32;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocking_gives_every_thread_work() {
        let threads = rayon::current_num_threads();
        for (m, n, k) in [(9, 32, 4608), (524, 1, 576), (1, 1, 64), (2091, 4, 147)] {
            let (mc, nc) = blocking(m, n, k);
            assert!(mc >= 1 && nc >= 1);
            let tasks = m.div_ceil(mc) * n.div_ceil(nc);
            assert!(tasks >= (4 * threads).min(m * n), "{m} {n} {k}: {tasks}");
        }
    }
}
