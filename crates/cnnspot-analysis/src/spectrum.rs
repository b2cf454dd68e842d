//! The log-magnitude spectrum of high-pass filtered images, and its average
//! over a generator's real and fake images.

use std::path::PathBuf;
use std::sync::Arc;

use cnnspot_eval::dataset::{Generator, Item, Label};
use cnnspot_linalg::{Complex, Fft2F32};
use image::RgbImage;
use rayon::prelude::*;

use crate::error::{AnalysisError, Result};
use crate::median::median_filter;

/// Added to the magnitude before the log: `ln(|F| + LOG_EPS)`, on pixel
/// values scaled to `[0, 1]`.
pub const LOG_EPS: f32 = 1e-6;

/// The high-pass filter: the image minus its median filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HighPass {
    /// Minus the 3x3 median (the paper's).
    #[default]
    Median3,
    /// Minus the 5x5 median.
    Median5,
}

impl HighPass {
    /// The window side.
    pub fn size(self) -> usize {
        match self {
            HighPass::Median3 => 3,
            HighPass::Median5 => 5,
        }
    }
}

/// How one image's spectrum is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpectrumOptions {
    /// Side of the center crop ([`cnnspot_image::center_crop`]: smaller
    /// images are padded with black); the spectrum is `crop` x `crop`.
    pub crop: u32,
    /// The high-pass filter.
    pub highpass: HighPass,
    /// Average the channels to grey before the FFT (one FFT per image);
    /// otherwise one FFT per channel and the magnitudes `|F_c|` are averaged
    /// over the three channels before the log.
    pub gray: bool,
}

impl Default for SpectrumOptions {
    fn default() -> Self {
        SpectrumOptions {
            crop: 256,
            highpass: HighPass::Median3,
            gray: false,
        }
    }
}

/// Computes centred log-magnitude spectra of one size; the FFT is planned
/// once and shared between threads.
#[derive(Clone)]
pub struct Spectrum2d {
    n: usize,
    opts: SpectrumOptions,
    fft: Arc<Fft2F32>,
}

impl std::fmt::Debug for Spectrum2d {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spectrum2d")
            .field("opts", &self.opts)
            .finish()
    }
}

/// Largest crop accepted (the FFT buffers are `crop`² complex numbers).
pub const MAX_CROP: u32 = 4096;

impl Spectrum2d {
    /// Plans the FFT for `opts.crop`. A crop of 0 or above [`MAX_CROP`] is
    /// an error.
    pub fn new(opts: SpectrumOptions) -> Result<Spectrum2d> {
        if opts.crop == 0 || opts.crop > MAX_CROP {
            return Err(AnalysisError::Invalid(format!(
                "the crop must be between 1 and {MAX_CROP} pixels, not {}",
                opts.crop
            )));
        }
        let n = opts.crop as usize;
        let fft = Arc::new(Fft2F32::forward(n, n));
        Ok(Spectrum2d { n, opts, fft })
    }

    /// The side of the spectra.
    pub fn side(&self) -> usize {
        self.n
    }

    /// The options.
    pub fn options(&self) -> &SpectrumOptions {
        &self.opts
    }

    /// The centred (`fftshift`ed: zero frequency at `(n/2, n/2)`)
    /// log-magnitude spectrum of the high-pass residual of `img`'s center
    /// crop, row-major `n` x `n`.
    pub fn image_spectrum(&self, img: &RgbImage) -> Vec<f32> {
        let crop = cnnspot_image::center_crop(img, self.opts.crop);
        let med = median_filter(&crop, self.opts.highpass.size());
        let n = self.n;
        let (a, b) = (crop.as_raw(), med.as_raw());
        let residual = |i: usize, c: usize| {
            (f32::from(a[i * 3 + c]) - f32::from(b[i * 3 + c])) * (1.0 / 255.0)
        };
        let mut mag = vec![0f32; n * n];
        let mut buf = vec![Complex::new(0f32, 0f32); n * n];
        let planes: &[&[usize]] = if self.opts.gray {
            &[&[0, 1, 2]]
        } else {
            &[&[0], &[1], &[2]]
        };
        for chans in planes {
            let scale = 1.0 / chans.len() as f32;
            for (i, v) in buf.iter_mut().enumerate() {
                let s: f32 = chans.iter().map(|&c| residual(i, c)).sum();
                *v = Complex::new(s * scale, 0.0);
            }
            self.fft.process(&mut buf);
            for (m, v) in mag.iter_mut().zip(&buf) {
                *m += v.norm();
            }
        }
        let planes_n = planes.len() as f32;
        let half = n / 2;
        let mut out = vec![0f32; n * n];
        for ky in 0..n {
            let sy = (ky + half) % n;
            for kx in 0..n {
                let sx = (kx + half) % n;
                out[sy * n + sx] = (mag[ky * n + kx] / planes_n + LOG_EPS).ln();
            }
        }
        out
    }
}

