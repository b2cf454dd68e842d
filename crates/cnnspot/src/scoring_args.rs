//! The flags of every command that scores a set of images (`detect`,
//! `eval`, `robustness`), defined once and flattened into each.

use cnnspot_core::image::DEFAULT_MAX_PIXELS;
use cnnspot_core::{Batching, PreprocessOptions};

/// How images are read, cropped and batched, and whether progress shows.
#[derive(clap::Args, Debug, Clone)]
pub struct ScoringArgs {
    /// Center-crop to PX x PX pixels first (after any perturbation), as in
    /// the paper's tables (224); by default the whole image is scored (the
    /// "no crop" table).
    #[arg(long, value_name = "PX", value_parser = clap::value_parser!(u32).range(32..=8192), conflicts_with = "no_crop")]
    pub crop: Option<u32>,

    /// Score the whole image (the default).
    #[arg(long)]
    pub no_crop: bool,

    /// Images per forward pass (images of equal size are batched together).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub batch_size: u32,

    /// Refuse images with more pixels than this (decompression bombs).
    #[arg(long, default_value_t = DEFAULT_MAX_PIXELS, value_name = "N")]
    pub max_pixels: u64,

    /// Threads decoding (for robustness also perturbing) images while the
    /// network runs [default: 1; robustness: 2].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub decoders: Option<u32>,

    /// No progress bars or progress lines on standard error.
    #[arg(long, short)]
    pub quiet: bool,
}

impl ScoringArgs {
    /// The preprocessing the flags ask for.
    pub fn preprocess(&self) -> PreprocessOptions {
        PreprocessOptions {
            crop: self.crop,
            max_pixels: self.max_pixels,
        }
    }

    /// The batching the flags ask for; `default_decoders` when
    /// `--decoders` is not given.
    pub fn batching(&self, default_decoders: u32) -> Batching {
        Batching {
            batch_size: self.batch_size as usize,
            decoders: self.decoders.unwrap_or(default_decoders) as usize,
            ..Batching::default()
        }
    }
}
