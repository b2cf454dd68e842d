//! The flags of every command that scores images with a model, defined
//! once and flattened into each.

use anyhow::{anyhow, Result};
use cnnspot::ModelLookupError;
use cnnspot_core::{Detector, Engine, Precision, DEFAULT_MAX_INFER_PIXELS};
use cnnspot_engine::Int8Isa;

use crate::CacheArgs;

/// Which network scores, how, and where cached weights are.
#[derive(clap::Args, Debug, Clone)]
pub struct ModelArgs {
    /// The model: `builtin` (cnnspot's own, compiled in; the default),
    /// `official` or an official checkpoint name (`blur_jpg_prob0.5`,
    /// `blur_jpg_prob0.1`: from the cache, see `cnnspot weights fetch`), or
    /// a weight file (.pth or .safetensors).
    #[arg(long, short, value_name = "MODEL")]
    pub weights: Option<String>,

    /// Network implementation: `fast` (folded BatchNorm, NHWC, AVX-512 or
    /// AVX2 kernels chosen at run time) or `burn` (the reference model).
    #[arg(long, default_value = "fast", value_parser = parse_engine)]
    pub engine: Engine,

    /// Arithmetic of the convolutions: `f32` (the reference) or `int8`
    /// (8-bit weights and activations for all but the first convolution;
    /// fast on CPUs with AVX-512 VNNI; fast engine only).
    #[arg(long, default_value = "f32", value_parser = parse_precision)]
    pub precision: Precision,

    /// Pixels per forward pass at most (memory grows by about 300 bytes
    /// per pixel): larger images are scored in overlapping tiles with the
    /// same result (the burn engine refuses them).
    #[arg(long, default_value_t = DEFAULT_MAX_INFER_PIXELS, value_name = "N")]
    pub max_infer_pixels: u64,

    #[command(flatten)]
    pub cache: CacheArgs,
}

fn parse_engine(s: &str) -> Result<Engine, String> {
    s.parse()
}

fn parse_precision(s: &str) -> Result<Precision, String> {
    s.parse()
}

impl ModelArgs {
    /// The detector the flags name, with the pixel budget applied.
    pub fn open(&self) -> Result<Detector> {
        let mut detector = open_named(self.weights.as_deref(), self.engine, &self.cache)?;
        detector.set_max_infer_pixels(self.max_infer_pixels);
        detector
            .set_precision(self.precision)
            .map_err(|e| anyhow!("{e}; leave out --engine burn for --precision int8"))?;
        if let Some(net) = detector.fast_network() {
            if net.precision() == Precision::Int8 && !net.int8_isa().is_fast() {
                let speed = match net.int8_isa() {
                    Int8Isa::Avx2 => "at about f32's speed (AVX2)",
                    _ => "about 15x slower than f32 (portable kernel)",
                };
                eprintln!(
                    "warning: without AVX-512 VNNI, --precision int8 runs {speed}; \
                     leave --precision out for f32"
                );
            }
        }
        Ok(detector)
    }
}

/// Opens the detector one model name resolves to (see
/// [`cnnspot::resolve_model`]), with what to do when it is not there.
pub fn open_named(name: Option<&str>, engine: Engine, cache: &CacheArgs) -> Result<Detector> {
    cnnspot::open_model(name, engine, cache.cache_dir.as_deref()).map_err(|e| match e {
        ModelLookupError::NotCached { name, .. } => anyhow!(
            "{e}; run `cnnspot weights fetch {name}`, or leave --weights out to use the built-in model"
        ),
        other => anyhow::Error::new(other),
    })
}
