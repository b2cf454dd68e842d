//! cnnspot: spot images made by convolutional generators.
//!
//! A faithful port of the detector of Wang et al., "CNN-generated images are
//! surprisingly easy to spot... for now" (CVPR 2020): a torchvision ResNet
//! with a one-logit head, the reference preprocessing, and the weight formats
//! the reference code writes.
//!
//! ```no_run
//! use cnnspot_core::{Detector, PreprocessOptions};
//! let detector = Detector::load(std::path::Path::new("blur_jpg_prob0.5.pth"))?;
//! let score = detector.score_path(std::path::Path::new("photo.png"), &PreprocessOptions::default())?;
//! println!("p(synthetic) = {:.4}", score.probability);
//! # Ok::<(), cnnspot_core::Error>(())
//! ```

#![warn(missing_docs)]
pub mod builtin;
pub mod detector;
pub mod error;
pub mod model;
pub mod weights;

pub use cnnspot_engine::Precision;
pub use cnnspot_image as image;
pub use cnnspot_image::{PreprocessOptions, Preprocessed};
pub use cnnspot_net::{is_input_marker, InputTransform, SPECTRUM_MARKER};
pub use detector::{
    default_device, sigmoid, BatchLimits, Batching, Detector, Engine, ModelInfo, Score,
    DEFAULT_MAX_INFER_PIXELS,
};
pub use error::{Error, ModelError, Result};
pub use model::{Arch, ResNet, StateDict};
