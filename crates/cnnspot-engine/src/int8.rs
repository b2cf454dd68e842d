//! int8 convolutions: [`crate::Precision::Int8`].
//!
//! Every convolution whose input is a ReLU output (all of a ResNet's but
//! the stem) can run on 8-bit integers:
//!
//! - weights: the BatchNorm-folded weights of each output channel scaled to
//!   `[-127, 127]` (symmetric, one scale per channel), packed for VNNI's
//!   `vpdpbusd` (four consecutive reduction steps of one channel side by
//!   side, so one 32-bit lane sums four `u8 x i8` products into `i32`);
//! - activations: each image's input to the convolution scaled by its own
//!   maximum to `[0, 255]` (zero stays zero, so padding is exact). The scale
//!   is measured per image as the input arrives (dynamic quantisation): no
//!   calibration set, nothing to ship with a model, and an image gets the
//!   same logit whatever it is batched with;
//! - the `i32` sums are turned back into floats with both scales in the
//!   tile's epilogue, where bias, residual and ReLU are applied as in the
//!   f32 kernel, so that everything between convolutions stays f32.
//!
//! The sums are exact (at most `255 * 127 * K` < 2^31 for every K below
//! 66,000); the only error is the rounding of weights and inputs to 8 bits.

use rayon::prelude::*;

use super::conv::{Act, DirectShape, Pool};
use super::kernel::{MR, NR};
use super::SyncPtr;

/// Which instructions run the int8 tiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Int8Isa {
    /// AVX-512 VNNI (`vpdpbusd`): Ice Lake and later Intel, Zen 4 and 5.
    Vnni512,
    /// AVX2 (`vpmaddwd` on values widened to 16 bits): exact, about as fast
    /// as the f32 kernels, so that int8 is no trap on CPUs without VNNI.
    Avx2,
    /// Plain Rust (exact, slow): for other CPUs and for tests.
    Portable,
}

impl Int8Isa {
    /// Every kernel, best first.
    pub const ALL: [Int8Isa; 3] = [Int8Isa::Vnni512, Int8Isa::Avx2, Int8Isa::Portable];

    /// The best int8 kernel this CPU runs; `CNNSPOT_KERNEL=avx2` (which
    /// caps the f32 kernels) selects the AVX2 one, `portable` the portable.
    pub fn detect() -> Int8Isa {
        let cap = std::env::var("CNNSPOT_KERNEL");
        let portable = matches!(cap.as_deref(), Ok("portable"))
            || std::env::var_os("CNNSPOT_PORTABLE_KERNEL").is_some_and(|v| v == "1");
        let avx2 = matches!(cap.as_deref(), Ok("avx2"));
        if portable {
            Int8Isa::Portable
        } else if !avx2 && Int8Isa::Vnni512.supported() {
            Int8Isa::Vnni512
        } else if Int8Isa::Avx2.supported() {
            Int8Isa::Avx2
        } else {
            Int8Isa::Portable
        }
    }

    /// Whether int8 on this kernel is faster than the f32 kernels: only
    /// with VNNI (the AVX2 one is about as fast as f32, the portable one
    /// about 15x slower).
    pub fn is_fast(self) -> bool {
        self == Int8Isa::Vnni512
    }

