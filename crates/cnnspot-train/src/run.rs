//! The training loop: steps, validation, schedule, checkpoints, logs, resume.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::step::schedule::{Decision, Schedule};
use crate::step::{AdamConfig, TorchMoments, Trainer};
use cnnspot_augment::rand::RngExt;
use cnnspot_core::model::expected_parameters;
use cnnspot_core::{default_device, is_input_marker, Arch, InputTransform, StateDict};
use cnnspot_weights::{AdamParamState, AdamState, TensorView, TrainingCheckpoint};
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::data::{epoch_order, for_each_batch, list_samples, Sample};
use crate::{io_err, write_atomic, Result, TrainError};

/// Progress reported while training runs.
#[derive(Debug, Clone)]
pub enum Event {
    /// Training data listed.
    Started {
        /// Training images.
        train: usize,
        /// Validation images.
        val: usize,
        /// Optimisation steps per epoch.
        steps_per_epoch: usize,
        /// The (epoch, batch) a resumed run starts from.
        resumed_at: Option<(u64, usize)>,
    },
    /// One optimisation step.
    Step {
        /// Epoch, from 0.
        epoch: u64,
        /// Batch within the epoch, from 0.
        batch: usize,
        /// Steps since the run began.
        total_steps: u64,
        /// The batch's loss.
        loss: f32,
        /// Throughput of the step.
        images_per_sec: f64,
    },
    /// A file that could not be used (skipped, counted).
    Skipped {
        /// The file.
        path: PathBuf,
        /// Why it was skipped.
        reason: String,
    },
    /// An epoch ended with this validation.
    Epoch(EpochRecord),
    /// A checkpoint was written.
    Saved {
        /// The checkpoint file.
        path: PathBuf,
    },
}

/// One line of the run's metrics log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EpochRecord {
    /// Epoch, from 0.
    pub epoch: u64,
    /// Steps since the run began.
    pub total_steps: u64,
    /// Mean training loss of the epoch.
    pub train_loss: f64,
    /// Learning rate during the epoch.
    pub lr: f64,
    /// Validation accuracy at threshold 0.5 (no validation: `None`).
    pub val_accuracy: Option<f64>,
    /// Validation average precision.
    pub val_ap: Option<f64>,
    /// What the schedule decided.
    pub decision: String,
    /// Files skipped during the epoch.
    pub skipped_files: u64,
    /// Training throughput of the epoch (loading included), images per second.
    #[serde(default)]
    pub images_per_sec: f64,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Every epoch's record, the resumed ones included.
    pub epochs: Vec<EpochRecord>,
    /// Steps since the run began.
    pub total_steps: u64,
    /// The run folder.
    pub run_dir: PathBuf,
    /// Whether it stopped because `stop_after_steps` was reached.
    pub interrupted: bool,
}

/// Where a run stands, saved next to `latest.pth` so that it resumes exactly.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Progress {
    /// The epoch in progress (0-based).
    epoch: u64,
    /// Batches of that epoch already trained on.
    batches_done: usize,
    total_steps: u64,
    adam_step: u64,
    schedule: Schedule,
    /// Train loss summed over the epoch so far, and its batch count.
    loss_sum: f64,
    loss_count: u64,
    skipped: u64,
    finished: bool,
}

/// torchvision's initialisation with the reference's head: convolutions
/// Kaiming-normal (fan out), BatchNorm 1/0, `fc` N(0, 0.02), bias 0.
fn random_state(arch: Arch, seed: u64) -> StateDict {
    let mut rng = cnnspot_augment::sample_rng(seed, u64::MAX - 1, 0);
    let mut normal = move |std: f64| -> f32 {
        // Box-Muller: the only normal draws training needs.
        let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
        let u2: f64 = rng.random::<f64>();
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos() * std) as f32
    };
    let mut state = StateDict::new();
    for (name, shape) in expected_parameters(arch, 1) {
        let n: usize = shape.iter().product();
        let values: Vec<f32> = if shape.len() == 2 {
            (0..n).map(|_| normal(0.02)).collect()
        } else if shape.len() == 4 {
            let fan_out = (shape[0] * shape[2] * shape[3]) as f64;
            let std = (2.0 / fan_out).sqrt();
            (0..n).map(|_| normal(std)).collect()
        } else if name.ends_with("running_var") || (name.ends_with(".weight") && shape.len() == 1) {
            vec![1.0; n]
        } else {
            vec![0.0; n]
        };
        state.insert(name, (shape, values));
    }
    state
}

