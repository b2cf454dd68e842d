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
    /// AVX2 + FMA tiles (x86-64 CPUs without AVX-512: Zen 1-3, Haswell to
    /// Comet Lake, and many cloud hosts).
    Avx2,
    /// Plain Rust, on every CPU.
    Portable,
}

impl Isa {
    /// Every kernel, best first.
    pub const ALL: [Isa; 3] = [Isa::Avx512, Isa::Avx2, Isa::Portable];

    /// The best kernel this CPU runs. `CNNSPOT_KERNEL=avx2|portable` (or
    /// `CNNSPOT_PORTABLE_KERNEL=1`) caps the choice, for testing and for
    /// comparing kernels on one machine.
    pub fn detect() -> Isa {
        let cap = match std::env::var("CNNSPOT_KERNEL").as_deref() {
            Ok("portable") => Isa::Portable,
            Ok("avx2") => Isa::Avx2,
            _ if std::env::var_os("CNNSPOT_PORTABLE_KERNEL").is_some_and(|v| v == "1") => {
                Isa::Portable
            }
            _ => Isa::Avx512,
        };
        Isa::ALL
            .into_iter()
            .skip_while(|&isa| isa != cap)
            .find(|isa| isa.supported())
            .unwrap_or(Isa::Portable)
    }