    /// Whether this CPU has the instructions of `self`.
    pub fn supported(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Int8Isa::Vnni512 => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(target_arch = "x86_64")]
            Int8Isa::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            Int8Isa::Portable => true,
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// Computes one tile.
    ///
    /// # Safety
    /// Every pointer in `t` must be valid for the reads and writes its
    /// description implies, and `self` must be supported by the CPU.
    #[inline]
    pub unsafe fn run(self, t: &QTile) {
        // SAFETY: the caller upholds this function's contract (valid tile
        // pointers, an ISA the CPU has), which is what the kernels require.
        unsafe {
            match self {
                #[cfg(target_arch = "x86_64")]
                Int8Isa::Vnni512 => match t.rows {
                    6 => vnni::tile::<6>(t),
                    5 => vnni::tile::<5>(t),
                    4 => vnni::tile::<4>(t),
                    3 => vnni::tile::<3>(t),
                    2 => vnni::tile::<2>(t),
                    _ => vnni::tile::<1>(t),
                },
                #[cfg(target_arch = "x86_64")]
                Int8Isa::Avx2 => match t.rows {
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

/// One int8 output tile: `rows x cols` outputs, the reduction in segments
/// of `seg_len` bytes (a multiple of 4), as [`crate::kernel::Tile`].
pub struct QTile<'a> {
    /// Rows present (1..=MR).
    pub rows: usize,
    /// Columns present (1..=NR).
    pub cols: usize,
    /// Bytes per segment, a multiple of 4.
    pub seg_len: usize,
    /// `segments * MR` row pointers to `seg_len` quantised inputs each.
    pub a: &'a [*const u8],
    /// The packed panel: per 4 reduction steps, `NR` groups of 4 weights.
    pub b: *const i8,
    /// `NR` biases.
    pub bias: *const f32,
    /// `NR` weight scales.
    pub wscale: *const f32,
    /// The input scale of each row's image.
    pub ascale: [f32; MR],
    /// Output, row-major with stride `ldc`.
    pub c: *mut f32,
    /// Distance between output rows, in floats.
    pub ldc: usize,
    /// Added before the ReLU, same layout as `c` (null for none).
    pub residual: *const f32,
    /// Whether to clamp at zero after the residual.
    pub relu: bool,
}

/// # Safety
/// As [`Int8Isa::run`].
unsafe fn portable_tile(t: &QTile) {
    // SAFETY: by this function's contract every pointer of `t` is valid for
    // the rows, columns and segment lengths it describes.
    unsafe {
        let segments = t.a.len() / MR;
        let mut acc = [[0i32; NR]; MR];
        let mut b = t.b;
        for s in 0..segments {
            for k in 0..t.seg_len {
                let (group, q) = (k / 4, k % 4);
                for (r, row) in acc.iter_mut().enumerate().take(t.rows) {
                    let a = i32::from(*t.a[s * MR + r].add(k));
                    for (j, v) in row.iter_mut().enumerate() {
                        *v += a * i32::from(*b.add((group * NR + j) * 4 + q));
                    }
                }
            }
            b = b.add(t.seg_len * NR);
        }
        for (r, row) in acc.iter().enumerate().take(t.rows) {
            for (j, &v) in row.iter().enumerate().take(t.cols) {
                let mut v = (v as f32).mul_add(*t.wscale.add(j) * t.ascale[r], *t.bias.add(j));
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
mod vnni {
    use super::{QTile, MR, NR};
    use std::arch::x86_64::*;

    /// The AVX-512 VNNI tile kernel, `R` rows unrolled: 4 x R accumulators
    /// of 16 `i32`, each `vpdpbusd` adding 4 reduction steps.
    ///
    /// # Safety
    /// The CPU must have AVX-512F, BW and VNNI, and every pointer in `t`
    /// must be valid as [`super::portable_tile`] requires.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn tile<const R: usize>(t: &QTile) {
        // SAFETY: by this function's contract the CPU has the instructions and
        // every pointer of `t` is valid for what it describes (the weights for
        // NR columns per 4 steps, bias and scales for NR values, the output and
        // residual for `cols` columns, written with masks).
        unsafe {
            let segments = t.a.len() / MR;
            let mut acc = [[_mm512_setzero_si512(); 4]; R];
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
                let mut a = [std::ptr::null::<u8>(); R];
                a.copy_from_slice(&t.a[s * MR..s * MR + R]);
                for k in (0..t.seg_len).step_by(4) {
                    let bk = b.add(k * NR);
                    let b0 = _mm512_loadu_si512(bk as *const _);
                    let b1 = _mm512_loadu_si512(bk.add(64) as *const _);
                    let b2 = _mm512_loadu_si512(bk.add(128) as *const _);
                    let b3 = _mm512_loadu_si512(bk.add(192) as *const _);
                    for r in 0..R {
                        let x = _mm512_set1_epi32((a[r].add(k) as *const i32).read_unaligned());
                        acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], x, b0);
                        acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], x, b1);
                        acc[r][2] = _mm512_dpbusd_epi32(acc[r][2], x, b2);
                        acc[r][3] = _mm512_dpbusd_epi32(acc[r][3], x, b3);
                    }
                }
                b = b.add(t.seg_len * NR);
            }
            let zero = _mm512_setzero_ps();
            for (r, row) in acc.iter().enumerate() {
                let ascale = _mm512_set1_ps(t.ascale[r]);
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
                    let scale = _mm512_mul_ps(_mm512_loadu_ps(t.wscale.add(first)), ascale);
                    let bias = _mm512_loadu_ps(t.bias.add(first));
                    let mut v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(v), scale, bias);
                    let off = r * t.ldc + first;
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
    use super::{QTile, MR, NR};
    use std::arch::x86_64::*;

    /// The AVX2 tile kernel. Without VNNI, 4 products are summed by widening
    /// the inputs (u8) and weights (i8) to 16 bits and `vpmaddwd`, which adds
    /// pairs into 32 bits exactly (at most 2 x 255 x 127), so the sums, and
    /// with the same epilogue the outputs, equal the other kernels' bits.
    /// Each accumulator holds 4 columns x 2 half-sums; 2 rows x 16 columns
    /// at a time fit the 16 registers.
    ///
    /// # Safety
    /// The CPU must have AVX2 and FMA, and every pointer in `t` must be
    /// valid as [`super::portable_tile`] requires.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn tile<const R: usize>(t: &QTile) {
        // SAFETY: by this function's contract the CPU has the instructions and
        // every pointer of `t` is valid for what it describes (the weights for
        // NR columns per 4 steps, bias and scales for NR values, the output and
        // residual for `cols` columns, written with masks).
        unsafe {
            let segments = t.a.len() / MR;
            let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            for pass in 0..NR / 16 {
                let col0 = pass * 16;
                if col0 >= t.cols {
                    break;
                }
                let mut r0 = 0;
                while r0 < R {
                    let rows = (R - r0).min(2);
                    let mut acc = [[_mm256_setzero_si256(); 4]; 2];
                    let mut b = t.b;
                    for s in 0..segments {
                        let a = [t.a[s * MR + r0], t.a[s * MR + r0 + (rows - 1)]];
                        for k in (0..t.seg_len).step_by(4) {
                            // 4 columns x 4 steps of weights per vector.
                            let bk = b.add(k * NR + col0 * 4);
                            let mut w = [_mm256_setzero_si256(); 4];
                            for (j, wj) in w.iter_mut().enumerate() {
                                let raw = _mm_loadu_si128(bk.add(16 * j) as *const __m128i);
                                *wj = _mm256_cvtepi8_epi16(raw);
                            }
                            for (r, row) in acc.iter_mut().enumerate().take(rows) {
                                let quad = (a[r].add(k) as *const i32).read_unaligned();
                                let x16 = _mm_cvtepu8_epi16(_mm_cvtsi32_si128(quad));
                                let x = _mm256_broadcastq_epi64(x16);
                                for (v, &wj) in row.iter_mut().zip(&w) {
                                    *v = _mm256_add_epi32(*v, _mm256_madd_epi16(x, wj));
                                }
                            }
                        }
                        b = b.add(t.seg_len * NR);
                    }
                    for (r, row) in acc.iter().enumerate().take(rows) {
                        let ascale = _mm256_set1_ps(t.ascale[r0 + r]);
                        for half in 0..2 {
                            let first = col0 + 8 * half;
                            if first >= t.cols {
                                break;
                            }
                            // Half-sums to sums: hadd gives columns
                            // 0 1 4 5 | 2 3 6 7; the permute orders them.
                            let sums = _mm256_hadd_epi32(row[2 * half], row[2 * half + 1]);
                            let sums = _mm256_permute4x64_epi64::<0xD8>(sums);
                            let left = (t.cols - first).min(8) as i32;
                            let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(left), lanes);
                            let scale = _mm256_mul_ps(_mm256_loadu_ps(t.wscale.add(first)), ascale);
                            let bias = _mm256_loadu_ps(t.bias.add(first));
                            let mut v = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums), scale, bias);
                            let off = (r0 + r) * t.ldc + first;
                            if !t.residual.is_null() {
                                v = _mm256_add_ps(v, _mm256_maskload_ps(t.residual.add(off), mask));
                            }
                            if t.relu {
                                v = _mm256_max_ps(v, _mm256_setzero_ps());
                            }
                            _mm256_maskstore_ps(t.c.add(off), mask, v);
                        }
                    }
                    r0 += rows;
                }
            }
        }
    }
}

