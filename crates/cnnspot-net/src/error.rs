//! Why a state dict does not fit a network.

use crate::spec::Arch;

/// Why a state dict does not fit the network.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The keys match no torchvision ResNet.
    #[error("the tensors do not form a torchvision ResNet-18/34/50/101/152 or an NPR detector (no matching layer1..layer4 blocks and fc/fc1 head)")]
    UnknownArch,
    /// A weight is NaN or infinite: every score would be meaningless.
    #[error("tensor {0} holds a NaN or infinite value")]
    NonFinite(String),
    /// The head has no outputs, so there is no logit to score with.
    #[error("{0} has no outputs (its first dimension is 0)")]
    EmptyHead(String),
    /// A BatchNorm running variance below zero: its square root, which
    /// every eval-mode BatchNorm takes, is NaN.
    #[error("tensor {tensor} holds a negative variance ({value} at index {index})")]
    NegativeVariance {
        /// The `running_var` tensor.
        tensor: String,
        /// The first negative element.
        index: usize,
        /// Its value.
        value: f32,
    },
    /// A detector scores with one logit; this head has another count (an
    /// ImageNet classifier has 1000).
    #[error("{tensor} has {outputs} outputs; a detector has 1 (real/synthetic logit)")]
    NotADetectorHead {
        /// The head's weight tensor.
        tensor: String,
        /// Its first dimension.
        outputs: usize,
    },
    /// A tensor the network needs is absent.
    #[error("tensor {0} is missing")]
    MissingTensor(String),
    /// Some tensors are missing, unexpected or of the wrong shape.
    #[error("{}", mismatch_message(*arch, missing, unexpected, wrong_shape))]
    Mismatch {
        /// The architecture the names were checked against.
        arch: Arch,
        /// Tensors the network needs that are absent.
        missing: Vec<String>,
        /// Tensors the network has no place for.
        unexpected: Vec<String>,
        /// `name is [got], expected [want]` for each wrongly shaped tensor.
        wrong_shape: Vec<String>,
    },
}

fn list(items: &[String]) -> String {
    const SHOWN: usize = 8;
    let mut s = items
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > SHOWN {
        s.push_str(&format!(" and {} more", items.len() - SHOWN));
    }
    s
}

fn mismatch_message(
    arch: Arch,
    missing: &[String],
    unexpected: &[String],
    wrong_shape: &[String],
) -> String {
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("missing {}", list(missing)));
    }
    if !unexpected.is_empty() {
        parts.push(format!("unexpected {}", list(unexpected)));
    }
    if !wrong_shape.is_empty() {
        parts.push(format!("wrong shape: {}", list(wrong_shape)));
    }
    format!("the tensors do not fit {arch}: {}", parts.join("; "))
}
