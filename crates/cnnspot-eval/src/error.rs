//! Errors of the evaluation: one sentence naming the file and what to do.

use std::path::PathBuf;

/// What can stop an evaluation or a dataset check.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The root is not a dataset in the ForenSynths layout.
    #[error("{root} is not a dataset in the ForenSynths layout: {why}")]
    NotADataset {
        /// The folder given.
        root: PathBuf,
        /// What is missing.
        why: String,
    },

    /// `--generators` named one that is not there.
    #[error("there is no generator {name} in {root} (found: {known})")]
    UnknownGenerator {
        /// The name given.
        name: String,
        /// The dataset root.
        root: PathBuf,
        /// The generators that are there, comma-separated.
        known: String,
    },

    /// Reading or writing a file failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done (`cannot read`, `cannot write`).
        what: &'static str,
        #[source]
        /// The operating system's error.
        source: std::io::Error,
    },

    /// A scores file has a line that is not a score row.
    #[error("{path} line {line} is not a score row ({why}); remove the line or the file")]
    BadScores {
        /// The scores file.
        path: PathBuf,
        /// Line number, from 1.
        line: usize,
        /// What is wrong with it.
        why: String,
    },

    /// Existing scores were made with other settings.
    #[error(
        "{path} holds scores made with other settings ({why}); \
         use another --out folder, or delete it to start again"
    )]
    Mismatch {
        /// The scores file.
        path: PathBuf,
        /// What went wrong.
        why: String,
    },

    /// Drawing a figure failed.
    #[error("cannot draw {path}: {why}")]
    Plot {
        /// The figure file.
        path: PathBuf,
        /// What went wrong.
        why: String,
    },

    /// The shards of a sharded run cannot be merged (yet).
    #[error("cannot merge the shards in {dir}: {}", problems.join("; "))]
    Shards {
        /// The output folder.
        dir: PathBuf,
        /// Each problem, naming its shard and what to rerun.
        problems: Vec<String>,
    },

    /// A JSON document could not be made or read.
    #[error("{path}: {why}")]
    Json {
        /// The JSON file.
        path: PathBuf,
        /// What went wrong.
        why: String,
    },
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
