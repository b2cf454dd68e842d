//! Training checkpoints in CNNDetection's layout: `{'model': state_dict,
//! 'optimizer': Adam.state_dict(), 'total_steps': int}`, plus `'epoch'` and
//! `'lr'` (extra keys, which the reference loader ignores).

use std::path::Path;

use crate::value::PyValue;
use crate::{Error, TensorView};

/// Adam's state for one parameter, as `torch.optim.Adam` keeps it.
#[derive(Debug, Clone)]
pub struct AdamParamState {
    /// Steps taken (PyTorch >= 1.12 keeps it as a float32 scalar tensor).
    pub step: f64,
    /// First moment, shaped like the parameter.
    pub exp_avg: TensorView,
    /// Second moment, shaped like the parameter.
    pub exp_avg_sq: TensorView,
    /// Running maximum of the second moment (only with `amsgrad`).
    pub max_exp_avg_sq: Option<TensorView>,
}

/// The state dict of a `torch.optim.Adam` with one parameter group.
#[derive(Debug, Clone)]
pub struct AdamState {
    /// Learning rate of the (first) parameter group.
    pub lr: f64,
    /// `(beta1, beta2)`.
    pub betas: (f64, f64),
    /// Term added to the denominator.
    pub eps: f64,
    /// L2 penalty.
    pub weight_decay: f64,
    /// Whether the AMSGrad variant is used.
    pub amsgrad: bool,
    /// Per parameter, in the optimizer's parameter order (for a model built
    /// with `Adam(model.parameters())`: the state dict's entries that are
    /// parameters, i.e. without BatchNorm's `running_mean`, `running_var`
    /// and `num_batches_tracked` buffers, in state-dict order). `None` for a
    /// parameter that has no state yet (never stepped).
    pub params: Vec<Option<AdamParamState>>,
}

impl AdamState {
    /// A fresh optimizer over `n_params` parameters with CNNDetection's
    /// settings except `lr`: betas (0.9, 0.999), eps 1e-8, no weight decay.
    pub fn new(lr: f64, n_params: usize) -> AdamState {
        AdamState {
            lr,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            amsgrad: false,
            params: vec![None; n_params],
        }
    }

    /// `optimizer.state_dict()` as PyTorch 2.x's Adam writes it.
    pub fn to_value(&self) -> Result<PyValue, Error> {
        let n = i64::try_from(self.params.len())
            .map_err(|_| Error::InvalidInput("too many parameters".into()))?;
        let mut state = Vec::new();
        for (i, p) in (0..n).zip(&self.params) {
            let Some(p) = p else { continue };
            let step = TensorView::from_f32(vec![], &[p.step as f32])?;
            let mut s = vec![
                (PyValue::Str("step".into()), PyValue::Tensor(step)),
                (
                    PyValue::Str("exp_avg".into()),
                    PyValue::Tensor(p.exp_avg.clone()),
                ),
                (
                    PyValue::Str("exp_avg_sq".into()),
                    PyValue::Tensor(p.exp_avg_sq.clone()),
                ),
            ];
            if let Some(m) = &p.max_exp_avg_sq {
                s.push((
                    PyValue::Str("max_exp_avg_sq".into()),
                    PyValue::Tensor(m.clone()),
                ));
            }
            state.push((PyValue::Int(i), PyValue::Dict(s)));
        }
        // PyTorch's default weight_decay is the int 0; keep that spelling.
        let weight_decay = if self.weight_decay == 0.0 {
            PyValue::Int(0)
        } else {
            PyValue::Float(self.weight_decay)
        };
        let s = |k: &str| PyValue::Str(k.to_owned());
        let group = PyValue::Dict(vec![
            (s("lr"), PyValue::Float(self.lr)),
            (
                s("betas"),
                PyValue::Tuple(vec![
                    PyValue::Float(self.betas.0),
                    PyValue::Float(self.betas.1),
                ]),
            ),
            (s("eps"), PyValue::Float(self.eps)),
            (s("weight_decay"), weight_decay),
            (s("amsgrad"), PyValue::Bool(self.amsgrad)),
            (s("maximize"), PyValue::Bool(false)),
            (s("foreach"), PyValue::None),
            (s("capturable"), PyValue::Bool(false)),
            (s("differentiable"), PyValue::Bool(false)),
            (s("fused"), PyValue::None),
            (s("decoupled_weight_decay"), PyValue::Bool(false)),
            (
                s("params"),
                PyValue::List((0..n).map(PyValue::Int).collect()),
            ),
        ]);
        Ok(PyValue::Dict(vec![
            (s("state"), PyValue::Dict(state)),
            (s("param_groups"), PyValue::List(vec![group])),
        ]))
    }

