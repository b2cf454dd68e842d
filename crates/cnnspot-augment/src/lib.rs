//! Training-time data augmentation of cnnspot, as CNNDetection (Wang et al.,
//! CVPR 2020) applies it in `data/datasets.py`. Per training sample, in this
//! order, each random choice drawn independently:
//!
//! 1. resize so the shorter side is `load_size`, filter drawn from
//!    `rz_interp` ([`resize_shorter`], Pillow's resampling reproduced);
//! 2. with probability `blur_prob`, Gaussian blur with sigma ~ U(`blur_sig`)
//!    ([`gaussian_blur`], SciPy's `gaussian_filter` into uint8);
//! 3. with probability `jpg_prob`, a JPEG round trip at a quality drawn from
//!    the integers of `jpg_qual` by an encoder drawn from `jpg_method`
//!    ([`jpeg_roundtrip`]);
//! 4. random crop to `crop_size` ([`random_crop`]), then a horizontal flip
//!    with probability 1/2 unless `no_flip` ([`hflip`]);
//! 5. normalisation as at test time ([`normalize`], left to the caller).
//!
//! Blur and JPEG are decided by separate draws: a sample can get neither,
//! either or both (a re-implementation that tied them together lost up to
//! 30 AP points on one generator).
//!
//! [`augment_val`] is the reference's validation variant: same resize, same
//! probabilities, but sigma and quality fixed at the midpoints of their
//! ranges, the libjpeg-turbo ("pil") encoder only, a center crop and no flip.
//!
//! All randomness comes from the RNG passed in. [`sample_rng`] derives an
//! independent, seeded generator per (seed, epoch, sample), so that a run is
//! repeatable whatever the number of loader threads or the order in which
//! they finish.

#![warn(missing_docs)]
mod blur;
mod jpeg;
mod resize;

use rand::rngs::ChaCha8Rng;
use rand::{Rng, RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

pub use blur::{gaussian_blur, gaussian_kernel, kernel_radius, TRUNCATE};
pub use cnnspot_image::{
    center_crop, decode_rgb, load_rgb, normalize, ImageError, RgbImage, DEFAULT_MAX_PIXELS,
};
pub use jpeg::{jpeg_encode, jpeg_roundtrip, JpegEncoder};
/// The `rand` this crate draws with, so that callers pass compatible RNGs.
pub use rand;
pub use resize::{resize, resize_shorter, resized_dims, Interp};

/// Why an augmentation could not be applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AugmentError {
    /// The configuration is invalid (the message says which field and why).
    #[error("invalid augmentation settings: {0}")]
    Config(String),
    /// The JPEG encoder failed.
    #[error("JPEG compression failed: {0}")]
    Jpeg(String),
    /// The compressed image could not be decoded again.
    #[error("JPEG round trip failed: {0}")]
    Decode(#[from] ImageError),
}

/// The names of the paper's five training settings, for
/// [`AugmentConfig::preset`].
pub const PRESETS: [&str; 5] = ["no-aug", "blur", "jpeg", "blur+jpeg-0.5", "blur+jpeg-0.1"];

/// Augmentation settings, with the meaning (and, in the presets, the values)
/// of CNNDetection's options of the same names. Ranges are inclusive pairs:
/// `blur_sig = [lo, hi]` draws sigma uniformly from [lo, hi) and
/// `jpg_qual = [lo, hi]` a quality uniformly from the integers lo..=hi (the
/// reference's `--jpg_qual lo,hi`); equal bounds fix the value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AugmentConfig {
    /// Shorter side after resizing (`--loadSize`).
    pub load_size: u32,
    /// Resampling filters to draw from (`--rz_interp`).
    pub rz_interp: Vec<Interp>,
    /// Probability of blurring a sample (`--blur_prob`).
    pub blur_prob: f64,
    /// Range of the blur's sigma in pixels (`--blur_sig`).
    pub blur_sig: [f64; 2],
    /// Probability of JPEG-compressing a sample (`--jpg_prob`).
    pub jpg_prob: f64,
    /// Range of JPEG qualities (`--jpg_qual`).
    pub jpg_qual: [u8; 2],
    /// Encoders to draw from (`--jpg_method`; `pil` and `cv2` are accepted).
    pub jpg_method: Vec<JpegEncoder>,
    /// Side of the square crop (`--cropSize`).
    pub crop_size: u32,
    /// Never flip (`--no_flip`).
    pub no_flip: bool,
    /// Skip the resize in [`augment_val`] (`--no_resize`; like the
    /// reference, training always resizes).
    pub no_resize: bool,
}

