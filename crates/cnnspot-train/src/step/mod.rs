//! Training the detector: the loss, PyTorch's Adam, and one optimisation
//! step exactly as the reference trainer takes it.

mod adam;
pub mod schedule;

pub use adam::{Adam, AdamConfig, Moments};

use burn::tensor::{Device, Tensor, TensorData};

use cnnspot_core::model::{ResNet, StateDict};
use cnnspot_core::{Error, Result};

/// Binary cross-entropy on logits, averaged over the batch, computed as
/// PyTorch's `BCEWithLogitsLoss` does (stable for large |logit|).
pub fn bce_with_logits(logits: Tensor<1>, labels: Tensor<1>) -> Tensor<1> {
    let positive = logits.clone().clamp_min(0.0);
    let log_term = logits.clone().abs().neg().exp().add_scalar(1.0).log();
    (positive - logits * labels + log_term).mean()
}

/// What one step produced.
#[derive(Debug, Clone)]
pub struct StepOutput {
    /// Train-mode logits of the batch (before the update).
    pub logits: Vec<f32>,
    /// The loss (before the update).
    pub loss: f32,
}

/// A network being trained with Adam on a device that records gradients.
pub struct Trainer {
    net: ResNet,
    device: Device,
    adam: Adam,
    /// Steps taken by this trainer.
    pub steps: u64,
    /// BatchNorm's `num_batches_tracked` (the same for every layer): the
    /// starting checkpoint's count plus the steps taken.
    pub batches_tracked: i64,
}

/// Adam moments in PyTorch's layout, by parameter name: (exp_avg, exp_avg_sq).
pub type TorchMoments = std::collections::BTreeMap<String, (Vec<f32>, Vec<f32>)>;

fn batches_tracked_of(state: &StateDict) -> i64 {
    state
        .iter()
        .find(|(k, _)| k.ends_with("num_batches_tracked"))
        .and_then(|(_, (_, v))| v.first())
        .map(|&v| v as i64)
        .unwrap_or(0)
}

impl Trainer {
    /// Starts from a torchvision-named state dict (a detector checkpoint, or
    /// ImageNet weights with a replaced head).
    pub fn from_state_dict(
        state: &StateDict,
        config: AdamConfig,
        device: &Device,
    ) -> Result<Trainer> {
        let device = device.clone().autodiff();
        let (net, _) = ResNet::from_state_dict(state, &device).map_err(|source| Error::Model {
            path: "<state dict>".into(),
            source,
        })?;
        Ok(Trainer {
            net,
            device,
            adam: Adam::new(config),
            steps: 0,
            batches_tracked: batches_tracked_of(state),
        })
    }

    /// Resumes: weights and statistics, Adam's moments (PyTorch layout) and
    /// its step count.
    pub fn resume(
        state: &StateDict,
        moments: &TorchMoments,
        adam_step: u64,
        config: AdamConfig,
        device: &Device,
    ) -> Result<Trainer> {
        let mut t = Trainer::from_state_dict(state, config, device)?;
        t.adam.step = adam_step;
        t.adam.import_moments(&mut t.net, moments)?;
        Ok(t)
    }

    /// Adam's moments in PyTorch's layout, by parameter name.
    pub fn moments(&mut self) -> TorchMoments {
        self.adam.export_moments(&mut self.net)
    }

    /// The network (train mode: BatchNorm uses batch statistics).
    pub fn network(&self) -> &ResNet {
        &self.net
    }

    /// The optimiser.
    pub fn optimizer(&self) -> &Adam {
        &self.adam
    }

    /// Sets the learning rate (the plateau schedule divides it by 10).
    pub fn set_lr(&mut self, lr: f64) {
        self.adam.config.lr = lr;
    }

    /// Train-mode forward pass and BCE loss of an NCHW batch with labels
    /// 0 (real) / 1 (fake): the logits and the loss, still on the graph.
    fn forward_loss(
        &self,
        images: Vec<f32>,
        n: usize,
        h: usize,
        w: usize,
        labels: &[f32],
    ) -> Result<(Tensor<1>, Tensor<1>)> {
        if images.len() != n * 3 * h * w || labels.len() != n {
            return Err(Error::Inference(format!(
                "batch of {} values and {} labels does not fit [{n}, 3, {h}, {w}]",
                images.len(),
                labels.len()
            )));
        }
        let x: Tensor<4> = Tensor::from_data(TensorData::new(images, [n, 3, h, w]), &self.device);
        let y: Tensor<1> = Tensor::from_data(TensorData::new(labels.to_vec(), [n]), &self.device);
        let logits = self.net.forward(x).reshape([n]);
        let loss = bce_with_logits(logits.clone(), y);
        Ok((logits, loss))
    }

    /// One step: forward in train mode, BCE loss, backward, Adam update.
    pub fn step(
        &mut self,
        images: Vec<f32>,
        n: usize,
        h: usize,
        w: usize,
        labels: &[f32],
    ) -> Result<StepOutput> {
        let (logits, loss) = self.forward_loss(images, n, h, w, labels)?;
        let grads = loss.backward();
        let read = |t: Tensor<1>| -> Result<Vec<f32>> {
            t.into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .map_err(|e| Error::Inference(format!("{e:?}")))
        };
        let out = StepOutput {
            logits: read(logits.detach())?,
            loss: read(loss.detach())?.first().copied().unwrap_or(f32::NAN),
        };
        self.adam.step(&mut self.net, &grads);
        self.steps += 1;
        self.batches_tracked += 1;
        Ok(out)
    }

    /// Gradients of one step without updating anything (for checks against
    /// the reference): name -> flattened gradient in torchvision's layout.
    pub fn gradients(
        &mut self,
        images: Vec<f32>,
        n: usize,
        h: usize,
        w: usize,
        labels: &[f32],
    ) -> Result<StateDict> {
        let (_, loss) = self.forward_loss(images, n, h, w, labels)?;
        let grads = loss.backward();
        Ok(adam::collect_gradients(&mut self.net, &grads))
    }

    /// The weights and BatchNorm statistics, torchvision layout.
    pub fn state_dict(&self) -> StateDict {
        self.net.to_state_dict()
    }

    /// The network with the current weights on a plain (inference) device,
    /// in eval mode, for validation.
    pub fn eval_network(&self) -> Result<ResNet> {
        let (net, _) = ResNet::from_state_dict(&self.state_dict(), &self.device.clone().inner())
            .map_err(|source| Error::Model {
                path: "<training state>".into(),
                source,
            })?;
        Ok(net)
    }
}
