//! 3x3 stride-1 convolutions by Winograd's F(2x2, 3x3) algorithm.
//!
//! Each 2x2 block of outputs is computed from a 4x4 input patch with 16
//! products per input/output channel pair instead of 36, so that the 3x3
//! convolutions, nearly half of ResNet-50's arithmetic, need 2.25 times
//! fewer multiply-adds. The transforms only add and halve, which keeps
//! float32 error at the level of the direct convolution.
//!
//! Work is split into blocks of output tiles small enough that a block's
//! transformed input (`V`) and products (`M`) stay in the core's L2 cache:
//! input transform, 16 matrix products with the register kernel, output
//! transform with bias, residual and ReLU, all in one task.

// The transforms index their 4x4 patches as the matrix formulas do.
#![allow(clippy::needless_range_loop)]

use std::cell::RefCell;

use rayon::prelude::*;

use super::conv::{Act, Pool};
use super::kernel::{Isa, Tile, MR, NR};
use super::SyncPtr;

/// The zero bias of the 16 products (the real bias is added once, after
/// the output transform).
static ZERO_BIAS: [f32; NR] = [0.0; NR];

/// Channels handled together by the transforms (an AVX-512 vector).
const LANES: usize = 16;
/// Channels per AVX2 vector.
const AVX2_LANES: usize = 8;

/// Floats of `V` plus `M` per task, about 3/4 of a 1 MiB L2.
const BLOCK_FLOATS: usize = 196_608;

