//! Generator simulators cnnspot trains itself: cheap, diverse fake-image
//! makers for training the detector.
//!
//! * `autogan`: Zhang et al. (WIFS 2019, "Detecting and Simulating Artifacts
//!   in GAN Fake Images"): CycleGAN's ResNet generator used as an autoencoder
//!   and fitted on real photos to reconstruct them; its output carries the
//!   upsampling artifacts of GAN generators. To fit the CPU budget it has
//!   `ngf = 16` and 3 residual blocks (the paper: 64 and 9), and it is trained
//!   with the L1 reconstruction loss only (no PatchGAN discriminator).
//! * `up-<kind>[-in]`: small upsampling autoencoders, 1 or 2 stride-2 3x3
//!   convolutions (chosen by the seed) with 16..=48 channels (seed),
//!   ReLU or LeakyReLU(0.2) (seed), optionally InstanceNorm (`-in`), then as
//!   many x2 upsamplings by the named operator (`convt4`: ConvTranspose2d k4
//!   s2 p1; `convt3`: k3 s2 p1 output_padding 1; `nearest`/`bilinear`: x2
//!   interpolation and a 3x3 convolution; `shuffle`: a 3x3 convolution to 4C
//!   channels and pixel shuffle), a 3x3 convolution to RGB and tanh; briefly
//!   fitted with L1.
//!
//! Fitting uses Adam on random 64x64 crops (with horizontal flips) of the
//! given photos, all randomness drawn from the seed, so the same photos and
//! seed give the same network. [`prepare`] caches the fitted weights under
//! `<cache_dir>/simulators/<name>-s<seed>.safetensors` (the cache is keyed by
//! name and seed only: delete it after changing the photos or the options).
#![warn(missing_docs)]

mod net;

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::{Device, Tensor, TensorData};
use cnnspot_generators::{Generator, GeneratorError, Kind};
use cnnspot_weights::TensorView;
use image::RgbImage;

use net::{Arch, SplitMix64, UpKind};

/// Errors of preparing a simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimulatorError {
    /// The name is not one of [`names`].
    #[error("unknown simulator {name:?} (known: {known})")]
    UnknownName {
        /// The name asked for.
        name: String,
        /// The known names, comma-separated.
        known: String,
    },
    /// A real photo could not be read.
    #[error("cannot read photo {path}: {source}")]
    Photo {
        /// The photo.
        path: PathBuf,
        /// Why.
        source: image::ImageError,
    },
    /// Fitting needs at least one photo.
    #[error("no real photos to fit {name} on")]
    NoPhotos {
        /// The simulator.
        name: String,
    },
    /// The cache folder could not be made.
    #[error("cannot create {path}: {source}")]
    Io {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The weight file could not be read or written.
    #[error("weights of {name}: {source}")]
    Weights {
        /// The simulator.
        name: String,
        /// Why.
        source: cnnspot_weights::Error,
    },
    /// A cached weight file does not fit the architecture.
    #[error("{path} does not fit {name}: {reason}")]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// The simulator.
        name: String,
        /// What differs.
        reason: String,
    },
    /// The loss became NaN or infinite.
    #[error("fitting {name} diverged at step {step}")]
    Diverged {
        /// The simulator.
        name: String,
        /// The step.
        step: usize,
    },
    /// burn failed to hand back tensor values.
    #[error("{name}: {reason}")]
    Tensor {
        /// The simulator.
        name: String,
        /// What went wrong.
        reason: String,
    },
}

const UP_KINDS: [(&str, UpKind); 5] = [
    ("convt4", UpKind::ConvT4),
    ("convt3", UpKind::ConvT3),
    ("nearest", UpKind::Nearest),
    ("bilinear", UpKind::Bilinear),
    ("shuffle", UpKind::Shuffle),
];

const NAMES: [&str; 11] = [
    "autogan",
    "up-convt4",
    "up-convt4-in",
    "up-convt3",
    "up-convt3-in",
    "up-nearest",
    "up-nearest-in",
    "up-bilinear",
    "up-bilinear-in",
    "up-shuffle",
    "up-shuffle-in",
];

