//! The crate's error type.

use std::path::{Path, PathBuf};

/// Everything that can go wrong reading or writing weight files.
///
/// Input bytes never cause a panic: every problem with a file is one of these.
/// Errors from [`crate::load`] and [`crate::save_safetensors`] are wrapped in
/// [`Error::InFile`], whose message starts with the file's path.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O operation failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done ("cannot read", "cannot write", ...).
        action: &'static str,
        /// The file or folder concerned.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not a checkpoint in any supported format; the message
    /// says what they look like (an HTML page, a text file, ...).
    #[error("{0}")]
    NotACheckpoint(String),
    /// The zip container of a zip-format checkpoint is damaged or truncated.
    #[error("corrupt or truncated zip archive: {0}")]
    Zip(String),
    /// A pickle stream is malformed or uses something the reader refuses.
    #[error("malformed pickle ({context}) at byte {offset}: {message}")]
    Pickle {
        /// Which pickle (e.g. `data.pkl`, `main pickle`).
        context: String,
        /// Byte offset of the offending opcode inside that pickle stream.
        offset: usize,
        /// What is wrong.
        message: String,
    },
    /// A hard limit protecting against hostile files was exceeded.
    #[error("limit exceeded: {0}")]
    Limit(String),
    /// A feature of the file that this reader does not support.
    #[error("unsupported checkpoint feature: {0}")]
    Unsupported(String),
    /// A storage's data is missing, truncated or inconsistent with its declaration.
    #[error("bad storage '{key}': {message}")]
    Storage {
        /// The storage's key in the checkpoint.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A tensor's shape, strides or offset are invalid or do not fit its storage.
    #[error("bad tensor{}: {message}", name.as_ref().map(|n| format!(" '{n}'")).unwrap_or_default())]
    Tensor {
        /// The tensor's name when known.
        name: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// The checkpoint loaded but holds no recognisable state dict.
    #[error("no state dict found: {0}")]
    NoStateDict(String),
    /// A safetensors file is malformed.
    #[error("invalid safetensors file: {0}")]
    Safetensors(String),
    /// Tensors handed to a writer are inconsistent (duplicate names, bad views).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Another error, in the named file.
    #[error("{}: {inner}", path.display())]
    InFile {
        /// The file concerned.
        path: PathBuf,
        /// The error itself.
        inner: Box<Error>,
    },
}

impl Error {
    /// The error without any [`Error::InFile`] wrapping.
    pub fn root(&self) -> &Error {
        match self {
            Error::InFile { inner, .. } => inner.root(),
            e => e,
        }
    }

    /// The path of the file concerned, when known.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Error::InFile { path, .. } | Error::Io { path, .. } => Some(path),
            _ => None,
        }
    }

    pub(crate) fn in_file(self, path: &Path) -> Error {
        match self {
            // I/O errors already name their path.
            e @ Error::Io { .. } => e,
            e @ Error::InFile { .. } => e,
            e => Error::InFile {
                path: path.to_path_buf(),
                inner: Box::new(e),
            },
        }
    }

    pub(crate) fn tensor(name: Option<&str>, message: impl Into<String>) -> Error {
        Error::Tensor {
            name: name.map(str::to_owned),
            message: message.into(),
        }
    }
}
