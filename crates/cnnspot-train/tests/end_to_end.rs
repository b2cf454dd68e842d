//! Training end to end on a dataset this test makes itself: real photo
//! patches, and fakes made from them by a convolutional upsampler (2x
//! downscale, then a fixed transposed convolution, which leaves the periodic
//! artifacts the paper describes). A small ResNet must learn to tell them
//! apart on held-out images, and a run stopped mid-epoch and resumed must
//! end with the same weights as one that ran through.

use std::path::{Path, PathBuf};

use cnnspot_augment::AugmentConfig;
use cnnspot_core::{Batching, Detector, PreprocessOptions};
use cnnspot_testdata::require_shared;
use cnnspot_train::{train, TrainConfig};
use image::RgbImage;

const PATCH: u32 = 64;

/// 2x box downscale, then a stride-2 transposed convolution with a fixed
/// 4-tap kernel per axis whose even and odd phases have different gains.
fn cnn_upsample(img: &RgbImage) -> RgbImage {
    let (w, h) = (img.width() / 2, img.height() / 2);
    let mut small = vec![[0f32; 3]; (w * h) as usize];
    for y in 0..h {
        for x in 0..w {
            let cell = &mut small[(y * w + x) as usize];
            for (c, v) in cell.iter_mut().enumerate() {
                let mut s = 0.0;
                for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                    s += img.get_pixel(2 * x + dx, 2 * y + dy)[c] as f32;
                }
                *v = s / 4.0;
            }
        }
    }
    let k = [0.25f32, 0.85, 0.55, 0.35];
    let mut out = RgbImage::new(2 * w, 2 * h);
    for oy in 0..2 * h {
        for ox in 0..2 * w {
            let mut acc = [0f32; 3];
            // out[o] = sum_i in[i] * k[o - 2i + 1], taps inside 0..4.
            for ty in 0..4i64 {
                let iy2 = oy as i64 + 1 - ty;
                if iy2 % 2 != 0 {
                    continue;
                }
                let iy = (iy2 / 2).clamp(0, h as i64 - 1);
                for tx in 0..4i64 {
                    let ix2 = ox as i64 + 1 - tx;
                    if ix2 % 2 != 0 {
                        continue;
                    }
                    let ix = (ix2 / 2).clamp(0, w as i64 - 1);
                    let v = small[(iy as u32 * w + ix as u32) as usize];
                    for (a, vc) in acc.iter_mut().zip(v) {
                        *a += vc * k[ty as usize] * k[tx as usize];
                    }
                }
            }
            let px = out.get_pixel_mut(ox, oy);
            for (p, a) in px.0.iter_mut().zip(acc) {
                *p = a.round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    out
}

/// Real patches from the dev set's PNG photos; each source image goes
/// wholly to train or to held-out. Half of each image's patches are made
/// fake.
fn build_dataset(shared: &Path, root: &Path) -> (PathBuf, PathBuf) {
    let mut sources: Vec<PathBuf> = Vec::new();
    for gen in [
        "cyclegan_horse2zebra_student",
        "pix2pix_maps",
        "superres_espcn_x4_bsd100",
    ] {
        let dir = shared.join("data/dev").join(gen).join("0_real");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        sources.extend(files);
    }
    let train_root = root.join("train/synthetic");
    let held_root = root.join("heldout");
    for (i, src) in sources.iter().enumerate() {
        let img = image::open(src).unwrap().to_rgb8();
        let dest = if i % 4 == 3 { &held_root } else { &train_root };
        let mut k = 0;
        for y in (0..img.height().saturating_sub(PATCH - 1)).step_by(PATCH as usize * 2) {
            for x in (0..img.width().saturating_sub(PATCH - 1)).step_by(PATCH as usize * 2) {
                let patch = image::imageops::crop_imm(&img, x, y, PATCH, PATCH).to_image();
                let (label, out) = if k % 2 == 0 {
                    ("0_real", patch)
                } else {
                    ("1_fake", cnn_upsample(&patch))
                };
                let dir = dest.join(label);
                std::fs::create_dir_all(&dir).unwrap();
                out.save(dir.join(format!("s{i:02}_{k:02}.png"))).unwrap();
                k += 1;
            }
        }
    }
    (root.join("train"), held_root)
}

fn config(data: &Path, runs: &Path, name: &str) -> TrainConfig {
    TrainConfig {
        name: name.into(),
        data: data.to_path_buf(),
        val: None,
        checkpoints_dir: runs.to_path_buf(),
        arch: "resnet18".into(),
        batch_size: 16,
        lr: 1e-3,
        epochs: 3,
        seed: 7,
        workers: 2,
        save_every_steps: 0,
        preset: Some("no-aug".into()),
        augment: AugmentConfig {
            load_size: PATCH,
            crop_size: 56,
            ..AugmentConfig::preset("no-aug").unwrap()
        },
        ..TrainConfig::default()
    }
}

fn average_precision(run: &Path, heldout: &Path) -> f64 {
    let det = Detector::load(&run.join("latest.pth")).unwrap();
    let mut paths = Vec::new();
    let mut labels = Vec::new();
    for (label, truth) in [("0_real", false), ("1_fake", true)] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(heldout.join(label))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        labels.extend(std::iter::repeat_n(truth, files.len()));
        paths.extend(files);
    }
    let mut scores = vec![0.0; paths.len()];
    det.score_paths(
        &paths,
        &PreprocessOptions::default(),
        &Batching::default(),
        |i, _, r| {
            scores[i] = r.unwrap().probability as f64;
        },
    );
    cnnspot_eval::metrics::average_precision_score(&labels, &scores).unwrap()
}

#[test]
fn learns_upsampling_artifacts_and_resumes_exactly() {
    let shared = require_shared!();
    let dir = tempfile::tempdir().unwrap();
    let (train_root, heldout) = build_dataset(&shared, dir.path());
    let runs = dir.path().join("runs");

    let full = config(&train_root, &runs, "full");
    let summary = train(&full, false, None, &mut |_| {}).unwrap();
    assert_eq!(summary.epochs.len(), 3);
    let ap = average_precision(&summary.run_dir, &heldout);
    eprintln!("held-out AP after {} steps: {ap:.4}", summary.total_steps);
    assert!(ap >= 0.95, "held-out AP {ap}");

    // The same run, stopped in the middle of its second epoch and resumed.
    let steps_per_epoch = summary.total_steps / 3;
    let mut cut = config(&train_root, &runs, "cut");
    cut.save_every_steps = 1;
    let first = train(&cut, false, Some(steps_per_epoch + 2), &mut |_| {}).unwrap();
    assert!(first.interrupted);
    let second = train(&cut, true, None, &mut |_| {}).unwrap();
    assert_eq!(second.total_steps, summary.total_steps);

    let a = cnnspot_weights::load(&runs.join("full/latest.pth")).unwrap();
    let b = cnnspot_weights::load(&runs.join("cut/latest.pth")).unwrap();
    assert_eq!(a.tensors.len(), b.tensors.len());
    let mut worst = 0f64;
    for ((na, ta), (nb, tb)) in a.tensors.iter().zip(&b.tensors) {
        assert_eq!(na, nb);
        for (x, y) in ta.to_f64_vec().iter().zip(tb.to_f64_vec()) {
            worst = worst.max((x - y).abs());
        }
    }
    eprintln!("largest weight difference, resumed vs uninterrupted: {worst:e}");
    assert!(worst <= 1e-6, "resumed run differs by {worst}");
}

/// A spectrum classifier (Zhang et al.'s input) needs no ../shared: noise
/// reals against fakes with a 2-pixel period, which the spectrum shows as
/// one bright frequency.
#[test]
fn a_spectrum_run_saves_its_input_and_refuses_to_resume_as_another() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut s = 12345u32;
    let mut next = move || {
        s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (s >> 24) as u8
    };
    for (label, periodic) in [("0_real", false), ("1_fake", true)] {
        let folder = data.join(label);
        std::fs::create_dir_all(&folder).unwrap();
        for i in 0..8 {
            let img = RgbImage::from_fn(32, 32, |x, y| {
                let v = next() / 2 + 64;
                let v = if periodic && (x + y) % 2 == 0 {
                    v / 2
                } else {
                    v
                };
                image::Rgb([v, v, v])
            });
            img.save(folder.join(format!("{i}.png"))).unwrap();
        }
    }
    let runs = dir.path().join("runs");
    let mut cfg = config(&data, &runs, "spectrum");
    cfg.input = Some("spectrum".into());
    cfg.epochs = 1;
    cfg.batch_size = 8;
    cfg.augment.load_size = 32;
    cfg.augment.crop_size = 32;
    let summary = train(&cfg, false, None, &mut |_| {}).unwrap();
    let latest = summary.run_dir.join("latest.pth");
    let ckpt = cnnspot_weights::load(&latest).unwrap();
    assert!(ckpt.get(cnnspot_core::SPECTRUM_MARKER).is_some());
    let detector = Detector::load(&latest).unwrap();
    assert_eq!(detector.info().input, "spectrum");
    assert_eq!(detector.info().arch, cnnspot_core::Arch::ResNet18);

    // Resuming the run as an RGB network is a configuration error.
    let mut rgb = cfg.clone();
    rgb.input = None;
    let err = train(&rgb, true, None, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("spectrum") && err.contains("rgb"), "{err}");
    // An input the architecture cannot take is refused before any work.
    let mut bad = cfg.clone();
    bad.input = Some("npr".into());
    assert!(train(&bad, false, None, &mut |_| {}).is_err());
}
