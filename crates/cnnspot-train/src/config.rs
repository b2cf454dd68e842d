//! Every training setting, with the reference's defaults; read from TOML,
//! overridden by flags, and saved with the run.

use std::path::{Path, PathBuf};

use cnnspot_augment::AugmentConfig;
use cnnspot_core::InputTransform;
use serde::{Deserialize, Serialize};

use crate::{io_err, Result, TrainError};

/// A training run's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Run name: checkpoints and logs go to `<checkpoints_dir>/<name>`.
    pub name: String,
    /// Training root: `<data>/<class>/{0_real,1_fake}` (or `<data>/{0_real,1_fake}`).
    pub data: PathBuf,
    /// Validation root, same layout; none = no validation (no schedule).
    pub val: Option<PathBuf>,
    /// Class folders to use; empty = every class folder found.
    pub classes: Vec<String>,
    /// Where runs are kept.
    pub checkpoints_dir: PathBuf,
    /// torchvision ResNet depth: resnet18, resnet34, resnet50, resnet101, resnet152.
    pub arch: String,
    /// What the network reads: `rgb`, `npr` or `spectrum` (Zhang et al.'s
    /// log-magnitude DFT); none = the architecture's own (`npr` for NPR,
    /// `rgb` for the ResNets). Saved with every checkpoint.
    pub input: Option<String>,
    /// ImageNet weights to start from (fc replaced, N(0, 0.02)); none = random.
    pub init: Option<PathBuf>,
    /// Images per step (the reference's 64).
    pub batch_size: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// Adam's beta1 (beta2 is 0.999).
    pub beta1: f64,
    /// Epochs at most (the schedule usually stops first).
    pub epochs: usize,
    /// Epochs without validation improvement before the lr is divided by 10.
    pub patience: usize,
    /// Seed of every random draw (init, order, augmentation).
    pub seed: u64,
    /// Threads decoding and augmenting images.
    pub workers: usize,
    /// Sample real and fake equally often (weighted sampling with replacement).
    pub class_balance: bool,
    /// Save `latest` every this many steps (and at every epoch end).
    pub save_every_steps: u64,
    /// Refuse images with more pixels than this.
    pub max_pixels: u64,
    /// The augmentation preset this configuration started from (informative).
    pub preset: Option<String>,
    /// Augmentation settings.
    pub augment: AugmentConfig,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            name: "run".into(),
            data: PathBuf::new(),
            val: None,
            classes: Vec::new(),
            checkpoints_dir: PathBuf::from("runs"),
            arch: "resnet50".into(),
            input: None,
            init: None,
            batch_size: 64,
            lr: 1e-4,
            beta1: 0.9,
            epochs: 1000,
            patience: 5,
            seed: 0,
            workers: 2,
            class_balance: false,
            save_every_steps: 2000,
            max_pixels: cnnspot_image::DEFAULT_MAX_PIXELS,
            preset: Some("blur+jpeg-0.5".into()),
            augment: AugmentConfig::preset("blur+jpeg-0.5").unwrap_or_default(),
        }
    }
}

impl TrainConfig {
    /// Reads a TOML file; unknown keys are an error (a typo must not be ignored).
    pub fn from_toml_file(path: &Path) -> Result<TrainConfig> {
        let text = std::fs::read_to_string(path).map_err(io_err(path))?;
        toml::from_str(&text).map_err(|e| TrainError::Config(format!("{}: {e}", path.display())))
    }

    /// The configuration as TOML.
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string_pretty(self).map_err(|e| TrainError::Config(e.to_string()))
    }

    /// Checks what can be checked before any work starts.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(TrainError::Config(m));
        let Some(arch) = cnnspot_core::Arch::parse(&self.arch) else {
            return bad(format!(
                "unknown architecture {}; use resnet18, resnet34, resnet50, resnet101, resnet152 or npr",
                self.arch
            ));
        };
        self.input_transform(arch)?;
        if self.batch_size == 0 {
            return bad("batch_size must be at least 1".into());
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad(format!("lr must be positive, not {}", self.lr));
        }
        if self.name.is_empty() || self.name.contains(['/', '\\']) {
            return bad(format!(
                "run name {:?} must be a plain folder name",
                self.name
            ));
        }
        self.augment
            .validate()
            .map_err(|e| TrainError::Config(e.to_string()))
    }

    /// The input transform the network of `arch` reads.
    pub fn input_transform(&self, arch: cnnspot_core::Arch) -> Result<InputTransform> {
        let own = InputTransform::default_for(arch);
        let Some(name) = &self.input else {
            return Ok(own);
        };
        match InputTransform::parse(name) {
            // A checkpoint can record any input it has a marker for.
            Some(t) if t == own || t.marker(arch).is_some() => Ok(t),
            Some(t) => Err(TrainError::Config(format!(
                "input {} on {}: only the architecture's own input ({}) or spectrum is supported",
                t.name(),
                arch.name(),
                own.name()
            ))),
            None => Err(TrainError::Config(format!(
                "unknown input {name}; use rgb, npr or spectrum"
            ))),
        }
    }

    /// The run's folder.
    pub fn run_dir(&self) -> PathBuf {
        self.checkpoints_dir.join(&self.name)
    }
}
