//! Resizing as CNNDetection's `custom_resize`:
//! `torchvision.transforms.functional.resize(img, load_size, interpolation)`
//! on a PIL image, i.e. Pillow's `Image.resize`.
//!
//! Pillow's algorithm is reproduced rather than approximated with another
//! library's filters: a separable convolution whose support widens with the
//! downscaling factor (antialiasing), horizontal pass first, coefficients in
//! 22-bit fixed point, each pass rounded to uint8 (`Resample.c`); and for
//! nearest neighbour, its affine scaling with accumulated float coordinates
//! (`ImagingScaleAffine`). The output matches Pillow 13 byte for byte on the
//! test fixtures.

use image::RgbImage;
use serde::{Deserialize, Serialize};

/// Resampling filter, with the names of CNNDetection's `--rz_interp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interp {
    /// PIL `BILINEAR` (triangle filter, support 1).
    Bilinear,
    /// PIL `BICUBIC` (Keys cubic with a = -0.5, support 2).
    Bicubic,
    /// PIL `LANCZOS` (Lanczos-3).
    Lanczos,
    /// PIL `NEAREST`.
    Nearest,
}

impl Interp {
    /// All filters, in the reference's order.
    pub const ALL: [Interp; 4] = [
        Interp::Bilinear,
        Interp::Bicubic,
        Interp::Lanczos,
        Interp::Nearest,
    ];

    /// The reference's name (`bilinear`, `bicubic`, `lanczos`, `nearest`).
    pub fn name(self) -> &'static str {
        match self {
            Interp::Bilinear => "bilinear",
            Interp::Bicubic => "bicubic",
            Interp::Lanczos => "lanczos",
            Interp::Nearest => "nearest",
        }
    }

    /// Parse a reference name.
    pub fn from_name(name: &str) -> Option<Interp> {
        Interp::ALL.into_iter().find(|i| i.name() == name)
    }
}

impl std::fmt::Display for Interp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The size torchvision's `resize(img, size)` gives an image of `width` x
/// `height`: the shorter side becomes `size`, the longer one
/// `int(size * long / short)` (truncated).
pub fn resized_dims(width: u32, height: u32, size: u32) -> (u32, u32) {
    let (short, long) = if width <= height {
        (width, height)
    } else {
        (height, width)
    };
    if short == 0 {
        return (width, height);
    }
    // Python: size * long is an exact integer, `/` a correctly rounded float
    // division, int() a truncation; f64 does the same below 2^53.
    let new_long = (f64::from(size) * f64::from(long) / f64::from(short)) as u32;
    if width <= height {
        (size, new_long)
    } else {
        (new_long, size)
    }
}

/// torchvision's `resize(img, size, interpolation)` for an integer `size`:
/// the shorter side becomes `size` and the aspect ratio is kept; an image
/// whose shorter side is already `size` is returned unchanged.
pub fn resize_shorter(img: &RgbImage, size: u32, interp: Interp) -> RgbImage {
    let (w, h) = img.dimensions();
    if w.min(h) == size || w == 0 || h == 0 {
        return img.clone();
    }
    let (nw, nh) = resized_dims(w, h, size);
    resize(img, nw, nh, interp)
}

/// Pillow's `Image.resize((width, height), filter)` on an RGB image.
pub fn resize(img: &RgbImage, width: u32, height: u32, interp: Interp) -> RgbImage {
    if img.dimensions() == (width, height) {
        return img.clone();
    }
    if width == 0 || height == 0 || img.width() == 0 || img.height() == 0 {
        return RgbImage::new(width, height);
    }
    match interp {
        Interp::Nearest => scale_nearest(img, width, height),
        Interp::Bilinear => resample(img, width, height, &BILINEAR),
        Interp::Bicubic => resample(img, width, height, &BICUBIC),
        Interp::Lanczos => resample(img, width, height, &LANCZOS),
    }
}

struct Filter {
    support: f64,
    weight: fn(f64) -> f64,
}

const BILINEAR: Filter = Filter {
    support: 1.0,
    weight: |x| {
        let x = x.abs();
        if x < 1.0 {
            1.0 - x
        } else {
            0.0
        }
    },
};

const BICUBIC: Filter = Filter {
    support: 2.0,
    weight: |x| {
        const A: f64 = -0.5;
        let x = x.abs();
        if x < 1.0 {
            ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
        } else if x < 2.0 {
            (((x - 5.0) * x + 8.0) * x - 4.0) * A
        } else {
            0.0
        }
    },
};

const LANCZOS: Filter = Filter {
    support: 3.0,
    weight: |x| {
        if (-3.0..3.0).contains(&x) {
            sinc(x) * sinc(x / 3.0)
        } else {
            0.0
        }
    },
};

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let x = x * std::f64::consts::PI;
        x.sin() / x
    }
}

