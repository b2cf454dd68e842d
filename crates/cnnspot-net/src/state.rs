//! State dicts: parameters by name, checked against a [`NetSpec`](crate::NetSpec).

use std::collections::BTreeMap;

use crate::error::ModelError;
use crate::input::InputTransform;
use crate::spec::{Arch, NetSpec};

/// Parameters by torchvision name, as f32 values and shapes.
///
/// Both the weight readers and the training checkpoints speak this form.
pub type StateDict = BTreeMap<String, StateTensor>;

/// One entry of a [`StateDict`]: shape and row-major values.
pub type StateTensor = (Vec<usize>, Vec<f32>);

/// Every parameter name of `arch` with its shape, in torchvision's order.
/// `num_batches_tracked` buffers are left out.
pub fn expected_parameters(arch: Arch, num_outputs: usize) -> Vec<(String, Vec<usize>)> {
    arch.spec(num_outputs).parameters()
}

fn is_ignored_buffer(name: &str) -> bool {
    name.ends_with("num_batches_tracked") || crate::input::is_input_marker(name)
}

/// Checks a state dict against `arch` and lists, in one error, every
/// missing, unexpected and wrongly shaped tensor.
pub fn check_state_dict(
    state: &StateDict,
    arch: Arch,
    num_outputs: usize,
) -> Result<(), ModelError> {
    let expected = expected_parameters(arch, num_outputs);
    let mut missing = Vec::new();
    let mut wrong_shape = Vec::new();
    for (name, shape) in &expected {
        match state.get(name) {
            None => missing.push(name.clone()),
            Some((got, _)) if got != shape => {
                wrong_shape.push(format!("{name} is {got:?}, expected {shape:?}"))
            }
            Some(_) => {}
        }
    }
    let known: std::collections::HashSet<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
    let unexpected: Vec<String> = state
        .keys()
        .filter(|k| !known.contains(k.as_str()) && !is_ignored_buffer(k))
        .cloned()
        .collect();
    if missing.is_empty() && unexpected.is_empty() && wrong_shape.is_empty() {
        Ok(())
    } else {
        Err(ModelError::Mismatch {
            arch,
            missing,
            unexpected,
            wrong_shape,
        })
    }
}

/// The architecture and head size a state dict describes, after checking
/// that every tensor is there with the right shape and that the head has
/// at least one output.
pub fn describe_state_dict(state: &StateDict) -> Result<(Arch, usize), ModelError> {
    let arch = Arch::infer(state.keys().map(String::as_str)).ok_or(ModelError::UnknownArch)?;
    let head = format!("{}.weight", arch.head_name());
    let num_outputs = state
        .get(&head)
        .and_then(|(s, _)| s.first().copied())
        .ok_or_else(|| ModelError::MissingTensor(head.clone()))?;
    if num_outputs == 0 {
        return Err(ModelError::EmptyHead(head));
    }
    check_state_dict(state, arch, num_outputs)?;
    Ok((arch, num_outputs))
}

/// The whole description of the network a state dict holds: architecture
/// and head from [`describe_state_dict`], and the input transform it was
/// trained with ([`InputTransform::of_state`]).
pub fn spec_of_state(state: &StateDict) -> Result<NetSpec, ModelError> {
    let (arch, outputs) = describe_state_dict(state)?;
    Ok(NetSpec::new(arch, outputs).with_input(InputTransform::of_state(state, arch)))
}

/// Checks the values of a state dict a detector will score with: those of
/// [`check_values`], and a head with exactly one output.
pub fn check_detector_values(state: &StateDict) -> Result<(), ModelError> {
    check_values(state)?;
    let (arch, outputs) = describe_state_dict(state)?;
    if outputs != 1 {
        return Err(ModelError::NotADetectorHead {
            tensor: format!("{}.weight", arch.head_name()),
            outputs,
        });
    }
    Ok(())
}

/// Checks that every tensor is finite and every BatchNorm running variance
/// non-negative; the first problem found, naming the tensor.
pub fn check_values(state: &StateDict) -> Result<(), ModelError> {
    for (name, (_, values)) in state {
        if values.iter().any(|v| !v.is_finite()) {
            return Err(ModelError::NonFinite(name.clone()));
        }
        if name.ends_with("running_var") {
            if let Some((index, &value)) = values.iter().enumerate().find(|(_, &v)| v < 0.0) {
                return Err(ModelError::NegativeVariance {
                    tensor: name.clone(),
                    index,
                    value,
                });
            }
        }
    }
    Ok(())
}

/// Random parameters for every tensor of `arch` (deterministic in `seed`),
/// with BatchNorm statistics far from the identity so that a wrong fold or a
/// swapped tensor shows: for tests and benchmarks, which need a network
/// without a weight file.
pub fn random_state_dict(arch: Arch, num_outputs: usize, seed: u32) -> StateDict {
    let mut s = seed;
    let mut next = move || {
        s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (s >> 8) as f32 / (1u32 << 24) as f32
    };
    expected_parameters(arch, num_outputs)
        .into_iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            let fan_in: usize = shape.iter().skip(1).product::<usize>().max(1);
            let values = (0..n)
                .map(|_| {
                    let u = next();
                    if name.ends_with("running_var") {
                        0.5 + u
                    } else if name.ends_with("running_mean") || name.ends_with(".bias") {
                        (u - 0.5) * 0.2
                    } else if name.contains("bn") || name.contains("downsample.1") {
                        0.5 + u
                    } else {
                        (u - 0.5) * (6.0 / fan_in as f32).sqrt()
                    }
                })
                .collect();
            (name, (shape, values))
        })
        .collect()
}

/// `len` values uniform in [-2, 2) (deterministic in `seed`, the generator
/// of [`random_state_dict`]): an input batch for tests and benchmarks.
pub fn random_input(len: usize, seed: u32) -> Vec<f32> {
    let mut s = seed;
    (0..len)
        .map(|_| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((s >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 4.0
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_state_dicts_fit_their_arch_and_pass_the_value_checks() {
        for arch in Arch::ALL {
            let state = random_state_dict(arch, 1, 5);
            assert_eq!(describe_state_dict(&state).unwrap(), (arch, 1));
            check_detector_values(&state).unwrap();
        }
    }

    #[test]
    fn bad_values_and_heads_are_named() {
        let mut state = random_state_dict(Arch::ResNet18, 1, 1);
        state.get_mut("layer1.0.bn2.running_var").unwrap().1[3] = -1.0;
        let err = check_values(&state).unwrap_err().to_string();
        assert!(
            err.contains("layer1.0.bn2.running_var") && err.contains("index 3"),
            "{err}"
        );
        let mut state = random_state_dict(Arch::ResNet18, 1, 1);
        state.get_mut("fc.bias").unwrap().1[0] = f32::NAN;
        assert!(check_values(&state)
            .unwrap_err()
            .to_string()
            .contains("fc.bias"));
        let state = random_state_dict(Arch::ResNet18, 2, 1);
        let err = check_detector_values(&state).unwrap_err().to_string();
        assert!(err.contains("fc.weight has 2 outputs"), "{err}");
        let mut state = random_state_dict(Arch::ResNet18, 1, 1);
        state.insert("fc.weight".into(), (vec![0, 512], vec![]));
        state.insert("fc.bias".into(), (vec![0], vec![]));
        let err = describe_state_dict(&state).unwrap_err().to_string();
        assert!(err.contains("fc.weight has no outputs"), "{err}");
    }
}
