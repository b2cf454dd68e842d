//! `cnnspot spectrum`: average spectra of high-pass filtered real and fake
//! images per generator (paper Fig. 7).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use cnnspot_analysis::render::write_outputs;
use cnnspot_analysis::{generator_spectra, HighPass, Spectrum2d, SpectrumOptions};
use cnnspot_core::image::DEFAULT_MAX_PIXELS;
use cnnspot_eval::dataset::{Dataset, Label};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum HighPassArg {
    /// Image minus its 3x3 median (the paper's).
    Median3,
    /// Image minus its 5x5 median.
    Median5,
}

#[derive(clap::Args, Debug)]
pub struct SpectrumArgs {
    /// Dataset root in the ForenSynths layout
    /// (root/<generator>/[<class>/]{0_real,1_fake}/).
    root: PathBuf,
    /// Folder to write spectra/ and spectra_grid.png into (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// The high-pass filter.
    #[arg(long, value_enum, default_value = "median3")]
    highpass: HighPassArg,
    /// Average the channels to grey before the FFT (default: one FFT per
    /// channel, magnitudes averaged over channels).
    #[arg(long)]
    gray: bool,
    /// At most this many images per class (real, fake) and generator,
    /// evenly sampled.
    #[arg(long, default_value_t = 200, value_name = "N")]
    max_images: usize,
    /// Side of the center crop (smaller images are padded with black).
    #[arg(long, default_value_t = 256, value_name = "PX")]
    crop: u32,
    /// Only these generators (repeatable).
    #[arg(long = "generator", value_name = "NAME")]
    generators: Vec<String>,
    /// Refuse images with more pixels than this.
    #[arg(long, default_value_t = DEFAULT_MAX_PIXELS, value_name = "N")]
    max_pixels: u64,
    /// No progress bar.
    #[arg(short, long)]
    quiet: bool,
}

pub fn run(args: SpectrumArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let mut dataset = Dataset::discover(&args.root)?;
    if !args.generators.is_empty() {
        dataset.select(&args.generators)?;
    }
    let spectrum = Spectrum2d::new(SpectrumOptions {
        crop: args.crop,
        highpass: match args.highpass {
            HighPassArg::Median3 => HighPass::Median3,
            HighPassArg::Median5 => HighPass::Median5,
        },
        gray: args.gray,
    })?;
    let total: usize = dataset
        .generators
        .iter()
        .map(|g| {
            g.count(Label::Real).min(args.max_images) + g.count(Label::Fake).min(args.max_images)
        })
        .sum();
    let bar = if args.quiet || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{pos}/{len} images {wide_bar} {per_sec} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    };
    let mut all = Vec::new();
    let mut failed = 0usize;
    for g in &dataset.generators {
        let s = generator_spectra(g, &spectrum, args.max_images, args.max_pixels, &|| {
            bar.inc(1)
        });
        for f in &s.failures {
            bar.suspend(|| eprintln!("warning: skipped {}: {}", f.path.display(), f.why));
        }
        failed += s.failures.len();
        all.push(s);
    }
    bar.finish_and_clear();
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let written = write_outputs(&all, &args.out)?;
    for s in &all {
        println!(
            "{}: {} real, {} fake image(s){}",
            s.name,
            s.n_real,
            s.n_fake,
            if s.failures.is_empty() {
                String::new()
            } else {
                format!(", {} unreadable", s.failures.len())
            }
        );
    }
    println!(
        "wrote {} file(s) under {} in {:.1} s",
        written.len(),
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    if failed > 0 {
        eprintln!("warning: {failed} image(s) could not be read (listed above)");
    }
    Ok(ExitCode::SUCCESS)
}