/// A convolution's weights in int8 form.
#[derive(Debug)]
pub struct QuantConv {
    /// `ceil(cout / NR)` panels; in each, per 4 reduction steps (K ordered
    /// as the f32 panels), `NR` channels of 4 weights.
    packed: Vec<i8>,
    /// Per output channel, padded to whole panels (zero beyond `cout`).
    wscale: Vec<f32>,
}

impl QuantConv {
    /// Quantises the f32 panels of a convolution (`K x NR` per panel, K a
    /// multiple of 4). Each channel's largest weight maps to 127.
    pub fn from_panels(panels_f32: &[f32], k: usize, cout: usize) -> QuantConv {
        debug_assert_eq!(k % 4, 0);
        let panels = cout.div_ceil(NR);
        let mut wscale = vec![0f32; panels * NR];
        for (o, s) in wscale.iter_mut().enumerate().take(cout) {
            let (p, j) = (o / NR, o % NR);
            let max = (0..k)
                .map(|kk| panels_f32[(p * k + kk) * NR + j].abs())
                .fold(0f32, f32::max);
            *s = if max > 0.0 { max / 127.0 } else { 1.0 };
        }
        let mut packed = vec![0i8; panels * k * NR];
        for (o, scale) in wscale.iter().enumerate().take(cout) {
            let (p, j) = (o / NR, o % NR);
            let inv = 1.0 / scale;
            for kk in 0..k {
                let w = panels_f32[(p * k + kk) * NR + j];
                let q = (w * inv).round().clamp(-127.0, 127.0) as i8;
                packed[p * k * NR + (kk / 4) * 4 * NR + j * 4 + kk % 4] = q;
            }
        }
        QuantConv { packed, wscale }
    }

