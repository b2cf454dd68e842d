//! A DCGAN generator (PyTorch's DCGAN tutorial layout) as a [`Generator`]:
//! a latent vector drawn from the pair's seed goes through five transposed
//! convolutions to a small image. The real crop plays no part in the fake;
//! [`crate::synth`] shrinks it to the generator's size to be the pair's real.
//!
//! The PyTorch checkpoint is read with `cnnspot-weights` (no code runs), its
//! BatchNorm folded into the convolutions, and the network written as an
//! ncnn graph that `cnnspot-ncnn` runs, so that every generator shares one
//! set of kernels.

use std::fmt::Write as _;
use std::path::Path;

use image::RgbImage;

use crate::catalogue::{CatalogueEntry, Dcgan, Network};
use crate::fetch::cached_file;
use crate::rng::SplitMix64;
use crate::sr::LoadError;
use crate::{Generator, GeneratorError, Kind};

/// BatchNorm's epsilon in `nn.BatchNorm2d` (the tutorial keeps the default).
const BN_EPS: f64 = 1e-5;

/// A DCGAN catalogue entry, loaded.
pub struct DcganGenerator {
    entry: &'static CatalogueEntry,
    settings: Dcgan,
    net: cnnspot_ncnn::Net,
}

impl std::fmt::Debug for DcganGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DcganGenerator")
            .field("entry", &self.entry.name)
            .finish_non_exhaustive()
    }
}

impl DcganGenerator {
    /// Loads the entry's cached checkpoint.
    pub fn load(entry: &'static CatalogueEntry, cache_dir: &Path) -> Result<Self, LoadError> {
        let file = entry.files.first().ok_or_else(|| LoadError::NotNcnn {
            name: entry.name.to_string(),
        })?;
        let path = cached_file(cache_dir, &entry.package, file);
        if !path.is_file() {
            return Err(LoadError::NotCached {
                name: entry.name.to_string(),
                path,
            });
        }
        let value = cnnspot_weights::load_value(&path).map_err(|e| LoadError::Checkpoint {
            name: entry.name.to_string(),
            reason: e.to_string(),
        })?;
        Self::from_checkpoint(entry, &value)
    }

    /// Builds the generator from a loaded checkpoint (the top-level object).
    pub fn from_checkpoint(
        entry: &'static CatalogueEntry,
        checkpoint: &cnnspot_weights::PyValue,
    ) -> Result<Self, LoadError> {
        let bad = |reason: String| LoadError::Checkpoint {
            name: entry.name.to_string(),
            reason,
        };
        let Network::Dcgan(settings) = entry.network else {
            return Err(bad("not a DCGAN entry".into()));
        };
        let state = checkpoint
            .get(settings.state_dict_key)
            .ok_or_else(|| bad(format!("no '{}' entry", settings.state_dict_key)))?;
        let (param, bin) = ncnn_graph(&settings, state).map_err(bad)?;
        let net = cnnspot_ncnn::Net::from_bytes(&param, &bin).map_err(|e| LoadError::Ncnn {
            name: entry.name.to_string(),
            reason: e.to_string(),
        })?;
        Ok(DcganGenerator {
            entry,
            settings,
            net,
        })
    }

    /// The latent vector of `seed`: `latent` standard normal numbers.
    pub fn latent(&self, seed: u64) -> Vec<f32> {
        let mut rng = SplitMix64::new(seed);
        (0..self.settings.latent)
            .map(|_| rng.normal() as f32)
            .collect()
    }

    /// The network's raw output for latent vector `z`: 3 planes of
    /// `size` x `size` in `[-1, 1]` (tanh).
    pub fn sample(&self, z: &[f32]) -> Result<cnnspot_ncnn::Mat, String> {
        if z.len() != self.settings.latent {
            return Err(format!(
                "latent vector of {} values, the network takes {}",
                z.len(),
                self.settings.latent
            ));
        }
        let input = cnnspot_ncnn::Mat::new(z.len(), 1, 1, z.to_vec()).map_err(|e| e.to_string())?;
        self.net.run(&input).map_err(|e| e.to_string())
    }
}

impl Generator for DcganGenerator {
    fn name(&self) -> &str {
        self.entry.name
    }

    fn kind(&self) -> Kind {
        Kind::NoiseToImage
    }

    fn native_size(&self) -> Option<u32> {
        Some(self.settings.size)
    }

    fn description(&self) -> String {
        self.entry.description.to_string()
    }

    fn make(&self, _real: &RgbImage, seed: u64) -> Result<RgbImage, GeneratorError> {
        let fail = |reason: String| GeneratorError::Failed {
            generator: self.entry.name.to_string(),
            reason,
        };
        let out = self.sample(&self.latent(seed)).map_err(fail)?;
        let n = self.settings.size as usize;
        if out.c != 3 || out.h != n || out.w != n {
            return Err(fail(format!(
                "the network gave {} x {} x {}, expected 3 x {n} x {n}",
                out.c, out.h, out.w
            )));
        }
        Ok(RgbImage::from_fn(n as u32, n as u32, |x, y| {
            let at = |c: usize| {
                let v = out.data[(c * n + y as usize) * n + x as usize];
                ((v + 1.0) * 127.5).round().clamp(0.0, 255.0) as u8
            };
            image::Rgb([at(0), at(1), at(2)])
        }))
    }
}

