//! `cnnspot train`: the paper's training recipe.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use cnnspot_train::{train, Event, TrainConfig};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// Settings file (TOML, the keys of the run's saved config.toml);
    /// flags given on the command line override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Training root: <DATA>/<class>/{0_real,1_fake}.
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Validation root, same layout (accuracy and AP every epoch drive the schedule).
    #[arg(long, value_name = "DIR")]
    val: Option<PathBuf>,
    /// Class folders to use, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    classes: Option<Vec<String>>,
    /// Augmentation preset: no-aug, blur, jpeg, blur+jpeg-0.5, blur+jpeg-0.1.
    #[arg(long)]
    preset: Option<String>,
    /// Run name; checkpoints and logs go to <checkpoints-dir>/<name>.
    #[arg(long)]
    name: Option<String>,
    /// Folder of runs [default: runs].
    #[arg(long, value_name = "DIR")]
    checkpoints_dir: Option<PathBuf>,
    /// resnet18, resnet34, resnet50 (default), resnet101, resnet152, npr.
    #[arg(long)]
    arch: Option<String>,
    /// What the network reads: its own input (rgb; npr for NPR) or
    /// `spectrum`, the log-magnitude DFT of Zhang et al.'s AutoGAN classifier.
    #[arg(long, value_name = "rgb|npr|spectrum")]
    input: Option<String>,
    /// torchvision ImageNet weights to start from (the head is replaced).
    #[arg(long, value_name = "FILE")]
    init: Option<PathBuf>,
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long)]
    batch_size: Option<usize>,
    #[arg(long)]
    lr: Option<f64>,
    /// Epochs at most.
    #[arg(long)]
    epochs: Option<usize>,
    /// Epochs without improvement before the learning rate drops.
    #[arg(long)]
    patience: Option<usize>,
    /// Threads loading and augmenting images.
    #[arg(long)]
    workers: Option<usize>,
    /// Sample real and fake images equally often.
    #[arg(long)]
    class_balance: bool,
    /// Save `latest` every N steps (and at each epoch's end).
    #[arg(long, value_name = "N")]
    save_every: Option<u64>,
    /// Continue the run from its `latest` checkpoint.
    #[arg(long)]
    resume: bool,
}

fn effective_config(a: &TrainArgs) -> Result<TrainConfig> {
    let mut c = match &a.config {
        Some(p) => TrainConfig::from_toml_file(p)?,
        None => TrainConfig::default(),
    };
    if let Some(p) = &a.preset {
        c.augment = cnnspot_augment::AugmentConfig::preset(p)?;
        c.preset = Some(p.clone());
    }
    macro_rules! set {
        ($field:ident) => {
            if let Some(v) = a.$field.clone() {
                c.$field = v;
            }
        };
    }
    set!(data);
    set!(classes);
    set!(name);
    set!(checkpoints_dir);
    set!(arch);
    if let Some(v) = &a.input {
        c.input = Some(v.clone());
    }
    set!(seed);
    set!(batch_size);
    set!(lr);
    set!(epochs);
    set!(patience);
    set!(workers);
    if let Some(n) = a.save_every {
        c.save_every_steps = n;
    }
    if a.val.is_some() {
        c.val = a.val.clone();
    }
    if a.init.is_some() {
        c.init = a.init.clone();
    }
    c.class_balance |= a.class_balance;
    if c.data.as_os_str().is_empty() {
        anyhow::bail!("no training data: pass --data DIR or set data in --config");
    }
    Ok(c)
}

pub fn run(args: TrainArgs) -> Result<ExitCode> {
    let cfg = effective_config(&args)?;
    let bar = if std::io::stderr().is_terminal() {
        let b = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        b.set_style(
            ProgressStyle::with_template(
                "epoch {prefix} {pos}/{len} {wide_bar} loss {msg} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    } else {
        ProgressBar::hidden()
    };
    // Lines for people: above the bar on a terminal, plain on stderr otherwise.
    let say = |line: String| {
        if bar.is_hidden() {
            eprintln!("{line}");
        } else {
            bar.println(line);
        }
    };
    let mut skipped = 0u64;
    let mut on_event = |e: Event| match e {
        Event::Started {
            train,
            val,
            steps_per_epoch,
            resumed_at,
        } => {
            bar.set_length(steps_per_epoch as u64);
            let from = resumed_at
                .map(|(e, b)| format!(", resuming at epoch {e} batch {b}"))
                .unwrap_or_default();
            say(format!(
                "{train} training images, {val} validation images, {steps_per_epoch} steps per epoch{from}"
            ));
        }
        Event::Step {
            epoch,
            batch,
            loss,
            images_per_sec,
            ..
        } => {
            bar.set_prefix(epoch.to_string());
            bar.set_position(batch as u64 + 1);
            bar.set_message(format!("{loss:.4}, {images_per_sec:.1} img/s"));
        }
        Event::Skipped { path, reason } => {
            skipped += 1;
            say(format!("warning: skipped {}: {reason}", path.display()));
        }
        Event::Epoch(r) => {
            let pct = |v: Option<f64>| v.map(|x| format!("{:.1}", 100.0 * x)).unwrap_or("-".into());
            say(format!(
                "epoch {}: loss {:.4}, val acc {}, val AP {}, lr {:e} ({})",
                r.epoch,
                r.train_loss,
                pct(r.val_accuracy),
                pct(r.val_ap),
                r.lr,
                r.decision
            ));
            bar.set_position(0);
        }
        Event::Saved { .. } => {}
    };
    let summary = train(&cfg, args.resume, None, &mut on_event)
        .with_context(|| format!("training run {} failed", cfg.name))?;
    bar.finish_and_clear();
    println!(
        "{} steps; checkpoints and logs in {}{}",
        summary.total_steps,
        summary.run_dir.display(),
        if skipped > 0 {
            format!(" ({skipped} files skipped)")
        } else {
            String::new()
        }
    );
    Ok(ExitCode::SUCCESS)
}
