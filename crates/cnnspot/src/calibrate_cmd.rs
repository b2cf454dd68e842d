//! `cnnspot weights calibrate`: a trained checkpoint as a shippable model:
//! fp16 safetensors, temperature and threshold fitted on a validation
//! folder, and the logits of check images, in a JSON card.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use cnnspot_core::{weights, Batching, Detector, PreprocessOptions};
use cnnspot_eval::calibrate::calibrate;
use cnnspot_eval::dataset::{Dataset, Label};
use cnnspot_weights::{DType, TensorView};
use serde_json::json;

use crate::inputs;

pub fn run(
    checkpoint: &Path,
    val: &Path,
    out: &Path,
    card: &Path,
    check_images: Option<&Path>,
) -> Result<ExitCode> {
    let ckpt = weights::read(checkpoint)
        .with_context(|| format!("cannot read {}", checkpoint.display()))?;
    // The shipped weights are fp16: calibrate what ships, not the f32 original.
    let mut tensors = Vec::new();
    for (name, (shape, values)) in weights::state_dict(&ckpt) {
        let bytes: Vec<u8> = values
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
            .collect();
        tensors.push((
            name.clone(),
            TensorView::from_bytes(name, DType::F16, shape, bytes)?,
        ));
    }
    drop(ckpt);
    cnnspot_weights::save_safetensors(&tensors, out)
        .with_context(|| format!("cannot write {}", out.display()))?;
    let detector =
        Detector::load(out).with_context(|| format!("cannot use the weights {}", out.display()))?;

    let dataset = Dataset::discover(val)?;
    let items: Vec<_> = dataset
        .generators
        .iter()
        .flat_map(|g| g.items.iter())
        .collect();
    let paths: Vec<_> = items.iter().map(|i| i.path.clone()).collect();
    let mut logits = vec![f64::NAN; paths.len()];
    let mut failed = 0usize;
    let opts = PreprocessOptions::default();
    detector.score_paths(&paths, &opts, &Batching::default(), |i, path, r| match r {
        Ok(s) => logits[i] = f64::from(s.logit),
        Err(e) => {
            failed += 1;
            eprintln!("{}: {e}", path.display());
        }
    });
    let (logits, labels): (Vec<f64>, Vec<bool>) = logits
        .iter()
        .zip(&items)
        .filter(|(z, _)| z.is_finite())
        .map(|(&z, i)| (z, i.label == Label::Fake))
        .unzip();
    let Some(cal) = calibrate(&logits, &labels) else {
        bail!(
            "cannot calibrate on {}: it needs scored real and fake images ({failed} failed)",
            val.display()
        );
    };

    let mut checks = Vec::new();
    if let Some(dir) = check_images {
        let files = inputs::expand(&[dir.to_string_lossy().into_owned()], false)?;
        let mut check = Vec::new();
        detector.score_paths(&files, &opts, &Batching::default(), |_, path, r| {
            if let Ok(s) = r {
                check.push(json!({"file": path.to_string_lossy(), "logit": s.logit}));
            }
        });
        checks = check;
    }
    let bytes = std::fs::read(out).with_context(|| format!("cannot read {}", out.display()))?;
    let doc = json!({
        "arch": detector.arch().name(),
        "temperature": cal.temperature,
        "threshold": cal.threshold,
        "sha256": cnnspot_files::sha256_bytes(&bytes),
        "bytes": bytes.len(),
        "source_checkpoint": checkpoint.file_name().map(|n| n.to_string_lossy().into_owned()),
        "validation": {
            "root": val.to_string_lossy(),
            "images": cal.count,
            "failed": failed,
            "nll_before": cal.nll_before,
            "nll_after": cal.nll_after,
            "ece_before": cal.ece_before,
            "ece_after": cal.ece_after,
            "accuracy_at_threshold": cal.accuracy,
        },
        "checks": checks,
    });
    cnnspot_eval::scores::write_atomic(card, serde_json::to_string_pretty(&doc)?.as_bytes())?;
    println!(
        "wrote {} and {}: temperature {:.3}, threshold {:.3}, validation NLL {:.4} -> {:.4}, ECE {:.4} -> {:.4}, accuracy {:.4} on {} images",
        out.display(),
        card.display(),
        cal.temperature,
        cal.threshold,
        cal.nll_before,
        cal.nll_after,
        cal.ece_before,
        cal.ece_after,
        cal.accuracy,
        cal.count
    );
    Ok(ExitCode::SUCCESS)
}
