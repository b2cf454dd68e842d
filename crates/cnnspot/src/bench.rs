//! `cnnspot bench`: images per second of the model, as JSON, in the settings
//! of `shared/reference/bench_reference.py` (so that `scripts/bench.sh` can
//! put them side by side), and optionally end-to-end on a folder.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use cnnspot_core::{Batching, Detector, PreprocessOptions};
use serde_json::{json, Map, Value};

use crate::inputs;
use crate::model_args::ModelArgs;

/// Batch size and square input side of each reference setting.
const SETTINGS: [(usize, usize); 3] = [(1, 224), (16, 224), (1, 256)];

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Timed runs at batch 1 (a third as many, at least 3, at batch 16),
    /// after 3 warm-up runs; the median is reported.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    runs: u32,

    /// Threads for the model [default: one per core].
    #[arg(long, value_name = "N")]
    threads: Option<usize>,

    /// Also score every image of this folder with the `detect` pipeline
    /// (decoding beside the model) and compare with the model alone on the
    /// same tensors.
    #[arg(long, value_name = "DIR")]
    folder: Option<PathBuf>,

    /// Center crop for --folder (none by default, as `detect`).
    #[arg(long, value_name = "PX", requires = "folder")]
    crop: Option<u32>,

    /// Images per forward pass for --folder (as `detect --batch-size`).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024))]
    batch_size: u32,

    #[command(flatten)]
    model: ModelArgs,
}

pub fn run(args: BenchArgs) -> Result<std::process::ExitCode> {
    if let Some(n) = args.threads {
        cnnspot_engine::set_threads(n).context("cannot size the thread pool")?;
    }
    let detector = args.model.open()?;
    let weights = detector.info().path.clone();

    let mut out = Map::new();
    out.insert("engine".into(), json!(args.model.engine.name()));
    if let Some(net) = detector.fast_network() {
        out.insert(
            "kernel".into(),
            json!(format!("{:?}", net.isa()).to_lowercase()),
        );
        if net.precision() == cnnspot_core::Precision::Int8 {
            out.insert(
                "int8_kernel".into(),
                json!(format!("{:?}", net.int8_isa()).to_lowercase()),
            );
        }
    }
    out.insert("precision".into(), json!(detector.precision().name()));
    out.insert("arch".into(), json!(detector.arch().name()));
    out.insert("threads".into(), json!(cnnspot_engine::threads()));
    out.insert("weights".into(), json!(weights.display().to_string()));

    let runs = args.runs as usize;
    let mut settings = Map::new();
    for (batch, side) in SETTINGS {
        let data = pseudo_random(batch * 3 * side * side);
        let timed_runs = if batch == 1 { runs } else { (runs / 3).max(3) };
        let secs = time_runs(3, timed_runs, || {
            detector
                .logits_nchw(data.clone(), batch, side, side)
                .map(|_| ())
        })?;
        settings.insert(format!("b{batch}_{side}"), rate(batch, &secs));
    }
    out.insert("settings".into(), Value::Object(settings));

    if let Some(gap) = fixture_gap(&detector, &weights)? {
        out.insert("max_logit_gap".into(), json!(gap));
    }
    if let Some(folder) = &args.folder {
        out.insert(
            "folder".into(),
            end_to_end(&detector, folder, args.crop, args.batch_size as usize)?,
        );
    }
    out.insert("peak_rss_mib".into(), json!(peak_rss_mib()));
    println!("{}", serde_json::to_string_pretty(&Value::Object(out))?);
    Ok(std::process::ExitCode::SUCCESS)
}

/// Seconds of each timed run, after `warm` untimed ones.
fn time_runs(
    warm: usize,
    runs: usize,
    mut f: impl FnMut() -> cnnspot_core::Result<()>,
) -> Result<Vec<f64>> {
    for _ in 0..warm {
        f()?;
    }
    let mut secs = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        f()?;
        secs.push(t.elapsed().as_secs_f64());
    }
    Ok(secs)
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

fn rate(batch: usize, secs: &[f64]) -> Value {
    let best = secs.iter().copied().fold(f64::INFINITY, f64::min);
    json!({
        "img_per_s": batch as f64 / median(secs),
        "img_per_s_best": batch as f64 / best,
        "runs": secs.len(),
    })
}

/// Inputs in the range of normalised images; fixed so that runs compare.
fn pseudo_random(len: usize) -> Vec<f32> {
    let mut s = 0x2545_f491u32;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s as f32 / u32::MAX as f32 - 0.5) * 4.0
        })
        .collect()
}

