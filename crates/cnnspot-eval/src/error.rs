//! Errors of the evaluation: one sentence naming the file and what to do.

use std::path::PathBuf;

/// What can stop an evaluation or a dataset check.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The root is not a dataset in the ForenSynths layout.
    #[error("{root} is not a dataset in the ForenSynths layout: {why}")]
    NotADataset { root: PathBuf, why: String },

    /// `--generators` named one that is not there.
    #[error("there is no generator {name} in {root} (found: {known})")]
    UnknownGenerator {
        name: String,
        root: PathBuf,
        known: String,
    },

    /// Reading or writing a file failed.
    #[error("{what} {path}: {source}")]
    Io {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },

    /// A scores file has a line that is not a score row.
    #[error("{path} line {line} is not a score row ({why}); remove the line or the file")]
    BadScores {
        path: PathBuf,
        line: usize,
        why: String,
    },

    /// Existing scores were made with other settings.
    #[error(
        "{path} holds scores made with other settings ({why}); \
         use another --out folder, or delete it to start again"
    )]
    Mismatch { path: PathBuf, why: String },

    /// Drawing a figure failed.
    #[error("cannot draw {path}: {why}")]
    Plot { path: PathBuf, why: String },

    /// A JSON document could not be made or read.
    #[error("{path}: {why}")]
    Json { path: PathBuf, why: String },
}

/// Result with [`EvalError`].
pub type Result<T, E = EvalError> = std::result::Result<T, E>;

pub(crate) fn io_err(
    path: &std::path::Path,
    what: &'static str,
) -> impl FnOnce(std::io::Error) -> EvalError {
    let path = path.to_path_buf();
    move |source| EvalError::Io { path, what, source }
}
