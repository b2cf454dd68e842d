//! `cnnspot weights`: fetch, inspect and convert weight files.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use cnnspot_core::weights;
use cnnspot_fetch::{self as fetch, FetchOptions};
use indicatif::{ProgressBar, ProgressStyle};

use crate::CacheArgs;

#[derive(clap::Subcommand, Debug)]
pub enum WeightsCommand {
    /// Download an official checkpoint into the cache (resumes a partial download).
    Fetch {
        /// Which checkpoint: blur_jpg_prob0.5 (the default) or blur_jpg_prob0.1.
        #[arg(default_value = fetch::DEFAULT_CHECKPOINT)]
        name: String,
        /// Download from this address instead of the official one (a mirror).
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// Download again even if the file is already in the cache.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// Export a trained checkpoint as an fp16 safetensors model with its
    /// calibration (temperature and threshold fitted on a labelled
    /// validation folder) and the logits of check images, as the built-in
    /// model is made.
    Calibrate {
        /// The trained checkpoint (.pth or .safetensors).
        checkpoint: PathBuf,
        /// Validation root in the ForenSynths layout (never the test set).
        #[arg(long, value_name = "DIR")]
        val: PathBuf,
        /// Output weights (.safetensors, fp16).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Output card (.json): calibration, sha256, check logits.
        #[arg(long, value_name = "FILE")]
        card: PathBuf,
        /// Images whose logits (with the fp16 weights) are recorded in the card,
        /// so that a rebuild cannot change the model silently.
        #[arg(long, value_name = "DIR")]
        check_images: Option<PathBuf>,
    },
    /// List the built-in model and the official checkpoints (and whether each is in the cache).
    List {
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// Describe a weight file: format, architecture, parameters, extra keys.
    Info {
        /// A .pth or .safetensors file.
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Convert a .pth checkpoint to safetensors (the state dict only).
    Convert {
        /// The checkpoint to read.
        input: PathBuf,
        /// The .safetensors file to write.
        output: PathBuf,
    },
}

pub fn run(cmd: WeightsCommand) -> Result<ExitCode> {
    match cmd {
        WeightsCommand::Fetch {
            name,
            url,
            force,
            cache,
        } => fetch_cmd(&name, url.as_deref(), force, &cache),
        WeightsCommand::List { cache } => list(&cache),
        WeightsCommand::Calibrate {
            checkpoint,
            val,
            out,
            card,
            check_images,
        } => crate::calibrate_cmd::run(&checkpoint, &val, &out, &card, check_images.as_deref()),
        WeightsCommand::Info { file, json } => info(&file, json),
        WeightsCommand::Convert { input, output } => {
            let arch = weights::convert_to_safetensors(&input, &output)
                .with_context(|| format!("cannot convert {}", input.display()))?;
            println!("wrote {} ({arch})", output.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn fetch_cmd(name: &str, url: Option<&str>, force: bool, cache: &CacheArgs) -> Result<ExitCode> {
    let known = fetch::find_known(name).ok_or_else(|| {
        let names: Vec<&str> = fetch::KNOWN.iter().map(|k| k.name).collect();
        anyhow!("unknown checkpoint {name}; known: {}", names.join(", "))
    })?;
    let dir = fetch::cache_dir(cache.cache_dir.as_deref())?;
    let dest = dir.join("weights").join(known.file_name);
    if dest.exists() && !force {
        println!("{} is already in the cache: {}", known.name, dest.display());
        return Ok(ExitCode::SUCCESS);
    }
    let url = url.unwrap_or(known.url);
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{bytes}/{total_bytes} {wide_bar} {bytes_per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut progress = |done: u64, total: Option<u64>| {
        if let Some(t) = total {
            bar.set_length(t);
        }
        bar.set_position(done);
    };
    let validate = |p: &Path| -> Result<(), String> {
        weights::validate(p).map(|_| ()).map_err(|e| e.to_string())
    };
    eprintln!("downloading {} from {url}", known.name);
    let fetched = fetch::fetch_to(
        url,
        &dest,
        &FetchOptions::default(),
        &mut progress,
        &validate,
    );
    bar.finish_and_clear();
    let fetched = fetched?;
    if fetched.resumed_from > 0 {
        eprintln!("resumed from byte {}", fetched.resumed_from);
    }
    println!(
        "saved {} ({} bytes, sha256 {})",
        fetched.path.display(),
        fetched.bytes,
        fetched.sha256
    );
    Ok(ExitCode::SUCCESS)
}

fn list(cache: &CacheArgs) -> Result<ExitCode> {
    let card = cnnspot_core::builtin::calibration()?;
    println!(
        "{} (default): cnnspot's own NPR detector, compiled in (sha256 {}, see MODEL.md) [always available]",
        cnnspot_core::builtin::NAME,
        card.sha256
    );
    let dir = fetch::cache_dir(cache.cache_dir.as_deref())?;
    for k in fetch::KNOWN {
        let state = match fetch::cached_checkpoint(&dir, k.name) {
            Some(p) => format!("cached at {}", p.display()),
            None => "not downloaded".to_string(),
        };
        let default = if k.name == fetch::DEFAULT_CHECKPOINT {
            " (official)"
        } else {
            ""
        };
        println!("{}{default}: {} [{state}]", k.name, k.description);
    }
    Ok(ExitCode::SUCCESS)
}

fn info(file: &Path, json: bool) -> Result<ExitCode> {
    let info = weights::info(file).with_context(|| format!("cannot read {}", file.display()))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&info)?);
    } else {
        println!("file:         {}", file.display());
        println!("format:       {}", info.format);
        println!(
            "architecture: {}",
            info.arch
                .as_deref()
                .unwrap_or("unknown (not a torchvision ResNet)")
        );
        if let Some(input) = &info.input {
            println!("input:        {input}");
        }
        if let Some(n) = info.num_outputs {
            println!("outputs:      {n}");
        }
        println!("parameters:   {}", info.parameters);
        println!("tensors:      {}", info.tensors);
        if !info.extra_keys.is_empty() {
            println!("extra keys:   {}", info.extra_keys.join(", "));
        }
        if let Some(steps) = info.total_steps {
            println!("total steps:  {steps}");
        }
    }
    if let Some(problem) = &info.problem {
        bail!("{} does not load into a model: {problem}", file.display());
    }
    Ok(ExitCode::SUCCESS)
}
