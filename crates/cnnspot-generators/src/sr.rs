//! Running a catalogue entry as a [`Generator`]: the real crop is shrunk by
//! the model's scale (Pillow's bicubic), converted to a CHW float tensor in
//! `[0, 1]`, reflect-padded by the model's prepadding, run through the
//! network, and the output is cropped back to the crop's size and turned
//! into 8-bit RGB (x255, rounded, clamped), as the upstream
//! `*-ncnn-vulkan` apps do.

use std::path::{Path, PathBuf};

use cnnspot_augment::{resize, Interp};
use image::RgbImage;

use crate::catalogue::{CatalogueEntry, NcnnSr, Network, Quirk, SRMD_KERNEL_PLANES};
use crate::fetch::cached_file;
use crate::{Generator, GeneratorError, Kind};

/// A CHW float tensor (one image, `c` planes of `h` x `w`).
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Channels.
    pub c: usize,
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
    /// `c * h * w` values, plane after plane, row after row.
    pub data: Vec<f32>,
}

impl Tensor {
    /// A tensor of zeros.
    pub fn zeros(c: usize, h: usize, w: usize) -> Self {
        Tensor {
            c,
            h,
            w,
            data: vec![0.0; c * h * w],
        }
    }

    /// The value at (channel, row, column).
    pub fn at(&self, c: usize, y: usize, x: usize) -> f32 {
        self.data[(c * self.h + y) * self.w + x]
    }
}

/// A single-input, single-output network (the seam between the pre/post
/// processing here and the ncnn interpreter, so that both can be tested
/// apart).
pub trait SrNetwork: Send + Sync {
    /// Runs the network on one input.
    fn run(&self, input: &Tensor) -> Result<Tensor, String>;
}

/// Errors loading a catalogue entry's network.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A file of the entry is not in the cache.
    #[error("{name} is not in the cache ({path} is missing)")]
    NotCached {
        /// Generator name.
        name: String,
        /// The missing file.
        path: PathBuf,
    },
    /// The ncnn interpreter refused the files.
    #[error("could not load the ncnn network of {name}: {reason}")]
    Ncnn {
        /// Generator name.
        name: String,
        /// The interpreter's message.
        reason: String,
    },
    /// The entry's checkpoint is not what its catalogue entry describes.
    #[error("could not load the checkpoint of {name}: {reason}")]
    Checkpoint {
        /// Generator name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The entry is not an ncnn super-resolution network.
    #[error("{name} is not an ncnn super-resolution network")]
    NotNcnn {
        /// Generator name.
        name: String,
    },
    /// This build has no ncnn interpreter.
    #[error("cannot run {name}: this build of cnnspot-generators has no ncnn interpreter (feature `ncnn`)")]
    NoInterpreter {
        /// Generator name.
        name: String,
    },
}

/// A catalogue entry run through its network.
pub struct NcnnSuperResolution {
    entry: &'static CatalogueEntry,
    sr: NcnnSr,
    net: Box<dyn SrNetwork>,
}

impl std::fmt::Debug for NcnnSuperResolution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NcnnSuperResolution")
            .field("entry", &self.entry.name)
            .finish_non_exhaustive()
    }
}

impl NcnnSuperResolution {
    /// The entry's processing around any network (tests use a hand-made one).
    pub fn with_network(
        entry: &'static CatalogueEntry,
        net: Box<dyn SrNetwork>,
    ) -> Result<Self, LoadError> {
        let sr = ncnn_settings(entry)?;
        Ok(NcnnSuperResolution { entry, sr, net })
    }

    /// Loads the entry's cached `.param` / `.bin` with the ncnn interpreter.
    pub fn load(entry: &'static CatalogueEntry, cache_dir: &Path) -> Result<Self, LoadError> {
        let sr = ncnn_settings(entry)?;
        let mut paths = Vec::with_capacity(2);
        for f in entry.files() {
            let path = cached_file(cache_dir, &entry.package, f);
            if !path.is_file() {
                return Err(LoadError::NotCached {
                    name: entry.name.to_string(),
                    path,
                });
            }
            paths.push(path);
        }
        let [param, bin] = paths.as_slice() else {
            return Err(LoadError::NotNcnn {
                name: entry.name.to_string(),
            });
        };
        let net = load_ncnn(entry, param, bin)?;
        Ok(NcnnSuperResolution { entry, sr, net })
    }

    /// The catalogue entry.
    pub fn entry(&self) -> &'static CatalogueEntry {
        self.entry
    }
}