/// The simulator names [`prepare`] accepts.
pub fn names() -> Vec<&'static str> {
    NAMES.to_vec()
}

/// How a simulator is fitted. [`FitOptions::for_name`] gives the defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitOptions {
    /// Adam steps.
    pub steps: usize,
    /// Crops per step.
    pub batch: usize,
    /// Side of the square training crops.
    pub crop: usize,
    /// Adam's learning rate (betas 0.9/0.999 are fixed); halved at 3/4 of
    /// the steps.
    pub lr: f64,
}

impl FitOptions {
    /// The defaults of simulator `name`: `autogan` 300 steps of 4 crops at
    /// lr 1e-3; `up-*` 200 steps of 8 crops at lr 2e-3; 64x64 crops.
    pub fn for_name(name: &str) -> FitOptions {
        if name == "autogan" {
            FitOptions {
                steps: 300,
                batch: 4,
                crop: 64,
                lr: 1e-3,
            }
        } else {
            FitOptions {
                steps: 200,
                batch: 8,
                crop: 64,
                lr: 2e-3,
            }
        }
    }
}

/// What fitting (or loading) a simulator did.
#[derive(Debug, Clone, Default)]
pub struct FitReport {
    /// Whether the weights came from the cache (then nothing was fitted).
    pub cached: bool,
    /// The L1 loss (in [-1, 1] units) of every step.
    pub losses: Vec<f32>,
    /// Wall time of preparing, seconds.
    pub seconds: f64,
    /// The architecture, in words.
    pub arch: String,
}

/// A fitted simulator: a [`Generator`] of kind [`Kind::Autoencoder`].
pub struct Simulator {
    name: String,
    arch: Arch,
    shapes: Vec<(String, Vec<usize>)>,
    values: Vec<Vec<f32>>,
    report: FitReport,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("name", &self.name)
            .field("arch", &self.arch.describe)
            .finish()
    }
}

fn arch_for(name: &str, seed: u64) -> Option<Arch> {
    if name == "autogan" {
        return Some(net::cyclegan(16, 3));
    }
    let rest = name.strip_prefix("up-")?;
    let (kind, norm) = match rest.strip_suffix("-in") {
        Some(k) => (k, true),
        None => (rest, false),
    };
    let up = UP_KINDS.iter().find(|(n, _)| *n == kind)?.1;
    // The architecture's free choices come from the seed (mixed with the
    // name, so that two kinds with one seed do not share their choices).
    let mut rng = SplitMix64::new(seed ^ fnv1a(name));
    let depth = 1 + rng.below(2);
    let channels = 16 + rng.below(33);
    let leaky = rng.below(2) == 1;
    Some(net::upsampler(up, norm, depth, channels, leaky))
}

fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The cache file of simulator `name` fitted with `seed`.
pub fn cache_path(cache_dir: &Path, name: &str, seed: u64) -> PathBuf {
    cache_dir
        .join("simulators")
        .join(format!("{name}-s{seed}.safetensors"))
}

/// Loads simulator `name` fitted with `seed` from the cache under
/// `cache_dir`, or fits it on the photos `reals` with the default
/// [`FitOptions`] and caches it.
pub fn prepare(
    name: &str,
    reals: &[PathBuf],
    cache_dir: &Path,
    seed: u64,
) -> Result<Box<dyn Generator>, SimulatorError> {
    let sim = prepare_with(
        name,
        reals,
        cache_dir,
        seed,
        &FitOptions::for_name(name),
        &mut |_, _, _| {},
    )?;
    Ok(Box::new(sim))
}

