//! The error type of the image pipeline.

/// Why an image could not be decoded or preprocessed.
///
/// Each message is one short sentence without the file name: the caller adds
/// the path (e.g. `"{path}: {err}"`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// The file could not be read (missing, unreadable, a directory, ...).
    #[error("cannot read file: {0}")]
    Io(#[from] std::io::Error),

    /// The file or buffer holds zero bytes.
    #[error("empty file")]
    Empty,

    /// The content starts with no known image signature (magic bytes).
    #[error("not an image (unrecognised format)")]
    NotAnImage,

    /// A recognised image format that this build cannot decode (e.g. AVIF,
    /// or a JPEG coding process that the decoder does not implement).
    #[error("unsupported image format: {0}")]
    Unsupported(String),

    /// The data is truncated or malformed; `message` is the decoder's reason.
    #[error("truncated or corrupt {format} data: {message}")]
    Corrupt {
        /// The detected format (`"PNG"`, `"JPEG"`, ...).
        format: &'static str,
        /// What the decoder reported.
        message: String,
    },

    /// The header announces more pixels than allowed; nothing was decoded.
    #[error(
        "image is {width}x{height} pixels, over the limit of {limit} pixels \
         (raise the pixel limit, max_pixels, to decode it)"
    )]
    TooLarge {
        /// Width from the header.
        width: u32,
        /// Height from the header.
        height: u32,
        /// The pixel limit in force.
        limit: u64,
    },

    /// Decoding would need more memory than the decoder's allocation limit.
    #[error("decoding needs more memory than allowed: {0}")]
    MemoryLimit(String),

    /// A transformation applied after decoding (a JPEG round trip or a blur
    /// of a robustness sweep, for example) failed.
    #[error("cannot post-process the image: {0}")]
    PostProcess(String),

    /// Compressing an image (JPEG) failed.
    #[error("cannot encode the image: {0}")]
    Encode(String),

    /// The (cropped or uncropped) result is smaller than the model accepts.
    #[error(
        "image is {width}x{height} pixels, smaller than the {min}x{min} minimum \
         the model needs (a center crop pads small images)"
    )]
    TooSmall {
        /// Width of the result.
        width: u32,
        /// Height of the result.
        height: u32,
        /// The minimum side length ([`crate::MIN_SIDE`]).
        min: u32,
    },
}
