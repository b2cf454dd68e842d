//! Colour-mapped pictures of spectra and the per-generator grid figure.
//!
//! Sequential figures (a mean spectrum) use a viridis-like map from the
//! 0.5th to the 99.9th percentile of the values (so that a few extreme
//! values do not wash the rest out; peaks above saturate to yellow).
//! Difference figures use a blue-white-red map symmetric around zero, up to
//! the 99.5th percentile of the absolute difference.

use std::path::Path;

use image::RgbImage;
use plotters::prelude::*;

use crate::error::{write_atomic, AnalysisError, Result};
use crate::spectrum::GeneratorSpectra;

/// Viridis sampled at 0, 1/8, ..., 1.
const VIRIDIS: [[f32; 3]; 9] = [
    [68., 1., 84.],
    [71., 44., 122.],
    [59., 82., 139.],
    [44., 114., 142.],
    [33., 145., 140.],
    [40., 174., 128.],
    [94., 201., 98.],
    [170., 220., 50.],
    [253., 231., 37.],
];

const DIVERGING: [[f32; 3]; 5] = [
    [33., 102., 172.],
    [146., 197., 222.],
    [247., 247., 247.],
    [244., 165., 130.],
    [178., 24., 43.],
];

fn lerp_table(table: &[[f32; 3]], t: f32) -> [u8; 3] {
    let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
    let x = t * (table.len() - 1) as f32;
    let i = (x.floor() as usize).min(table.len() - 2);
    let f = x - i as f32;
    let (a, b) = (table[i], table[i + 1]);
    [0, 1, 2].map(|c| (a[c] + (b[c] - a[c]) * f).round() as u8)
}

/// The viridis-like colour of `t` in `[0, 1]` (clamped; NaN is 0).
pub fn viridis(t: f32) -> [u8; 3] {
    lerp_table(&VIRIDIS, t)
}

/// Blue (-1), white (0), red (+1), clamped.
pub fn diverging(t: f32) -> [u8; 3] {
    lerp_table(&DIVERGING, (t + 1.0) / 2.0)
}

/// How values map to colours.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scale {
    /// [`viridis`] from `lo` to `hi`.
    Sequential {
        /// Value drawn darkest.
        lo: f32,
        /// Value drawn brightest.
        hi: f32,
    },
    /// [`diverging`] from `-abs` to `+abs`.
    Diverging {
        /// Value drawn fully red (its negative fully blue).
        abs: f32,
    },
}

/// The `q` quantile (0..=1) of the finite values, by nearest rank; 0 when
/// there is none.
pub fn quantile(values: &[f32], q: f64) -> f32 {
    let mut v: Vec<f32> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return 0.0;
    }
    let k = ((v.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize;
    let (_, x, _) = v.select_nth_unstable_by(k, f32::total_cmp);
    *x
}

impl Scale {
    /// The sequential scale of one figure (0.5th to 99.9th percentile).
    pub fn sequential_for(values: &[f32]) -> Scale {
        Scale::Sequential {
            lo: quantile(values, 0.005),
            hi: quantile(values, 0.999),
        }
    }

    /// The sequential scale covering several figures, so that they can be
    /// compared.
    pub fn sequential_joint(figures: &[&[f32]]) -> Scale {
        let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
        for f in figures {
            lo = lo.min(quantile(f, 0.005));
            hi = hi.max(quantile(f, 0.999));
        }
        if lo > hi {
            (lo, hi) = (0.0, 1.0);
        }
        Scale::Sequential { lo, hi }
    }

    /// The symmetric diverging scale of a difference figure.
    pub fn diverging_for(values: &[f32]) -> Scale {
        let abs: Vec<f32> = values.iter().map(|v| v.abs()).collect();
        Scale::Diverging {
            abs: quantile(&abs, 0.995),
        }
    }

    fn colour(self, v: f32) -> [u8; 3] {
        match self {
            Scale::Sequential { lo, hi } => {
                let span = hi - lo;
                viridis(if span > 0.0 { (v - lo) / span } else { 0.5 })
            }
            Scale::Diverging { abs } => diverging(if abs > 0.0 { v / abs } else { 0.0 }),
        }
    }
}

/// A `side` x `side` row-major figure as a colour image.
pub fn colour_map(values: &[f32], side: usize, scale: Scale) -> RgbImage {
    let mut img = RgbImage::new(side as u32, side as u32);
    for (px, &v) in img.pixels_mut().zip(values) {
        *px = image::Rgb(scale.colour(v));
    }
    img
}

/// Encodes `img` as PNG into `path` (atomically).
pub fn write_png(path: &Path, img: &RgbImage) -> Result<()> {
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| AnalysisError::Plot {
            path: path.to_path_buf(),
            why: e.to_string(),
        })?;
    write_atomic(path, &png)
}

