//! `cnnspot`: the command line over the cnnspot library.

mod detect;
mod inputs;
mod output;
mod weights_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Spot images made by convolutional generators (GANs, super-resolution,
/// face swaps), with the detector of Wang et al. (CVPR 2020).
#[derive(Parser, Debug)]
#[command(name = "cnnspot", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Score images: the probability that each was made by a CNN generator.
    Detect(detect::DetectArgs),
    /// Download, inspect and convert weight files.
    #[command(subcommand)]
    Weights(weights_cmd::WeightsCommand),
}

/// Options shared by commands that read the weight cache.
#[derive(clap::Args, Debug, Clone)]
pub struct CacheArgs {
    /// Cache folder for downloaded weights [default: $CNNSPOT_CACHE_DIR,
    /// else $XDG_CACHE_HOME/cnnspot, else ~/.cache/cnnspot]
    #[arg(long, value_name = "DIR", global = true)]
    cache_dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Detect(args) => detect::run(args),
        Command::Weights(cmd) => weights_cmd::run(cmd),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", error_sentence(&e));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes on one line, without repeating a cause that the
/// message above it already contains.
fn error_sentence(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !out.contains(&c) {
            out.push_str(": ");
            out.push_str(&c);
        }
    }
    out
}
