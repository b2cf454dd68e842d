//! `cnnspot robustness`: AP and accuracies per generator under JPEG
//! compression and Gaussian blur applied before scoring (paper Sec. 4.3).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Result};
use cnnspot_augment::JpegEncoder;
use cnnspot_eval::robustness::{
    merge_sweep, sweep, write_outputs, Perturbation, RobustnessDoc, SweepPlan, SweepProgress,
    DEFAULT_QUALITIES, DEFAULT_SIGMAS,
};
use cnnspot_eval::run::Progress;
use cnnspot_eval::scores::to_json;
use cnnspot_eval::shard::{keys_digest, write_record, ShardRecord, SHARD_FORMAT};

use crate::eval_cmd::Bars;
use crate::model_args::ModelArgs;
use crate::scoring_args::ScoringArgs;
use crate::shard_arg::{task_images, ShardArg, TaskImages};

/// What is printed on standard output.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RobustnessFormat {
    /// AP in percent, generators down, sweep points across.
    Table,
    /// robustness.csv.
    Csv,
    /// robustness.json.
    Json,
}

#[derive(clap::Args, Debug)]
pub struct RobustnessArgs {
    /// Dataset root: ROOT/<generator>/[<class>/]{0_real,1_fake}/.
    #[arg(
        value_name = "ROOT",
        required_unless_present = "merge",
        conflicts_with = "merge"
    )]
    root: Option<PathBuf>,

    /// With --shard: every point's scores go into DIR/shards/K-of-N/ (see
    /// --merge).
    #[command(flatten)]
    shard: ShardArg,

    /// Join the shards in DIR/shards/ (each made by `--shard K/N --out DIR`
    /// with the same sweep flags as given here) into the files an unsharded
    /// sweep writes into DIR, after checking them as `eval --merge` does.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["out", "shard", "crop", "no_crop", "generators"])]
    merge: Option<PathBuf>,

    /// JPEG qualities to compress the test images at (comma-separated);
    /// the sweep also has the uncompressed images as its first point.
    #[arg(long, value_delimiter = ',', value_name = "Q,...",
          default_values_t = DEFAULT_QUALITIES.to_vec(), conflicts_with = "no_jpeg")]
    jpeg: Vec<u8>,

    /// Gaussian blur sigmas in pixels (comma-separated); 0 (no blur) is
    /// added as the first point when missing.
    #[arg(long, value_delimiter = ',', value_name = "SIGMA,...",
          default_values_t = DEFAULT_SIGMAS.to_vec(), conflicts_with = "no_blur")]
    blur: Vec<f64>,

    /// Skip the JPEG sweep.
    #[arg(long)]
    no_jpeg: bool,

    /// Skip the blur sweep.
    #[arg(long)]
    no_blur: bool,

    /// JPEG encoder: libjpeg-turbo (Pillow's, the reference's "pil") or
    /// pure-rust (an independent encoder).
    #[arg(long, default_value = "libjpeg-turbo", value_parser = parse_encoder)]
    jpeg_encoder: JpegEncoder,

    /// Only these generators (comma-separated folder names), in this order.
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    generators: Vec<String>,

    /// Write robustness.{json,csv}, robustness_{jpeg,blur}.{png,svg} and the
    /// per-image scores of every point into DIR (the uncompressed point
    /// shares scores.jsonl with `cnnspot eval --out DIR`; a rerun resumes).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,

    /// What to print on standard output.
    #[arg(long, value_enum, default_value = "table")]
    format: RobustnessFormat,

    #[command(flatten)]
    scoring: ScoringArgs,

    #[command(flatten)]
    model: ModelArgs,
}

fn parse_encoder(name: &str) -> Result<JpegEncoder, String> {
    JpegEncoder::from_name(name)
        .ok_or_else(|| format!("unknown JPEG encoder {name:?} (libjpeg-turbo or pure-rust)"))
}