fn ncnn_settings(entry: &CatalogueEntry) -> Result<NcnnSr, LoadError> {
    match entry.network {
        Network::NcnnSuperResolution(sr) => Ok(sr),
        _ => Err(LoadError::NotNcnn {
            name: entry.name.to_string(),
        }),
    }
}

#[cfg(feature = "ncnn")]
fn load_ncnn(
    entry: &'static CatalogueEntry,
    param: &Path,
    bin: &Path,
) -> Result<Box<dyn SrNetwork>, LoadError> {
    struct Ncnn(cnnspot_ncnn::Net);
    impl SrNetwork for Ncnn {
        fn run(&self, input: &Tensor) -> Result<Tensor, String> {
            let mat = cnnspot_ncnn::Mat {
                c: input.c,
                h: input.h,
                w: input.w,
                data: input.data.clone(),
            };
            let out = self.0.run(&mat).map_err(|e| e.to_string())?;
            Ok(Tensor {
                c: out.c,
                h: out.h,
                w: out.w,
                data: out.data,
            })
        }
    }
    let net = cnnspot_ncnn::Net::from_files(param, bin).map_err(|e| LoadError::Ncnn {
        name: entry.name.to_string(),
        reason: e.to_string(),
    })?;
    Ok(Box::new(Ncnn(net)))
}

#[cfg(not(feature = "ncnn"))]
fn load_ncnn(
    entry: &'static CatalogueEntry,
    _param: &Path,
    _bin: &Path,
) -> Result<Box<dyn SrNetwork>, LoadError> {
    Err(LoadError::NoInterpreter {
        name: entry.name.to_string(),
    })
}

impl Generator for NcnnSuperResolution {
    fn name(&self) -> &str {
        self.entry.name
    }

    fn kind(&self) -> Kind {
        Kind::SuperResolution {
            scale: self.sr.scale,
        }
    }

    fn description(&self) -> String {
        self.entry.description.to_string()
    }

    fn make(&self, real: &RgbImage, _seed: u64) -> Result<RgbImage, GeneratorError> {
        super_resolve(&self.sr, self.net.as_ref(), real).map_err(|reason| GeneratorError::Failed {
            generator: self.entry.name.to_string(),
            reason,
        })
    }
}

/// The whole round trip: shrink `real` by the entry's scale, run `net`, and
/// give an image of `real`'s size.
pub fn super_resolve(
    entry: &NcnnSr,
    net: &dyn SrNetwork,
    real: &RgbImage,
) -> Result<RgbImage, String> {
    let (w, h) = real.dimensions();
    let s = entry.scale.max(1);
    // Round up so that the upscaled output covers the crop; cropped below.
    let (lw, lh) = (w.div_ceil(s), h.div_ceil(s));
    let low = resize(real, lw, lh, Interp::Bicubic);
    let input = preprocess(entry, &low);
    let output = net.run(&input)?;
    postprocess(entry, &low, &input, &output, w, h)
}

/// The padding `(top, left, bottom, right)` added around a `h` x `w` input.
pub fn padding(entry: &NcnnSr, h: usize, w: usize) -> (usize, usize, usize, usize) {
    let p = entry.prepad as usize;
    let m = entry.size_multiple.max(1) as usize;
    let extra = |n: usize| (n + 2 * p).div_ceil(m) * m - (n + 2 * p);
    (p, p, p + extra(h), p + extra(w))
}

/// The network input for the low-resolution image: RGB/255, reflect-padded
/// (see [`padding`]), plus SRMD's constant planes.
pub fn preprocess(entry: &NcnnSr, low: &RgbImage) -> Tensor {
    let (w, h) = (low.width() as usize, low.height() as usize);
    let (top, left, bottom, right) = padding(entry, h, w);
    let (ph, pw) = (h + top + bottom, w + left + right);
    let extra: Vec<f32> = match entry.quirk {
        Quirk::Srmd { noise_level } => {
            let mut v = SRMD_KERNEL_PLANES.to_vec();
            if let Some(n) = noise_level {
                v.push(n as f32 / 255.0);
            }
            v
        }
        _ => Vec::new(),
    };
    let mut t = Tensor::zeros(3 + extra.len(), ph, pw);
    for y in 0..ph {
        let sy = reflect(y as isize - top as isize, h);
        for x in 0..pw {
            let sx = reflect(x as isize - left as isize, w);
            let px = low.get_pixel(sx as u32, sy as u32);
            for c in 0..3 {
                t.data[(c * ph + y) * pw + x] = f32::from(px[c]) / 255.0;
            }
        }
    }
    for (i, v) in extra.iter().enumerate() {
        let plane = (3 + i) * ph * pw;
        t.data[plane..plane + ph * pw].fill(*v);
    }
    t
}

