//! Numeric kernels: convolution (im2col + gemm), deconvolution, resizing, ...

use cnnspot_linalg::matmul;
use rayon::prelude::*;

/// An ncnn blob: 1-D (`w`), 2-D (`h`x`w`) or 3-D (`c`x`h`x`w`), row-major.
#[derive(Debug, Clone)]
pub(crate) struct Tensor {
    pub dims: u8,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub data: Vec<f32>,
}

impl Tensor {
    pub(crate) fn new3(c: usize, h: usize, w: usize, data: Vec<f32>) -> Tensor {
        Tensor {
            dims: 3,
            c,
            h,
            w,
            data,
        }
    }
    pub(crate) fn new1(w: usize, data: Vec<f32>) -> Tensor {
        Tensor {
            dims: 1,
            c: 1,
            h: 1,
            w,
            data,
        }
    }
    pub(crate) fn plane(&self) -> usize {
        self.h * self.w
    }
    pub(crate) fn shape_str(&self) -> String {
        match self.dims {
            1 => format!("[w={}]", self.w),
            2 => format!("[h={} w={}]", self.h, self.w),
            _ => format!("[c={} h={} w={}]", self.c, self.h, self.w),
        }
    }
}

/// Fused activation of Convolution / Deconvolution / InnerProduct (`9=`, `10=`).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Activation {
    None,
    Relu,
    Leaky(f32),
    Clip(f32, f32),
    Sigmoid,
    Mish,
    HardSwish(f32, f32),
}

impl Activation {
    pub(crate) fn from_params(ty: i32, p: &[f32]) -> Result<Activation, String> {
        let get = |i: usize, d: f32| p.get(i).copied().unwrap_or(d);
        Ok(match ty {
            0 => Activation::None,
            1 => Activation::Relu,
            2 => Activation::Leaky(get(0, 0.0)),
            3 => Activation::Clip(get(0, f32::MIN), get(1, f32::MAX)),
            4 => Activation::Sigmoid,
            5 => Activation::Mish,
            6 => Activation::HardSwish(get(0, 0.2), get(1, 0.5)),
            t => return Err(format!("unsupported activation_type {t}")),
        })
    }

    #[inline]
    pub(crate) fn apply(self, v: f32) -> f32 {
        match self {
            Activation::None => v,
            Activation::Relu => v.max(0.0),
            Activation::Leaky(s) => {
                if v > 0.0 {
                    v
                } else {
                    v * s
                }
            }
            Activation::Clip(lo, hi) => v.max(lo).min(hi),
            Activation::Sigmoid => 1.0 / (1.0 + (-v).exp()),
            Activation::Mish => v * ((v.exp()).ln_1p()).tanh(),
            Activation::HardSwish(a, b) => {
                let lower = -b / a;
                let upper = 1.0 / a + lower;
                if v < lower {
                    0.0
                } else if v > upper {
                    v
                } else {
                    v * (v * a + b)
                }
            }
        }
    }

    pub(crate) fn apply_slice(self, s: &mut [f32]) {
        if matches!(self, Activation::None) {
            return;
        }
        for v in s {
            *v = self.apply(*v);
        }
    }
}

/// Convolution hyper-parameters after padding has been resolved.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConvGeom {
    pub kw: usize,
    pub kh: usize,
    pub dw: usize,
    pub dh: usize,
    pub sw: usize,
    pub sh: usize,
    pub pl: usize,
    pub pt: usize,
    pub outw: usize,
    pub outh: usize,
    pub pad_value: f32,
}

/// Rows of the output processed per im2col chunk.
fn rows_per_chunk(k: usize, outw: usize, outh: usize) -> usize {
    let budget = 1usize << 19; // floats in one im2col buffer (2 MiB)
    let rows = (budget / (k * outw).max(1)).max(1);
    let min_chunks = 2 * rayon::current_num_threads().max(1);
    rows.min(outh.div_ceil(min_chunks)).max(1)
}