    /// Reads an Adam `state_dict()` (any PyTorch version: `step` may be an
    /// int, a float or a scalar tensor). Parameters are numbered by their
    /// position in the groups' `params` lists, all groups concatenated;
    /// hyper-parameters come from the first group.
    pub fn from_value(v: &PyValue) -> Result<AdamState, Error> {
        let bad = |m: String| Error::Unsupported(format!("optimizer state: {m}"));
        let groups = v
            .get("param_groups")
            .and_then(PyValue::as_items)
            .ok_or_else(|| bad("no 'param_groups' list".into()))?;
        let first = groups
            .first()
            .ok_or_else(|| bad("'param_groups' is empty".into()))?;
        let num = |k: &str| {
            first
                .get(k)
                .and_then(PyValue::as_f64)
                .ok_or_else(|| bad(format!("parameter group has no number '{k}'")))
        };
        let lr = num("lr")?;
        let eps = num("eps").unwrap_or(1e-8);
        let weight_decay = num("weight_decay").unwrap_or(0.0);
        let betas = match first.get("betas").and_then(PyValue::as_items) {
            Some([a, b]) => match (a.as_f64(), b.as_f64()) {
                (Some(a), Some(b)) => (a, b),
                _ => return Err(bad("'betas' are not numbers".into())),
            },
            Some(_) => return Err(bad("'betas' is not a pair".into())),
            None => (0.9, 0.999),
        };
        let amsgrad = first
            .get("amsgrad")
            .and_then(PyValue::as_bool)
            .unwrap_or(false);

        let mut ids = Vec::new();
        for g in groups {
            let params = g
                .get("params")
                .and_then(PyValue::as_items)
                .ok_or_else(|| bad("parameter group without 'params'".into()))?;
            for p in params {
                ids.push(
                    p.as_i64()
                        .ok_or_else(|| bad("a parameter id is not an int".into()))?,
                );
            }
        }

        let state = v.get("state");
        let mut out = Vec::with_capacity(ids.len());
        for &id in &ids {
            let Some(s) = state.and_then(|st| st.get_int(id)) else {
                out.push(None);
                continue;
            };
            let tensor = |k: &str| -> Result<TensorView, Error> {
                s.get(k)
                    .and_then(PyValue::as_tensor)
                    .cloned()
                    .ok_or_else(|| bad(format!("parameter {id} has no tensor '{k}'")))
            };
            let step = match s.get("step") {
                Some(PyValue::Tensor(t)) if t.numel() == 1 => {
                    t.to_f64_vec().first().copied().unwrap_or(0.0)
                }
                Some(other) => other
                    .as_f64()
                    .ok_or_else(|| bad(format!("parameter {id}: 'step' is a {other}")))?,
                None => return Err(bad(format!("parameter {id} has no 'step'"))),
            };
            let max_exp_avg_sq = match s.get("max_exp_avg_sq") {
                Some(_) => Some(tensor("max_exp_avg_sq")?),
                None => None,
            };
            out.push(Some(AdamParamState {
                step,
                exp_avg: tensor("exp_avg")?,
                exp_avg_sq: tensor("exp_avg_sq")?,
                max_exp_avg_sq,
            }));
        }
        Ok(AdamState {
            lr,
            betas,
            eps,
            weight_decay,
            amsgrad,
            params: out,
        })
    }
}

/// Everything `cnnspot train` needs to resume: model, optimizer, counters.
///
/// Written as `{'model': OrderedDict, 'optimizer': ..., 'total_steps': int,
/// 'epoch': int, 'lr': float}` (absent fields are left out), which
/// `torch.load(path)['model']`, CNNDetection's loader and
/// [`crate::load`] all read.
#[derive(Debug, Clone)]
pub struct TrainingCheckpoint {
    /// The state dict, in order (torchvision names).
    pub model: Vec<(String, TensorView)>,
    /// Adam's state, when there is one.
    pub optimizer: Option<AdamState>,
    /// Optimisation steps taken so far.
    pub total_steps: Option<i64>,
    /// Epochs completed (or the epoch the checkpoint was taken in).
    pub epoch: Option<i64>,
    /// Current learning rate (after any decay).
    pub lr: Option<f64>,
}

impl TrainingCheckpoint {
    /// The checkpoint as the value `torch.save` is given.
    pub fn to_value(&self) -> Result<PyValue, Error> {
        let mut seen = std::collections::HashSet::new();
        for (name, _) in &self.model {
            if !seen.insert(name.as_str()) {
                return Err(Error::InvalidInput(format!(
                    "tensor '{name}' appears twice in the state dict"
                )));
            }
        }
        let model = self
            .model
            .iter()
            .map(|(k, t)| (k.clone(), PyValue::Tensor(t.clone())))
            .collect();
        let mut top = vec![(PyValue::Str("model".into()), PyValue::OrderedDict(model))];
        if let Some(o) = &self.optimizer {
            top.push((PyValue::Str("optimizer".into()), o.to_value()?));
        }
        if let Some(s) = self.total_steps {
            top.push((PyValue::Str("total_steps".into()), PyValue::Int(s)));
        }
        if let Some(e) = self.epoch {
            top.push((PyValue::Str("epoch".into()), PyValue::Int(e)));
        }
        if let Some(lr) = self.lr {
            top.push((PyValue::Str("lr".into()), PyValue::Float(lr)));
        }
        Ok(PyValue::Dict(top))
    }