impl Default for AugmentConfig {
    /// The `no-aug` preset.
    fn default() -> Self {
        AugmentConfig {
            load_size: 256,
            rz_interp: vec![Interp::Bilinear],
            blur_prob: 0.0,
            blur_sig: [0.0, 3.0],
            jpg_prob: 0.0,
            jpg_qual: [30, 100],
            jpg_method: JpegEncoder::ALL.to_vec(),
            crop_size: 224,
            no_flip: false,
            no_resize: false,
        }
    }
}

impl AugmentConfig {
    /// One of the paper's settings ([`PRESETS`]): `no-aug`; `blur` (blur with
    /// probability 0.5, sigma in [0, 3]); `jpeg` (JPEG with probability 0.5,
    /// quality 30..=100, both encoders); `blur+jpeg-0.5` and `blur+jpeg-0.1`
    /// (both, each with that probability), as the reference's README trains
    /// them. Every preset keeps the paper's ranges, resizes to 256 with
    /// bilinear filtering, crops 224 and flips.
    pub fn preset(name: &str) -> Result<AugmentConfig, AugmentError> {
        let (blur_prob, jpg_prob) = match name {
            "no-aug" => (0.0, 0.0),
            "blur" => (0.5, 0.0),
            "jpeg" => (0.0, 0.5),
            "blur+jpeg-0.5" => (0.5, 0.5),
            "blur+jpeg-0.1" => (0.1, 0.1),
            _ => {
                return Err(AugmentError::Config(format!(
                    "unknown preset {name:?} (expected one of {})",
                    PRESETS.join(", ")
                )))
            }
        };
        Ok(AugmentConfig {
            blur_prob,
            jpg_prob,
            ..AugmentConfig::default()
        })
    }

    /// Check every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), AugmentError> {
        let bad = |m: String| Err(AugmentError::Config(m));
        if self.load_size == 0 || self.crop_size == 0 {
            return bad("load_size and crop_size must be positive".into());
        }
        for (name, p) in [("blur_prob", self.blur_prob), ("jpg_prob", self.jpg_prob)] {
            if !(0.0..=1.0).contains(&p) {
                return bad(format!("{name} must be in [0, 1], not {p}"));
            }
        }
        let [lo, hi] = self.blur_sig;
        if !(lo.is_finite() && hi.is_finite() && 0.0 <= lo && lo <= hi) {
            return bad(format!(
                "blur_sig must be [lo, hi] with 0 <= lo <= hi, not [{lo}, {hi}]"
            ));
        }
        let [qlo, qhi] = self.jpg_qual;
        if !(1 <= qlo && qlo <= qhi && qhi <= 100) {
            return bad(format!(
                "jpg_qual must be [lo, hi] with 1 <= lo <= hi <= 100, not [{qlo}, {qhi}]"
            ));
        }
        if self.rz_interp.is_empty() {
            return bad("rz_interp must name at least one filter".into());
        }
        if self.jpg_method.is_empty() {
            return bad("jpg_method must name at least one encoder".into());
        }
        Ok(())
    }

    /// The validation sigma: the midpoint of `blur_sig` (reference:
    /// `(b_sig[0] + b_sig[1]) / 2`).
    pub fn val_sigma(&self) -> f64 {
        (self.blur_sig[0] + self.blur_sig[1]) / 2.0
    }

    /// The validation quality: `int((lo + hi) / 2)` of `jpg_qual`.
    pub fn val_quality(&self) -> u8 {
        ((u16::from(self.jpg_qual[0]) + u16::from(self.jpg_qual[1])) / 2) as u8
    }
}

/// What was drawn for one sample (to log, or to replay one by hand).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AugmentRecord {
    /// Filter of the resize; `None` when resizing was skipped (`no_resize`).
    pub interp: Option<Interp>,
    /// Size after the resize, `[width, height]`.
    pub resized: [u32; 2],
    /// Sigma of the blur, when blurred.
    pub blur_sigma: Option<f64>,
    /// Quality of the JPEG round trip, when compressed.
    pub jpeg_quality: Option<u8>,
    /// Encoder of the JPEG round trip, when compressed.
    pub jpeg_encoder: Option<JpegEncoder>,
    /// Top-left corner of the crop in the resized image, `[left, top]`;
    /// negative where the image was narrower than the crop and padded.
    pub crop: [i64; 2],
    /// Whether the crop was mirrored left-right.
    pub flip: bool,
}