/// A running sum of spectra (in `f64`) and their count.
#[derive(Debug, Clone)]
pub struct SpectrumAccumulator {
    sum: Vec<f64>,
    count: usize,
}

impl SpectrumAccumulator {
    /// An empty sum of `len`-value spectra.
    pub fn new(len: usize) -> Self {
        SpectrumAccumulator {
            sum: vec![0.0; len],
            count: 0,
        }
    }

    /// Adds one spectrum.
    pub fn add(&mut self, spectrum: &[f32]) {
        for (s, &v) in self.sum.iter_mut().zip(spectrum) {
            *s += f64::from(v);
        }
        self.count += 1;
    }

    /// Adds another sum into this one.
    pub fn merge(&mut self, other: &SpectrumAccumulator) {
        for (s, &v) in self.sum.iter_mut().zip(&other.sum) {
            *s += v;
        }
        self.count += other.count;
    }

    /// How many spectra were added.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The mean, `None` when nothing was added.
    pub fn mean(&self) -> Option<Vec<f32>> {
        (self.count > 0).then(|| {
            let k = self.count as f64;
            self.sum.iter().map(|&s| (s / k) as f32).collect()
        })
    }
}

/// An image that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The file.
    pub path: PathBuf,
    /// The reason.
    pub why: String,
}

/// The average spectra of one generator's real and fake images.
#[derive(Debug, Clone)]
pub struct GeneratorSpectra {
    /// The generator's folder name.
    pub name: String,
    /// The side of the spectra.
    pub side: usize,
    /// Mean spectrum of the real images read (`None` if none was).
    pub real: Option<Vec<f32>>,
    /// How many real images went into `real`.
    pub n_real: usize,
    /// Mean spectrum of the fake images read.
    pub fake: Option<Vec<f32>>,
    /// How many fake images went into `fake`.
    pub n_fake: usize,
    /// Images that could not be read (the rest went on).
    pub failures: Vec<Failure>,
}

impl GeneratorSpectra {
    /// `fake - real`, when both exist.
    pub fn diff(&self) -> Option<Vec<f32>> {
        match (&self.real, &self.fake) {
            (Some(r), Some(f)) => Some(f.iter().zip(r).map(|(f, r)| f - r).collect()),
            _ => None,
        }
    }
}

/// At most `max` of `items`, evenly spaced over the list (so that every
/// class of a multi-class generator is represented), in order.
pub fn sample_evenly<T>(items: &[T], max: usize) -> Vec<&T> {
    if items.len() <= max {
        return items.iter().collect();
    }
    (0..max).map(|i| &items[i * items.len() / max]).collect()
}

struct Partial {
    acc: [SpectrumAccumulator; 2],
    failures: Vec<Failure>,
}

/// The average spectra of up to `max_images` real and `max_images` fake
/// images of `generator` (evenly sampled, see [`sample_evenly`]), computed
/// in parallel on rayon's pool. Memory stays bounded: each worker holds one
/// image and one running sum per label. Images that cannot be read (or have
/// more than `max_pixels` pixels) are listed in
/// [`GeneratorSpectra::failures`]; `progress` is called once per image.
pub fn generator_spectra(
    generator: &Generator,
    spectrum: &Spectrum2d,
    max_images: usize,
    max_pixels: u64,
    progress: &(dyn Fn() + Sync),
) -> GeneratorSpectra {
    let n = spectrum.side();
    let mut picked: Vec<&Item> = Vec::new();
    for label in [Label::Real, Label::Fake] {
        let items: Vec<&Item> = generator
            .items
            .iter()
            .filter(|i| i.label == label)
            .collect();
        picked.extend(sample_evenly(&items, max_images).into_iter().copied());
    }
    let new_partial = || Partial {
        acc: [
            SpectrumAccumulator::new(n * n),
            SpectrumAccumulator::new(n * n),
        ],
        failures: Vec::new(),
    };
    let total = picked
        .par_iter()
        .fold(new_partial, |mut p, item| {
            match cnnspot_image::load_rgb(&item.path, max_pixels) {
                Ok(img) => {
                    let s = spectrum.image_spectrum(&img);
                    p.acc[usize::from(item.label.as_u8())].add(&s);
                }
                Err(e) => p.failures.push(Failure {
                    path: item.path.clone(),
                    why: e.to_string(),
                }),
            }
            progress();
            p
        })
        .reduce(new_partial, |mut a, b| {
            a.acc[0].merge(&b.acc[0]);
            a.acc[1].merge(&b.acc[1]);
            a.failures.extend(b.failures);
            a
        });
    let mut failures = total.failures;
    failures.sort_by(|a, b| a.path.cmp(&b.path));
    GeneratorSpectra {
        name: generator.name.clone(),
        side: n,
        real: total.acc[0].mean(),
        n_real: total.acc[0].count(),
        fake: total.acc[1].mean(),
        n_fake: total.acc[1].count(),
        failures,
    }
}