thread_local! {
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

#[derive(Debug)]
pub struct Winograd {
    cin: usize,
    cout: usize,
    /// `U = G g G^T` for each of the 16 positions: `[16][panels][cin][NR]`.
    packed: Vec<f32>,
    /// Padded to whole panels.
    bias: Vec<f32>,
}

impl Winograd {
    /// Transforms the folded 3x3 weights (`w[o][ci][ky][kx] * scale[o]`,
    /// OIHW) once, in f64.
    pub fn new(weight: &[f32], scale: &[f64], bias: &[f32], cout: usize, cin: usize) -> Winograd {
        const G: [[f64; 3]; 4] = [
            [1.0, 0.0, 0.0],
            [0.5, 0.5, 0.5],
            [0.5, -0.5, 0.5],
            [0.0, 0.0, 1.0],
        ];
        let panels = cout.div_ceil(NR);
        let mut packed = vec![0f32; 16 * panels * cin * NR];
        for o in 0..cout {
            let (p, j) = (o / NR, o % NR);
            for ci in 0..cin {
                let g =
                    |y: usize, x: usize| weight[((o * cin + ci) * 3 + y) * 3 + x] as f64 * scale[o];
                // G g: 4x3, then (G g) G^T: 4x4.
                let mut gg = [[0f64; 3]; 4];
                for (r, row) in gg.iter_mut().enumerate() {
                    for (x, v) in row.iter_mut().enumerate() {
                        *v = (0..3).map(|y| G[r][y] * g(y, x)).sum();
                    }
                }
                for r in 0..4 {
                    for c in 0..4 {
                        let u: f64 = (0..3).map(|x| gg[r][x] * G[c][x]).sum();
                        let xi = r * 4 + c;
                        packed[((xi * panels + p) * cin + ci) * NR + j] = u as f32;
                    }
                }
            }
        }
        let mut padded_bias = vec![0f32; panels * NR];
        padded_bias[..cout].copy_from_slice(&bias[..cout]);
        Winograd {
            cin,
            cout,
            packed,
            bias: padded_bias,
        }
    }

    /// Whether this input is worth the transforms: each transformed weight
    /// is used once per 2x2 tile, and with few tiles the 16/9 larger
    /// weights cost more memory traffic than the saved arithmetic (16
    /// tiles, ResNet-50's layer4 at 224x224, still gained a third).
    pub fn worth_it(x: &Act) -> bool {
        // Per image, not per batch: an image must give the same logit
        // whatever it is batched with (a sharded run equals an unsharded
        // one), and the two algorithms round differently.
        x.h.div_ceil(2) * x.w.div_ceil(2) >= 16
    }

    /// `relu?(conv3x3(x, pad 1) + bias + residual?)`.
    pub fn forward(
        &self,
        isa: Isa,
        pool: &Pool,
        x: &Act,
        residual: Option<&Act>,
        relu: bool,
    ) -> Act {
        assert_eq!(x.c, self.cin, "channel count");
        let (cin, cout) = (self.cin, self.cout);
        let (th, tw) = (x.h.div_ceil(2), x.w.div_ceil(2));
        let tiles = x.n * th * tw;
        // One zero row and column before the image (the convolution's
        // padding) and enough after it for whole 4x4 patches.
        let (hp, wp) = (2 * th + 2, 2 * tw + 2);
        let padded = pad_nhwc(pool, x, hp, wp);
        let mut out = pool.take(x.n * x.h * x.w * cout);
        if let Some(r) = residual {
            assert_eq!(r.data.len(), out.len(), "residual shape");
        }

        let panels = cout.div_ceil(NR);
        let (tb, nc) = blocking(tiles, panels, cin);
        let t_blocks = tiles.div_ceil(tb);
        let n_blocks = panels.div_ceil(nc);
        let out_ptr = SyncPtr(out.as_mut_ptr());
        let src = &padded[..];
        let geom = Geometry {
            n: x.n,
            h: x.h,
            w: x.w,
            th,
            tw,
            hp,
            wp,
        };

        (0..t_blocks * n_blocks).into_par_iter().for_each(|task| {
            let (tbi, nb) = (task / n_blocks, task % n_blocks);
            let t0 = tbi * tb;
            let t1 = (t0 + tb).min(tiles);
            let rows = t1 - t0;
            let p0 = nb * nc;
            let p1 = (p0 + nc).min(panels);
            let ncols = (p1 - p0) * NR;
            SCRATCH.with(|scratch| {
                let mut scratch = scratch.borrow_mut();
                let need = 16 * rows * (cin + ncols);
                if scratch.len() < need {
                    scratch.resize(need, 0.0);
                }
                let (v, m) = scratch.split_at_mut(16 * rows * cin);
                let m = &mut m[..16 * rows * ncols];
                transform_input(isa, src, &geom, cin, t0, t1, v);
                for xi in 0..16 {
                    let v_xi = &v[xi * rows * cin..(xi + 1) * rows * cin];
                    let m_xi = m[xi * rows * ncols..].as_mut_ptr();
                    let mut table = [std::ptr::null::<f32>(); MR];
                    for mp in 0..rows.div_ceil(MR) {
                        let r0 = mp * MR;
                        for (r, slot) in table.iter_mut().enumerate() {
                            let row = (r0 + r).min(rows - 1);
                            *slot = v_xi[row * cin..].as_ptr();
                        }
                        for p in p0..p1 {
                            let tile = Tile {
                                rows: (rows - r0).min(MR),
                                // Columns past `cout` are never read back
                                // (the output transform stops at `cout`).
                                cols: (cout - p * NR).min(NR),
                                seg_len: cin,
                                a: &table,
                                // SAFETY: inside U (16 * panels * cin * NR)
                                // and inside M (rows * ncols per position).
                                b: unsafe {
                                    self.packed.as_ptr().add((xi * panels + p) * cin * NR)
                                },
                                bias: ZERO_BIAS.as_ptr(),
                                // SAFETY: r0 < rows and p - p0 < this task's
                                // panels: inside this position's M.
                                c: unsafe { m_xi.add(r0 * ncols + (p - p0) * NR) },
                                ldc: ncols,
                                residual: std::ptr::null(),
                                relu: false,
                            };
                            // SAFETY: pointers built in bounds above.
                            unsafe { isa.run(&tile) };
                        }
                    }
                }
                let cols = (p0 * NR, (p1 * NR).min(cout));
                let epilogue = Epilogue {
                    bias: &self.bias,
                    residual: residual.map(|r| &r.data[..]),
                    relu,
                    cout,
                };
                // SAFETY: this task alone writes these tiles' pixels in
                // columns `cols` of the output.
                unsafe {
                    transform_output(
                        isa,
                        m,
                        rows,
                        ncols,
                        &geom,
                        t0,
                        cols,
                        &epilogue,
                        out_ptr.get(),
                    )
                };
            });
        });
        pool.give(padded);
        Act {
            n: x.n,
            h: x.h,
            w: x.w,
            c: cout,
            data: out,
        }
    }
}

/// Where the tiles lie.
struct Geometry {
    n: usize,
    h: usize,
    w: usize,
    th: usize,
    tw: usize,
    hp: usize,
    wp: usize,
}

struct Epilogue<'a> {
    bias: &'a [f32],
    residual: Option<&'a [f32]>,
    relu: bool,
    cout: usize,
}