/// An augmented sample and how it was made.
#[derive(Debug, Clone)]
pub struct Augmented {
    /// `crop_size` x `crop_size` RGB, ready for [`normalize`].
    pub image: RgbImage,
    /// The draws that produced it.
    pub record: AugmentRecord,
}

/// Python's `random.choice` as the reference calls it: no draw for a
/// one-element list.
fn choose<T: Copy, R: Rng + ?Sized>(items: &[T], rng: &mut R) -> T {
    if items.len() == 1 {
        items[0]
    } else {
        items[rng.random_range(0..items.len())]
    }
}

/// A blur sigma uniform in [lo, hi) as the reference's `sample_continuous`.
fn draw_sigma<R: Rng + ?Sized>(range: [f64; 2], rng: &mut R) -> f64 {
    if range[0] == range[1] {
        range[0]
    } else {
        rng.random::<f64>() * (range[1] - range[0]) + range[0]
    }
}

/// A JPEG quality uniform over the integers lo..=hi.
fn draw_quality<R: Rng + ?Sized>(range: [u8; 2], rng: &mut R) -> u8 {
    if range[0] == range[1] {
        range[0]
    } else {
        rng.random_range(range[0]..=range[1])
    }
}

/// The `size` x `size` window of `img` whose top-left corner is
/// (`left`, `top`); parts outside the image are black.
pub fn crop_at(img: &RgbImage, left: i64, top: i64, size: u32) -> RgbImage {
    let (w, h) = (i64::from(img.width()), i64::from(img.height()));
    let mut out = RgbImage::new(size, size);
    let n = i64::from(size);
    let col_lo = (-left).clamp(0, n);
    let col_hi = (w - left).clamp(0, n);
    if col_lo >= col_hi {
        return out;
    }
    let src = img.as_raw();
    let out_stride = size as usize * 3;
    for (oy, dst) in out.chunks_exact_mut(out_stride).enumerate() {
        let sy = oy as i64 + top;
        if !(0..h).contains(&sy) {
            continue;
        }
        let s = ((sy * w + col_lo + left) * 3) as usize;
        let len = ((col_hi - col_lo) * 3) as usize;
        let d = col_lo as usize * 3;
        dst[d..d + len].copy_from_slice(&src[s..s + len]);
    }
    out
}

/// torchvision's `RandomCrop(size)`: top then left drawn uniformly so that
/// the window lies inside the image; returns the crop and `[left, top]`.
/// Along a side shorter than `size` (which torchvision refuses) the window
/// is centred and padded with black as [`center_crop`] does, without a draw.
pub fn random_crop<R: Rng + ?Sized>(
    img: &RgbImage,
    size: u32,
    rng: &mut R,
) -> (RgbImage, [i64; 2]) {
    let (w, h) = img.dimensions();
    if w == size && h == size {
        return (img.clone(), [0, 0]);
    }
    let mut offset = |len: u32| {
        if len >= size {
            i64::from(rng.random_range(0..=len - size))
        } else {
            -i64::from((size - len) / 2)
        }
    };
    let top = offset(h);
    let left = offset(w);
    (crop_at(img, left, top, size), [left, top])
}

/// Mirror left-right.
pub fn hflip(img: &RgbImage) -> RgbImage {
    image::imageops::flip_horizontal(img)
}