/// The tensor `name` as f32 with its shape, or a message.
fn tensor(state: &cnnspot_weights::PyValue, name: &str) -> Result<(Vec<usize>, Vec<f32>), String> {
    let t = state
        .get(name)
        .and_then(|v| v.as_tensor())
        .ok_or_else(|| format!("missing tensor {name}"))?;
    t.validate().map_err(|e| format!("{name}: {e}"))?;
    let values = t.to_f32_vec();
    if values.iter().any(|v| !v.is_finite()) {
        return Err(format!("{name} holds non-finite values"));
    }
    Ok((t.shape.clone(), values))
}

/// The ncnn `.param` text and `.bin` bytes of the DCGAN in `state`: each
/// `ConvTranspose2d` (PyTorch weight `[in, out, k, k]`) becomes a
/// `Deconvolution` (ncnn weight `[out, in, k, k]`) with the following
/// BatchNorm folded in and its ReLU fused; the last one is followed by TanH.
fn ncnn_graph(
    settings: &Dcgan,
    state: &cnnspot_weights::PyValue,
) -> Result<(String, Vec<u8>), String> {
    // Sequential indices of the tutorial: ConvT at 0, 3, 6, 9, 12; BN at 1, 4, 7, 10.
    const CONVS: [usize; 5] = [0, 3, 6, 9, 12];
    let p = settings.prefix;
    let mut layers = vec![format!("Input data 0 1 data 0=1 1=1 2={}", settings.latent)];
    let mut bin = Vec::new();
    let mut channels = settings.latent;
    let mut bottom = "data".to_string();
    for (i, &idx) in CONVS.iter().enumerate() {
        let (shape, w) = tensor(state, &format!("{p}{idx}.weight"))?;
        let [cin, cout, kh, kw] = shape[..] else {
            return Err(format!(
                "{p}{idx}.weight has shape {shape:?}, expected 4 dimensions"
            ));
        };
        if cin != channels || kh != 4 || kw != 4 {
            return Err(format!(
                "{p}{idx}.weight has shape {shape:?}, expected [{channels}, _, 4, 4]"
            ));
        }
        let last = i + 1 == CONVS.len();
        // Per output channel: y = a * conv(x) + b.
        let (a, b) = if last {
            (vec![1.0f64; cout], vec![0.0f64; cout])
        } else {
            let bn = |s: &str| -> Result<Vec<f32>, String> {
                let (sh, v) = tensor(state, &format!("{p}{}.{s}", idx + 1))?;
                if sh != [cout] {
                    return Err(format!(
                        "{p}{}.{s} has shape {sh:?}, expected [{cout}]",
                        idx + 1
                    ));
                }
                Ok(v)
            };
            let (g, beta, mean, var) = (
                bn("weight")?,
                bn("bias")?,
                bn("running_mean")?,
                bn("running_var")?,
            );
            let a: Vec<f64> = (0..cout)
                .map(|c| f64::from(g[c]) / (f64::from(var[c]) + BN_EPS).sqrt())
                .collect();
            let b = (0..cout)
                .map(|c| f64::from(beta[c]) - a[c] * f64::from(mean[c]))
                .collect();
            (a, b)
        };
        // ncnn layout [out][in][k]; tag 0 = float32.
        bin.extend_from_slice(&0u32.to_le_bytes());
        for (o, &scale) in a.iter().enumerate() {
            for c in 0..cin {
                for k in 0..kh * kw {
                    let v = f64::from(w[(c * cout + o) * kh * kw + k]) * scale;
                    bin.extend_from_slice(&(v as f32).to_le_bytes());
                }
            }
        }
        for &v in &b {
            bin.extend_from_slice(&(v as f32).to_le_bytes());
        }
        let (stride, pad) = if i == 0 { (1, 0) } else { (2, 1) };
        let top = format!("b{i}");
        let relu = if last { "" } else { " 9=1" };
        layers.push(format!(
            "Deconvolution deconv{i} 1 1 {bottom} {top} 0={cout} 1=4 3={stride} 4={pad} 5=1 6={}{relu}",
            cout * cin * 16
        ));
        bottom = top;
        channels = cout;
    }
    if channels != 3 {
        return Err(format!(
            "the last layer gives {channels} channels, expected 3 (RGB)"
        ));
    }
    layers.push(format!("TanH tanh 1 1 {bottom} output"));
    let mut param = String::from("7767517\n");
    let _ = writeln!(param, "{} {}", layers.len(), layers.len());
    for l in &layers {
        param.push_str(l);
        param.push('\n');
    }
    Ok((param, bin))
}