const PAD: u32 = 6;
const HEADER_H: u32 = 28;
const TITLE_H: u32 = 22;

/// The grid figure: one row per generator, real | fake | fake - real. Real
/// and fake of a row share one sequential scale; the difference has its
/// own symmetric scale. A missing class leaves its cell grey.
pub fn grid(spectra: &[GeneratorSpectra], path: &Path) -> Result<RgbImage> {
    cnnspot_eval::plot::register_fonts();
    let side = spectra.iter().map(|s| s.side).max().unwrap_or(1).max(1) as u32;
    let width = 3 * side + 4 * PAD;
    let height = HEADER_H + spectra.len() as u32 * (TITLE_H + side + PAD);
    let mut canvas = RgbImage::from_pixel(width, height, image::Rgb([255, 255, 255]));
    let mut labels: Vec<(String, (i32, i32), u32)> = Vec::new();
    for (c, name) in ["real", "fake", "fake \u{2212} real"].iter().enumerate() {
        let x = PAD + c as u32 * (side + PAD);
        labels.push((name.to_string(), (x as i32, 6), 17));
    }
    for (row, s) in spectra.iter().enumerate() {
        let y0 = HEADER_H + row as u32 * (TITLE_H + side + PAD);
        labels.push((
            format!("{}  (real {}, fake {})", s.name, s.n_real, s.n_fake),
            (PAD as i32, y0 as i32 + 3),
            15,
        ));
        let ys = y0 + TITLE_H;
        let n = s.side;
        let present: Vec<&[f32]> = [&s.real, &s.fake]
            .into_iter()
            .flatten()
            .map(|v| v.as_slice())
            .collect();
        let joint = Scale::sequential_joint(&present);
        let diff = s.diff();
        let cells = [
            s.real.as_ref().map(|v| colour_map(v, n, joint)),
            s.fake.as_ref().map(|v| colour_map(v, n, joint)),
            diff.as_ref()
                .map(|d| colour_map(d, n, Scale::diverging_for(d))),
        ];
        for (c, cell) in cells.into_iter().enumerate() {
            let x = PAD + c as u32 * (side + PAD);
            let cell = cell.unwrap_or_else(|| {
                RgbImage::from_pixel(n as u32, n as u32, image::Rgb([200, 200, 200]))
            });
            image::imageops::replace(&mut canvas, &cell, i64::from(x), i64::from(ys));
        }
    }
    {
        let buf: &mut [u8] = &mut canvas;
        let area = BitMapBackend::with_buffer(buf, (width, height)).into_drawing_area();
        for (text, pos, size) in &labels {
            let style = ("sans-serif", *size).into_font().color(&BLACK);
            area.draw(&Text::new(text.as_str(), *pos, style))
                .map_err(|e| AnalysisError::Plot {
                    path: path.to_path_buf(),
                    why: e.to_string(),
                })?;
        }
        area.present().map_err(|e| AnalysisError::Plot {
            path: path.to_path_buf(),
            why: e.to_string(),
        })?;
    }
    Ok(canvas)
}

/// Writes `DIR/spectra/<generator>_{real,fake,diff}.png`,
/// `DIR/spectra/<generator>_{real,fake}.npy` and `DIR/spectra_grid.png`;
/// returns the files written.
pub fn write_outputs(spectra: &[GeneratorSpectra], dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let sub = dir.join("spectra");
    std::fs::create_dir_all(&sub).map_err(|source| AnalysisError::Io {
        path: sub.clone(),
        source,
    })?;
    let mut written = Vec::new();
    for s in spectra {
        let n = s.side;
        for (tag, values) in [("real", &s.real), ("fake", &s.fake)] {
            if let Some(v) = values {
                let npy = sub.join(format!("{}_{tag}.npy", s.name));
                cnnspot_files::npy::write_f32(&npy, &[n, n], v).map_err(|e| match e {
                    cnnspot_files::npy::NpyError::Io { path, source } => {
                        AnalysisError::Io { path, source }
                    }
                    other => AnalysisError::Invalid(other.to_string()),
                })?;
                written.push(npy);
                let png = sub.join(format!("{}_{tag}.png", s.name));
                write_png(&png, &colour_map(v, n, Scale::sequential_for(v)))?;
                written.push(png);
            }
        }
        if let Some(d) = s.diff() {
            let png = sub.join(format!("{}_diff.png", s.name));
            write_png(&png, &colour_map(&d, n, Scale::diverging_for(&d)))?;
            written.push(png);
        }
    }
    let grid_path = dir.join(cnnspot_files::layout::SPECTRA_GRID_PNG);
    let img = grid(spectra, &grid_path)?;
    write_png(&grid_path, &img)?;
    written.push(grid_path);
    Ok(written)
}
