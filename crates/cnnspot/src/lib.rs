//! cnnspot: spot images made by convolutional generators (GANs,
//! super-resolution and style-transfer networks, face swaps), after Wang et
//! al., "CNN-generated images are surprisingly easy to spot... for now"
//! (CVPR 2020).
//!
//! This crate is the one entry point for programs that use cnnspot as a
//! library; the `cnnspot` command is built on it. Scoring a file with the
//! model compiled into cnnspot (no download, no network):
//!
//! ```
//! use cnnspot::{open_model, Engine, PreprocessOptions};
//! let detector = open_model(None, Engine::Fast, None)?; // None: the built-in model
//! let photo = std::path::Path::new("../../samples/fake_srmdnf-x4_rocket.png");
//! let score = detector.score_path(photo, &PreprocessOptions::default())?;
//! println!("p(synthetic) = {:.3}: {}", score.probability, score.is_synthetic(detector.threshold()));
//! # assert!(score.probability.is_finite());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! * [`Detector`], [`Score`], [`PreprocessOptions`], [`ModelInfo`]: loading
//!   weights (PyTorch `.pth`, safetensors, or the built-in model) and scoring
//!   files or decoded images; [`Detector::score_paths`] decodes on worker
//!   threads and batches.
//! * [`resolve_model`] / [`open_model`]: what a model name means (`builtin`,
//!   `official`, an official checkpoint's name in the weight cache, a path),
//!   the lookup every `cnnspot` command does for `--weights`.
//! * [`eval`]: datasets in the ForenSynths layout, the paper's metrics and
//!   evaluation protocol, robustness sweeps, sharding for clusters.
//! * [`report`]: the self-contained HTML report of a results folder, whose
//!   file names are [`layout`].

#![warn(missing_docs)]

use std::path::{Path, PathBuf};

pub use cnnspot_core::{
    builtin, Arch, Batching, Detector, Engine, Error, ModelInfo, PreprocessOptions, Preprocessed,
    Score, DEFAULT_MAX_INFER_PIXELS,
};
pub use cnnspot_eval as eval;
pub use cnnspot_files::layout;
pub use cnnspot_report as report;

/// What a model name (`--weights`) names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelChoice {
    /// The model compiled into cnnspot.
    Builtin,
    /// A weight file: an official checkpoint found in the cache, or a path.
    File(PathBuf),
}

/// Why a model name could not be turned into a detector.
#[derive(Debug, thiserror::Error)]
pub enum ModelLookupError {
    /// An official checkpoint that has not been downloaded.
    #[error("the official checkpoint {name} is not in the cache ({})", dir.display())]
    NotCached {
        /// The checkpoint's name.
        name: &'static str,
        /// Where it was looked for.
        dir: PathBuf,
    },
    /// The weight cache could not be located.
    #[error(transparent)]
    Cache(#[from] cnnspot_fetch::FetchError),
    /// The built-in model could not be loaded.
    #[error("cannot load the built-in model: {0}")]
    Builtin(#[source] Box<Error>),
    /// A weight file could not be loaded.
    #[error("cannot use the weights {}: {source}", path.display())]
    Weights {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<Error>,
    },
}

/// Resolves a model name: nothing or `builtin` is the built-in model;
/// `official` or an official checkpoint's name (`blur_jpg_prob0.5`, ...)
/// is that checkpoint in the weight cache under `cache_dir` (default: see
/// [`cnnspot_fetch::cache_dir`]), unless a file of that name exists; any
/// other name is a path.
pub fn resolve_model(
    name: Option<&str>,
    cache_dir: Option<&Path>,
) -> Result<ModelChoice, ModelLookupError> {
    let Some(name) = name else {
        return Ok(ModelChoice::Builtin);
    };
    if name == builtin::NAME {
        return Ok(ModelChoice::Builtin);
    }
    let official = if name == "official" {
        Some(cnnspot_fetch::DEFAULT_CHECKPOINT)
    } else if !Path::new(name).exists() {
        cnnspot_fetch::find_known(name).map(|k| k.name)
    } else {
        None
    };
    let Some(official) = official else {
        return Ok(ModelChoice::File(PathBuf::from(name)));
    };
    let dir = cnnspot_fetch::cache_dir(cache_dir)?;
    cnnspot_fetch::cached_checkpoint(&dir, official)
        .map(ModelChoice::File)
        .ok_or_else(|| ModelLookupError::NotCached {
            name: official,
            dir: dir.join("weights"),
        })
}

/// Opens the detector a model name resolves to (see [`resolve_model`]).
pub fn open_model(
    name: Option<&str>,
    engine: Engine,
    cache_dir: Option<&Path>,
) -> Result<Detector, ModelLookupError> {
    match resolve_model(name, cache_dir)? {
        ModelChoice::Builtin => {
            Detector::builtin(engine).map_err(|e| ModelLookupError::Builtin(Box::new(e)))
        }
        ModelChoice::File(path) => {
            Detector::load_with(&path, engine).map_err(|source| ModelLookupError::Weights {
                path,
                source: Box::new(source),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_to_the_builtin_model_a_cached_checkpoint_or_a_path() {
        let cache = tempfile::tempdir().unwrap();
        let c = Some(cache.path());
        assert_eq!(resolve_model(None, c).unwrap(), ModelChoice::Builtin);
        assert_eq!(
            resolve_model(Some("builtin"), c).unwrap(),
            ModelChoice::Builtin
        );
        assert_eq!(
            resolve_model(Some("my/model.pth"), c).unwrap(),
            ModelChoice::File(PathBuf::from("my/model.pth"))
        );
        match resolve_model(Some("official"), c) {
            Err(ModelLookupError::NotCached { name, dir }) => {
                assert_eq!(name, cnnspot_fetch::DEFAULT_CHECKPOINT);
                assert!(dir.starts_with(cache.path()), "{}", dir.display());
            }
            other => panic!("expected NotCached, got {other:?}"),
        }
    }

    #[test]
    fn a_missing_weight_file_is_named() {
        let err = open_model(Some("/nonexistent/w.pth"), Engine::Fast, None).unwrap_err();
        assert!(
            matches!(&err, ModelLookupError::Weights { path, .. } if path == Path::new("/nonexistent/w.pth")),
            "{err}"
        );
        assert!(err.to_string().contains("/nonexistent/w.pth"), "{err}");
    }
}
