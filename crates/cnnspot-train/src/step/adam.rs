//! Adam as PyTorch implements it (`torch.optim.Adam`, no weight decay, no
//! amsgrad), with its moments kept by parameter name so that they can be
//! saved in PyTorch's optimizer layout and resumed.

use std::collections::BTreeMap;

use burn::module::Param;
use burn::tensor::Tensor;

use cnnspot_core::model::{ParamMut, ResNet, StateDict};

/// Hyper-parameters; the paper's are the defaults.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamConfig {
    /// Learning rate.
    pub lr: f64,
    /// Decay of the first moment.
    pub beta1: f64,
    /// Decay of the second moment.
    pub beta2: f64,
    /// Added to the denominator.
    pub eps: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            lr: 1e-4,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

/// First and second moments of one parameter, flattened.
#[derive(Clone)]
pub struct Moments {
    /// First moment (running mean of the gradients).
    pub exp_avg: Tensor<1>,
    /// Second moment (running mean of their squares).
    pub exp_avg_sq: Tensor<1>,
}

/// The optimiser's state.
pub struct Adam {
    /// The hyper-parameters.
    pub config: AdamConfig,
    /// Steps taken (PyTorch keeps one per parameter; they are all equal).
    pub step: u64,
    /// Per-parameter moments, by parameter name.
    pub moments: BTreeMap<String, Moments>,
}

fn update<const D: usize>(
    param: &mut Param<Tensor<D>>,
    grads: &burn::tensor::Gradients,
    moments: &mut Moments,
    config: &AdamConfig,
    step: u64,
) {
    let Some(grad) = param.val().grad(grads) else {
        return;
    };
    let shape = grad.dims();
    let numel: usize = shape.iter().product();
    let g: Tensor<1> = grad.reshape([numel]);
    let (b1, b2) = (config.beta1, config.beta2);
    let m = moments.exp_avg.clone().mul_scalar(b1) + g.clone().mul_scalar(1.0 - b1);
    let v = moments.exp_avg_sq.clone().mul_scalar(b2) + g.square().mul_scalar(1.0 - b2);
    let bias1 = 1.0 - b1.powi(step as i32);
    let bias2 = 1.0 - b2.powi(step as i32);
    // torch: denom = (sqrt(v) / sqrt(bias2)) + eps; p -= (lr / bias1) * m / denom
    let denom = v
        .clone()
        .sqrt()
        .div_scalar(bias2.sqrt())
        .add_scalar(config.eps);
    let delta = (m.clone() / denom).mul_scalar(config.lr / bias1);
    moments.exp_avg = m;
    moments.exp_avg_sq = v;
    let next = param.clone().map(|t| {
        let inner = t.inner();
        let flat: Tensor<1> = inner.reshape([numel]);
        Tensor::from_inner((flat - delta).reshape(shape)).require_grad()
    });
    *param = next;
}

fn zeros_like<const D: usize>(param: &Param<Tensor<D>>) -> Moments {
    let t = param.val().inner();
    let numel: usize = t.dims().iter().product();
    let z: Tensor<1> = Tensor::zeros([numel], &t.device());
    Moments {
        exp_avg: z.clone(),
        exp_avg_sq: z,
    }
}

impl Adam {
    /// A fresh optimiser.
    pub fn new(config: AdamConfig) -> Adam {
        Adam {
            config,
            step: 0,
            moments: BTreeMap::new(),
        }
    }

    /// One update of every parameter that has a gradient.
    pub fn step(&mut self, net: &mut ResNet, grads: &burn::tensor::Gradients) {
        self.step += 1;
        let step = self.step;
        let config = self.config;
        let moments = &mut self.moments;
        net.visit_params_mut(&mut |name, p| {
            let entry = moments.entry(name.to_string());
            match p {
                ParamMut::D1(p) => {
                    let m = entry.or_insert_with(|| zeros_like(p));
                    update(p, grads, m, &config, step)
                }
                ParamMut::D2(p) => {
                    let m = entry.or_insert_with(|| zeros_like(p));
                    update(p, grads, m, &config, step)
                }
                ParamMut::D4(p) => {
                    let m = entry.or_insert_with(|| zeros_like(p));
                    update(p, grads, m, &config, step)
                }
            }
        });
    }
}

