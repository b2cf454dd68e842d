//! Image generators that cnnspot runs itself (work in progress).
#![warn(missing_docs)]

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
    /// result has the same size as `real`. `seed` decides any randomness
    /// (style choice, noise), so that the same inputs give the same fake.
    fn make(&self, real: &RgbImage, seed: u64) -> Result<RgbImage, GeneratorError>;
}
