//! What the server is allowed to do: scoring settings and every limit.

use std::time::Duration;

use cnnspot_core::PreprocessOptions;

/// Settings of a server. [`ServeConfig::default`] gives the CLI's defaults.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Center-crop size, or `None` to score the whole image (as `detect`).
    pub crop: Option<u32>,
    /// Probability above which an image is called synthetic (as `detect`);
    /// `None`: the model's own (calibrated for the built-in model, 0.5
    /// otherwise).
    pub threshold: Option<f32>,
    /// Images whose header announces more pixels are refused (413) before
    /// decoding.
    pub max_pixels: u64,
    /// Largest request body in bytes; more gets 413.
    pub max_body_bytes: usize,
    /// Most files in one multipart request; more gets 413.
    pub max_files: usize,
    /// Requests of `/v1/detect` being served at once; one more gets 429.
    pub max_concurrency: usize,
    /// Images decoded at once (each on a blocking thread).
    pub decode_threads: usize,
    /// Images waiting for the model at most; further images wait (within the
    /// request timeout) until there is room.
    pub queue_len: usize,
    /// Pixels of all images waiting for the model at most: bounds the memory
    /// of the queue when images are large.
    pub max_queued_pixels: u64,
    /// Images per forward pass at most.
    pub max_batch: usize,
    /// Pixels per forward pass at most (bounds activation memory).
    pub max_batch_pixels: u64,
    /// How long the first image of a batch may wait for others of its size.
    pub batch_wait: Duration,
    /// A `/v1/detect` request that takes longer gets 503.
    pub request_timeout: Duration,
    /// Connections open at once; more wait in the accept backlog.
    pub max_connections: usize,
    /// A connection without a byte in either direction for this long is
    /// closed (never sooner than 5 s after the request timeout, so that a
    /// request being scored is not cut).
    pub idle_timeout: Duration,
    /// Bearer token required on `/v1/*` and `/metrics`; `None` disables auth.
    pub token: Option<String>,
    /// Listen on a non-loopback address without a token.
    pub allow_unauthenticated: bool,
}

/// Default pixel limit of the server: 4096 x 4096. Lower than `detect`'s
/// because a server holds several images at once and an uncropped forward
/// pass needs memory in proportion to the pixels.
pub const DEFAULT_MAX_PIXELS: u64 = 4096 * 4096;

impl Default for ServeConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        ServeConfig {
            crop: None,
            threshold: None,
            max_pixels: DEFAULT_MAX_PIXELS,
            max_body_bytes: 32 << 20,
            max_files: 64,
            max_concurrency: 64,
            decode_threads: cores.clamp(1, 8),
            queue_len: 64,
            max_queued_pixels: 64 << 20,
            max_batch: 16,
            max_batch_pixels: 16 * 256 * 256,
            batch_wait: Duration::from_millis(3),
            request_timeout: Duration::from_secs(60),
            max_connections: 1024,
            idle_timeout: Duration::from_secs(30),
            token: None,
            allow_unauthenticated: false,
        }
    }
}

impl ServeConfig {
    /// How the server decodes and prepares each uploaded image.
    pub fn preprocess_options(&self) -> PreprocessOptions {
        PreprocessOptions {
            crop: self.crop,
            max_pixels: self.max_pixels,
        }
    }

    /// Replaces zero limits (which would make the server refuse everything
    /// or hang) by one.
    pub(crate) fn sanitized(mut self) -> Self {
        self.max_files = self.max_files.max(1);
        self.max_concurrency = self.max_concurrency.max(1);
        self.decode_threads = self.decode_threads.max(1);
        self.queue_len = self.queue_len.max(1);
        self.max_queued_pixels = self.max_queued_pixels.clamp(1, u32::MAX as u64);
        self.max_batch = self.max_batch.max(1);
        self.max_batch_pixels = self.max_batch_pixels.max(1);
        self.token = self.token.filter(|t| !t.is_empty());
        self.max_connections = self.max_connections.max(1);
        self
    }

    pub(crate) fn effective_idle_timeout(&self) -> Duration {
        self.idle_timeout
            .max(self.request_timeout + Duration::from_secs(5))
    }
}