/// Grouped 2-D convolution. `weights` is `[cout][cin/groups][kh][kw]`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv2d(
    x: &Tensor,
    cout: usize,
    groups: usize,
    g: &ConvGeom,
    weights: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
) -> Tensor {
    let (cin, h, w) = (x.c, x.h, x.w);
    let (outh, outw) = (g.outh, g.outw);
    let cin_g = cin / groups;
    let cout_g = cout / groups;
    let maxk = g.kh * g.kw;
    let k = cin_g * maxk;
    let plane_out = outh * outw;
    let mut out = vec![0.0f32; cout * plane_out];
    let rows = rows_per_chunk(k, outw, outh);
    let nchunks = outh.div_ceil(rows);
    let direct = maxk == 1 && g.sw == 1 && g.sh == 1 && g.pl == 0 && g.pt == 0 && outw == w;

    for gi in 0..groups {
        let wg = &weights[gi * cout_g * k..(gi + 1) * cout_g * k];
        let xg = &x.data[gi * cin_g * h * w..(gi + 1) * cin_g * h * w];
        let results: Vec<(usize, Vec<f32>)> = (0..nchunks)
            .into_par_iter()
            .map(|ci| {
                let r0 = ci * rows;
                let r1 = (r0 + rows).min(outh);
                let n = (r1 - r0) * outw;
                let mut dst = vec![0.0f32; cout_g * n];
                if direct {
                    matmul(&mut dst, cout_g, n, k, wg, k, &xg[r0 * w..], h * w);
                } else {
                    let col = im2col(xg, cin_g, h, w, g, r0, r1);
                    matmul(&mut dst, cout_g, n, k, wg, k, &col, n);
                }
                for (oc, row) in dst.chunks_exact_mut(n).enumerate() {
                    let b = bias.map_or(0.0, |b| b[gi * cout_g + oc]);
                    for v in row.iter_mut() {
                        *v = act.apply(*v + b);
                    }
                }
                (r0, dst)
            })
            .collect();
        for (r0, dst) in results {
            let n = dst.len() / cout_g.max(1);
            for oc in 0..cout_g {
                let o = (gi * cout_g + oc) * plane_out + r0 * outw;
                out[o..o + n].copy_from_slice(&dst[oc * n..(oc + 1) * n]);
            }
        }
    }
    Tensor::new3(cout, outh, outw, out)
}

/// im2col for output rows `r0..r1`: a `[cin*kh*kw][(r1-r0)*outw]` matrix.
fn im2col(
    x: &[f32],
    cin: usize,
    h: usize,
    w: usize,
    g: &ConvGeom,
    r0: usize,
    r1: usize,
) -> Vec<f32> {
    let outw = g.outw;
    let n = (r1 - r0) * outw;
    let maxk = g.kh * g.kw;
    let mut col = vec![g.pad_value; cin * maxk * n];
    for c in 0..cin {
        let xc = &x[c * h * w..(c + 1) * h * w];
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let row = &mut col[((c * maxk) + ky * g.kw + kx) * n..][..n];
                // Input x for output column ox: ox*sw + kx*dw - pl.
                let xoff = (kx * g.dw) as isize - g.pl as isize;
                // Valid ox range: 0 <= ox*sw + xoff < w.
                let ox_lo = if xoff >= 0 {
                    0
                } else {
                    ((-xoff) as usize).div_ceil(g.sw)
                };
                let ox_hi = if (w as isize) - xoff <= 0 {
                    0
                } else {
                    (((w as isize - xoff) as usize).div_ceil(g.sw)).min(outw)
                };
                for oy in r0..r1 {
                    let iy = (oy * g.sh + ky * g.dh) as isize - g.pt as isize;
                    if iy < 0 || iy >= h as isize || ox_lo >= ox_hi {
                        continue;
                    }
                    let src = &xc[iy as usize * w..(iy as usize + 1) * w];
                    let dst = &mut row[(oy - r0) * outw..(oy - r0 + 1) * outw];
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
    col
}

/// Deconvolution hyper-parameters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DeconvGeom {
    pub kw: usize,
    pub kh: usize,
    pub dw: usize,
    pub dh: usize,
    pub sw: usize,
    pub sh: usize,
}

/// Full (uncropped) transposed convolution. `wt` is the weight transposed to
/// `[cout*kh*kw][cin]` (see `Net` loading). Returns `[cout][fullh][fullw]`.
pub(crate) fn deconv2d_full(
    x: &Tensor,
    cout: usize,
    g: &DeconvGeom,
    wt: &[f32],
    bias: Option<&[f32]>,
    fullh: usize,
    fullw: usize,
) -> Vec<f32> {
    let (cin, h, w) = (x.c, x.h, x.w);
    let maxk = g.kh * g.kw;
    let m = cout * maxk;
    let nin = h * w;
    // cols[(oc,k)][pixel] = sum_ci W[oc][ci][k] * x[ci][pixel]; in row chunks.
    let rows = rows_per_chunk(m, w, h);
    let nchunks = h.div_ceil(rows);
    let mut cols = vec![0.0f32; m * nin];
    let parts: Vec<(usize, Vec<f32>)> = (0..nchunks)
        .into_par_iter()
        .map(|ci| {
            let r0 = ci * rows;
            let r1 = (r0 + rows).min(h);
            let n = (r1 - r0) * w;
            let mut dst = vec![0.0f32; m * n];
            matmul(&mut dst, m, n, cin, wt, cin, &x.data[r0 * w..], nin);
            (r0, dst)
        })
        .collect();
    for (r0, dst) in parts {
        let n = dst.len() / m.max(1);
        for r in 0..m {
            cols[r * nin + r0 * w..r * nin + r0 * w + n].copy_from_slice(&dst[r * n..(r + 1) * n]);
        }
    }
    let plane = fullh * fullw;
    let mut out = vec![0.0f32; cout * plane];
    out.par_chunks_mut(plane).enumerate().for_each(|(oc, o)| {
        o.fill(bias.map_or(0.0, |b| b[oc]));
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let c = &cols[(oc * maxk + ky * g.kw + kx) * nin..][..nin];
                for iy in 0..h {
                    let oy = iy * g.sh + ky * g.dh;
                    let orow = &mut o[oy * fullw..(oy + 1) * fullw];
                    let crow = &c[iy * w..(iy + 1) * w];
                    let ox0 = kx * g.dw;
                    for (ix, &v) in crow.iter().enumerate() {
                        orow[ix * g.sw + ox0] += v;
                    }
                }
            }
        }
    });
    out
}