/// The training augmentation of one sample (steps 1-4 of the crate
/// documentation), drawing from `rng` in the reference's order: filter,
/// blur coin, sigma, JPEG coin, encoder, quality, crop offsets, flip coin.
pub fn augment_train<R: Rng + ?Sized>(
    img: &RgbImage,
    cfg: &AugmentConfig,
    rng: &mut R,
) -> Result<Augmented, AugmentError> {
    cfg.validate()?;
    let interp = choose(&cfg.rz_interp, rng);
    let mut cur = resize_shorter(img, cfg.load_size, interp);
    let resized = [cur.width(), cur.height()];
    let mut blur_sigma = None;
    if rng.random::<f64>() < cfg.blur_prob {
        let sigma = draw_sigma(cfg.blur_sig, rng);
        cur = gaussian_blur(&cur, sigma);
        blur_sigma = Some(sigma);
    }
    let (mut jpeg_quality, mut jpeg_encoder) = (None, None);
    if rng.random::<f64>() < cfg.jpg_prob {
        let encoder = choose(&cfg.jpg_method, rng);
        let quality = draw_quality(cfg.jpg_qual, rng);
        cur = jpeg_roundtrip(&cur, quality, encoder)?;
        jpeg_quality = Some(quality);
        jpeg_encoder = Some(encoder);
    }
    let (mut out, crop) = random_crop(&cur, cfg.crop_size, rng);
    // torchvision's RandomHorizontalFlip: flip when rand < 0.5.
    let flip = !cfg.no_flip && rng.random::<f64>() < 0.5;
    if flip {
        out = hflip(&out);
    }
    Ok(Augmented {
        image: out,
        record: AugmentRecord {
            interp: Some(interp),
            resized,
            blur_sigma,
            jpeg_quality,
            jpeg_encoder,
            crop,
            flip,
        },
    })
}

/// The validation variant: resize as in training (unless `no_resize`), blur
/// and JPEG with the training probabilities but sigma = [`val_sigma`]
/// (1.5 for [0, 3]) and quality = [`val_quality`] (65 for 30..=100) with the
/// libjpeg-turbo ("pil") encoder, then a center crop and no flip.
///
/// The coins still come from `rng`, as in the reference; give each
/// validation image the same generator every epoch (e.g.
/// `sample_rng(seed, VALIDATION_EPOCH, index)`) so that the validation set
/// does not change between epochs.
///
/// [`val_sigma`]: AugmentConfig::val_sigma
/// [`val_quality`]: AugmentConfig::val_quality
pub fn augment_val<R: Rng + ?Sized>(
    img: &RgbImage,
    cfg: &AugmentConfig,
    rng: &mut R,
) -> Result<Augmented, AugmentError> {
    cfg.validate()?;
    let mut interp = None;
    let mut cur = img.clone();
    if !cfg.no_resize {
        let i = choose(&cfg.rz_interp, rng);
        cur = resize_shorter(img, cfg.load_size, i);
        interp = Some(i);
    }
    let resized = [cur.width(), cur.height()];
    let mut blur_sigma = None;
    if rng.random::<f64>() < cfg.blur_prob {
        let sigma = cfg.val_sigma();
        cur = gaussian_blur(&cur, sigma);
        blur_sigma = Some(sigma);
    }
    let (mut jpeg_quality, mut jpeg_encoder) = (None, None);
    if rng.random::<f64>() < cfg.jpg_prob {
        let quality = cfg.val_quality();
        cur = jpeg_roundtrip(&cur, quality, JpegEncoder::LibjpegTurbo)?;
        jpeg_quality = Some(quality);
        jpeg_encoder = Some(JpegEncoder::LibjpegTurbo);
    }
    let size = cfg.crop_size;
    let out = center_crop(&cur, size);
    let start = |len: u32| -> i64 {
        if len >= size {
            // torchvision: round((len - size) / 2), halves to even.
            let d = len - size;
            i64::from(d / 2 + u32::from(d % 2 == 1 && (d / 2) % 2 == 1))
        } else {
            -i64::from((size - len) / 2)
        }
    };
    let crop = [start(cur.width()), start(cur.height())];
    Ok(Augmented {
        image: out,
        record: AugmentRecord {
            interp,
            resized,
            blur_sigma,
            jpeg_quality,
            jpeg_encoder,
            crop,
            flip: false,
        },
    })
}

/// The `epoch` argument of [`sample_rng`] reserved for validation, so that
/// validation draws never coincide with a training epoch's.
pub const VALIDATION_EPOCH: u64 = u64::MAX;

/// An independent generator for sample `index` of `epoch` in a run seeded
/// with `seed`: ChaCha8 keyed by the three numbers, so streams never overlap
/// and each sample's draws depend on nothing else.
pub fn sample_rng(seed: u64, epoch: u64, index: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&epoch.to_le_bytes());
    key[16..24].copy_from_slice(&index.to_le_bytes());
    ChaCha8Rng::from_seed(key)
}