    /// `relu?(conv(x) + bias + residual?)` on a quantised input.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        isa: Int8Isa,
        pool: &Pool,
        x: &QAct,
        shape: &DirectShape,
        bias: &[f32],
        residual: Option<&Act>,
        relu: bool,
    ) -> Vec<f32> {
        let (m, cout) = (shape.m, shape.cout);
        let k = shape.kh * shape.seg_len();
        let mut out = pool.take(m * cout);
        if let Some(r) = residual {
            assert_eq!(r.data.len(), m * cout, "residual shape");
        }
        let c_ptr = SyncPtr(out.as_mut_ptr());
        let res_ptr = residual.map(|r| SyncPtr(r.data.as_ptr() as *mut f32));
        let per_image = shape.oh * shape.ow;
        shape.for_each_tile(&x.data, 1, |at| {
            let off = at.row0 * cout + at.col0;
            let mut ascale = [0f32; MR];
            for (r, s) in ascale.iter_mut().enumerate().take(at.rows) {
                *s = x.scales[(at.row0 + r) / per_image];
            }
            let tile = QTile {
                rows: at.rows,
                cols: at.cols,
                seg_len: shape.seg_len(),
                a: at.a,
                // SAFETY: the panel starts inside the packed weights
                // (panels * k * NR bytes).
                b: unsafe { self.packed.as_ptr().add(at.panel * k * NR) },
                // SAFETY: col0 < cout, and bias and scales are padded to
                // whole panels.
                bias: unsafe { bias.as_ptr().add(at.col0) },
                // SAFETY: as for the bias.
                wscale: unsafe { self.wscale.as_ptr().add(at.col0) },
                ascale,
                // SAFETY: row0 < m and col0 < cout: inside the m x cout output.
                c: unsafe { c_ptr.get().add(off) },
                ldc: cout,
                residual: match res_ptr {
                    // SAFETY: the residual has the output's shape.
                    Some(r) => unsafe { r.get().add(off) as *const f32 },
                    None => std::ptr::null(),
                },
                relu,
            };
            // SAFETY: the tile's pointers are within bounds (above), tasks
            // write disjoint tiles, and `isa` was checked when chosen.
            unsafe { isa.run(&tile) };
        });
        out
    }
}