fn values<const D: usize>(t: Tensor<D>) -> (Vec<usize>, Vec<f32>) {
    let shape = t.dims().to_vec();
    let v = t
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap_or_default();
    (shape, v)
}

/// The gradient of every parameter, by torchvision name (`fc.weight`
/// transposed back to PyTorch's `[out, in]`).
pub(crate) fn collect_gradients(net: &mut ResNet, grads: &burn::tensor::Gradients) -> StateDict {
    let mut out = StateDict::new();
    net.visit_params_mut(&mut |name, p| {
        let g = match p {
            ParamMut::D1(p) => p.val().grad(grads).map(values),
            ParamMut::D2(p) => p.val().grad(grads).map(|g| values(g.transpose())),
            ParamMut::D4(p) => p.val().grad(grads).map(values),
        };
        if let Some(g) = g {
            out.insert(name.to_string(), g);
        }
    });
    out
}

fn to_torch_layout(name: &str, shape: &[usize], v: Vec<f32>) -> Vec<f32> {
    // burn keeps fc.weight as [in, out]; PyTorch as [out, in].
    if cnnspot_net::is_head_weight(name) && shape.len() == 2 {
        let (rows, cols) = (shape[0], shape[1]);
        let mut t = vec![0.0; v.len()];
        for r in 0..rows {
            for c in 0..cols {
                t[c * rows + r] = v[r * cols + c];
            }
        }
        t
    } else {
        v
    }
}

fn from_torch_layout(name: &str, shape: &[usize], v: &[f32]) -> Vec<f32> {
    if cnnspot_net::is_head_weight(name) && shape.len() == 2 {
        // `shape` is burn's [in, out]; `v` is [out, in].
        let (rows, cols) = (shape[0], shape[1]);
        let mut t = vec![0.0; v.len()];
        for r in 0..rows {
            for c in 0..cols {
                t[r * cols + c] = v[c * rows + r];
            }
        }
        t
    } else {
        v.to_vec()
    }
}

fn flat_values(t: &Tensor<1>) -> Vec<f32> {
    t.clone()
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap_or_default()
}

impl Adam {
    /// The moments in PyTorch's layout, by parameter name.
    pub fn export_moments(&self, net: &mut ResNet) -> super::TorchMoments {
        let mut out = super::TorchMoments::new();
        net.visit_params_mut(&mut |name, p| {
            let shape = match p {
                ParamMut::D1(p) => p.val().dims().to_vec(),
                ParamMut::D2(p) => p.val().dims().to_vec(),
                ParamMut::D4(p) => p.val().dims().to_vec(),
            };
            if let Some(m) = self.moments.get(name) {
                out.insert(
                    name.to_string(),
                    (
                        to_torch_layout(name, &shape, flat_values(&m.exp_avg)),
                        to_torch_layout(name, &shape, flat_values(&m.exp_avg_sq)),
                    ),
                );
            }
        });
        out
    }

    /// Loads moments saved by [`Adam::export_moments`] (or by PyTorch).
    pub fn import_moments(
        &mut self,
        net: &mut ResNet,
        moments: &super::TorchMoments,
    ) -> cnnspot_core::Result<()> {
        let mut problem = None;
        let target = &mut self.moments;
        net.visit_params_mut(&mut |name, p| {
            let (shape, device) = match p {
                ParamMut::D1(p) => (p.val().dims().to_vec(), p.val().inner().device()),
                ParamMut::D2(p) => (p.val().dims().to_vec(), p.val().inner().device()),
                ParamMut::D4(p) => (p.val().dims().to_vec(), p.val().inner().device()),
            };
            let numel: usize = shape.iter().product();
            let Some((m, v)) = moments.get(name) else {
                return;
            };
            if m.len() != numel || v.len() != numel {
                problem.get_or_insert_with(|| {
                    format!(
                        "optimizer state of {name} has {} values, expected {numel}",
                        m.len()
                    )
                });
                return;
            }
            let tensor = |x: &[f32]| -> Tensor<1> {
                Tensor::from_data(
                    burn::tensor::TensorData::new(from_torch_layout(name, &shape, x), [numel]),
                    &device,
                )
            };
            target.insert(
                name.to_string(),
                Moments {
                    exp_avg: tensor(m),
                    exp_avg_sq: tensor(v),
                },
            );
        });
        match problem {
            Some(p) => Err(cnnspot_core::Error::Inference(p)),
            None => Ok(()),
        }
    }
}
