//! `cnnspot detect`: score files, folders and globs.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{bail, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::inputs;
use crate::model_args::ModelArgs;
use crate::output::{Format, RowWriter};
use crate::scoring_args::ScoringArgs;
use crate::shard_arg::ShardArg;

#[derive(clap::Args, Debug)]
pub struct DetectArgs {
    /// Image files, folders (searched recursively for image files) and glob
    /// patterns such as 'uploads/*.jpg'.
    #[arg(required = true, value_name = "PATH")]
    inputs: Vec<String>,

    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,

    /// Probability above which an image is called synthetic [default: the
    /// model's: calibrated for the built-in model, 0.5 for others].
    #[arg(long, value_parser = parse_threshold)]
    threshold: Option<f32>,

    /// In folders, score every file, not only those with image extensions.
    #[arg(long)]
    all_files: bool,

    #[command(flatten)]
    scoring: ScoringArgs,

    #[command(flatten)]
    shard: ShardArg,

    #[command(flatten)]
    model: ModelArgs,
}

pub(crate) fn parse_threshold(s: &str) -> Result<f32, String> {
    let t: f32 = s.parse().map_err(|_| format!("{s} is not a number"))?;
    if (0.0..=1.0).contains(&t) {
        Ok(t)
    } else {
        Err(format!("{s} is not between 0 and 1"))
    }
}

pub fn run(args: DetectArgs) -> Result<ExitCode> {
    let mut files = inputs::expand(&args.inputs, args.all_files)?;
    if files.is_empty() {
        bail!("no image files found in {}", args.inputs.join(", "));
    }
    if let Some(shard) = args.shard.resolve()? {
        let all = files.len();
        files.retain(|f| shard.holds(&inputs::shard_key(&args.inputs, f)));
        if !args.scoring.quiet {
            eprintln!("shard {shard}: {} of the {all} files", files.len());
        }
        if files.is_empty() {
            // Nothing to score is this task's whole, successful share.
            let mut writer = RowWriter::new(args.format, 0.5, std::io::stdout().lock());
            writer.header()?;
            writer.finish()?;
            return Ok(ExitCode::SUCCESS);
        }
    }
    let detector = args.model.open()?;
    let opts = args.scoring.preprocess();
    let batching = args.scoring.batching(1);

    let bar = if args.scoring.quiet || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        let bar =
            ProgressBar::with_draw_target(Some(files.len() as u64), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {pos}/{len} images {wide_bar} {per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    };

    let stdout = std::io::stdout().lock();
    let mut writer = RowWriter::new(
        args.format,
        args.threshold.unwrap_or(detector.threshold()),
        stdout,
    );
    writer.header()?;
    let mut failed = 0usize;
    let mut write_error = None;
    detector.score_paths(&files, &opts, &batching, |_, path, result| {
        if result.is_err() {
            failed += 1;
        }
        let printed = bar.suspend(|| match &result {
            Ok(score) => writer.row(path, Ok(score)),
            Err(e) => writer.row(path, Err(&image_error_text(e))),
        });
        if let Err(e) = printed {
            write_error.get_or_insert(e);
        }
        bar.inc(1);
    });
    bar.finish_and_clear();
    writer.finish()?;
    if let Some(e) = write_error {
        return Err(e.context("cannot write the results"));
    }
    if failed > 0 {
        eprintln!(
            "{failed} of {} files could not be scored (see their rows)",
            files.len()
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// What to do about images above the pixel budget (`{n}`: how many).
pub const OVER_BUDGET_HINT: &str = "{n} image(s) above the inference pixel budget: score a crop \
     (--crop 224) or raise the budget (--max-infer-pixels)";

/// The reason alone (the row already shows the path), with the flags that
/// help where there are some.
fn image_error_text(e: &cnnspot_core::Error) -> String {
    match e {
        cnnspot_core::Error::Image { source, .. } => source.to_string(),
        cnnspot_core::Error::TooLarge { .. } => {
            format!("{e}; score a crop (--crop 224) or raise the budget (--max-infer-pixels)")
        }
        other => other.to_string(),
    }
}
