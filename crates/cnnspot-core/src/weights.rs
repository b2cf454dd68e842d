//! From weight files to the model: reading, inspecting, converting.

use std::path::Path;

use cnnspot_weights::Checkpoint;

use crate::error::{Error, Result};
use crate::model::{describe_state_dict, Arch, StateDict};

/// The parameters of a checkpoint as f32, by torchvision name.
pub fn state_dict(ckpt: &Checkpoint) -> StateDict {
    ckpt.tensors
        .iter()
        .map(|(name, t)| (name.clone(), (t.shape.clone(), t.to_f32_vec())))
        .collect()
}

/// What `cnnspot weights info` shows about a file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WeightsInfo {
    /// Container format.
    pub format: String,
    /// Architecture inferred from the tensor names, if any fits.
    pub arch: Option<String>,
    /// What the network reads (`rgb`, `npr`, `spectrum`), when the
    /// architecture is known.
    pub input: Option<String>,
    /// Outputs of `fc` (1 for a detector, 1000 for ImageNet weights).
    pub num_outputs: Option<usize>,
    /// Learnable parameters (weights and biases; not BatchNorm statistics).
    pub parameters: u64,
    /// Number of tensors in the state dict.
    pub tensors: usize,
    /// Top-level entries other than the state dict (`optimizer`, `total_steps`).
    pub extra_keys: Vec<String>,
    /// Training steps recorded in the file.
    pub total_steps: Option<i64>,
    /// Why the file does not load into a model, if it does not.
    pub problem: Option<String>,
}

/// Reads a weight file in any supported format.
pub fn read(path: &Path) -> Result<Checkpoint> {
    Ok(cnnspot_weights::load(path)?)
}

/// Describes a weight file without building the model.
pub fn info(path: &Path) -> Result<WeightsInfo> {
    let ckpt = read(path)?;
    let arch = Arch::infer(ckpt.tensors.iter().map(|(n, _)| n.as_str()));
    let num_outputs = arch
        .and_then(|a| ckpt.get(&format!("{}.weight", a.head_name())))
        .and_then(|t| t.shape.first().copied());
    let parameters = ckpt
        .tensors
        .iter()
        .filter(|(n, _)| n.ends_with(".weight") || n.ends_with(".bias"))
        .map(|(_, t)| t.numel() as u64)
        .sum();
    let problem = describe_state_dict(&shapes_only(&ckpt))
        .err()
        .or_else(|| crate::model::check_values(&state_dict(&ckpt)).err())
        .map(|e| e.to_string());
    Ok(WeightsInfo {
        format: ckpt.format.to_string(),
        arch: arch.map(|a| a.name().to_string()),
        input: arch.map(|a| {
            crate::InputTransform::of_names(ckpt.names(), a)
                .name()
                .to_string()
        }),
        num_outputs,
        parameters,
        tensors: ckpt.tensors.len(),
        extra_keys: ckpt.extra_keys.clone(),
        total_steps: ckpt.total_steps,
        problem,
    })
}

fn shapes_only(ckpt: &Checkpoint) -> StateDict {
    ckpt.tensors
        .iter()
        .map(|(n, t)| (n.clone(), (t.shape.clone(), Vec::new())))
        .collect()
}

/// Checks that a read checkpoint loads into a model; returns its architecture.
fn check(ckpt: &Checkpoint, path: &Path) -> Result<Arch> {
    describe_state_dict(&shapes_only(ckpt))
        .map(|(arch, _)| arch)
        .map_err(|source| Error::Model {
            path: path.to_path_buf(),
            source,
        })
}

/// Checks that a file is a checkpoint that loads into a model; returns its
/// architecture. Used before a downloaded file is kept.
pub fn validate(path: &Path) -> Result<Arch> {
    check(&read(path)?, path)
}

/// Writes the state dict of `src` (any supported format) as safetensors,
/// after checking it loads into a model. Returns the architecture.
pub fn convert_to_safetensors(src: &Path, dst: &Path) -> Result<Arch> {
    let ckpt = read(src)?;
    let arch = check(&ckpt, src)?;
    cnnspot_weights::save_safetensors(&ckpt.tensors, dst)?;
    Ok(arch)
}