/// [`prepare`] with explicit options and a progress hook called after each
/// fitting step with `(step, steps, loss)` (steps counted from 1).
pub fn prepare_with(
    name: &str,
    reals: &[PathBuf],
    cache_dir: &Path,
    seed: u64,
    options: &FitOptions,
    on_step: &mut dyn FnMut(usize, usize, f32),
) -> Result<Simulator, SimulatorError> {
    let start = Instant::now();
    let path = cache_path(cache_dir, name, seed);
    let arch = arch_for(name, seed).ok_or_else(|| unknown(name))?;
    if path.is_file() {
        let mut sim = load(name, seed, &path)?;
        sim.report.seconds = start.elapsed().as_secs_f64();
        return Ok(sim);
    }
    let mut photos = Vec::with_capacity(reals.len());
    for p in reals {
        let img = image::open(p).map_err(|source| SimulatorError::Photo {
            path: p.clone(),
            source,
        })?;
        photos.push(img.to_rgb8());
    }
    let mut sim = fit_arch(name, arch, &photos, seed, options, on_step)?;
    let dir = cache_dir.join("simulators");
    std::fs::create_dir_all(&dir).map_err(|source| SimulatorError::Io {
        path: dir.clone(),
        source,
    })?;
    sim.save(&path)?;
    sim.report.seconds = start.elapsed().as_secs_f64();
    Ok(sim)
}

fn unknown(name: &str) -> SimulatorError {
    SimulatorError::UnknownName {
        name: name.to_string(),
        known: NAMES.join(", "),
    }
}

/// Fits simulator `name` on in-memory photos (nothing is cached).
pub fn fit(
    name: &str,
    photos: &[RgbImage],
    seed: u64,
    options: &FitOptions,
    on_step: &mut dyn FnMut(usize, usize, f32),
) -> Result<Simulator, SimulatorError> {
    let arch = arch_for(name, seed).ok_or_else(|| unknown(name))?;
    fit_arch(name, arch, photos, seed, options, on_step)
}

/// Loads simulator `name` (architecture from `seed`) from a safetensors file
/// written by [`Simulator::save`].
pub fn load(name: &str, seed: u64, path: &Path) -> Result<Simulator, SimulatorError> {
    let arch = arch_for(name, seed).ok_or_else(|| unknown(name))?;
    let ckpt = cnnspot_weights::load(path).map_err(|source| SimulatorError::Weights {
        name: name.to_string(),
        source,
    })?;
    let shapes = arch.param_shapes();
    let mismatch = |reason: String| SimulatorError::Mismatch {
        path: path.to_path_buf(),
        name: name.to_string(),
        reason,
    };
    let mut values = Vec::with_capacity(shapes.len());
    for (pname, shape) in &shapes {
        let t = ckpt
            .get(pname)
            .ok_or_else(|| mismatch(format!("no tensor {pname}")))?;
        if &t.shape != shape {
            return Err(mismatch(format!(
                "{pname} has shape {:?}, expected {shape:?}",
                t.shape
            )));
        }
        t.validate()
            .map_err(|e| mismatch(format!("{pname}: {e}")))?;
        values.push(t.to_f32_vec());
    }
    Ok(Simulator {
        name: name.to_string(),
        report: FitReport {
            cached: true,
            arch: arch.describe.clone(),
            ..FitReport::default()
        },
        arch,
        shapes,
        values,
    })
}

fn tensor_values<const D: usize>(t: Tensor<D>, name: &str) -> Result<Vec<f32>, SimulatorError> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| SimulatorError::Tensor {
            name: name.to_string(),
            reason: format!("{e:?}"),
        })
}

/// Photos as f32 CHW planes in [-1, 1], at least `crop` on each side.
fn to_planes(photos: &[RgbImage], crop: usize) -> Vec<(usize, usize, Vec<f32>)> {
    photos
        .iter()
        .filter(|p| p.width() > 0 && p.height() > 0)
        .map(|p| {
            let (w, h) = (p.width() as usize, p.height() as usize);
            let img = if w < crop || h < crop {
                let s = crop as f64 / w.min(h) as f64;
                image::imageops::resize(
                    p,
                    ((w as f64 * s).ceil() as u32).max(crop as u32),
                    ((h as f64 * s).ceil() as u32).max(crop as u32),
                    image::imageops::FilterType::CatmullRom,
                )
            } else {
                p.clone()
            };
            let (w, h) = (img.width() as usize, img.height() as usize);
            let mut planes = vec![0f32; 3 * w * h];
            for (x, y, px) in img.enumerate_pixels() {
                for (c, &v) in px.0.iter().enumerate() {
                    planes[c * w * h + y as usize * w + x as usize] = v as f32 / 127.5 - 1.0;
                }
            }
            (w, h, planes)
        })
        .collect()
}

