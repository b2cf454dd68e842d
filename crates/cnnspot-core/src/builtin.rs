//! cnnspot's own detector, compiled into the library: an NPR network
//! trained by `scripts/train-builtin-model.sh` on fakes that `cnnspot synth`
//! makes (see `MODEL.md` at the repository root), stored as fp16
//! safetensors, with a temperature and threshold calibrated on its
//! validation split.

use serde::Deserialize;

use crate::error::{Error, Result};

/// The name `--weights builtin` and reports use.
pub const NAME: &str = "builtin";

/// The weights (fp16 safetensors).
pub const WEIGHTS: &[u8] = include_bytes!("../models/builtin-npr.safetensors");

/// The model card's machine-readable part: calibration and checks.
pub const CARD: &str = include_str!("../models/builtin-npr.json");

/// What calibration on the validation split chose.
#[derive(Debug, Clone, Deserialize)]
pub struct Calibration {
    /// Logits are divided by this before the sigmoid.
    pub temperature: f32,
    /// The calibrated probability above which an image is called synthetic
    /// (the one that maximised validation accuracy).
    pub threshold: f32,
    /// sha256 of [`WEIGHTS`], as recorded when the model was made.
    pub sha256: String,
}

/// The calibration recorded with the built-in model.
pub fn calibration() -> Result<Calibration> {
    let c: Calibration = serde_json::from_str(CARD)
        .map_err(|e| Error::Inference(format!("the built-in model card is malformed: {e}")))?;
    if !(c.temperature.is_finite() && c.temperature > 0.0 && (0.0..=1.0).contains(&c.threshold)) {
        return Err(Error::Inference(
            "the built-in model card has an invalid temperature or threshold".into(),
        ));
    }
    Ok(c)
}
