//! torchvision's ResNet family with a one-logit head, built on burn.
//!
//! The structure and parameter names follow torchvision exactly (ResNet v1.5:
//! the stride of a bottleneck sits on its 3x3 convolution), so that a
//! torchvision state dict maps onto it one tensor for one tensor.

use std::collections::BTreeMap;
use std::fmt;

use burn::module::{Module, Param, RunningState};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::module::{adaptive_avg_pool2d, batch_norm_train};
use burn::tensor::{Device, Tensor, TensorData};

use crate::error::ModelError;

/// The ResNet depths torchvision defines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Arch {
    ResNet18,
    ResNet34,
    ResNet50,
    ResNet101,
    ResNet152,
}

impl Arch {
    /// Every architecture, shallowest first.
    pub const ALL: [Arch; 5] = [
        Arch::ResNet18,
        Arch::ResNet34,
        Arch::ResNet50,
        Arch::ResNet101,
        Arch::ResNet152,
    ];

    /// Blocks in each of the four stages.
    pub fn stage_blocks(self) -> [usize; 4] {
        match self {
            Arch::ResNet18 => [2, 2, 2, 2],
            Arch::ResNet34 | Arch::ResNet50 => [3, 4, 6, 3],
            Arch::ResNet101 => [3, 4, 23, 3],
            Arch::ResNet152 => [3, 8, 36, 3],
        }
    }

    /// Whether the blocks are bottlenecks (1x1, 3x3, 1x1 with expansion 4).
    pub fn bottleneck(self) -> bool {
        !matches!(self, Arch::ResNet18 | Arch::ResNet34)
    }

    /// Channels entering the classifier.
    pub fn feature_dim(self) -> usize {
        if self.bottleneck() {
            2048
        } else {
            512
        }
    }

    /// The lower-case name used on the command line (`resnet50`).
    pub fn name(self) -> &'static str {
        match self {
            Arch::ResNet18 => "resnet18",
            Arch::ResNet34 => "resnet34",
            Arch::ResNet50 => "resnet50",
            Arch::ResNet101 => "resnet101",
            Arch::ResNet152 => "resnet152",
        }
    }

    /// Parses `resnet50`, `ResNet-50`, `50`, ...
    pub fn parse(s: &str) -> Option<Arch> {
        let digits: String = s.chars().filter(|c| c.is_ascii_digit()).collect();
        Arch::ALL
            .into_iter()
            .find(|a| a.name().trim_start_matches("resnet") == digits)
    }

    /// Infers the architecture from the parameter names of a state dict:
    /// bottleneck blocks have a `conv3`, and the block counts per stage tell
    /// the depth apart.
    pub fn infer<'a>(names: impl IntoIterator<Item = &'a str>) -> Option<Arch> {
        let mut blocks = [0usize; 4];
        let mut bottleneck = false;
        for name in names {
            let Some(rest) = name.strip_prefix("layer") else {
                continue;
            };
            let mut parts = rest.split('.');
            let (Some(stage), Some(block)) = (parts.next(), parts.next()) else {
                continue;
            };
            let (Ok(stage), Ok(block)) = (stage.parse::<usize>(), block.parse::<usize>()) else {
                continue;
            };
            if !(1..=4).contains(&stage) {
                continue;
            }
            blocks[stage - 1] = blocks[stage - 1].max(block + 1);
            if parts.next() == Some("conv3") {
                bottleneck = true;
            }
        }
        Arch::ALL
            .into_iter()
            .find(|a| a.stage_blocks() == blocks && a.bottleneck() == bottleneck)
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// BatchNorm as PyTorch computes it. In training (an autodiff input and a
/// layer not frozen) it normalises with the batch statistics and moves the
/// running statistics towards them, with the *unbiased* batch variance as
/// PyTorch does (burn's own layer uses the biased one); otherwise it uses the
/// running statistics.
pub fn batch_norm(bn: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    if !(x.is_autodiff() && bn.training.is_enabled()) {
        return bn.forward(x);
    }
    let [n, _, h, w] = x.dims();
    let count = (n * h * w) as f64;
    let out = batch_norm_train(x, bn.gamma.val(), bn.beta.val(), bn.epsilon);
    let unbiased = if count > 1.0 {
        out.variance.detach().mul_scalar(count / (count - 1.0))
    } else {
        out.variance.detach()
    };
    let m = bn.momentum;
    let mean = bn.running_mean.value_sync().mul_scalar(1.0 - m) + out.mean.detach().mul_scalar(m);
    let var = bn.running_var.value_sync().mul_scalar(1.0 - m) + unbiased.mul_scalar(m);
    bn.running_mean.update(mean.detach());
    bn.running_var.update(var.detach());
    out.output
}

/// A 1x1 convolution and BatchNorm that match a block's shortcut to its output.
#[derive(Module, Debug)]
pub struct Downsample {
    pub conv: Conv2d,
    pub bn: BatchNorm,
}

/// A basic block (two 3x3 convolutions) or a bottleneck (1x1, 3x3, 1x1),
/// told apart by the presence of `conv3`.
#[derive(Module, Debug)]
pub struct Block {
    pub conv1: Conv2d,
    pub bn1: BatchNorm,
    pub conv2: Conv2d,
    pub bn2: BatchNorm,
    pub conv3: Option<Conv2d>,
    pub bn3: Option<BatchNorm>,
    pub downsample: Option<Downsample>,
}

impl Block {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let identity = match &self.downsample {
            Some(d) => batch_norm(&d.bn, d.conv.forward(x.clone())),
            None => x.clone(),
        };
        let out = relu(batch_norm(&self.bn1, self.conv1.forward(x)));
        let out = batch_norm(&self.bn2, self.conv2.forward(out));
        let out = match (&self.conv3, &self.bn3) {
            (Some(conv3), Some(bn3)) => batch_norm(bn3, conv3.forward(relu(out))),
            _ => out,
        };
        relu(out + identity)
    }
}

