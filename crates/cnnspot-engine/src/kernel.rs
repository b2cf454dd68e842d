//! The register-blocked inner product of the convolutions.
//!
//! A tile of up to `MR` output pixels by `NR` output channels is accumulated
//! in registers over the whole reduction, then bias, residual and ReLU are
//! applied before the single store. The reduction is a list of segments;
//! each segment gives, per output pixel, a pointer to a contiguous run of
//! input values (one kernel row of an NHWC image, or the channels of one
//! pixel), so that convolutions need no im2col buffer. Weights come packed
//! as `K x NR` panels, in the same K order as the segments.

/// Output pixels per tile (broadcast operands).
pub const MR: usize = 6;
/// Output channels per tile: four AVX-512 vectors.
pub const NR: usize = 64;

/// One output tile and what to do before storing it.
pub struct Tile<'a> {
    /// Rows of the tile actually present (1..=MR).
    pub rows: usize,
    /// Columns of the tile actually present (1..=NR).
    pub cols: usize,
    /// Length of each reduction segment.
    pub seg_len: usize,
    /// `segments * MR` row pointers: segment-major, each to `seg_len` floats.
    pub a: &'a [*const f32],
    /// The packed weight panel: `segments * seg_len` rows of `NR` floats.
    pub b: *const f32,
    /// `NR` bias values (zero beyond `cols`).
    pub bias: *const f32,
    /// Output, row-major with stride `ldc`.
    pub c: *mut f32,
    /// Distance between output rows, in floats.
    pub ldc: usize,
    /// Added before the ReLU, same layout as `c` (null for none).
    pub residual: *const f32,
    /// Whether to clamp at zero after the residual.
    pub relu: bool,
}

/// Which instruction set runs the tiles, chosen once per process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// AVX-512F tiles (x86-64 CPUs that have it).
    Avx512,
    /// Plain Rust, on every CPU.
    Portable,
}

impl Isa {
    /// The best kernel this CPU runs. `CNNSPOT_PORTABLE_KERNEL=1` forces the
    /// portable one (for testing it on machines that have AVX-512).
    pub fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            let forced = std::env::var_os("CNNSPOT_PORTABLE_KERNEL").is_some_and(|v| v == "1");
            if !forced && std::arch::is_x86_feature_detected!("avx512f") {
                return Isa::Avx512;
            }
        }
        Isa::Portable
    }

    /// Computes one tile.
    ///
    /// # Safety
    /// Every pointer in `t` must be valid for the reads and writes its
    /// description implies, and `self` must be supported by the CPU (as
    /// returned by [`Isa::detect`]).
    #[inline]
    pub unsafe fn run(self, t: &Tile) {
        // SAFETY: the caller upholds this function's contract (valid tile pointers, an
        // ISA the CPU has), which is exactly what the tile kernels require.
        unsafe {
            match self {
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 => match t.rows {
                    6 => avx512::tile::<6>(t),
                    5 => avx512::tile::<5>(t),
                    4 => avx512::tile::<4>(t),
                    3 => avx512::tile::<3>(t),
                    2 => avx512::tile::<2>(t),
                    _ => avx512::tile::<1>(t),
                },
                _ => portable_tile(t),
            }
        }
    }
}

