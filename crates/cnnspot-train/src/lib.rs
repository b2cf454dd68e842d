//! Training a detector with the paper's recipe (SPEC "Training"): ProGAN-style
//! real/fake folders, blur and JPEG augmentation drawn independently, Adam,
//! validation every epoch with learning-rate drops on a plateau, and
//! checkpoints in the official layout that a killed run resumes from.

#![warn(missing_docs)]
pub mod config;
pub mod curves;
pub mod data;
pub mod run;
pub mod step;

pub use config::TrainConfig;
pub use run::{train, Event, Summary};

use std::path::PathBuf;

/// Why training could not go on.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A folder holds no usable images.
    #[error("{path}: {why}")]
    Data {
        /// The folder.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// The configuration is inconsistent.
    #[error("bad training configuration: {0}")]
    Config(String),
    /// The model or a weight file failed.
    #[error(transparent)]
    Core(#[from] cnnspot_core::Error),
    /// A checkpoint could not be written or read.
    #[error(transparent)]
    Weights(#[from] cnnspot_weights::Error),
    /// An output file could not be written.
    #[error(transparent)]
    Output(#[from] cnnspot_eval::EvalError),
    /// A file could not be written or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        #[source]
        /// The operating system's error.
        source: std::io::Error,
    },
}

/// Shorthand for this crate's results.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;

pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to `path` through a temporary file in the same folder and
/// a rename, so that a reader never sees half a file (the evaluation's
/// writer, which also removes the temporary file when writing fails).
pub(crate) fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    Ok(cnnspot_eval::scores::write_atomic(path, bytes)?)
}