    /// Reads a checkpoint's value: the state dict from `model` (or
    /// `state_dict`, `model_state_dict`, or the top level itself when it
    /// holds tensors), the optimizer from `optimizer` when it is a dict, and
    /// the counters when present. A DataParallel `module.` prefix is removed.
    pub fn from_value(v: &PyValue) -> Result<TrainingCheckpoint, Error> {
        if !matches!(v, PyValue::Dict(_) | PyValue::OrderedDict(_)) {
            return Err(Error::NoStateDict(format!(
                "the top level is a {}, not a dict",
                v.type_name()
            )));
        }
        let sd = ["model", "state_dict", "model_state_dict"]
            .iter()
            .find_map(|k| v.get(k))
            .unwrap_or(v);
        let entries: Vec<(String, &PyValue)> = match sd {
            PyValue::OrderedDict(e) => e.iter().map(|(k, x)| (k.clone(), x)).collect(),
            PyValue::Dict(e) => e
                .iter()
                .filter_map(|(k, x)| k.as_str().map(|k| (k.to_owned(), x)))
                .collect(),
            other => {
                return Err(Error::NoStateDict(format!(
                    "the state dict is a {}",
                    other.type_name()
                )))
            }
        };
        let mut model = Vec::new();
        for (k, x) in entries {
            if let PyValue::Tensor(t) = x {
                let name = k.strip_prefix("module.").unwrap_or(&k).to_owned();
                model.push((name, t.clone()));
            }
        }
        if model.is_empty() {
            return Err(Error::NoStateDict("no tensors in the state dict".into()));
        }
        let optimizer = match v.get("optimizer") {
            Some(o @ PyValue::Dict(_)) => Some(AdamState::from_value(o)?),
            _ => None,
        };
        Ok(TrainingCheckpoint {
            model,
            optimizer,
            total_steps: v.get("total_steps").and_then(PyValue::as_i64),
            epoch: v.get("epoch").and_then(PyValue::as_i64),
            lr: v.get("lr").and_then(PyValue::as_f64),
        })
    }

    /// Writes the checkpoint atomically to `path` (see [`crate::save_pth`]).
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        crate::save_pth(&self.to_value()?, path)
    }

    /// Reads a checkpoint written by [`TrainingCheckpoint::save`], by
    /// CNNDetection's training code, or a bare state dict.
    pub fn load(path: &Path) -> Result<TrainingCheckpoint, Error> {
        let v = crate::load_value(path)?;
        TrainingCheckpoint::from_value(&v).map_err(|e| e.in_file(path))
    }

    /// Checks that the optimizer covers `param_names` (the parameters' names
    /// in optimizer order, e.g. the state-dict names that are not
    /// [`is_batchnorm_buffer`]) and that each moment is a float tensor shaped
    /// like its parameter, so that resuming cannot mix parameters up.
    pub fn check_moments(&self, param_names: &[&str]) -> Result<(), Error> {
        let Some(opt) = &self.optimizer else {
            return Ok(());
        };
        if opt.params.len() != param_names.len() {
            return Err(Error::InvalidInput(format!(
                "the optimizer has {} parameters, the model {}",
                opt.params.len(),
                param_names.len()
            )));
        }
        for (p, name) in opt.params.iter().zip(param_names) {
            let Some(p) = p else { continue };
            let t = self
                .model
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| t)
                .ok_or_else(|| Error::tensor(Some(name), "is not in the state dict"))?;
            for m in [
                Some(&p.exp_avg),
                Some(&p.exp_avg_sq),
                p.max_exp_avg_sq.as_ref(),
            ]
            .into_iter()
            .flatten()
            {
                if m.shape != t.shape || !m.dtype.is_float() {
                    return Err(Error::tensor(
                        Some(name),
                        format!(
                            "has shape {:?} but its Adam moment is a {} tensor {:?}",
                            t.shape, m.dtype, m.shape
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Whether a state-dict entry is a buffer rather than a parameter in a
/// torchvision ResNet (BatchNorm running statistics and step counter), i.e.
/// not in `model.parameters()` and so not in the optimizer's state.
pub fn is_batchnorm_buffer(name: &str) -> bool {
    name.ends_with(".running_mean")
        || name.ends_with(".running_var")
        || name.ends_with(".num_batches_tracked")
        || matches!(name, "running_mean" | "running_var" | "num_batches_tracked")
}