/// Tiles per task and column panels per task: as many of both as fit the
/// L2 budget, with enough tasks for every thread.
fn blocking(tiles: usize, panels: usize, cin: usize) -> (usize, usize) {
    let threads = rayon::current_num_threads().max(1);
    let tb_for = |nc: usize| (BLOCK_FLOATS / (16 * (cin + nc * NR))).max(MR) / MR * MR;
    let mut nc = panels;
    while nc > 1 && tb_for(nc) < 2 * MR {
        nc = nc.div_ceil(2);
    }
    let mut tb = tb_for(nc).min(tiles.div_ceil(MR) * MR);
    let tasks = |tb: usize, nc: usize| tiles.div_ceil(tb) * panels.div_ceil(nc);
    while tasks(tb, nc) < 4 * threads && nc > 1 {
        nc = nc.div_ceil(2);
        tb = tb_for(nc).min(tb);
    }
    while tasks(tb, nc) < 4 * threads && tb > MR {
        tb = (tb / 2).max(MR).div_ceil(MR) * MR;
    }
    (tb, nc)
}

/// Copies `x` into a `hp x wp` frame with one zero row/column before it
/// and zeros after it.
fn pad_nhwc(pool: &Pool, x: &Act, hp: usize, wp: usize) -> Vec<f32> {
    let c = x.c;
    let mut out = pool.take(x.n * hp * wp * c);
    let row_len = x.w * c;
    out.par_chunks_mut(wp * c)
        .enumerate()
        .for_each(|(row, dst)| {
            let (img, y) = (row / hp, row % hp);
            if y == 0 || y > x.h {
                dst.fill(0.0);
                return;
            }
            let s = (img * x.h + y - 1) * row_len;
            dst[..c].fill(0.0);
            dst[c..c + row_len].copy_from_slice(&x.data[s..s + row_len]);
            dst[c + row_len..].fill(0.0);
        });
    out
}

fn transform_input(
    isa: Isa,
    src: &[f32],
    g: &Geometry,
    cin: usize,
    t0: usize,
    t1: usize,
    v: &mut [f32],
) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: Avx512 is only chosen where the CPU has it.
        Isa::Avx512 => unsafe { transform_input_avx512(src, g, cin, t0, t1, v) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: Avx2 is only chosen where the CPU has AVX2 and FMA.
        Isa::Avx2 => unsafe { transform_input_avx2(src, g, cin, t0, t1, v) },
        _ => transform_input_body(src, g, cin, t0, t1, v),
    }
}

/// As [`transform_input_body`], with the 16 values of a patch held in
/// registers (the portable version, vectorised by the compiler, spilled
/// its arrays to the stack and ran ten times slower).
///
/// # Safety
/// The CPU must have AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn transform_input_avx512(
    src: &[f32],
    g: &Geometry,
    cin: usize,
    t0: usize,
    t1: usize,
    v: &mut [f32],
) {
    // SAFETY: by this function's contract the CPU has AVX-512F; the slices bound
    // every access.
    unsafe {
        use std::arch::x86_64::*;
        let rows = t1 - t0;
        let per_image = g.th * g.tw;
        assert!(v.len() >= 16 * rows * cin);
        let (sp, vp) = (src.as_ptr(), v.as_mut_ptr());
        for t in t0..t1 {
            let (img, rest) = (t / per_image, t % per_image);
            let (ty, tx) = (rest / g.tw, rest % g.tw);
            let i = t - t0;
            // The patch's last row and column lie inside the padded frame.
            assert!(((img * g.hp + 2 * ty + 3) * g.wp + 2 * tx + 4) * cin <= src.len());
            let mut ch = 0;
            while ch < cin {
                let lanes = LANES.min(cin - ch);
                let mask: __mmask16 = if lanes == LANES {
                    0xffff
                } else {
                    (1u16 << lanes) - 1
                };
                let at = |r: usize, c: usize| {
                    sp.add(((img * g.hp + 2 * ty + r) * g.wp + 2 * tx + c) * cin + ch)
                };
                let mut t = [[_mm512_setzero_ps(); 4]; 4];
                for c in 0..4 {
                    let d0 = _mm512_maskz_loadu_ps(mask, at(0, c));
                    let d1 = _mm512_maskz_loadu_ps(mask, at(1, c));
                    let d2 = _mm512_maskz_loadu_ps(mask, at(2, c));
                    let d3 = _mm512_maskz_loadu_ps(mask, at(3, c));
                    t[0][c] = _mm512_sub_ps(d0, d2);
                    t[1][c] = _mm512_add_ps(d1, d2);
                    t[2][c] = _mm512_sub_ps(d2, d1);
                    t[3][c] = _mm512_sub_ps(d1, d3);
                }
                for (r, tr) in t.iter().enumerate() {
                    let o = [
                        _mm512_sub_ps(tr[0], tr[2]),
                        _mm512_add_ps(tr[1], tr[2]),
                        _mm512_sub_ps(tr[2], tr[1]),
                        _mm512_sub_ps(tr[1], tr[3]),
                    ];
                    for (c, &ov) in o.iter().enumerate() {
                        _mm512_mask_storeu_ps(
                            vp.add(((r * 4 + c) * rows + i) * cin + ch),
                            mask,
                            ov,
                        );
                    }
                }
                ch += lanes;
            }
        }
    }
}