/// torchvision's ResNet with `fc` producing `num_outputs` logits.
#[derive(Module, Debug)]
pub struct ResNet {
    pub conv1: Conv2d,
    pub bn1: BatchNorm,
    pub maxpool: MaxPool2d,
    pub layers: Vec<Vec<Block>>,
    pub fc: Linear,
}

fn conv(cin: usize, cout: usize, kernel: usize, stride: usize, device: &Device) -> Conv2d {
    let pad = kernel / 2;
    Conv2dConfig::new([cin, cout], [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(false)
        .init(device)
}

fn new_batch_norm(channels: usize, device: &Device) -> BatchNorm {
    // PyTorch's momentum 0.1 and eps 1e-5; burn uses the same convention
    // (new = (1 - momentum) * old + momentum * batch).
    BatchNormConfig::new(channels)
        .with_epsilon(1e-5)
        .with_momentum(0.1)
        .init(device)
}

impl ResNet {
    /// A freshly initialised network (burn's default initialisers).
    pub fn new(arch: Arch, num_outputs: usize, device: &Device) -> ResNet {
        let conv1 = Conv2dConfig::new([3, 64], [7, 7])
            .with_stride([2, 2])
            .with_padding(PaddingConfig2d::Explicit(3, 3, 3, 3))
            .with_bias(false)
            .init(device);
        let maxpool = MaxPool2dConfig::new([3, 3])
            .with_strides([2, 2])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init();
        let expansion = if arch.bottleneck() { 4 } else { 1 };
        let mut in_ch = 64;
        let mut layers = Vec::with_capacity(4);
        for (stage, &count) in arch.stage_blocks().iter().enumerate() {
            let width = 64 << stage;
            let out_ch = width * expansion;
            let mut blocks = Vec::with_capacity(count);
            for b in 0..count {
                let stride = if stage > 0 && b == 0 { 2 } else { 1 };
                let downsample = (b == 0 && (stride != 1 || in_ch != out_ch)).then(|| Downsample {
                    conv: conv(in_ch, out_ch, 1, stride, device),
                    bn: new_batch_norm(out_ch, device),
                });
                let block = if arch.bottleneck() {
                    Block {
                        conv1: conv(in_ch, width, 1, 1, device),
                        bn1: new_batch_norm(width, device),
                        conv2: conv(width, width, 3, stride, device),
                        bn2: new_batch_norm(width, device),
                        conv3: Some(conv(width, out_ch, 1, 1, device)),
                        bn3: Some(new_batch_norm(out_ch, device)),
                        downsample,
                    }
                } else {
                    Block {
                        conv1: conv(in_ch, width, 3, stride, device),
                        bn1: new_batch_norm(width, device),
                        conv2: conv(width, width, 3, 1, device),
                        bn2: new_batch_norm(width, device),
                        conv3: None,
                        bn3: None,
                        downsample,
                    }
                };
                blocks.push(block);
                in_ch = out_ch;
            }
            layers.push(blocks);
        }
        let fc = LinearConfig::new(arch.feature_dim(), num_outputs).init(device);
        ResNet {
            conv1,
            bn1: new_batch_norm(64, device),
            maxpool,
            layers,
            fc,
        }
    }

    /// Logits, shape `[batch, num_outputs]`, for an NCHW batch.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = relu(batch_norm(&self.bn1, self.conv1.forward(x)));
        let mut x = self.maxpool.forward(x);
        for stage in &self.layers {
            for block in stage {
                x = block.forward(x);
            }
        }
        let pooled = adaptive_avg_pool2d(x, [1, 1]);
        let [n, c, _, _] = pooled.dims();
        self.fc.forward(pooled.reshape([n, c]))
    }
}

/// Parameters by torchvision name, as f32 values and shapes.
///
/// Both the weight readers and the training checkpoints speak this form.
pub type StateDict = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// Every torchvision parameter name of `arch` with its shape, in
/// torchvision's order. `num_batches_tracked` buffers are left out.
pub fn expected_parameters(arch: Arch, num_outputs: usize) -> Vec<(String, Vec<usize>)> {
    let mut out = Vec::new();
    let bn = |out: &mut Vec<(String, Vec<usize>)>, p: &str, c: usize| {
        for s in ["weight", "bias", "running_mean", "running_var"] {
            out.push((format!("{p}.{s}"), vec![c]));
        }
    };
    out.push(("conv1.weight".into(), vec![64, 3, 7, 7]));
    bn(&mut out, "bn1", 64);
    let expansion = if arch.bottleneck() { 4 } else { 1 };
    let mut in_ch = 64;
    for (stage, &count) in arch.stage_blocks().iter().enumerate() {
        let width = 64 << stage;
        let out_ch = width * expansion;
        for b in 0..count {
            let p = format!("layer{}.{}", stage + 1, b);
            let stride = if stage > 0 && b == 0 { 2 } else { 1 };
            if arch.bottleneck() {
                out.push((format!("{p}.conv1.weight"), vec![width, in_ch, 1, 1]));
                bn(&mut out, &format!("{p}.bn1"), width);
                out.push((format!("{p}.conv2.weight"), vec![width, width, 3, 3]));
                bn(&mut out, &format!("{p}.bn2"), width);
                out.push((format!("{p}.conv3.weight"), vec![out_ch, width, 1, 1]));
                bn(&mut out, &format!("{p}.bn3"), out_ch);
            } else {
                out.push((format!("{p}.conv1.weight"), vec![width, in_ch, 3, 3]));
                bn(&mut out, &format!("{p}.bn1"), width);
                out.push((format!("{p}.conv2.weight"), vec![width, width, 3, 3]));
                bn(&mut out, &format!("{p}.bn2"), width);
            }
            if b == 0 && (stride != 1 || in_ch != out_ch) {
                out.push((
                    format!("{p}.downsample.0.weight"),
                    vec![out_ch, in_ch, 1, 1],
                ));
                bn(&mut out, &format!("{p}.downsample.1"), out_ch);
            }
            in_ch = out_ch;
        }
    }
    out.push(("fc.weight".into(), vec![num_outputs, arch.feature_dim()]));
    out.push(("fc.bias".into(), vec![num_outputs]));
    out
}

fn is_ignored_buffer(name: &str) -> bool {
    name.ends_with("num_batches_tracked")
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

/// The architecture and head size a torchvision state dict describes, after
/// checking that every tensor is there with the right shape.
pub fn describe_state_dict(state: &StateDict) -> Result<(Arch, usize), ModelError> {
    let arch = Arch::infer(state.keys().map(String::as_str)).ok_or(ModelError::UnknownArch)?;
    let num_outputs = state
        .get("fc.weight")
        .and_then(|(s, _)| s.first().copied())
        .ok_or_else(|| ModelError::MissingTensor("fc.weight".into()))?;
    check_state_dict(state, arch, num_outputs)?;
    Ok((arch, num_outputs))
}

fn tensor_from(state: &StateDict, name: &str) -> Result<TensorData, ModelError> {
    let (shape, values) = state
        .get(name)
        .ok_or_else(|| ModelError::MissingTensor(name.to_string()))?;
    Ok(TensorData::new(values.clone(), shape.clone()))
}

fn load_conv(
    conv: &mut Conv2d,
    state: &StateDict,
    prefix: &str,
    device: &Device,
) -> Result<(), ModelError> {
    let w = tensor_from(state, &format!("{prefix}.weight"))?;
    conv.weight = Param::from_tensor(Tensor::from_data(w, device));
    Ok(())
}

fn load_bn(
    bn: &mut BatchNorm,
    state: &StateDict,
    prefix: &str,
    device: &Device,
) -> Result<(), ModelError> {
    let get = |s: &str| -> Result<Tensor<1>, ModelError> {
        Ok(Tensor::from_data(
            tensor_from(state, &format!("{prefix}.{s}"))?,
            device,
        ))
    };
    bn.gamma = Param::from_tensor(get("weight")?);
    bn.beta = Param::from_tensor(get("bias")?);
    bn.running_mean = RunningState::new(get("running_mean")?);
    bn.running_var = RunningState::new(get("running_var")?);
    Ok(())
}

impl ResNet {
    /// Builds the network for `arch` from a torchvision-named state dict,
    /// after checking that every tensor is there with the right shape.
    pub fn from_state_dict(
        state: &StateDict,
        device: &Device,
    ) -> Result<(ResNet, Arch), ModelError> {
        let (arch, num_outputs) = describe_state_dict(state)?;
        let mut net = ResNet::new(arch, num_outputs, device);
        load_conv(&mut net.conv1, state, "conv1", device)?;
        load_bn(&mut net.bn1, state, "bn1", device)?;
        for (s, stage) in net.layers.iter_mut().enumerate() {
            for (b, block) in stage.iter_mut().enumerate() {
                let p = format!("layer{}.{}", s + 1, b);
                load_conv(&mut block.conv1, state, &format!("{p}.conv1"), device)?;
                load_bn(&mut block.bn1, state, &format!("{p}.bn1"), device)?;
                load_conv(&mut block.conv2, state, &format!("{p}.conv2"), device)?;
                load_bn(&mut block.bn2, state, &format!("{p}.bn2"), device)?;
                if let (Some(c3), Some(b3)) = (block.conv3.as_mut(), block.bn3.as_mut()) {
                    load_conv(c3, state, &format!("{p}.conv3"), device)?;
                    load_bn(b3, state, &format!("{p}.bn3"), device)?;
                }
                if let Some(d) = block.downsample.as_mut() {
                    load_conv(&mut d.conv, state, &format!("{p}.downsample.0"), device)?;
                    load_bn(&mut d.bn, state, &format!("{p}.downsample.1"), device)?;
                }
            }
        }
        // PyTorch stores Linear weights as [out, in]; burn's are [in, out].
        let (shape, values) = state
            .get("fc.weight")
            .ok_or_else(|| ModelError::MissingTensor("fc.weight".into()))?;
        let w: Tensor<2> =
            Tensor::from_data(TensorData::new(values.clone(), shape.clone()), device);
        net.fc.weight = Param::from_tensor(w.transpose());
        net.fc.bias = Some(Param::from_tensor(Tensor::from_data(
            tensor_from(state, "fc.bias")?,
            device,
        )));
        Ok((net, arch))
    }
}

/// A learnable parameter of any rank, by mutable reference.
pub enum ParamMut<'a> {
    D1(&'a mut Param<Tensor<1>>),
    D2(&'a mut Param<Tensor<2>>),
    D4(&'a mut Param<Tensor<4>>),
}

fn visit_bn(bn: &mut BatchNorm, prefix: &str, f: &mut dyn FnMut(&str, ParamMut<'_>)) {
    f(&format!("{prefix}.weight"), ParamMut::D1(&mut bn.gamma));
    f(&format!("{prefix}.bias"), ParamMut::D1(&mut bn.beta));
}

fn bn_state(bn: &BatchNorm, prefix: &str, out: &mut Vec<(String, Tensor<1>)>) {
    out.push((format!("{prefix}.weight"), bn.gamma.val()));
    out.push((format!("{prefix}.bias"), bn.beta.val()));
    out.push((
        format!("{prefix}.running_mean"),
        bn.running_mean.value_sync(),
    ));
    out.push((format!("{prefix}.running_var"), bn.running_var.value_sync()));
}

fn tensor_values<const D: usize>(t: Tensor<D>) -> (Vec<usize>, Vec<f32>) {
    let shape = t.dims().to_vec();
    let values = t
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap_or_default();
    (shape, values)
}

impl ResNet {
    /// Calls `f` with every learnable parameter and its torchvision name, in
    /// torchvision's order. `fc.weight` is burn's `[in, out]` layout (the
    /// transpose of PyTorch's), which does not matter to element-wise
    /// optimisers.
    pub fn visit_params_mut(&mut self, f: &mut dyn FnMut(&str, ParamMut<'_>)) {
        f("conv1.weight", ParamMut::D4(&mut self.conv1.weight));
        visit_bn(&mut self.bn1, "bn1", f);
        for (s, stage) in self.layers.iter_mut().enumerate() {
            for (b, block) in stage.iter_mut().enumerate() {
                let p = format!("layer{}.{}", s + 1, b);
                f(
                    &format!("{p}.conv1.weight"),
                    ParamMut::D4(&mut block.conv1.weight),
                );
                visit_bn(&mut block.bn1, &format!("{p}.bn1"), f);
                f(
                    &format!("{p}.conv2.weight"),
                    ParamMut::D4(&mut block.conv2.weight),
                );
                visit_bn(&mut block.bn2, &format!("{p}.bn2"), f);
                if let (Some(c3), Some(b3)) = (block.conv3.as_mut(), block.bn3.as_mut()) {
                    f(&format!("{p}.conv3.weight"), ParamMut::D4(&mut c3.weight));
                    visit_bn(b3, &format!("{p}.bn3"), f);
                }
                if let Some(d) = block.downsample.as_mut() {
                    f(
                        &format!("{p}.downsample.0.weight"),
                        ParamMut::D4(&mut d.conv.weight),
                    );
                    visit_bn(&mut d.bn, &format!("{p}.downsample.1"), f);
                }
            }
        }
        f("fc.weight", ParamMut::D2(&mut self.fc.weight));
        if let Some(bias) = self.fc.bias.as_mut() {
            f("fc.bias", ParamMut::D1(bias));
        }
    }

    /// Every parameter and BatchNorm statistic in torchvision's names and
    /// layouts (`fc.weight` as `[out, in]`), ready to save.
    pub fn to_state_dict(&self) -> StateDict {
        let mut out = StateDict::new();
        let mut put4 = |name: String, t: Tensor<4>| {
            out.insert(name, tensor_values(t));
        };
        put4("conv1.weight".into(), self.conv1.weight.val());
        let mut vectors = Vec::new();
        bn_state(&self.bn1, "bn1", &mut vectors);
        for (s, stage) in self.layers.iter().enumerate() {
            for (b, block) in stage.iter().enumerate() {
                let p = format!("layer{}.{}", s + 1, b);
                put4(format!("{p}.conv1.weight"), block.conv1.weight.val());
                bn_state(&block.bn1, &format!("{p}.bn1"), &mut vectors);
                put4(format!("{p}.conv2.weight"), block.conv2.weight.val());
                bn_state(&block.bn2, &format!("{p}.bn2"), &mut vectors);
                if let (Some(c3), Some(b3)) = (&block.conv3, &block.bn3) {
                    put4(format!("{p}.conv3.weight"), c3.weight.val());
                    bn_state(b3, &format!("{p}.bn3"), &mut vectors);
                }
                if let Some(d) = &block.downsample {
                    put4(format!("{p}.downsample.0.weight"), d.conv.weight.val());
                    bn_state(&d.bn, &format!("{p}.downsample.1"), &mut vectors);
                }
            }
        }
        for (name, t) in vectors {
            out.insert(name, tensor_values(t));
        }
        out.insert(
            "fc.weight".into(),
            tensor_values(self.fc.weight.val().transpose()),
        );
        if let Some(bias) = &self.fc.bias {
            out.insert("fc.bias".into(), tensor_values(bias.val()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_state(arch: Arch, outputs: usize) -> StateDict {
        let mut seed = 1u32;
        expected_parameters(arch, outputs)
            .into_iter()
            .map(|(name, shape)| {
                let n: usize = shape.iter().product();
                let values = (0..n)
                    .map(|_| {
                        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                        let u = (seed >> 8) as f32 / (1u32 << 24) as f32;
                        if name.ends_with("running_var") {
                            0.5 + u
                        } else {
                            (u - 0.5) * 0.1
                        }
                    })
                    .collect();
                (name, (shape, values))
            })
            .collect()
    }

    #[test]
    fn every_depth_is_inferred_from_its_own_names() {
        for arch in Arch::ALL {
            let names = expected_parameters(arch, 1);
            assert_eq!(
                Arch::infer(names.iter().map(|(n, _)| n.as_str())),
                Some(arch)
            );
        }
        assert_eq!(expected_parameters(Arch::ResNet50, 1).len(), 320 - 53);
        assert_eq!(Arch::infer(["conv1.weight", "fc.weight"]), None);
    }

    #[test]
    fn names_parse() {
        assert_eq!(Arch::parse("resnet50"), Some(Arch::ResNet50));
        assert_eq!(Arch::parse("ResNet-101"), Some(Arch::ResNet101));
        assert_eq!(Arch::parse("vgg16"), None);
    }

    #[test]
    fn mismatches_are_named() {
        let mut state = random_state(Arch::ResNet18, 1);
        state.remove("layer2.0.bn1.running_var");
        state.insert("extra.weight".into(), (vec![1], vec![0.0]));
        state.get_mut("layer3.1.conv2.weight").unwrap().0 = vec![256, 256, 1, 9];
        let err = ResNet::from_state_dict(&state, &Device::flex())
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing layer2.0.bn1.running_var"), "{err}");
        assert!(err.contains("unexpected extra.weight"), "{err}");
        assert!(
            err.contains("layer3.1.conv2.weight is [256, 256, 1, 9]"),
            "{err}"
        );
    }

    #[test]
    fn resnet18_loads_and_runs_on_any_size() {
        let device = Device::flex();
        let (net, arch) =
            ResNet::from_state_dict(&random_state(Arch::ResNet18, 1), &device).unwrap();
        assert_eq!(arch, Arch::ResNet18);
        for (h, w) in [(32, 32), (40, 72)] {
            let x: Tensor<4> = Tensor::zeros([2, 3, h, w], &device);
            assert_eq!(net.forward(x).dims(), [2, 1]);
        }
    }
}