/// An NHWC activation quantised to `u8`, padded by `pad` zero pixels.
#[derive(Debug)]
pub struct QAct {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub pad: usize,
    /// `n x (h + 2 pad) x (w + 2 pad) x c`.
    pub data: Vec<u8>,
    /// Per image: the value one step of `u8` stands for.
    pub scales: Vec<f32>,
}

/// Quantises `x` (expected non-negative: a ReLU output; anything below zero
/// becomes zero) per image, by its maximum, into a buffer padded by `pad`.
pub fn quantize(x: &Act, pad: usize) -> QAct {
    let row_len = x.w * x.c;
    let image_len = x.h * row_len;
    let scales: Vec<f32> = (0..x.n)
        .map(|img| {
            let max = x.data[img * image_len..(img + 1) * image_len]
                .par_chunks(row_len.max(1))
                .map(|row| row.iter().fold(0f32, |m, &v| m.max(v)))
                .reduce(|| 0.0, f32::max);
            if max > 0.0 && max.is_finite() {
                max / 255.0
            } else {
                1.0
            }
        })
        .collect();
    let (hp, wp, c) = (x.h + 2 * pad, x.w + 2 * pad, x.c);
    let mut data = vec![0u8; x.n * hp * wp * c];
    let side = pad * c;
    data.par_chunks_mut(wp * c)
        .enumerate()
        .for_each(|(row, dst)| {
            let (img, y) = (row / hp, row % hp);
            if y < pad || y >= pad + x.h {
                return;
            }
            let inv = 1.0 / scales[img];
            let s = (img * x.h + y - pad) * row_len;
            for (d, &v) in dst[side..side + row_len]
                .iter_mut()
                .zip(&x.data[s..s + row_len])
            {
                // Saturating: negatives (and NaN) to 0, the maximum to 255.
                *d = (v * inv + 0.5) as u8;
            }
        });
    QAct {
        n: x.n,
        h: x.h,
        w: x.w,
        c: x.c,
        pad,
        data,
        scales,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every int8 kernel the CPU has computes exactly what the portable one
    /// does (integer sums; the epilogue in the same float operations up to
    /// fused rounding), on partial tiles, with and without residual and ReLU.
    #[test]
    fn every_int8_kernel_matches_the_portable_one_on_partial_tiles() {
        let mut seed = 11u32;
        let mut next = move || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            seed >> 8
        };
        for (segments, seg_len) in [(3, 12), (1, 256), (3, 192)] {
            let ldc = NR + 3;
            let rows_data: Vec<Vec<u8>> = (0..segments * MR)
                .map(|_| (0..seg_len).map(|_| next() as u8).collect())
                .collect();
            let a: Vec<*const u8> = rows_data.iter().map(|r| r.as_ptr()).collect();
            let b: Vec<i8> = (0..segments * seg_len * NR)
                .map(|_| ((next() % 255) as i32 - 127) as i8)
                .collect();
            let bias: Vec<f32> = (0..NR).map(|_| next() as f32 / 1e6 - 8.0).collect();
            let wscale: Vec<f32> = (0..NR).map(|_| (next() % 100 + 1) as f32 * 1e-4).collect();
            let residual: Vec<f32> = (0..MR * ldc).map(|_| next() as f32 / 1e6 - 8.0).collect();
            for rows in 1..=MR {
                for cols in [1, 7, 9, 15, 16, 17, 36, 40, NR] {
                    for (with_residual, relu) in [(false, false), (true, true)] {
                        let run = |isa: Int8Isa| {
                            let mut c = vec![f32::NAN; MR * ldc];
                            let mut ascale = [0f32; MR];
                            for (r, s) in ascale.iter_mut().enumerate() {
                                *s = 0.01 * (r + 1) as f32;
                            }
                            let t = QTile {
                                rows,
                                cols,
                                seg_len,
                                a: &a,
                                b: b.as_ptr(),
                                bias: bias.as_ptr(),
                                wscale: wscale.as_ptr(),
                                ascale,
                                c: c.as_mut_ptr(),
                                ldc,
                                residual: if with_residual {
                                    residual.as_ptr()
                                } else {
                                    std::ptr::null()
                                },
                                relu,
                            };
                            // SAFETY: every pointer covers the tile it
                            // describes, and `isa` is supported.
                            unsafe { isa.run(&t) };
                            c
                        };
                        let want = run(Int8Isa::Portable);
                        for isa in Int8Isa::ALL.into_iter().filter(|i| i.supported()) {
                            let got = run(isa);
                            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                                if i / ldc < rows && i % ldc < cols {
                                    // Exact integer sums, the same epilogue.
                                    assert_eq!(
                                        g.to_bits(),
                                        w.to_bits(),
                                        "{isa:?} {rows}x{cols} at {i}: {g} vs {w}"
                                    );
                                } else {
                                    assert!(g.is_nan(), "{isa:?} wrote outside at {i}");
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The packed weights and the input codes reproduce the f32 product
    /// they stand for, to within the rounding of 8 bits.
    #[test]
    fn quantised_values_stand_for_the_originals() {
        let x = Act {
            n: 2,
            h: 2,
            w: 3,
            c: 4,
            data: (0..48)
                .map(|i| if i < 24 { i as f32 * 0.5 } else { 0.0 })
                .collect(),
        };
        let q = quantize(&x, 1);
        assert_eq!(q.data.len(), 2 * 4 * 5 * 4);
        // Image 0's max (11.5) is 255; image 1 (all zeros) keeps scale 1.
        assert!((q.scales[0] - 11.5 / 255.0).abs() < 1e-7);
        assert_eq!(q.scales[1], 1.0);
        // Pixel (1, 2) channel 3 of image 0 = 23 * 0.5 at padded (2, 3).
        assert_eq!(q.data[(2 * 5 + 3) * 4 + 3], 255);
        assert_eq!(q.data[0], 0);
        for (i, &v) in x.data[..24].iter().enumerate() {
            let (y, rest) = (i / 12, i % 12);
            let got = q.data[((y + 1) * 5 + 1) * 4 + rest] as f32 * q.scales[0];
            assert!(
                (got - v).abs() <= q.scales[0] / 2.0 + 1e-6,
                "{i}: {got} vs {v}"
            );
        }

        let (k, cout) = (8, 3);
        let f: Vec<f32> = (0..k * NR)
            .map(|i| {
                let (kk, j) = (i / NR, i % NR);
                if j < cout {
                    (kk as f32 - 3.5) * (j + 1) as f32 * 0.01
                } else {
                    0.0
                }
            })
            .collect();
        let qc = QuantConv::from_panels(&f, k, cout);
        for j in 0..cout {
            for kk in 0..k {
                let code = qc.packed[(kk / 4) * 4 * NR + j * 4 + kk % 4];
                let back = code as f32 * qc.wscale[j];
                let want = f[kk * NR + j];
                assert!((back - want).abs() <= qc.wscale[j] / 2.0 + 1e-7, "{j} {kk}");
            }
            assert_eq!(
                (0..k)
                    .map(|kk| qc.packed[(kk / 4) * 4 * NR + j * 4 + kk % 4].unsigned_abs())
                    .max(),
                Some(127)
            );
        }
    }
}