/// As [`transform_input_avx512`], eight channels at a time.
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn transform_input_avx2(
    src: &[f32],
    g: &Geometry,
    cin: usize,
    t0: usize,
    t1: usize,
    v: &mut [f32],
) {
    // SAFETY: by this function's contract the CPU has AVX2 and FMA; the slices bound
    // every access.
    unsafe {
        use std::arch::x86_64::*;
        let lane_ids = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let rows = t1 - t0;
        let per_image = g.th * g.tw;
        assert!(v.len() >= 16 * rows * cin);
        let (sp, vp) = (src.as_ptr(), v.as_mut_ptr());
        for t in t0..t1 {
            let (img, rest) = (t / per_image, t % per_image);
            let (ty, tx) = (rest / g.tw, rest % g.tw);
            let i = t - t0;
            // The patch's last row and column lie inside the padded frame.
            assert!(((img * g.hp + 2 * ty + 3) * g.wp + 2 * tx + 4) * cin <= src.len());
            let mut ch = 0;
            while ch < cin {
                let lanes = AVX2_LANES.min(cin - ch);
                let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(lanes as i32), lane_ids);
                let at = |r: usize, c: usize| {
                    sp.add(((img * g.hp + 2 * ty + r) * g.wp + 2 * tx + c) * cin + ch)
                };
                let mut t = [[_mm256_setzero_ps(); 4]; 4];
                for c in 0..4 {
                    let d0 = _mm256_maskload_ps(at(0, c), mask);
                    let d1 = _mm256_maskload_ps(at(1, c), mask);
                    let d2 = _mm256_maskload_ps(at(2, c), mask);
                    let d3 = _mm256_maskload_ps(at(3, c), mask);
                    t[0][c] = _mm256_sub_ps(d0, d2);
                    t[1][c] = _mm256_add_ps(d1, d2);
                    t[2][c] = _mm256_sub_ps(d2, d1);
                    t[3][c] = _mm256_sub_ps(d1, d3);
                }
                for (r, tr) in t.iter().enumerate() {
                    let o = [
                        _mm256_sub_ps(tr[0], tr[2]),
                        _mm256_add_ps(tr[1], tr[2]),
                        _mm256_sub_ps(tr[2], tr[1]),
                        _mm256_sub_ps(tr[1], tr[3]),
                    ];
                    for (c, &ov) in o.iter().enumerate() {
                        _mm256_maskstore_ps(vp.add(((r * 4 + c) * rows + i) * cin + ch), mask, ov);
                    }
                }
                ch += lanes;
            }
        }
    }
}

