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

/// Writes `bytes` to `path` through a temporary file in the same folder and
/// a rename, so that a reader never sees half a file.
pub(crate) fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    let io = |source| AnalysisError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })
}
