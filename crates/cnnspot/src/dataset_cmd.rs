//! `cnnspot dataset`: looking at a dataset before evaluating on it.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use cnnspot_eval::check::check_dataset;
use cnnspot_eval::dataset::Dataset;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(clap::Subcommand, Debug)]
pub enum DatasetCommand {
    /// Counts per generator, class and label; image sizes, formats, JPEG
    /// qualities; and warnings where real and fake differ in a way a
    /// detector can exploit without looking at the content.
    Check(CheckArgs),
}

/// How the check is printed.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckFormat {
    /// For people.
    Table,
    /// Everything, as one JSON document.
    Json,
}

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// Dataset root: ROOT/<generator>/[<class>/]{0_real,1_fake}/.
    #[arg(value_name = "ROOT")]
    root: PathBuf,

    /// Only these generators (comma-separated folder names).
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    generators: Vec<String>,

    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: CheckFormat,

    /// Do not show a progress bar.
    #[arg(long, short)]
    quiet: bool,
}

pub fn run(cmd: DatasetCommand) -> Result<ExitCode> {
    match cmd {
        DatasetCommand::Check(args) => check(args),
    }
}

fn check(args: CheckArgs) -> Result<ExitCode> {
    let mut dataset = Dataset::discover(&args.root)?;
    if !args.generators.is_empty() {
        dataset.select(&args.generators)?;
    }
    let bar = if args.quiet || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        let bar =
            ProgressBar::with_draw_target(Some(dataset.len() as u64), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{pos}/{len} headers {wide_bar} {per_sec} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    };
    let report = check_dataset(&dataset, || bar.inc(1));
    bar.finish_and_clear();
    let text = match args.format {
        CheckFormat::Table => report.text(),
        CheckFormat::Json => {
            let mut s =
                serde_json::to_string_pretty(&report).context("cannot write the check as JSON")?;
            s.push('\n');
            s
        }
    };
    crate::output::print_stdout(&text, "the check")?;
    Ok(ExitCode::SUCCESS)
}