/// `V = B^T d B` for every tile in `t0..t1` and every channel, stored as
/// `[16][tile][cin]`.
#[inline(always)]
fn transform_input_body(
    src: &[f32],
    g: &Geometry,
    cin: usize,
    t0: usize,
    t1: usize,
    v: &mut [f32],
) {
    let rows = t1 - t0;
    let per_image = g.th * g.tw;
    for t in t0..t1 {
        let (img, rest) = (t / per_image, t % per_image);
        let (ty, tx) = (rest / g.tw, rest % g.tw);
        let base = |r: usize| ((img * g.hp + 2 * ty + r) * g.wp + 2 * tx) * cin;
        let i = t - t0;
        let mut ch = 0;
        while ch < cin {
            let lanes = LANES.min(cin - ch);
            let mut d = [[[0f32; LANES]; 4]; 4];
            for (r, drow) in d.iter_mut().enumerate() {
                let b = base(r) + ch;
                for (c, dv) in drow.iter_mut().enumerate() {
                    load(dv, &src[b + c * cin..], lanes);
                }
            }
            // t = B^T d
            let mut t = [[[0f32; LANES]; 4]; 4];
            for c in 0..4 {
                for l in 0..LANES {
                    t[0][c][l] = d[0][c][l] - d[2][c][l];
                    t[1][c][l] = d[1][c][l] + d[2][c][l];
                    t[2][c][l] = d[2][c][l] - d[1][c][l];
                    t[3][c][l] = d[1][c][l] - d[3][c][l];
                }
            }
            // V = t B
            for (r, trow) in t.iter().enumerate() {
                let mut o = [[0f32; LANES]; 4];
                for l in 0..LANES {
                    o[0][l] = trow[0][l] - trow[2][l];
                    o[1][l] = trow[1][l] + trow[2][l];
                    o[2][l] = trow[2][l] - trow[1][l];
                    o[3][l] = trow[1][l] - trow[3][l];
                }
                for (c, ov) in o.iter().enumerate() {
                    let xi = r * 4 + c;
                    let at = (xi * rows + i) * cin + ch;
                    store(&mut v[at..], ov, lanes);
                }
            }
            ch += lanes;
        }
    }
}

/// Transforms the tiles `t0..t0 + rows` back to pixels with the kernel
/// `isa` picks.
///
/// # Safety
/// `isa` must be supported by the CPU, and `out` valid as
/// [`transform_output_body`] requires.
#[allow(clippy::too_many_arguments)]
unsafe fn transform_output(
    isa: Isa,
    m: &[f32],
    rows: usize,
    ncols: usize,
    g: &Geometry,
    t0: usize,
    cols: (usize, usize),
    e: &Epilogue,
    out: *mut f32,
) {
    // SAFETY: the caller upholds this function's contract, which is that of both
    // bodies.
    unsafe {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => transform_output_avx512(m, rows, ncols, g, t0, cols, e, out),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => transform_output_avx2(m, rows, ncols, g, t0, cols, e, out),
            _ => transform_output_body(m, rows, ncols, g, t0, cols, e, out),
        }
    }
}

/// As [`transform_output_body`], in registers.
///
/// # Safety
/// The CPU must have AVX-512F, and `out` valid as
/// [`transform_output_body`] requires.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn transform_output_avx512(
    m: &[f32],
    rows: usize,
    ncols: usize,
    g: &Geometry,
    t0: usize,
    cols: (usize, usize),
    e: &Epilogue,
    out: *mut f32,
) {
    // SAFETY: by this function's contract the CPU has AVX-512F and `out` is valid
    // for the pixels and columns this call writes.
    unsafe {
        use std::arch::x86_64::*;
        let per_image = g.th * g.tw;
        let cout = e.cout;
        assert!(m.len() >= 16 * rows * ncols && cols.1 <= e.bias.len());
        let mp = m.as_ptr();
        let zero = _mm512_setzero_ps();
        for i in 0..rows {
            let t = t0 + i;
            let (img, rest) = (t / per_image, t % per_image);
            let (ty, tx) = (rest / g.tw, rest % g.tw);
            let mut col = cols.0;
            while col < cols.1 {
                let lanes = LANES.min(cols.1 - col);
                let mask: __mmask16 = if lanes == LANES {
                    0xffff
                } else {
                    (1u16 << lanes) - 1
                };
                let local = col - cols.0;
                let at = |r: usize, c: usize| mp.add(((r * 4 + c) * rows + i) * ncols + local);
                let mut s = [[zero; 4]; 2];
                for c in 0..4 {
                    let m0 = _mm512_maskz_loadu_ps(mask, at(0, c));
                    let m1 = _mm512_maskz_loadu_ps(mask, at(1, c));
                    let m2 = _mm512_maskz_loadu_ps(mask, at(2, c));
                    let m3 = _mm512_maskz_loadu_ps(mask, at(3, c));
                    s[0][c] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
                    s[1][c] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
                }
                let bias = _mm512_maskz_loadu_ps(mask, e.bias.as_ptr().add(col));
                for (r, sr) in s.iter().enumerate() {
                    let y = 2 * ty + r;
                    if y >= g.h {
                        continue;
                    }
                    let yv = [
                        _mm512_add_ps(_mm512_add_ps(sr[0], sr[1]), sr[2]),
                        _mm512_sub_ps(_mm512_sub_ps(sr[1], sr[2]), sr[3]),
                    ];
                    for (c, &v) in yv.iter().enumerate() {
                        let x = 2 * tx + c;
                        if x >= g.w {
                            continue;
                        }
                        let at = ((img * g.h + y) * g.w + x) * cout + col;
                        let mut v = _mm512_add_ps(v, bias);
                        if let Some(res) = e.residual {
                            debug_assert!(at + lanes <= res.len());
                            v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, res.as_ptr().add(at)));
                        }
                        if e.relu {
                            v = _mm512_max_ps(v, zero);
                        }
                        _mm512_mask_storeu_ps(out.add(at), mask, v);
                    }
                }
                col += lanes;
            }
        }
    }
}

