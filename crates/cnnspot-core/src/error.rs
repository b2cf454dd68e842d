//! Typed errors of the library.

use std::path::PathBuf;

pub use cnnspot_net::ModelError;

/// Any failure of the library, with the file it concerns where there is one.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A weight file could not be read or parsed.
    #[error(transparent)]
    Weights(#[from] cnnspot_weights::Error),
    /// A weight file parsed but does not fit the model.
    #[error("{path}: {source}")]
    Model {
        /// The weight file.
        path: PathBuf,
        #[source]
        /// What is wrong with it.
        source: ModelError,
    },
    /// An image could not be used.
    #[error("{path}: {source}")]
    Image {
        /// The image file.
        path: PathBuf,
        #[source]
        /// Why it could not be used.
        source: cnnspot_image::ImageError,
    },
    /// Images of different sizes were put in one batch.
    #[error("a batch must hold images of one size; got {0}")]
    MixedSizes(String),
    /// An image is above the pixel budget of one forward pass.
    #[error("a {width}x{height} image is {pixels} pixels, above the inference budget of {budget} pixels (about 300 bytes each)")]
    TooLarge {
        /// Image width in pixels.
        width: usize,
        /// Image height in pixels.
        height: usize,
        /// `width * height`.
        pixels: u64,
        /// The budget it exceeds.
        budget: u64,
    },
    /// A setting the chosen engine does not offer.
    #[error("the {engine} engine does not run {what}")]
    Unsupported {
        /// The engine's name.
        engine: &'static str,
        /// What was asked of it.
        what: String,
    },
    /// The tensor engine failed (a bug, not a user error).
    #[error("inference failed: {0}")]
    Inference(String),
    /// Writing an output failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        #[source]
        /// The operating system's error.
        source: std::io::Error,
    },
}

/// Shorthand for results of this library.
pub type Result<T, E = Error> = std::result::Result<T, E>;