/// ImageNet weights with the 1000-way head replaced by a one-logit one, N(0, 0.02).
fn imagenet_state(path: &Path, seed: u64) -> Result<StateDict> {
    let ckpt = cnnspot_core::weights::read(path)?;
    let mut state = cnnspot_core::weights::state_dict(&ckpt);
    let arch = Arch::infer(state.keys().map(String::as_str)).ok_or_else(|| {
        TrainError::Config(format!("{}: not a torchvision ResNet", path.display()))
    })?;
    let fresh = random_state(arch, seed);
    let head = arch.spec(1).head;
    for key in [head.weight(), head.bias()] {
        if let Some(v) = fresh.get(&key) {
            state.insert(key, v.clone());
        }
    }
    Ok(state)
}

fn f32_view(shape: &[usize], values: &[f32]) -> Result<TensorView> {
    Ok(TensorView::from_f32(shape.to_vec(), values)?)
}

/// The checkpoint in the official layout: state dict in torchvision order
/// (with `num_batches_tracked`), Adam's state in PyTorch's parameter order.
fn to_checkpoint(
    arch: Arch,
    trainer: &mut Trainer,
    progress: &Progress,
) -> Result<TrainingCheckpoint> {
    let state = trainer.state_dict();
    let moments = trainer.moments();
    let (adam_step, batches_tracked) = (progress.adam_step, trainer.batches_tracked);
    let (lr, total_steps, epoch) = (progress.schedule.lr, progress.total_steps, progress.epoch);
    let mut model = Vec::new();
    let mut params = Vec::new();
    for (name, shape) in expected_parameters(arch, 1) {
        let Some((_, values)) = state.get(&name) else {
            continue;
        };
        model.push((name.clone(), f32_view(&shape, values)?));
        if name.ends_with("running_var") {
            let bn = name.trim_end_matches("running_var");
            model.push((
                format!("{bn}num_batches_tracked"),
                TensorView::from_i64(vec![], &[batches_tracked])?,
            ));
        }
        if cnnspot_weights::is_batchnorm_buffer(&name) {
            continue;
        }
        params.push(match moments.get(&name) {
            Some((m, v)) => Some(AdamParamState {
                step: adam_step as f64,
                exp_avg: f32_view(&shape, m)?,
                exp_avg_sq: f32_view(&shape, v)?,
                max_exp_avg_sq: None,
            }),
            None => None,
        });
    }
    for (name, (shape, values)) in state.iter().filter(|(n, _)| is_input_marker(n)) {
        model.push((name.clone(), f32_view(shape, values)?));
    }
    let mut optimizer = AdamState::new(lr, params.len());
    optimizer.params = params;
    Ok(TrainingCheckpoint {
        model,
        optimizer: Some(optimizer),
        total_steps: Some(total_steps as i64),
        epoch: Some(epoch as i64),
        lr: Some(lr),
    })
}

fn from_checkpoint(arch: Arch, ckpt: &TrainingCheckpoint) -> (StateDict, TorchMoments) {
    let state: StateDict = ckpt
        .model
        .iter()
        .map(|(n, t)| (n.clone(), (t.shape.clone(), t.to_f32_vec())))
        .collect();
    let mut moments = TorchMoments::new();
    if let Some(opt) = &ckpt.optimizer {
        let names = expected_parameters(arch, 1)
            .into_iter()
            .map(|(n, _)| n)
            .filter(|n| !cnnspot_weights::is_batchnorm_buffer(n));
        for (name, p) in names.zip(&opt.params) {
            if let Some(p) = p {
                moments.insert(name, (p.exp_avg.to_f32_vec(), p.exp_avg_sq.to_f32_vec()));
            }
        }
    }
    (state, moments)
}

fn sigmoid(x: f32) -> f64 {
    cnnspot_core::sigmoid(x) as f64
}

