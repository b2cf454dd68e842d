use std::path::PathBuf;

/// Errors of the frequency analysis; each names the file concerned.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    /// A file could not be written or read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A figure could not be drawn or encoded.
    #[error("cannot draw {}: {why}", path.display())]
    Plot {
        /// The figure's file.
        path: PathBuf,
        /// What went wrong.
        why: String,
    },
    /// Options that cannot work (a crop of 0, an even filter size...).
    #[error("{0}")]
    Invalid(String),
}

/// `Result` with [`AnalysisError`].
pub type Result<T> = std::result::Result<T, AnalysisError>;

/// Writes `bytes` to `path` atomically ([`cnnspot_files::write_atomic`]).
pub(crate) fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    cnnspot_files::write_atomic(path, bytes).map_err(|source| AnalysisError::Io {
        path: path.to_path_buf(),
        source,
    })
}