/// Reflection (without repeating the edge, as ncnn's `copy_make_border`
/// type 2 and numpy's `reflect`) of index `i` into `[0, n)`.
fn reflect(i: isize, n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    let n = n as isize;
    let period = 2 * (n - 1);
    let mut i = i.rem_euclid(period);
    if i >= n {
        i = period - i;
    }
    i as usize
}

/// Crops the network output back to `out_w` x `out_h` 8-bit RGB.
///
/// The network may lose a border (valid convolutions): the offset of the
/// wanted region is computed from the output size, assuming the loss is the
/// same on both sides.
pub fn postprocess(
    entry: &NcnnSr,
    low: &RgbImage,
    input: &Tensor,
    output: &Tensor,
    out_w: u32,
    out_h: u32,
) -> Result<RgbImage, String> {
    let s = entry.scale.max(1) as usize;
    if output.c < 3 || output.data.len() != output.c * output.h * output.w {
        return Err(format!(
            "the network gave {} x {} x {} values, expected 3 channels",
            output.c, output.h, output.w
        ));
    }
    let (top, left, _, _) = padding(entry, low.height() as usize, low.width() as usize);
    let offset = |in_n: usize, out_n: usize, pad: usize| -> Result<usize, String> {
        let full = in_n * s;
        if out_n > full || !(full - out_n).is_multiple_of(2) {
            return Err(format!(
                "the network gave a {out_n}-pixel side for a {in_n}-pixel input at x{s}"
            ));
        }
        let border = (full - out_n) / 2;
        (pad * s)
            .checked_sub(border)
            .ok_or_else(|| format!("the network lost more than the padding ({border} pixels)"))
    };
    let oy = offset(input.h, output.h, top)?;
    let ox = offset(input.w, output.w, left)?;
    if oy + out_h as usize > output.h || ox + out_w as usize > output.w {
        return Err(format!(
            "the network output ({} x {}) is too small for a {out_w} x {out_h} crop",
            output.w, output.h
        ));
    }
    let residual = matches!(entry.quirk, Quirk::AddNearestInput);
    let mut img = RgbImage::new(out_w, out_h);
    for y in 0..out_h as usize {
        for x in 0..out_w as usize {
            let mut px = [0u8; 3];
            for (c, v) in px.iter_mut().enumerate() {
                let mut f = output.at(c, oy + y, ox + x);
                if residual {
                    let (ly, lx) = (
                        (y / s).min(low.height() as usize - 1),
                        (x / s).min(low.width() as usize - 1),
                    );
                    f += f32::from(low.get_pixel(lx as u32, ly as u32)[c]) / 255.0;
                }
                *v = (f * 255.0).round().clamp(0.0, 255.0) as u8;
            }
            img.put_pixel(x as u32, y as u32, image::Rgb(px));
        }
    }
    Ok(img)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::find;

    #[test]
    fn reflect_like_numpy() {
        let r: Vec<usize> = (-3..7).map(|i| reflect(i, 4)).collect();
        assert_eq!(r, vec![3, 2, 1, 0, 1, 2, 3, 2, 1, 0]);
        assert_eq!(reflect(5, 1), 0);
    }

    #[test]
    fn padding_multiples() {
        let cugan4 = ncnn_settings(find("realcugan-se-x4").unwrap()).unwrap();
        let (t, l, b, r) = padding(&cugan4, 33, 32);
        assert_eq!((t, l), (19, 19));
        assert_eq!((33 + t + b) % 2, 0);
        assert_eq!((32 + l + r) % 2, 0);
        assert_eq!(r, 19);
    }

    #[test]
    fn srmd_planes() {
        let e = ncnn_settings(find("srmd-x2").unwrap()).unwrap();
        let low = RgbImage::from_pixel(5, 4, image::Rgb([255, 0, 51]));
        let t = preprocess(&e, &low);
        assert_eq!(t.c, 19);
        assert_eq!((t.h, t.w), (4 + 24, 5 + 24));
        assert_eq!(t.at(0, 0, 0), 1.0);
        assert!((t.at(2, 3, 3) - 0.2).abs() < 1e-6);
        assert_eq!(t.at(17, 2, 2), SRMD_KERNEL_PLANES[14]);
        assert!((t.at(18, 1, 1) - 3.0 / 255.0).abs() < 1e-9);
        let nf = ncnn_settings(find("srmdnf-x4").unwrap()).unwrap();
        assert_eq!(preprocess(&nf, &low).c, 18);
    }
}