fn fit_arch(
    name: &str,
    arch: Arch,
    photos: &[RgbImage],
    seed: u64,
    options: &FitOptions,
    on_step: &mut dyn FnMut(usize, usize, f32),
) -> Result<Simulator, SimulatorError> {
    let start = Instant::now();
    let crop = options.crop.max(arch.multiple).div_ceil(arch.multiple) * arch.multiple;
    let planes = to_planes(photos, crop);
    if planes.is_empty() {
        return Err(SimulatorError::NoPhotos {
            name: name.to_string(),
        });
    }
    let mut rng = SplitMix64::new(seed ^ fnv1a(name).rotate_left(17));
    let shapes = arch.param_shapes();
    let device = Device::flex().autodiff();
    let mut params: Vec<Tensor<1>> = arch
        .init(&mut rng)
        .into_iter()
        .map(|v| {
            let n = v.len();
            Tensor::<1>::from_data(TensorData::new(v, [n]), &device).require_grad()
        })
        .collect();
    let mut moments: Vec<(Tensor<1>, Tensor<1>)> = params
        .iter()
        .map(|p| {
            let z: Tensor<1> = Tensor::zeros(p.dims(), &device.clone().inner());
            (z.clone(), z)
        })
        .collect();
    let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8f64);
    let batch = options.batch.max(1);
    let mut losses = Vec::with_capacity(options.steps);
    for step in 1..=options.steps {
        // One batch of random crops, flipped at random.
        let mut data = vec![0f32; batch * 3 * crop * crop];
        for b in 0..batch {
            let (w, h, img) = &planes[rng.below(planes.len())];
            let x0 = rng.below(w - crop + 1);
            let y0 = rng.below(h - crop + 1);
            let flip = rng.below(2) == 1;
            for c in 0..3 {
                for y in 0..crop {
                    let src = &img[c * w * h + (y0 + y) * w + x0..][..crop];
                    let dst = &mut data[((b * 3 + c) * crop + y) * crop..][..crop];
                    if flip {
                        dst.iter_mut()
                            .zip(src.iter().rev())
                            .for_each(|(d, s)| *d = *s);
                    } else {
                        dst.copy_from_slice(src);
                    }
                }
            }
        }
        let x: Tensor<4> =
            Tensor::from_data(TensorData::new(data, [batch, 3, crop, crop]), &device);
        let out = net::forward(&arch, &params, &shapes, x.clone());
        let loss = (out - x).abs().mean();
        let grads = loss.backward();
        let loss_value = tensor_values(loss.detach(), name)?
            .first()
            .copied()
            .unwrap_or(f32::NAN);
        if !loss_value.is_finite() {
            return Err(SimulatorError::Diverged {
                name: name.to_string(),
                step,
            });
        }
        let lr = if step * 4 > options.steps * 3 {
            options.lr / 2.0
        } else {
            options.lr
        };
        let bias1 = 1.0 - b1.powi(step as i32);
        let bias2 = 1.0 - b2.powi(step as i32);
        for (p, (m, v)) in params.iter_mut().zip(moments.iter_mut()) {
            let Some(g) = p.grad(&grads) else {
                continue;
            };
            *m = m.clone().mul_scalar(b1) + g.clone().mul_scalar(1.0 - b1);
            *v = v.clone().mul_scalar(b2) + g.square().mul_scalar(1.0 - b2);
            let denom = v.clone().sqrt().div_scalar(bias2.sqrt()).add_scalar(eps);
            let delta = (m.clone() / denom).mul_scalar(lr / bias1);
            *p = Tensor::from_inner(p.clone().inner() - delta).require_grad();
        }
        losses.push(loss_value);
        on_step(step, options.steps, loss_value);
    }
    let mut values = Vec::with_capacity(params.len());
    for p in params {
        values.push(tensor_values(p.inner(), name)?);
    }
    Ok(Simulator {
        name: name.to_string(),
        report: FitReport {
            cached: false,
            losses,
            seconds: start.elapsed().as_secs_f64(),
            arch: arch.describe.clone(),
        },
        arch,
        shapes,
        values,
    })
}