/// Plain Rust version of the same computation, for CPUs without AVX-512.
///
/// # Safety
/// Every pointer in `t` must be valid for the reads and writes its
/// description implies: `rows` x `seg_len` floats behind each row pointer,
/// the weight panel, `NR` bias values, and `rows` x `cols` output (and
/// residual) values at stride `ldc`.
unsafe fn portable_tile(t: &Tile) {
    // SAFETY: by this function's contract every pointer of `t` is valid for the
    // rows, columns and segment lengths it describes.
    unsafe {
        let segments = t.a.len() / MR;
        let mut acc = [[0f32; NR]; MR];
        for row in acc.iter_mut().take(t.rows) {
            for (j, v) in row.iter_mut().enumerate() {
                *v = *t.bias.add(j);
            }
        }
        let mut b = t.b;
        for s in 0..segments {
            for k in 0..t.seg_len {
                let bk = std::slice::from_raw_parts(b.add(k * NR), NR);
                for (r, row) in acc.iter_mut().enumerate().take(t.rows) {
                    let a = *t.a[s * MR + r].add(k);
                    for (v, &w) in row.iter_mut().zip(bk) {
                        *v += a * w;
                    }
                }
            }
            b = b.add(t.seg_len * NR);
        }
        for (r, row) in acc.iter().enumerate().take(t.rows) {
            for (j, &v) in row.iter().enumerate().take(t.cols) {
                let mut v = v;
                if !t.residual.is_null() {
                    v += *t.residual.add(r * t.ldc + j);
                }
                if t.relu {
                    v = v.max(0.0);
                }
                *t.c.add(r * t.ldc + j) = v;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Tile, MR, NR};
    use std::arch::x86_64::*;

    /// The AVX-512 tile kernel, `R` rows unrolled.
    ///
    /// # Safety
    /// The CPU must have AVX-512F, and every pointer in `t` must be valid
    /// as [`super::portable_tile`] requires.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn tile<const R: usize>(t: &Tile) {
        // SAFETY: by this function's contract the CPU has AVX-512F and every pointer of
        // `t` is valid for the rows, columns and segment lengths it describes
        // (the bias for NR values, masked loads and stores beyond `cols`).
        unsafe {
            let segments = t.a.len() / MR;
            let mut acc = [[_mm512_setzero_ps(); 4]; R];
            let bias = [
                _mm512_loadu_ps(t.bias),
                _mm512_loadu_ps(t.bias.add(16)),
                _mm512_loadu_ps(t.bias.add(32)),
                _mm512_loadu_ps(t.bias.add(48)),
            ];
            for row in acc.iter_mut() {
                *row = bias;
            }
            // The residual is read only after the whole reduction; asking for
            // its cache lines now hides their latency behind the arithmetic
            // (the short-K 1x1 convolutions that add it ran about 15% slower
            // without this).
            if !t.residual.is_null() {
                for r in 0..R {
                    let p = t.residual.add(r * t.ldc) as *const i8;
                    for line in 0..4 {
                        _mm_prefetch::<_MM_HINT_T0>(p.add(line * 64));
                    }
                }
            }
            let mut b = t.b;
            for s in 0..segments {
                let mut a = [std::ptr::null::<f32>(); R];
                a.copy_from_slice(&t.a[s * MR..s * MR + R]);
                for k in 0..t.seg_len {
                    let bk = b.add(k * NR);
                    let b0 = _mm512_loadu_ps(bk);
                    let b1 = _mm512_loadu_ps(bk.add(16));
                    let b2 = _mm512_loadu_ps(bk.add(32));
                    let b3 = _mm512_loadu_ps(bk.add(48));
                    for r in 0..R {
                        let x = _mm512_set1_ps(*a[r].add(k));
                        acc[r][0] = _mm512_fmadd_ps(x, b0, acc[r][0]);
                        acc[r][1] = _mm512_fmadd_ps(x, b1, acc[r][1]);
                        acc[r][2] = _mm512_fmadd_ps(x, b2, acc[r][2]);
                        acc[r][3] = _mm512_fmadd_ps(x, b3, acc[r][3]);
                    }
                }
                b = b.add(t.seg_len * NR);
            }
            let zero = _mm512_setzero_ps();
            for (r, row) in acc.iter().enumerate() {
                for (j, &v) in row.iter().enumerate() {
                    let first = j * 16;
                    if first >= t.cols {
                        break;
                    }
                    let left = t.cols - first;
                    let mask: __mmask16 = if left >= 16 {
                        0xffff
                    } else {
                        (1u16 << left) - 1
                    };
                    let off = r * t.ldc + first;
                    let mut v = v;
                    if !t.residual.is_null() {
                        v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, t.residual.add(off)));
                    }
                    if t.relu {
                        v = _mm512_max_ps(v, zero);
                    }
                    _mm512_mask_storeu_ps(t.c.add(off), mask, v);
                }
            }
        }
    }
}