/// Largest difference from PyTorch on the fixture inputs, when the weights
/// are the fixture checkpoint and its expected outputs lie beside it.
fn fixture_gap(detector: &Detector, weights: &Path) -> Result<Option<f64>> {
    if weights.file_name().and_then(|n| n.to_str()) != Some("cnndet_random.pth") {
        return Ok(None);
    }
    let dir = weights.parent().unwrap_or(Path::new("."));
    let Ok(text) = std::fs::read_to_string(dir.join("expected.json")) else {
        return Ok(None);
    };
    let expected: Value = serde_json::from_str(&text).context("expected.json")?;
    let mut gap = 0f64;
    let cases = expected["cases"].as_array().cloned().unwrap_or_default();
    for case in cases {
        let (Some(file), Some(want)) = (case["input_file"].as_str(), case["logit"].as_f64()) else {
            continue;
        };
        let Ok((shape, data)) = cnnspot_files::npy::read_f32(&dir.join(file)) else {
            continue;
        };
        if shape.len() != 4 {
            continue;
        }
        let got = detector.logits_nchw(data, shape[0], shape[2], shape[3])?;
        gap = gap.max((got[0] as f64 - want).abs());
    }
    Ok(Some(gap))
}

/// Images per second of `detect`'s pipeline on a folder, and of the model
/// alone on the same tensors batched the same way.
fn end_to_end(
    detector: &Detector,
    folder: &Path,
    crop: Option<u32>,
    batch: usize,
) -> Result<Value> {
    let Some(folder_str) = folder.to_str() else {
        bail!("{} is not valid UTF-8", folder.display());
    };
    let files = inputs::expand(&[folder_str.to_string()], false)?;
    if files.is_empty() {
        bail!("no image files found in {}", folder.display());
    }
    let opts = PreprocessOptions {
        crop,
        ..PreprocessOptions::default()
    };
    let batching = Batching {
        batch_size: batch,
        ..Batching::default()
    };

    // Model alone: decode everything first, then time the forward passes
    // over the same groups the pipeline forms (equal sizes together).
    let mut images = Vec::new();
    for f in &files {
        if let Ok(p) = cnnspot_core::image::preprocess_path(f, &opts) {
            if detector
                .check_size(p.height as usize, p.width as usize)
                .is_ok()
            {
                images.push(p);
            }
        }
    }
    let mut groups: std::collections::BTreeMap<(u32, u32), Vec<&cnnspot_core::Preprocessed>> =
        Default::default();
    for p in &images {
        groups.entry((p.width, p.height)).or_default().push(p);
    }
    let mut batches = Vec::new();
    for g in groups.values() {
        let per_batch = batch
            .min(
                (batching.max_batch_pixels / (g[0].width as u64 * g[0].height as u64).max(1))
                    as usize,
            )
            .max(1);
        batches.extend(g.chunks(per_batch));
    }
    let model_pass = || -> cnnspot_core::Result<()> {
        for b in &batches {
            detector.logits(b)?;
        }
        Ok(())
    };
    let pipeline_pass = || -> cnnspot_core::Result<()> {
        detector.score_paths(&files, &opts, &batching, |_, _, _| {});
        Ok(())
    };
    // Alternate the two so that both see the same background load (on a
    // shared machine it changes from one second to the next), and compare
    // each pipeline pass with the model pass just before it.
    model_pass()?;
    pipeline_pass()?;
    let (mut model_times, mut pipeline_times, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..3 {
        let m = time_runs(0, 1, model_pass)?[0];
        let p = time_runs(0, 1, pipeline_pass)?[0];
        model_times.push(m);
        pipeline_times.push(p);
        ratios.push((files.len() as f64 / p) / (images.len() as f64 / m));
    }
    let (model_secs, pipeline_secs) = (median(&model_times), median(&pipeline_times));
    let n = images.len() as f64;
    let model_rate = n / model_secs;
    let pipeline_rate = files.len() as f64 / pipeline_secs;
    Ok(json!({
        "path": folder.display().to_string(),
        "files": files.len(),
        "scored": images.len(),
        "distinct_sizes": groups.len(),
        "crop": crop,
        "batch_size": batch,
        "decoders": batching.decoders,
        "model_only_img_per_s": model_rate,
        "detect_img_per_s": pipeline_rate,
        "detect_over_model": median(&ratios),
    }))
}

/// Peak resident memory of this process (VmHWM), in MiB; 0 where unknown.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
