//! `cnnspot report`: one self-contained HTML page of a results folder.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::builder::TypedValueParser as _;
use cnnspot_report::{write_report, ReportOptions, DEFAULT_THUMBNAILS, DEFAULT_THUMB_SIZE};

#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// The folder that `cnnspot eval --out`, `cnnspot spectrum --out` and
    /// `cnnspot robustness --out` wrote into.
    #[arg(value_name = "RESULTS_DIR")]
    dir: PathBuf,
    /// The page to write [default: RESULTS_DIR/report.html]
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// The dataset's folder, when it has moved since the scores were made
    /// (thumbnails are read from it) [default: the root in scores.meta.json]
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Thumbnails of the most fake and of the most real images per
    /// generator (0: none).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_THUMBNAILS,
          value_parser = clap::value_parser!(u16).range(0..=100).map(usize::from))]
    thumbnails: usize,
    /// Longer side of a thumbnail in pixels.
    #[arg(long, value_name = "PX", default_value_t = DEFAULT_THUMB_SIZE,
          value_parser = clap::value_parser!(u32).range(16..=1024))]
    thumb_size: u32,
    /// Page title [default: "cnnspot report: <folder name>"]
    #[arg(long)]
    title: Option<String>,
    /// No warnings on standard error (they are still listed in the page).
    #[arg(short, long)]
    quiet: bool,
}

pub fn run(args: ReportArgs) -> Result<ExitCode> {
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| args.dir.join(cnnspot_files::layout::REPORT_HTML));
    let opts = ReportOptions {
        root: args.root,
        thumbnails: args.thumbnails,
        thumb_size: args.thumb_size,
        title: args.title,
    };
    let done = write_report(&args.dir, &output, &opts)?;
    if !args.quiet {
        for w in &done.warnings {
            eprintln!("warning: {w}");
        }
    }
    let placeholders = if done.placeholders > 0 {
        format!(" ({} could not be read)", done.placeholders)
    } else {
        String::new()
    };
    println!(
        "wrote {}: {} KiB; sections: {}; {} figure(s), {} thumbnail(s){placeholders}, {} warning(s)",
        output.display(),
        done.html.len().div_ceil(1024),
        if done.sections.is_empty() {
            "none".to_string()
        } else {
            done.sections.join(", ")
        },
        done.figures,
        done.thumbnails,
        done.warnings.len()
    );
    Ok(ExitCode::SUCCESS)
}