/// Cubic interpolation coefficients as ncnn (`A = -0.75`).
fn cubic_weights(fx: f32) -> [f32; 4] {
    const A: f32 = -0.75;
    let fx0 = fx + 1.0;
    let fx1 = fx;
    let fx2 = 1.0 - fx;
    let c0 = A * fx0 * fx0 * fx0 - 5.0 * A * fx0 * fx0 + 8.0 * A * fx0 - 4.0 * A;
    let c1 = (A + 2.0) * fx1 * fx1 * fx1 - (A + 3.0) * fx1 * fx1 + 1.0;
    let c2 = (A + 2.0) * fx2 * fx2 * fx2 - (A + 3.0) * fx2 * fx2 + 1.0;
    [c0, c1, c2, 1.0 - c0 - c1 - c2]
}

/// Per output coordinate: source indices and weights (taps of 1, 2 or 4).
fn resize_taps(
    mode: i32,
    inn: usize,
    outn: usize,
    align_corner: bool,
    nearest_scale: f32,
) -> Vec<Vec<(usize, f32)>> {
    let last = inn as isize - 1;
    let clamp = |i: isize| i.clamp(0, last) as usize;
    (0..outn)
        .map(|d| match mode {
            1 => {
                let s = ((d as f32 * nearest_scale) as usize).min(inn - 1);
                vec![(s, 1.0)]
            }
            2 => {
                let (sx, fx) = src_coord(d, inn, outn, align_corner);
                let mut sx = sx;
                let mut fx = fx;
                if sx < 0 {
                    sx = 0;
                    fx = 0.0;
                }
                if sx >= last {
                    sx = (last - 1).max(0);
                    fx = if inn >= 2 { 1.0 } else { 0.0 };
                }
                vec![(clamp(sx), 1.0 - fx), (clamp(sx + 1), fx)]
            }
            _ => {
                let (sx, fx) = src_coord(d, inn, outn, align_corner);
                let c = cubic_weights(fx);
                (0..4).map(|t| (clamp(sx - 1 + t as isize), c[t])).collect()
            }
        })
        .collect()
}

fn src_coord(d: usize, inn: usize, outn: usize, align_corner: bool) -> (isize, f32) {
    let fx = if align_corner {
        let scale = if outn > 1 {
            (inn as f64 - 1.0) / (outn as f64 - 1.0)
        } else {
            0.0
        };
        (d as f64 * scale) as f32
    } else {
        let scale = inn as f64 / outn as f64;
        ((d as f64 + 0.5) * scale - 0.5) as f32
    };
    let sx = fx.floor();
    (sx as isize, fx - sx)
}

/// Interp on a 3-D blob: mode 1 nearest, 2 bilinear, 3 bicubic.
pub(crate) fn interp(
    x: &Tensor,
    mode: i32,
    outh: usize,
    outw: usize,
    hs: f32,
    ws: f32,
    align_corner: bool,
) -> Tensor {
    let ytaps = resize_taps(mode, x.h, outh, align_corner, hs);
    let xtaps = resize_taps(mode, x.w, outw, align_corner, ws);
    let (h, w) = (x.h, x.w);
    let mut out = vec![0.0f32; x.c * outh * outw];
    out.par_chunks_mut(outh * outw)
        .zip(x.data.par_chunks(h * w))
        .for_each(|(o, src)| {
            // Horizontal pass then vertical.
            let mut tmp = vec![0.0f32; h * outw];
            for y in 0..h {
                let s = &src[y * w..(y + 1) * w];
                for (ox, taps) in xtaps.iter().enumerate() {
                    tmp[y * outw + ox] = taps.iter().map(|&(i, a)| s[i] * a).sum();
                }
            }
            for (oy, taps) in ytaps.iter().enumerate() {
                let orow = &mut o[oy * outw..(oy + 1) * outw];
                for &(i, b) in taps {
                    let t = &tmp[i * outw..(i + 1) * outw];
                    for (ov, &tv) in orow.iter_mut().zip(t) {
                        *ov += tv * b;
                    }
                }
            }
        });
    Tensor::new3(x.c, outh, outw, out)
}