/// Accuracy and AP of the current weights on the validation set.
fn validate(
    trainer: &Trainer,
    cfg: &TrainConfig,
    val: &[Sample],
    on_event: &mut dyn FnMut(Event),
) -> Result<(Option<f64>, Option<f64>)> {
    if val.is_empty() {
        return Ok((None, None));
    }
    let net = trainer.eval_network()?;
    let device = default_device();
    let order: Vec<usize> = (0..val.len()).collect();
    let (mut y_true, mut y_score) = (Vec::new(), Vec::new());
    for_each_batch(
        val,
        &order,
        cfg.batch_size,
        0,
        &cfg.augment,
        cfg.seed,
        None,
        cfg.max_pixels,
        cfg.workers,
        |_, batch| {
            for (path, reason) in batch.skipped {
                on_event(Event::Skipped { path, reason });
            }
            let n = batch.labels.len();
            if n == 0 {
                return Ok(true);
            }
            let x = burn::tensor::Tensor::<4>::from_data(
                burn::tensor::TensorData::new(batch.images, [n, 3, batch.size, batch.size]),
                &device,
            );
            let logits = net
                .forward(x)
                .into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .map_err(|e| TrainError::Config(format!("validation failed: {e:?}")))?;
            for (l, y) in logits.iter().zip(&batch.labels) {
                y_true.push(*y > 0.5);
                y_score.push(sigmoid(*l));
            }
            Ok(true)
        },
    )?;
    let m = cnnspot_eval::metrics::Metrics::compute(&y_true, &y_score);
    Ok((m.acc, m.ap))
}

fn append_line(path: &Path, line: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io_err(path))?;
    writeln!(f, "{line}").map_err(io_err(path))?;
    f.sync_data().map_err(io_err(path))
}