/// Fixed-point precision of Pillow's 8-bit resampling coefficients.
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// For each output sample along one axis: the first input index, and the
/// fixed-point weights of the inputs from there on (Pillow's
/// `precompute_coeffs` then `normalize_coeffs_8bpc`).
fn coefficients(in_size: u32, out_size: u32, filter: &Filter) -> Vec<(usize, Vec<i32>)> {
    // Pillow's box is float; (in1 - in0) = in_size, exact in f32.
    let scale = f64::from(in_size as f32) / f64::from(out_size);
    let filterscale = scale.max(1.0);
    let support = filter.support * filterscale;
    let ss = 1.0 / filterscale;
    (0..out_size)
        .map(|xx| {
            let center = (f64::from(xx) + 0.5) * scale;
            // C casts: truncation toward zero, then clamping.
            let xmin = ((center - support + 0.5) as i32).max(0);
            let xmax = ((center + support + 0.5) as i32).min(in_size as i32) - xmin;
            let w: Vec<f64> = (0..xmax.max(0))
                .map(|x| (filter.weight)((f64::from(x + xmin) - center + 0.5) * ss))
                .collect();
            let total: f64 = w.iter().fold(0.0, |a, &b| a + b);
            let fixed = w
                .iter()
                .map(|&v| {
                    let v = if total != 0.0 { v / total } else { v };
                    let scaled = v * f64::from(1u32 << PRECISION_BITS);
                    if v < 0.0 {
                        (scaled - 0.5) as i32
                    } else {
                        (scaled + 0.5) as i32
                    }
                })
                .collect();
            (xmin as usize, fixed)
        })
        .collect()
}

/// Pillow's `clip8`: round the fixed-point sum (its half was added up front)
/// and clamp to [0, 255].
fn clip8(acc: i64) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Pillow's `ImagingResample` for 8-bit RGB: horizontal pass (only when the
/// width changes) then vertical pass (only when the height changes).
fn resample(img: &RgbImage, width: u32, height: u32, filter: &Filter) -> RgbImage {
    let half = 1i64 << (PRECISION_BITS - 1);
    let mut cur = img.clone();
    if width != img.width() {
        let coeffs = coefficients(img.width(), width, filter);
        let in_w = img.width() as usize;
        let mut out = RgbImage::new(width, img.height());
        for (src_row, dst_row) in cur
            .as_raw()
            .chunks_exact(in_w * 3)
            .zip(out.chunks_exact_mut(width as usize * 3))
        {
            for ((xmin, k), dst) in coeffs.iter().zip(dst_row.chunks_exact_mut(3)) {
                let mut acc = [half; 3];
                for (i, &kv) in k.iter().enumerate() {
                    let p = (xmin + i) * 3;
                    for c in 0..3 {
                        acc[c] += i64::from(src_row[p + c]) * i64::from(kv);
                    }
                }
                for c in 0..3 {
                    dst[c] = clip8(acc[c]);
                }
            }
        }
        cur = out;
    }
    if height != img.height() {
        let coeffs = coefficients(img.height(), height, filter);
        let stride = cur.width() as usize * 3;
        let src = cur.as_raw();
        let mut out = RgbImage::new(cur.width(), height);
        let mut acc = vec![0i64; stride];
        for ((ymin, k), dst_row) in coeffs.iter().zip(out.chunks_exact_mut(stride)) {
            acc.fill(half);
            for (i, &kv) in k.iter().enumerate() {
                let row = &src[(ymin + i) * stride..(ymin + i + 1) * stride];
                for (a, &v) in acc.iter_mut().zip(row) {
                    *a += i64::from(v) * i64::from(kv);
                }
            }
            for (d, &a) in dst_row.iter_mut().zip(acc.iter()) {
                *d = clip8(a);
            }
        }
        cur = out;
    }
    cur
}

/// Pillow's nearest-neighbour resize (`ImagingScaleAffine`): source
/// coordinates accumulated in floating point from the first pixel centre.
fn scale_nearest(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    let index = |in_size: u32, out_size: u32| -> Vec<Option<usize>> {
        let step = f64::from(in_size as f32) / f64::from(out_size);
        let mut pos = step * 0.5;
        (0..out_size)
            .map(|_| {
                let i = if pos < 0.0 { -1 } else { pos as i64 };
                pos += step;
                (0..i64::from(in_size)).contains(&i).then_some(i as usize)
            })
            .collect()
    };
    let xs = index(img.width(), width);
    let ys = index(img.height(), height);
    let in_stride = img.width() as usize * 3;
    let src = img.as_raw();
    let mut out = RgbImage::new(width, height);
    for (y, dst_row) in ys.iter().zip(out.chunks_exact_mut(width as usize * 3)) {
        let Some(y) = *y else { continue };
        let src_row = &src[y * in_stride..(y + 1) * in_stride];
        for (x, dst) in xs.iter().zip(dst_row.chunks_exact_mut(3)) {
            if let Some(x) = *x {
                dst.copy_from_slice(&src_row[x * 3..x * 3 + 3]);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dims_follow_torchvision() {
        assert_eq!(resized_dims(640, 480, 256), (341, 256));
        assert_eq!(resized_dims(480, 640, 256), (256, 341));
        assert_eq!(resized_dims(300, 300, 256), (256, 256));
        assert_eq!(resized_dims(100, 301, 256), (256, 770));
    }

    #[test]
    fn same_short_side_is_identity() {
        let img = RgbImage::from_fn(256, 300, |x, y| image::Rgb([x as u8, y as u8, 0]));
        for interp in Interp::ALL {
            assert_eq!(resize_shorter(&img, 256, interp), img);
        }
    }
}