impl Simulator {
    /// What fitting or loading did.
    pub fn report(&self) -> &FitReport {
        &self.report
    }

    /// Writes the weights as safetensors (atomically: a temporary file in the
    /// same folder, synced and renamed over `path`).
    pub fn save(&self, path: &Path) -> Result<(), SimulatorError> {
        let weights = |source| SimulatorError::Weights {
            name: self.name.clone(),
            source,
        };
        let mut tensors = Vec::with_capacity(self.shapes.len());
        for ((pname, shape), v) in self.shapes.iter().zip(&self.values) {
            tensors.push((
                pname.clone(),
                TensorView::from_f32(shape.clone(), v).map_err(weights)?,
            ));
        }
        cnnspot_weights::save_safetensors_with_metadata(
            &tensors,
            &[
                ("simulator".to_string(), self.name.clone()),
                ("arch".to_string(), self.arch.describe.clone()),
            ],
            path,
        )
        .map_err(weights)
    }

    /// Runs the network on one image (inference, no autodiff): the image in
    /// [-1, 1], padded at the right and bottom (edge) to a multiple of the
    /// network's stride, the tanh output mapped to [0, 255] and rounded.
    pub fn reconstruct(&self, real: &RgbImage) -> Result<RgbImage, SimulatorError> {
        let (w, h) = (real.width() as usize, real.height() as usize);
        if w == 0 || h == 0 {
            return Ok(real.clone());
        }
        let device = Device::flex();
        let params: Vec<Tensor<1>> = self
            .values
            .iter()
            .map(|v| Tensor::from_data(TensorData::new(v.clone(), [v.len()]), &device))
            .collect();
        let mut data = vec![0f32; 3 * w * h];
        for (x, y, px) in real.enumerate_pixels() {
            for (c, &v) in px.0.iter().enumerate() {
                data[c * w * h + y as usize * w + x as usize] = v as f32 / 127.5 - 1.0;
            }
        }
        let m = self.arch.multiple;
        let (pw, ph) = (w.div_ceil(m) * m, h.div_ceil(m) * m);
        let mut x: Tensor<4> = Tensor::from_data(TensorData::new(data, [1, 3, h, w]), &device);
        if (pw, ph) != (w, h) {
            x = x.pad((0, pw - w, 0, ph - h), burn::tensor::ops::PadMode::Edge);
        }
        let out =
            net::forward(&self.arch, &params, &self.shapes, x).slice([0..1, 0..3, 0..h, 0..w]);
        let v = tensor_values(out, &self.name)?;
        Ok(RgbImage::from_fn(w as u32, h as u32, |x, y| {
            let at = |c: usize| {
                let t = v[c * w * h + y as usize * w + x as usize];
                ((t + 1.0) * 127.5).round().clamp(0.0, 255.0) as u8
            };
            image::Rgb([at(0), at(1), at(2)])
        }))
    }
}

impl Generator for Simulator {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> Kind {
        Kind::Autoencoder
    }

    /// The reconstruction of `real`; `seed` is unused (the network is
    /// deterministic; its own seed was fixed when it was fitted).
    fn make(&self, real: &RgbImage, _seed: u64) -> Result<RgbImage, GeneratorError> {
        self.reconstruct(real).map_err(|e| GeneratorError::Failed {
            generator: self.name.clone(),
            reason: e.to_string(),
        })
    }
}
