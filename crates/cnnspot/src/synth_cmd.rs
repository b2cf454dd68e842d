//! `cnnspot synth`: a ForenSynths-layout dataset of (real crop, fake) pairs
//! made from a folder of real photos by the chosen generators.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use cnnspot_fetch as weights_fetch;
use cnnspot_generators::catalogue::{self, Network};
use cnnspot_generators::dcgan::DcganGenerator;
use cnnspot_generators::fetch::is_cached;
use cnnspot_generators::sr::NcnnSuperResolution;
use cnnspot_generators::style::StyleTransferGenerator;
use cnnspot_generators::synth::{self, PairOutcome, SynthEvent, SynthPlan};
use cnnspot_generators::Generator;
use indicatif::{ProgressBar, ProgressStyle};

use crate::CacheArgs;

#[derive(clap::Args, Debug)]
pub struct SynthArgs {
    /// Folder of real photos (searched recursively; jpg, png, bmp, webp, tiff).
    pub reals_dir: PathBuf,
    /// Generators, comma-separated (see `cnnspot generators list`).
    #[arg(long, value_delimiter = ',', required = true, value_name = "A,B,C")]
    pub generators: Vec<String>,
    /// Dataset root to write: ROOT/<split>/<generator>/{0_real,1_fake}/.
    #[arg(long, value_name = "ROOT")]
    pub out: PathBuf,
    /// Pairs per generator, over all splits.
    #[arg(long, default_value_t = 500)]
    pub per_generator: usize,
    /// Side of the square crops, in pixels.
    #[arg(long, default_value_t = 256)]
    pub size: u32,
    /// Seed of every random choice (the same seed gives the same files).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Splits and their shares of the photos and pairs.
    #[arg(
        long,
        default_value = "train=0.9,val=0.1",
        value_name = "NAME=SHARE,..."
    )]
    pub split: String,
    /// Fetch generators missing from the cache from this folder of package
    /// files (wheels, .tar.gz) first.
    #[arg(long, value_name = "DIR")]
    pub from: Option<PathBuf>,
    #[command(flatten)]
    pub cache: CacheArgs,
}

/// The simulator generators cnnspot trains itself.
pub fn simulator_names() -> Vec<&'static str> {
    cnnspot_simulators::names()
}

/// Trains (or loads from the cache) the simulator `name` on `reals`.
fn prepare_simulator(
    name: &str,
    reals: &[PathBuf],
    cache_dir: &Path,
    seed: u64,
) -> Result<Box<dyn Generator>> {
    eprintln!(
        "fitting (or loading) the simulator {name} on {} photos",
        reals.len()
    );
    cnnspot_simulators::prepare(name, reals, cache_dir, seed)
        .map_err(|e| anyhow::anyhow!("simulator {name}: {e}"))
}

pub fn run(args: SynthArgs) -> Result<ExitCode> {
    let splits = synth::parse_splits(&args.split)?;
    let cache_dir = weights_fetch::cache_dir(args.cache.cache_dir.as_deref())?;
    let simulators = simulator_names();

    // Check every name before any long work.
    let mut missing = Vec::new();
    for name in &args.generators {
        match catalogue::find(name) {
            Some(e) if !is_cached(e, &cache_dir) => missing.push(e),
            Some(_) => {}
            None if simulators.contains(&name.as_str()) => {}
            None => {
                let mut known = catalogue::names();
                for s in &simulators {
                    known.push_str(", ");
                    known.push_str(s);
                }
                bail!("there is no generator called {name:?}; the known ones are {known}")
            }
        }
    }
    if !missing.is_empty() {
        match &args.from {
            Some(dir) => crate::generators_cmd::fetch_entries(&missing, &cache_dir, Some(dir))?,
            None => {
                let names: Vec<&str> = missing.iter().map(|e| e.name).collect();
                bail!(
                    "{} not in the cache ({}); run `cnnspot generators fetch {}`",
                    names.join(", "),
                    cache_dir.display(),
                    names.join(" ")
                )
            }
        }
    }

    // The simulators train on the train split's photos only.
    let train_photos = if args
        .generators
        .iter()
        .any(|n| simulators.contains(&n.as_str()))
    {
        let ps = synth::photo_splits(&args.reals_dir, &splits, args.seed)?;
        let first = splits
            .iter()
            .find(|s| s.name == "train")
            .unwrap_or(&splits[0])
            .name
            .clone();
        ps.paths_of(&first)
    } else {
        Vec::new()
    };
    let mut generators: Vec<Box<dyn Generator>> = Vec::new();
    for name in &args.generators {
        let g: Box<dyn Generator> = match catalogue::find(name) {
            Some(e) => match e.network {
                Network::NcnnSuperResolution(_) => {
                    Box::new(NcnnSuperResolution::load(e, &cache_dir)?)
                }
                Network::Dcgan(_) => Box::new(DcganGenerator::load(e, &cache_dir)?),
                Network::OnnxStyleTransfer(_) => {
                    Box::new(StyleTransferGenerator::load(e, &cache_dir)?)
                }
            },
            None => prepare_simulator(name, &train_photos, &cache_dir, args.seed)
                .with_context(|| format!("cannot prepare simulator {name}"))?,
        };
        generators.push(g);
    }

    let mut plan = SynthPlan::new(args.reals_dir.clone(), args.out.clone(), generators);
    plan.per_generator = args.per_generator;
    plan.size = args.size;
    plan.seed = args.seed;
    plan.splits = splits;

    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{pos}/{len} pairs {wide_bar} {per_sec} eta {eta} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let summary = synth::run(&plan, &|ev: &SynthEvent| match ev {
        SynthEvent::Started { total } => bar.set_length(*total as u64),
        SynthEvent::Pair {
            outcome, message, ..
        } => {
            if *outcome == PairOutcome::Failed {
                if let Some(m) = message {
                    bar.println(format!("warning: {m}"));
                }
            }
            bar.inc(1);
        }
    })
    .map_err(|e| anyhow!(e))?;
    bar.finish_and_clear();

    println!(
        "{} photos ({})",
        summary.photos,
        summary
            .splits
            .iter()
            .map(|(n, photos, pairs)| format!("{n}: {photos} photos, {pairs} pairs per generator"))
            .collect::<Vec<_>>()
            .join("; ")
    );
    if !summary.unreadable.is_empty() {
        println!(
            "{} unreadable photo files were left out",
            summary.unreadable.len()
        );
    }
    let w = summary
        .generators
        .iter()
        .map(|g| g.name.len())
        .max()
        .unwrap_or(9)
        .max(9);
    println!(
        "{:<w$}  {:>7}  {:>7}  {:>6}  {:>8}",
        "generator", "written", "skipped", "failed", "s/fake"
    );
    for g in &summary.generators {
        let spf = g
            .seconds_per_fake()
            .map_or("-".to_string(), |s| format!("{s:.3}"));
        println!(
            "{:<w$}  {:>7}  {:>7}  {:>6}  {:>8}",
            g.name, g.written, g.skipped, g.failed, spf
        );
    }
    println!("manifest: {}", summary.manifest.display());
    if summary.failures.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "{} pairs failed (see the warnings above); rerun the same command to retry them",
            summary.failures.len()
        );
        Ok(ExitCode::from(1))
    }
}