pub fn run(args: RobustnessArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let plan = SweepPlan {
        qualities: if args.no_jpeg {
            Vec::new()
        } else {
            args.jpeg.clone()
        },
        sigmas: if args.no_blur {
            Vec::new()
        } else {
            args.blur.clone()
        },
        encoder: args.jpeg_encoder,
    };
    if let Err(why) = plan.validate() {
        bail!("{why}");
    }
    if let Some(dir) = &args.merge {
        let doc = merge_sweep(dir, &plan)?;
        write_outputs(&doc, dir)?;
        return print(&args, &doc, started, &plan);
    }
    let Some(root) = &args.root else {
        bail!("give a dataset folder or --merge DIR");
    };
    let task = task_images(
        root,
        &args.generators,
        &args.shard,
        args.out.as_deref(),
        args.scoring.quiet,
    )?;
    let TaskImages {
        dataset,
        whole,
        shard,
        out_dir,
    } = task;
    let detector = args.model.open()?;
    let opts = args.scoring.preprocess();
    let batching = args.scoring.batching(2);
    let mut progress = Points {
        quiet: args.scoring.quiet,
        images: dataset.len(),
        bars: Bars::bars_only(args.scoring.quiet, dataset.generators.len()),
        started,
    };
    let doc = sweep(
        &dataset,
        &detector,
        &opts,
        &batching,
        &plan,
        out_dir.as_deref(),
        &mut progress,
    )?;
    match (shard, &out_dir, &args.out) {
        (Some(shard), Some(dir), Some(out)) => {
            let images = dataset.len();
            let keys = dataset
                .generators
                .iter()
                .flat_map(|g| &g.items)
                .map(|i| i.key.as_str());
            let record = ShardRecord {
                format: SHARD_FORMAT.to_string(),
                shard,
                dataset: whole,
                images,
                keys_sha256: keys_digest(keys),
                scored_now: 0,
                reused: 0,
                wall_seconds: started.elapsed().as_secs_f64(),
            };
            write_record(dir, &record)?;
            if !args.scoring.quiet {
                eprintln!(
                    "shard {shard} finished; when all {} have: cnnspot robustness --merge {} (with the same sweep flags)",
                    shard.count,
                    out.display()
                );
            }
        }
        (None, Some(dir), _) => {
            let written = write_outputs(&doc, dir)?;
            if !args.scoring.quiet {
                eprintln!("wrote {} files into {}", written.len(), dir.display());
            }
        }
        _ => {}
    }
    print(&args, &doc, started, &plan)
}

fn print(
    args: &RobustnessArgs,
    doc: &RobustnessDoc,
    started: Instant,
    plan: &SweepPlan,
) -> Result<ExitCode> {
    let text = match args.format {
        RobustnessFormat::Table => doc.table(),
        RobustnessFormat::Csv => doc.csv(),
        RobustnessFormat::Json => String::from_utf8_lossy(&to_json(
            Path::new(cnnspot_files::layout::ROBUSTNESS_JSON),
            &doc,
        )?)
        .into_owned(),
    };
    crate::output::print_stdout(&text, "the results")?;
    if !args.scoring.quiet {
        eprintln!(
            "{} points in {:.1} s",
            plan.distinct().len(),
            started.elapsed().as_secs_f64()
        );
    }
    let any_scored = doc
        .sweeps
        .iter()
        .flat_map(|s| &s.points)
        .any(|p| p.mean.n_real + p.mean.n_fake > 0);
    if !any_scored {
        eprintln!("no image could be scored: every metric is undefined");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// One line per sweep point, with the per-generator progress bars of
/// `eval` below it on a terminal.
struct Points {
    quiet: bool,
    images: usize,
    bars: Bars,
    started: Instant,
}

impl SweepProgress for Points {
    fn point(&mut self, perturbation: &Perturbation, index: usize, total: usize) {
        self.bars.restart();
        if self.quiet {
            return;
        }
        let what = match perturbation {
            Perturbation::None => "no perturbation".to_string(),
            Perturbation::Jpeg(q) => format!("JPEG quality {q}"),
            Perturbation::Blur(s) => format!("blur sigma {s}"),
        };
        eprintln!(
            "[point {}/{total}] {what}: {} images ({:.0} s so far)",
            index + 1,
            self.images,
            self.started.elapsed().as_secs_f64()
        );
    }

    fn scoring(&mut self) -> &mut dyn Progress {
        &mut self.bars
    }
}