/// Trains as configured. With `resume`, continues from the run folder's
/// `latest` checkpoint with the same schedule; `stop_after_steps` ends the
/// run early after saving `latest` (as a kill right after a save would).
pub fn train(
    cfg: &TrainConfig,
    resume: bool,
    stop_after_steps: Option<u64>,
    on_event: &mut dyn FnMut(Event),
) -> Result<Summary> {
    cfg.validate()?;
    let arch = Arch::parse(&cfg.arch)
        .ok_or_else(|| TrainError::Config(format!("unknown architecture {}", cfg.arch)))?;
    let input = cfg.input_transform(arch)?;
    let run_dir = cfg.run_dir();
    std::fs::create_dir_all(&run_dir).map_err(io_err(&run_dir))?;
    let latest = run_dir.join("latest.pth");
    let progress_path = run_dir.join("latest.json");
    let log_path = run_dir.join("metrics.jsonl");

    let train_set = list_samples(&cfg.data, &cfg.classes)?;
    let val_set = match &cfg.val {
        Some(v) => list_samples(v, &cfg.classes)?,
        None => Vec::new(),
    };
    let adam = AdamConfig {
        lr: cfg.lr,
        beta1: cfg.beta1,
        ..AdamConfig::default()
    };
    let device = default_device();

    let (mut trainer, mut progress, mut epochs) = if resume && progress_path.exists() {
        let text = std::fs::read_to_string(&progress_path).map_err(io_err(&progress_path))?;
        let progress: Progress = serde_json::from_str(&text)
            .map_err(|e| TrainError::Config(format!("{}: {e}", progress_path.display())))?;
        let ckpt = TrainingCheckpoint::load(&latest)?;
        if ckpt.total_steps != Some(progress.total_steps as i64) {
            return Err(TrainError::Config(format!(
                "{} and {} disagree on the step count; remove latest.json to restart from the checkpoint's weights",
                latest.display(),
                progress_path.display()
            )));
        }
        let (state, moments) = from_checkpoint(arch, &ckpt);
        let saved = InputTransform::of_state(&state, arch);
        if saved != input {
            return Err(TrainError::Config(format!(
                "{} was trained on input {}, the configuration says {}",
                latest.display(),
                saved.name(),
                input.name()
            )));
        }
        let adam = AdamConfig {
            lr: progress.schedule.lr,
            ..adam
        };
        let mut trainer = Trainer::resume(&state, &moments, progress.adam_step, adam, &device)?;
        trainer.steps = progress.total_steps;
        let epochs = read_log(&log_path);
        (trainer, progress, epochs)
    } else {
        let mut state = match &cfg.init {
            Some(p) => imagenet_state(p, cfg.seed)?,
            None => random_state(arch, cfg.seed),
        };
        state.extend(input.marker(arch));
        let trainer = Trainer::from_state_dict(&state, adam, &device)?;
        // A fresh run starts a fresh log.
        let _ = std::fs::remove_file(&log_path);
        let progress = Progress {
            epoch: 0,
            batches_done: 0,
            total_steps: 0,
            adam_step: 0,
            schedule: Schedule::new(cfg.lr, cfg.patience),
            loss_sum: 0.0,
            loss_count: 0,
            skipped: 0,
            finished: false,
        };
        (trainer, progress, Vec::new())
    };
    write_atomic(&run_dir.join("config.toml"), cfg.to_toml()?.as_bytes())?;

    let steps_per_epoch = train_set.len().div_ceil(cfg.batch_size);
    on_event(Event::Started {
        train: train_set.len(),
        val: val_set.len(),
        steps_per_epoch,
        resumed_at: resume.then_some((progress.epoch, progress.batches_done)),
    });

    let save = |trainer: &mut Trainer, progress: &Progress, path: &Path| -> Result<()> {
        let ckpt = to_checkpoint(arch, trainer, progress)?;
        ckpt.save(path)?;
        Ok(())
    };
    let save_latest = |trainer: &mut Trainer, progress: &Progress| -> Result<()> {
        save(trainer, progress, &latest)?;
        let json =
            serde_json::to_vec_pretty(progress).map_err(|e| TrainError::Config(e.to_string()))?;
        write_atomic(&progress_path, &json)
    };

    let mut interrupted = false;
    while !progress.finished && (progress.epoch as usize) < cfg.epochs {
        let epoch = progress.epoch;
        let order = epoch_order(&train_set, cfg.seed, epoch, cfg.class_balance);
        let started = Instant::now();
        let mut images_seen = 0usize;
        let mut pending_err = None;
        for_each_batch(
            &train_set,
            &order,
            cfg.batch_size,
            progress.batches_done,
            &cfg.augment,
            cfg.seed,
            Some(epoch),
            cfg.max_pixels,
            cfg.workers,
            |b, batch| {
                for (path, reason) in batch.skipped {
                    progress.skipped += 1;
                    on_event(Event::Skipped { path, reason });
                }
                let n = batch.labels.len();
                if n > 0 {
                    let out =
                        trainer.step(batch.images, n, batch.size, batch.size, &batch.labels)?;
                    progress.adam_step += 1;
                    progress.total_steps += 1;
                    progress.loss_sum += out.loss as f64;
                    progress.loss_count += 1;
                    images_seen += n;
                    on_event(Event::Step {
                        epoch,
                        batch: b,
                        total_steps: progress.total_steps,
                        loss: out.loss,
                        images_per_sec: images_seen as f64
                            / started.elapsed().as_secs_f64().max(1e-9),
                    });
                }
                progress.batches_done = b + 1;
                let stop_now = stop_after_steps.is_some_and(|s| progress.total_steps >= s);
                if stop_now
                    || (cfg.save_every_steps > 0
                        && progress.total_steps % cfg.save_every_steps == 0
                        && n > 0)
                {
                    if let Err(e) = save_latest(&mut trainer, &progress) {
                        pending_err = Some(e);
                        return Ok(false);
                    }
                    on_event(Event::Saved {
                        path: latest.clone(),
                    });
                }
                if stop_now {
                    interrupted = true;
                    return Ok(false);
                }
                Ok(true)
            },
        )?;
        let train_secs = started.elapsed().as_secs_f64();
        if let Some(e) = pending_err {
            return Err(e);
        }
        if interrupted {
            break;
        }

        let (acc, ap) = validate(&trainer, cfg, &val_set, on_event)?;
        let decision = match acc {
            Some(a) => progress.schedule.observe(a),
            None => Decision::Wait { epochs_without: 0 },
        };
        let record = EpochRecord {
            epoch,
            total_steps: progress.total_steps,
            train_loss: progress.loss_sum / progress.loss_count.max(1) as f64,
            lr: trainer.optimizer().config.lr,
            val_accuracy: acc,
            val_ap: ap,
            decision: format!("{decision:?}"),
            skipped_files: progress.skipped,
            images_per_sec: images_seen as f64 / train_secs.max(1e-9),
        };
        match decision {
            Decision::Improved => {
                let best = run_dir.join("best.pth");
                save(&mut trainer, &progress, &best)?;
                on_event(Event::Saved { path: best });
            }
            Decision::LrDropped { lr } => trainer.set_lr(lr),
            Decision::Stop => progress.finished = true,
            Decision::Wait { .. } => {}
        }
        let per_epoch = run_dir.join(format!("epoch_{epoch}.pth"));
        save(&mut trainer, &progress, &per_epoch)?;
        on_event(Event::Saved { path: per_epoch });
        append_line(
            &log_path,
            &serde_json::to_string(&record).map_err(|e| TrainError::Config(e.to_string()))?,
        )?;
        on_event(Event::Epoch(record.clone()));
        epochs.push(record);
        crate::curves::write_png(&run_dir.join("curves.png"), &epochs)?;
        progress.epoch += 1;
        progress.batches_done = 0;
        progress.loss_sum = 0.0;
        progress.loss_count = 0;
        save_latest(&mut trainer, &progress)?;
    }
    write_csv(&run_dir.join("metrics.csv"), &epochs)?;
    Ok(Summary {
        epochs,
        total_steps: progress.total_steps,
        run_dir,
        interrupted,
    })
}