    /// Whether this CPU has the instructions of `self`.
    pub fn supported(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            Isa::Portable => true,
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
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
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => match t.rows {
                    6 => avx2::tile::<6>(t),
                    5 => avx2::tile::<5>(t),
                    4 => avx2::tile::<4>(t),
                    3 => avx2::tile::<3>(t),
                    2 => avx2::tile::<2>(t),
                    _ => avx2::tile::<1>(t),
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
        // Only the 16-channel vectors that hold output columns are computed:
        // a layer with 32 outputs (common in the generators) does half the
        // work of a full panel, not all of it.
        // SAFETY: this function's contract is the one `tile_v` needs.
        unsafe {
            match t.cols.div_ceil(16) {
                0 | 1 => tile_v::<R, 1>(t),
                2 => tile_v::<R, 2>(t),
                3 => tile_v::<R, 3>(t),
                _ => tile_v::<R, 4>(t),
            }
        }
    }

    /// [`tile`] for the first `V` vectors of 16 columns (`cols <= 16 * V`).
    ///
    /// # Safety
    /// As [`tile`].
    #[target_feature(enable = "avx512f")]
    unsafe fn tile_v<const R: usize, const V: usize>(t: &Tile) {
        // SAFETY: by this function's contract the CPU has AVX-512F and every pointer of
        // `t` is valid for the rows, columns and segment lengths it describes
        // (the bias for NR values, masked loads and stores beyond `cols`).
        unsafe {
            let segments = t.a.len() / MR;
            let mut bias = [_mm512_setzero_ps(); V];
            for (j, v) in bias.iter_mut().enumerate() {
                *v = _mm512_loadu_ps(t.bias.add(16 * j));
            }
            let mut acc = [bias; R];
            // The residual is read only after the whole reduction; asking for
            // its cache lines now hides their latency behind the arithmetic
            // (the short-K 1x1 convolutions that add it ran about 15% slower
            // without this).
            if !t.residual.is_null() {
                for r in 0..R {
                    let p = t.residual.add(r * t.ldc) as *const i8;
                    for line in 0..V {
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
                    let mut bv = [_mm512_setzero_ps(); V];
                    for (j, v) in bv.iter_mut().enumerate() {
                        *v = _mm512_loadu_ps(bk.add(16 * j));
                    }
                    for r in 0..R {
                        let x = _mm512_set1_ps(*a[r].add(k));
                        for j in 0..V {
                            acc[r][j] = _mm512_fmadd_ps(x, bv[j], acc[r][j]);
                        }
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

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Tile, MR, NR};
    use std::arch::x86_64::*;

    /// Columns per pass: two 8-float vectors. AVX2 has 16 vector registers,
    /// so a 6 x 16 block (12 accumulators, 2 weight vectors, 1 broadcast)
    /// is the largest that stays in registers; the tile's `NR` columns are
    /// done in `NR / 16` passes over the reduction (the row values are
    /// re-read from L1).
    const NB: usize = 16;

    /// The AVX2 + FMA tile kernel, `R` rows unrolled.
    ///
    /// # Safety
    /// The CPU must have AVX2 and FMA, and every pointer in `t` must be
    /// valid as [`super::portable_tile`] requires.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn tile<const R: usize>(t: &Tile) {
        // SAFETY: by this function's contract the CPU has AVX2 and FMA and every
        // pointer of `t` is valid for the rows, columns and segment lengths it
        // describes: the bias for NR values, the weight panel for NR columns
        // per reduction step, and the output and residual for `cols` columns
        // (masked loads and stores beyond them).
        unsafe {
            let segments = t.a.len() / MR;
            let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            let zero = _mm256_setzero_ps();
            for first in (0..NR).step_by(NB) {
                if first >= t.cols {
                    break;
                }
                let bias = [
                    _mm256_loadu_ps(t.bias.add(first)),
                    _mm256_loadu_ps(t.bias.add(first + 8)),
                ];
                let mut acc = [bias; R];
                let mut b = t.b.add(first);
                for s in 0..segments {
                    let mut a = [std::ptr::null::<f32>(); R];
                    a.copy_from_slice(&t.a[s * MR..s * MR + R]);
                    for k in 0..t.seg_len {
                        let bk = b.add(k * NR);
                        let w0 = _mm256_loadu_ps(bk);
                        let w1 = _mm256_loadu_ps(bk.add(8));
                        for r in 0..R {
                            let x = _mm256_broadcast_ss(&*a[r].add(k));
                            acc[r][0] = _mm256_fmadd_ps(x, w0, acc[r][0]);
                            acc[r][1] = _mm256_fmadd_ps(x, w1, acc[r][1]);
                        }
                    }
                    b = b.add(t.seg_len * NR);
                }
                for (r, row) in acc.iter().enumerate() {
                    for (h, &v) in row.iter().enumerate() {
                        let col = first + h * 8;
                        if col >= t.cols {
                            break;
                        }
                        let mask =
                            _mm256_cmpgt_epi32(_mm256_set1_epi32((t.cols - col) as i32), lanes);
                        let off = r * t.ldc + col;
                        let mut v = v;
                        if !t.residual.is_null() {
                            v = _mm256_add_ps(v, _mm256_maskload_ps(t.residual.add(off), mask));
                        }
                        if t.relu {
                            v = _mm256_max_ps(v, zero);
                        }
                        _mm256_maskstore_ps(t.c.add(off), mask, v);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kernel the CPU has computes what the portable one does, for
    /// every tile shape (partial rows and columns, several segments) with
    /// and without residual and ReLU.
    #[test]
    fn every_kernel_matches_the_portable_one_on_partial_tiles() {
        let mut seed = 7u32;
        let mut rand = move || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        // Short segments (one reduction chunk), segments grouped two to a
        // chunk, and segments longer than a chunk.
        for (segments, seg_len) in [(3, 11), (3, 100), (2, 600)] {
            check_shapes(&mut rand, segments, seg_len);
        }
    }

    fn check_shapes(rand: &mut impl FnMut() -> f32, segments: usize, seg_len: usize) {
        let ldc = NR + 5;
        let rows_data: Vec<Vec<f32>> = (0..segments * MR)
            .map(|_| (0..seg_len).map(|_| rand()).collect())
            .collect();
        let a: Vec<*const f32> = rows_data.iter().map(|r| r.as_ptr()).collect();
        let b: Vec<f32> = (0..segments * seg_len * NR).map(|_| rand()).collect();
        let bias: Vec<f32> = (0..NR).map(|_| rand()).collect();
        let residual: Vec<f32> = (0..MR * ldc).map(|_| rand()).collect();
        let isas: Vec<Isa> = Isa::ALL.into_iter().filter(|i| i.supported()).collect();
        for rows in 1..=MR {
            for cols in [1, 7, 8, 9, 16, 17, 31, 33, 48, 63, NR] {
                for (with_residual, relu) in [(false, false), (true, true), (false, true)] {
                    let run = |isa: Isa| {
                        // Sentinels beyond `cols` must stay untouched.
                        let mut c = vec![f32::NAN; MR * ldc];
                        let t = Tile {
                            rows,
                            cols,
                            seg_len,
                            a: &a,
                            b: b.as_ptr(),
                            bias: bias.as_ptr(),
                            c: c.as_mut_ptr(),
                            ldc,
                            residual: if with_residual {
                                residual.as_ptr()
                            } else {
                                std::ptr::null()
                            },
                            relu,
                        };
                        // SAFETY: every pointer covers the tile it describes
                        // (MR rows of `seg_len` per segment, the full panel,
                        // NR biases, MR rows of `ldc` outputs and residuals),
                        // and `isa` is supported by this CPU.
                        unsafe { isa.run(&t) };
                        c
                    };
                    let want = run(Isa::Portable);
                    for &isa in &isas {
                        let got = run(isa);
                        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                            let inside = i / ldc < rows && i % ldc < cols;
                            if inside {
                                assert!(
                                    (g - w).abs() < 1e-5,
                                    "{isa:?} {rows}x{cols} at {i}: {g} vs {w}"
                                );
                            } else {
                                assert!(g.is_nan(), "{isa:?} {rows}x{cols} wrote outside at {i}");
                            }
                        }
                    }
                }
            }
        }
        assert!(isas.contains(&Isa::Portable));
    }
}
