//! `cnnspot augment`: write augmented samples of one image, to see what the
//! detector is trained on.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use cnnspot_augment::{
    augment_train, augment_val, load_rgb, sample_rng, AugmentConfig, AugmentRecord, PRESETS,
    VALIDATION_EPOCH,
};
use serde::Serialize;

#[derive(clap::Args, Debug)]
pub struct AugmentArgs {
    /// The image to augment.
    image: PathBuf,
    /// The training setting, one of the paper's five.
    #[arg(long, default_value = "blur+jpeg-0.5", value_parser = PRESETS)]
    preset: String,
    /// How many samples to write.
    #[arg(short = 'n', long = "count", default_value_t = 8, value_name = "N")]
    count: u32,
    /// Folder to write into (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Seed of the random draws: the same seed gives the same samples.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The validation variant instead: midpoint sigma and quality, the
    /// libjpeg-turbo encoder, center crop, no flip.
    #[arg(long)]
    val: bool,
    /// Refuse images with more pixels than this.
    #[arg(long, default_value_t = cnnspot_augment::DEFAULT_MAX_PIXELS, value_name = "N")]
    max_pixels: u64,
}

#[derive(Serialize)]
struct Sample<'a> {
    file: String,
    #[serde(flatten)]
    record: &'a AugmentRecord,
}

#[derive(Serialize)]
struct Manifest<'a> {
    image: String,
    preset: &'a str,
    variant: &'static str,
    seed: u64,
    config: &'a AugmentConfig,
    samples: Vec<Sample<'a>>,
}

pub fn run(args: AugmentArgs) -> Result<ExitCode> {
    let cfg = AugmentConfig::preset(&args.preset)?;
    let img = load_rgb(&args.image, args.max_pixels)
        .with_context(|| format!("{}", args.image.display()))?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let stem = args
        .image
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into());

    let mut records = Vec::new();
    let mut files = Vec::new();
    for i in 0..args.count {
        let out = if args.val {
            augment_val(
                &img,
                &cfg,
                &mut sample_rng(args.seed, VALIDATION_EPOCH, u64::from(i)),
            )
        } else {
            augment_train(&img, &cfg, &mut sample_rng(args.seed, 0, u64::from(i)))
        }
        .with_context(|| format!("sample {i}"))?;
        let name = format!("{stem}_aug{i}.png");
        let path = args.out.join(&name);
        out.image
            .save(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("{}  {}", path.display(), describe(&out.record));
        records.push(out.record);
        files.push(name);
    }

    let manifest = Manifest {
        image: args.image.display().to_string(),
        preset: &args.preset,
        variant: if args.val { "validation" } else { "train" },
        seed: args.seed,
        config: &cfg,
        samples: files
            .into_iter()
            .zip(&records)
            .map(|(file, record)| Sample { file, record })
            .collect(),
    };
    let path = args.out.join(format!("{stem}_augment.json"));
    write_json(&path, &manifest)?;
    println!("{}", path.display());
    Ok(ExitCode::SUCCESS)
}

/// One line per sample: what was drawn.
fn describe(r: &AugmentRecord) -> String {
    let interp = r.interp.map_or("none".to_string(), |i| i.to_string());
    let blur = r
        .blur_sigma
        .map_or("no blur".to_string(), |s| format!("blur sigma {s:.3}"));
    let jpeg = match (r.jpeg_quality, r.jpeg_encoder) {
        (Some(q), Some(e)) => format!("jpeg q{q} {e}"),
        _ => "no jpeg".to_string(),
    };
    format!(
        "resize {}x{} {interp}, {blur}, {jpeg}, crop at ({}, {}){}",
        r.resized[0],
        r.resized[1],
        r.crop[0],
        r.crop[1],
        if r.flip { ", flipped" } else { "" }
    )
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}
