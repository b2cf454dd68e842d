//! Errors of the report: one sentence naming the file and the reason.

use std::path::PathBuf;

/// What can stop a report from being made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The results folder is missing or not a folder.
    #[error("{}: {why}", path.display())]
    NotAFolder {
        /// The folder given.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },

    /// The folder holds none of the files a report is made of.
    #[error(
        "{} holds nothing to report: expected results.json or scores.jsonl \
         (from `cnnspot eval ROOT --out DIR`), spectra_grid.png (from `cnnspot \
         spectrum ROOT --out DIR`) or robustness.json (from `cnnspot robustness \
         ROOT --out DIR`)",
        dir.display()
    )]
    NothingToReport {
        /// The results folder.
        dir: PathBuf,
    },

    /// An input file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// A JSON input is not what the command that writes it writes.
    #[error("{}: {why}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },

    /// Reading the scores or writing the report failed (the error names the
    /// file).
    #[error(transparent)]
    Eval(#[from] cnnspot_eval::EvalError),

    /// Options that cannot work.
    #[error("{0}")]
    Invalid(String),

    /// The page template failed; a bug, not a problem of the inputs.
    #[error("cannot render the report template: {0}")]
    Template(String),
}

/// `Result` with [`ReportError`].
pub type Result<T, E = ReportError> = std::result::Result<T, E>;
