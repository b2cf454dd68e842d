//! The flags of every command that scores images with a model, defined
//! once and flattened into each.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use cnnspot_core::{Detector, Engine, DEFAULT_MAX_INFER_PIXELS};
use cnnspot_fetch as fetch;

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

    /// Network implementation: `fast` (folded BatchNorm, NHWC, AVX-512) or
    /// `burn` (the reference model).
    #[arg(long, default_value = "fast", value_parser = parse_engine)]
    pub engine: Engine,

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

/// What a `--weights` value names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelChoice {
    /// The model compiled into cnnspot.
    Builtin,
    /// A weight file (an official checkpoint resolved in the cache, or a path).
    File(PathBuf),
}

impl ModelArgs {
    /// The detector the flags name, with the pixel budget applied.
    pub fn open(&self) -> Result<Detector> {
        let mut detector = open_named(self.weights.as_deref(), self.engine, &self.cache)?;
        detector.set_max_infer_pixels(self.max_infer_pixels);
        Ok(detector)
    }
}

/// Resolves one model name: nothing or `builtin`, `official` or an official
/// checkpoint name (a file of that name in the working folder wins), or a path.
pub fn resolve(name: Option<&str>, cache: &CacheArgs) -> Result<ModelChoice> {
    let Some(name) = name else {
        return Ok(ModelChoice::Builtin);
    };
    if name == cnnspot_core::builtin::NAME {
        return Ok(ModelChoice::Builtin);
    }
    let official = if name == "official" {
        Some(fetch::DEFAULT_CHECKPOINT)
    } else if !Path::new(name).exists() {
        fetch::find_known(name).map(|k| k.name)
    } else {
        None
    };
    let Some(official) = official else {
        return Ok(ModelChoice::File(PathBuf::from(name)));
    };
    let dir = fetch::cache_dir(cache.cache_dir.as_deref())?;
    fetch::cached_checkpoint(&dir, official)
        .map(ModelChoice::File)
        .ok_or_else(|| {
            anyhow!(
                "the official checkpoint {official} is not in the cache ({}); run `cnnspot weights fetch {official}`, or leave --weights out to use the built-in model",
                dir.join("weights").display()
            )
        })
}

/// Opens the detector one model name resolves to.
pub fn open_named(name: Option<&str>, engine: Engine, cache: &CacheArgs) -> Result<Detector> {
    match resolve(name, cache)? {
        ModelChoice::Builtin => Detector::builtin(engine).context("cannot load the built-in model"),
        ModelChoice::File(path) => Detector::load_with(&path, engine)
            .with_context(|| format!("cannot use the weights {}", path.display())),
    }
}
