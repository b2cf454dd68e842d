//! The networks of [`cnnspot_net`] built on burn: torchvision's ResNet
//! family and NPR, with a one-logit head.
//!
//! Every layer, name and shape comes from the [`NetSpec`], so a torchvision
//! (or NPR) state dict maps onto the model one tensor for one tensor.

use burn::module::{Module, Param, RunningState};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::module::{adaptive_avg_pool2d, batch_norm_train};
use burn::tensor::{Device, Tensor, TensorData};

pub use cnnspot_net::{
    check_detector_values, check_state_dict, check_values, describe_state_dict,
    expected_parameters, spec_of_state, Arch, InputTransform, ModelError, StateDict,
};
use cnnspot_net::{is_head_weight, ConvSpec, NetSpec};

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
    /// The 1x1 (strided) convolution.
    pub conv: Conv2d,
    /// Its BatchNorm.
    pub bn: BatchNorm,
}

/// A basic block (two 3x3 convolutions) or a bottleneck (1x1, 3x3, 1x1),
/// told apart by the presence of `conv3`.
#[derive(Module, Debug)]
pub struct Block {
    /// First convolution.
    pub conv1: Conv2d,
    /// Its BatchNorm.
    pub bn1: BatchNorm,
    /// Second convolution.
    pub conv2: Conv2d,
    /// Its BatchNorm.
    pub bn2: BatchNorm,
    /// Third convolution (bottleneck blocks only).
    pub conv3: Option<Conv2d>,
    /// Its BatchNorm (bottleneck blocks only).
    pub bn3: Option<BatchNorm>,
    /// The projection of the identity path, where the shape changes.
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

impl Block {
    /// The (convolution, BatchNorm) pairs in state-dict order: the main
    /// path, then the shortcut projection.
    fn layers(&self) -> Vec<(&Conv2d, &BatchNorm)> {
        let mut out = vec![(&self.conv1, &self.bn1), (&self.conv2, &self.bn2)];
        if let (Some(c), Some(b)) = (&self.conv3, &self.bn3) {
            out.push((c, b));
        }
        if let Some(d) = &self.downsample {
            out.push((&d.conv, &d.bn));
        }
        out
    }

    fn layers_mut(&mut self) -> Vec<(&mut Conv2d, &mut BatchNorm)> {
        let mut out = vec![
            (&mut self.conv1, &mut self.bn1),
            (&mut self.conv2, &mut self.bn2),
        ];
        if let (Some(c), Some(b)) = (self.conv3.as_mut(), self.bn3.as_mut()) {
            out.push((c, b));
        }
        if let Some(d) = self.downsample.as_mut() {
            out.push((&mut d.conv, &mut d.bn));
        }
        out
    }
}

/// A network of [`cnnspot_net`] (torchvision's ResNet, or NPR) with its
/// head producing `num_outputs` logits.
#[derive(Module, Debug)]
pub struct ResNet {
    /// The stem convolution.
    pub conv1: Conv2d,
    /// Its BatchNorm.
    pub bn1: BatchNorm,
    /// The stem max pool (3x3, stride 2).
    pub maxpool: MaxPool2d,
    /// The stages, each a list of residual blocks.
    pub layers: Vec<Vec<Block>>,
    /// The head.
    pub fc: Linear,
    /// The description every layer was built from.
    #[module(skip)]
    pub spec: NetSpec,
}

fn conv(c: &ConvSpec, device: &Device) -> Conv2d {
    Conv2dConfig::new([c.cin, c.cout], [c.kernel, c.kernel])
        .with_stride([c.stride, c.stride])
        .with_padding(PaddingConfig2d::Explicit(c.pad, c.pad, c.pad, c.pad))
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
        ResNet::from_spec(NetSpec::new(arch, num_outputs), device)
    }