/// As [`transform_output_avx512`], eight channels at a time.
///
/// # Safety
/// The CPU must have AVX2 and FMA, and `out` valid as
/// [`transform_output_body`] requires.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn transform_output_avx2(
    m: &[f32],
    rows: usize,
    ncols: usize,
    g: &Geometry,
    t0: usize,
    cols: (usize, usize),
    e: &Epilogue,
    out: *mut f32,
) {
    // SAFETY: by this function's contract the CPU has AVX2 and FMA and `out` is valid
    // for the pixels and columns this call writes.
    unsafe {
        use std::arch::x86_64::*;
        let lane_ids = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let per_image = g.th * g.tw;
        let cout = e.cout;
        assert!(m.len() >= 16 * rows * ncols && cols.1 <= e.bias.len());
        let mp = m.as_ptr();
        let zero = _mm256_setzero_ps();
        for i in 0..rows {
            let t = t0 + i;
            let (img, rest) = (t / per_image, t % per_image);
            let (ty, tx) = (rest / g.tw, rest % g.tw);
            let mut col = cols.0;
            while col < cols.1 {
                let lanes = AVX2_LANES.min(cols.1 - col);
                let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(lanes as i32), lane_ids);
                let local = col - cols.0;
                let at = |r: usize, c: usize| mp.add(((r * 4 + c) * rows + i) * ncols + local);
                let mut s = [[zero; 4]; 2];
                for c in 0..4 {
                    let m0 = _mm256_maskload_ps(at(0, c), mask);
                    let m1 = _mm256_maskload_ps(at(1, c), mask);
                    let m2 = _mm256_maskload_ps(at(2, c), mask);
                    let m3 = _mm256_maskload_ps(at(3, c), mask);
                    s[0][c] = _mm256_add_ps(_mm256_add_ps(m0, m1), m2);
                    s[1][c] = _mm256_sub_ps(_mm256_sub_ps(m1, m2), m3);
                }
                let bias = _mm256_maskload_ps(e.bias.as_ptr().add(col), mask);
                for (r, sr) in s.iter().enumerate() {
                    let y = 2 * ty + r;
                    if y >= g.h {
                        continue;
                    }
                    let yv = [
                        _mm256_add_ps(_mm256_add_ps(sr[0], sr[1]), sr[2]),
                        _mm256_sub_ps(_mm256_sub_ps(sr[1], sr[2]), sr[3]),
                    ];
                    for (c, &v) in yv.iter().enumerate() {
                        let x = 2 * tx + c;
                        if x >= g.w {
                            continue;
                        }
                        let at = ((img * g.h + y) * g.w + x) * cout + col;
                        let mut v = _mm256_add_ps(v, bias);
                        if let Some(res) = e.residual {
                            debug_assert!(at + lanes <= res.len());
                            v = _mm256_add_ps(v, _mm256_maskload_ps(res.as_ptr().add(at), mask));
                        }
                        if e.relu {
                            v = _mm256_max_ps(v, zero);
                        }
                        _mm256_maskstore_ps(out.add(at), mask, v);
                    }
                }
                col += lanes;
            }
        }
    }
}