fn read_log(path: &Path) -> Vec<EpochRecord> {
    std::fs::read_to_string(path)
        .map(|t| {
            t.lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect()
        })
        .unwrap_or_default()
}

fn write_csv(path: &Path, epochs: &[EpochRecord]) -> Result<()> {
    let opt = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
    let mut text = String::from(
        "epoch,total_steps,train_loss,lr,val_accuracy,val_ap,decision,skipped_files,images_per_sec\n",
    );
    for e in epochs {
        text.push_str(&format!(
            "{},{},{},{},{},{},{},{},{:.3}\n",
            e.epoch,
            e.total_steps,
            e.train_loss,
            e.lr,
            opt(e.val_accuracy),
            opt(e.val_ap),
            e.decision.split_whitespace().next().unwrap_or(""),
            e.skipped_files,
            e.images_per_sec
        ));
    }
    write_atomic(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imagenet_init_replaces_the_head_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("imagenet.safetensors");
        let mut tensors = Vec::new();
        for (name, shape) in expected_parameters(Arch::ResNet18, 1000) {
            let n: usize = shape.iter().product();
            let values: Vec<f32> = (0..n).map(|i| (i % 97) as f32 * 0.01).collect();
            tensors.push((name, TensorView::from_f32(shape, &values).unwrap()));
        }
        cnnspot_weights::save_safetensors(&tensors, &path).unwrap();
        let state = imagenet_state(&path, 5).unwrap();
        let (shape, fc) = &state["fc.weight"];
        assert_eq!(shape, &vec![1, 512]);
        let mean = fc.iter().map(|&x| x as f64).sum::<f64>() / fc.len() as f64;
        let std =
            (fc.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / fc.len() as f64).sqrt();
        assert!(
            mean.abs() < 0.005 && (std - 0.02).abs() < 0.003,
            "fc ~ N(0, 0.02): {mean} {std}"
        );
        assert!(state["fc.bias"].1.iter().all(|&b| b == 0.0));
        let (_, conv1) = &state["conv1.weight"];
        assert_eq!(conv1[5], 5.0f32 * 0.01);
        // And it builds a detector-shaped network.
        assert!(cnnspot_core::ResNet::from_state_dict(&state, &default_device()).is_ok());
    }

    #[test]
    fn random_init_follows_torchvision() {
        let s = random_state(Arch::ResNet18, 1);
        let (shape, w) = &s["layer1.0.conv1.weight"];
        let fan_out = (shape[0] * shape[2] * shape[3]) as f64;
        let std = (w.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / w.len() as f64).sqrt();
        assert!(
            (std / (2.0 / fan_out).sqrt() - 1.0).abs() < 0.05,
            "kaiming std {std}"
        );
        assert!(s["bn1.weight"].1.iter().all(|&x| x == 1.0));
        assert!(s["bn1.running_var"].1.iter().all(|&x| x == 1.0));
        assert_eq!(random_state(Arch::ResNet18, 1)["fc.weight"], s["fc.weight"]);
    }
}