    /// A freshly initialised network for a description.
    pub fn from_spec(spec: NetSpec, device: &Device) -> ResNet {
        let maxpool = MaxPool2dConfig::new([3, 3])
            .with_strides([2, 2])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init();
        let layers = spec
            .stages
            .iter()
            .map(|stage| {
                stage
                    .iter()
                    .map(|b| {
                        let c = |i: usize| &b.convs[i];
                        Block {
                            conv1: conv(c(0), device),
                            bn1: new_batch_norm(c(0).cout, device),
                            conv2: conv(c(1), device),
                            bn2: new_batch_norm(c(1).cout, device),
                            conv3: b.convs.get(2).map(|c3| conv(c3, device)),
                            bn3: b.convs.get(2).map(|c3| new_batch_norm(c3.cout, device)),
                            downsample: b.downsample.as_ref().map(|d| Downsample {
                                conv: conv(d, device),
                                bn: new_batch_norm(d.cout, device),
                            }),
                        }
                    })
                    .collect()
            })
            .collect();
        ResNet {
            conv1: conv(&spec.stem, device),
            bn1: new_batch_norm(spec.stem.cout, device),
            maxpool,
            layers,
            fc: LinearConfig::new(spec.head.inputs, spec.head.outputs).init(device),
            spec,
        }
    }

    /// The architecture.
    pub fn arch(&self) -> Arch {
        self.spec.arch
    }

    /// Logits, shape `[batch, num_outputs]`, for an NCHW batch.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = match self.spec.input {
            InputTransform::Rgb => x,
            other => host_input(other, x),
        };
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

    /// Every (convolution, BatchNorm) pair in state-dict order, as
    /// [`NetSpec::convs`] lists their descriptions.
    fn layers_mut(&mut self) -> Vec<(&mut Conv2d, &mut BatchNorm)> {
        let mut out = vec![(&mut self.conv1, &mut self.bn1)];
        for block in self.layers.iter_mut().flatten() {
            out.extend(block.layers_mut());
        }
        out
    }

    fn layers(&self) -> Vec<(&Conv2d, &BatchNorm)> {
        let mut out = vec![(&self.conv1, &self.bn1)];
        for block in self.layers.iter().flatten() {
            out.extend(block.layers());
        }
        out
    }
}

/// An input transform (NPR's residual, the spectrum). It has no parameters
/// and needs no gradient, so it runs on the host values (the same function
/// the fast engine uses).
fn host_input(transform: InputTransform, x: Tensor<4>) -> Tensor<4> {
    let device = x.device();
    let [n, c, h, w] = x.dims();
    let mut values = x
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap_or_default();
    values.resize(n * c * h * w, 0.0);
    cnnspot_net::apply_input(transform, &mut values, h, w);
    Tensor::from_data(TensorData::new(values, [n, c, h, w]), &device)
}

fn tensor_from(state: &StateDict, name: &str) -> Result<TensorData, ModelError> {
    let (shape, values) = state
        .get(name)
        .ok_or_else(|| ModelError::MissingTensor(name.to_string()))?;
    Ok(TensorData::new(values.clone(), shape.clone()))
}