/// `Y = A^T M A` for each tile, plus bias and residual, ReLU, written to
/// the pixels of the tile that lie inside the image, columns `cols`.
///
/// # Safety
/// `out` must point to the NHWC output (`cout` channels per pixel) and be
/// valid for writes to every pixel of tiles `t0..t0 + rows` that lies inside
/// the image, columns `cols`, and no other thread may access them meanwhile.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn transform_output_body(
    m: &[f32],
    rows: usize,
    ncols: usize,
    g: &Geometry,
    t0: usize,
    cols: (usize, usize),
    e: &Epilogue,
    out: *mut f32,
) {
    // SAFETY: by this function's contract `out` is valid for writes to the pixels of
    // tiles `t0..t0 + rows` inside the image, columns `cols`, and no other
    // thread writes them.
    unsafe {
        let per_image = g.th * g.tw;
        debug_assert!(t0 + rows <= g.n * per_image);
        let cout = e.cout;
        for i in 0..rows {
            let t = t0 + i;
            let (img, rest) = (t / per_image, t % per_image);
            let (ty, tx) = (rest / g.tw, rest % g.tw);
            let mut col = cols.0;
            while col < cols.1 {
                let lanes = LANES.min(cols.1 - col);
                let local = col - cols.0;
                let mut mm = [[[0f32; LANES]; 4]; 4];
                for (r, mrow) in mm.iter_mut().enumerate() {
                    for (c, mv) in mrow.iter_mut().enumerate() {
                        let at = ((r * 4 + c) * rows + i) * ncols + local;
                        load(mv, &m[at..], lanes);
                    }
                }
                // s = A^T m: 2x4
                let mut s = [[[0f32; LANES]; 4]; 2];
                for c in 0..4 {
                    for l in 0..LANES {
                        s[0][c][l] = mm[0][c][l] + mm[1][c][l] + mm[2][c][l];
                        s[1][c][l] = mm[1][c][l] - mm[2][c][l] - mm[3][c][l];
                    }
                }
                let bias = &e.bias[col..col + lanes];
                for (r, srow) in s.iter().enumerate() {
                    let y = 2 * ty + r;
                    if y >= g.h {
                        continue;
                    }
                    let mut yv = [[0f32; LANES]; 2];
                    for l in 0..LANES {
                        yv[0][l] = srow[0][l] + srow[1][l] + srow[2][l];
                        yv[1][l] = srow[1][l] - srow[2][l] - srow[3][l];
                    }
                    for (c, yrow) in yv.iter_mut().enumerate() {
                        let x = 2 * tx + c;
                        if x >= g.w {
                            continue;
                        }
                        let at = ((img * g.h + y) * g.w + x) * cout + col;
                        for l in 0..lanes {
                            yrow[l] += bias[l];
                        }
                        if let Some(res) = e.residual {
                            let mut rv = [0f32; LANES];
                            load(&mut rv, &res[at..], lanes);
                            for l in 0..LANES {
                                yrow[l] += rv[l];
                            }
                        }
                        if e.relu {
                            for v in yrow.iter_mut() {
                                *v = v.max(0.0);
                            }
                        }
                        if lanes == LANES {
                            std::ptr::copy_nonoverlapping(yrow.as_ptr(), out.add(at), LANES);
                        } else {
                            std::ptr::copy_nonoverlapping(yrow.as_ptr(), out.add(at), lanes);
                        }
                    }
                }
                col += lanes;
            }
        }
    }
}

/// Copies `lanes` values; the common full case has a constant length, so
/// that it compiles to one vector move rather than a call to memmove.
#[inline(always)]
fn load(dst: &mut [f32; LANES], src: &[f32], lanes: usize) {
    if lanes == LANES {
        dst.copy_from_slice(&src[..LANES]);
    } else {
        dst[..lanes].copy_from_slice(&src[..lanes]);
    }
}

#[inline(always)]
fn store(dst: &mut [f32], src: &[f32; LANES], lanes: usize) {
    if lanes == LANES {
        dst[..LANES].copy_from_slice(src);
    } else {
        dst[..lanes].copy_from_slice(&src[..lanes]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocking_fits_the_cache_and_feeds_every_thread() {
        let threads = rayon::current_num_threads();
        for (tiles, panels, cin) in [
            (784, 1, 64),
            (196, 2, 128),
            (49, 4, 256),
            (6272, 4, 256),
            (33, 8, 512),
        ] {
            let (tb, nc) = blocking(tiles, panels, cin);
            assert!(
                tb >= MR && tb % MR == 0 && nc >= 1,
                "{tiles} {panels} {cin}"
            );
            assert!(16 * tb * (cin + nc * NR) <= BLOCK_FLOATS.max(16 * MR * (cin + NR)));
            let tasks = tiles.div_ceil(tb) * panels.div_ceil(nc);
            assert!(tasks >= (4 * threads).min(tiles.div_ceil(MR) * panels));
        }
    }
}