fn load_layer(
    conv: &mut Conv2d,
    bn: &mut BatchNorm,
    spec: &ConvSpec,
    state: &StateDict,
    device: &Device,
) -> Result<(), ModelError> {
    let w = tensor_from(state, &format!("{}.weight", spec.conv))?;
    conv.weight = Param::from_tensor(Tensor::from_data(w, device));
    let get = |s: &str| -> Result<Tensor<1>, ModelError> {
        Ok(Tensor::from_data(
            tensor_from(state, &format!("{}.{s}", spec.bn))?,
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
    /// Builds the network a state dict describes (architecture inferred
    /// from its names), after checking that every tensor is there with the
    /// right shape.
    pub fn from_state_dict(
        state: &StateDict,
        device: &Device,
    ) -> Result<(ResNet, Arch), ModelError> {
        let spec = spec_of_state(state)?;
        let arch = spec.arch;
        let mut net = ResNet::from_spec(spec.clone(), device);
        for ((conv, bn), layer) in net.layers_mut().into_iter().zip(spec.convs()) {
            load_layer(conv, bn, layer, state, device)?;
        }
        // PyTorch stores Linear weights as [out, in]; burn's are [in, out].
        let w: Tensor<2> = Tensor::from_data(tensor_from(state, &spec.head.weight())?, device);
        net.fc.weight = Param::from_tensor(w.transpose());
        net.fc.bias = Some(Param::from_tensor(Tensor::from_data(
            tensor_from(state, &spec.head.bias())?,
            device,
        )));
        Ok((net, arch))
    }
}

/// A learnable parameter of any rank, by mutable reference.
pub enum ParamMut<'a> {
    /// A rank-1 parameter (BatchNorm, bias).
    D1(&'a mut Param<Tensor<1>>),
    /// A rank-2 parameter (the head's weight).
    D2(&'a mut Param<Tensor<2>>),
    /// A rank-4 parameter (a convolution's weight).
    D4(&'a mut Param<Tensor<4>>),
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
    /// Calls `f` with every learnable parameter and its name, in
    /// torchvision's order. The head weight is burn's `[in, out]` layout
    /// (the transpose of PyTorch's; see [`is_head_weight`]), which does not
    /// matter to element-wise optimisers.
    pub fn visit_params_mut(&mut self, f: &mut dyn FnMut(&str, ParamMut<'_>)) {
        let spec = self.spec.clone();
        for ((conv, bn), layer) in self.layers_mut().into_iter().zip(spec.convs()) {
            f(
                &format!("{}.weight", layer.conv),
                ParamMut::D4(&mut conv.weight),
            );
            f(&format!("{}.weight", layer.bn), ParamMut::D1(&mut bn.gamma));
            f(&format!("{}.bias", layer.bn), ParamMut::D1(&mut bn.beta));
        }
        f(&spec.head.weight(), ParamMut::D2(&mut self.fc.weight));
        if let Some(bias) = self.fc.bias.as_mut() {
            f(&spec.head.bias(), ParamMut::D1(bias));
        }
    }

    /// Every parameter and BatchNorm statistic under its name and in
    /// PyTorch's layout (the head weight `[out, in]`), ready to save.
    pub fn to_state_dict(&self) -> StateDict {
        let mut out = StateDict::new();
        for ((conv, bn), layer) in self.layers().into_iter().zip(self.spec.convs()) {
            out.insert(
                format!("{}.weight", layer.conv),
                tensor_values(conv.weight.val()),
            );
            for (part, t) in [
                ("weight", bn.gamma.val()),
                ("bias", bn.beta.val()),
                ("running_mean", bn.running_mean.value_sync()),
                ("running_var", bn.running_var.value_sync()),
            ] {
                out.insert(format!("{}.{part}", layer.bn), tensor_values(t));
            }
        }
        debug_assert!(is_head_weight(&self.spec.head.weight()));
        out.insert(
            self.spec.head.weight(),
            tensor_values(self.fc.weight.val().transpose()),
        );
        if let Some(bias) = &self.fc.bias {
            out.insert(self.spec.head.bias(), tensor_values(bias.val()));
        }
        out.extend(self.spec.input.marker(self.spec.arch));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_state(arch: Arch, outputs: usize) -> StateDict {
        cnnspot_net::random_state_dict(arch, outputs, 1)
    }

    #[test]
    fn state_dicts_round_trip_through_the_model() {
        for arch in [Arch::ResNet18, Arch::Npr] {
            let state = random_state(arch, 1);
            let (net, got) = ResNet::from_state_dict(&state, &Device::flex()).unwrap();
            assert_eq!(got, arch);
            assert_eq!(net.to_state_dict(), state, "{arch}");
        }
    }

    #[test]
    fn a_head_without_outputs_is_refused() {
        let mut state = random_state(Arch::ResNet18, 1);
        state.insert("fc.weight".into(), (vec![0, 512], vec![]));
        state.insert("fc.bias".into(), (vec![0], vec![]));
        let err = ResNet::from_state_dict(&state, &Device::flex()).unwrap_err();
        assert!(err.to_string().contains("fc.weight"), "{err}");
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
