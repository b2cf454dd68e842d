//! Robustness sweeps on two generators of the dev set with the built-in model
//! (NPR, an eighth of ResNet-50's work, so the sweeps stay cheap): the
//! unperturbed points are plain `evaluate`, the perturbed ones score what
//! the augmentation crate's JPEG and blur make.

use std::path::Path;

use cnnspot_augment::{gaussian_blur, jpeg_roundtrip, JpegEncoder};
use cnnspot_core::image::{load_rgb, preprocess_rgb};
use cnnspot_core::{Batching, Detector, Engine, PreprocessOptions};
use cnnspot_eval::dataset::Dataset;
use cnnspot_eval::report::Report;
use cnnspot_eval::robustness::{sweep, Perturbation, SweepKind, SweepPlan};
use cnnspot_eval::run::{evaluate, NoProgress};
use cnnspot_testdata::require_shared;

const GENERATORS: [&str; 2] = ["pix2pix_maps", "cyclegan_horse2zebra_student"];

fn setup(shared: &Path) -> (Dataset, Detector, PreprocessOptions) {
    let mut dataset = Dataset::discover(&shared.join("data/dev")).unwrap();
    dataset.select(&GENERATORS.map(String::from)).unwrap();
    let detector = Detector::builtin(Engine::Fast).unwrap();
    let opts = PreprocessOptions {
        crop: Some(224),
        ..PreprocessOptions::default()
    };
    (dataset, detector, opts)
}

#[test]
fn unperturbed_points_reproduce_eval_and_ap_moves_with_quality() {
    let shared = require_shared!();
    let (dataset, detector, opts) = setup(&shared);
    let batching = Batching::default();
    let order: Vec<String> = dataset.generators.iter().map(|g| g.name.clone()).collect();
    let plain = evaluate(&dataset, &detector, &opts, &batching, None, &mut NoProgress).unwrap();
    let plain = Report::from_rows(&plain.rows, &order);

    let plan = SweepPlan {
        qualities: vec![100, 60, 30],
        sigmas: vec![0.0, 3.0],
        encoder: JpegEncoder::LibjpegTurbo,
    };
    let doc = sweep(
        &dataset,
        &detector,
        &opts,
        &batching,
        &plan,
        None,
        &mut NoProgress,
    )
    .unwrap();
    assert_eq!(doc.sweeps.len(), 2);
    let jpeg = &doc.sweeps[0];
    let blur = &doc.sweeps[1];
    assert_eq!(jpeg.perturbation, SweepKind::Jpeg);
    assert_eq!(
        jpeg.points
            .iter()
            .map(|p| p.label.as_str())
            .collect::<Vec<_>>(),
        ["none", "100", "60", "30"]
    );
    assert_eq!(
        blur.points
            .iter()
            .map(|p| p.label.as_str())
            .collect::<Vec<_>>(),
        ["0", "3"]
    );
    for baseline in [&jpeg.points[0], &blur.points[0]] {
        for (got, want) in baseline.generators.iter().zip(&plain.generators) {
            assert_eq!(got.name, want.name);
            let (g, w) = (got.metrics.ap.unwrap(), want.metrics.ap.unwrap());
            assert!((g - w).abs() <= 1e-6, "{}: AP {g} vs eval {w}", got.name);
            assert_eq!(got.metrics.acc, want.metrics.acc);
        }
    }
    // Every image was scored at every point.
    for p in jpeg.points.iter().chain(&blur.points) {
        assert_eq!(p.left_out, 0, "point {}", p.label);
        assert_eq!(p.mean.n_real + p.mean.n_fake, dataset.len());
    }
    let mean_ap = |i: usize| jpeg.points[i].mean.ap.unwrap();
    let moved = (1..4)
        .map(|i| (mean_ap(i) - mean_ap(0)).abs())
        .fold(0.0, f64::max);
    eprintln!(
        "mean AP none/100/60/30: {:.4} {:.4} {:.4} {:.4}; blur 0/3: {:.4} {:.4}",
        mean_ap(0),
        mean_ap(1),
        mean_ap(2),
        mean_ap(3),
        blur.points[0].mean.ap.unwrap(),
        blur.points[1].mean.ap.unwrap()
    );
    assert!(
        (mean_ap(3) - mean_ap(0)).abs() > 1e-3,
        "AP did not change at quality 30 (largest change {moved})"
    );
    assert!(
        (blur.points[1].mean.ap.unwrap() - blur.points[0].mean.ap.unwrap()).abs() > 1e-3,
        "AP did not change with blur"
    );
}

#[test]
fn perturbed_scores_are_those_of_the_augmentation_functions() {
    let shared = require_shared!();
    let (dataset, detector, opts) = setup(&shared);
    let item = &dataset.generators[0].items[0];
    for (p, expect) in [
        (
            Perturbation::Jpeg(40),
            jpeg_roundtrip(
                &load_rgb(&item.path, opts.max_pixels).unwrap(),
                40,
                JpegEncoder::LibjpegTurbo,
            )
            .unwrap(),
        ),
        (
            Perturbation::Blur(2.0),
            gaussian_blur(&load_rgb(&item.path, opts.max_pixels).unwrap(), 2.0),
        ),
    ] {
        let plan = SweepPlan {
            qualities: match p {
                Perturbation::Jpeg(q) => vec![q],
                _ => vec![],
            },
            sigmas: match p {
                Perturbation::Blur(s) => vec![s],
                _ => vec![],
            },
            encoder: JpegEncoder::LibjpegTurbo,
        };
        let dir = tempfile::tempdir().unwrap();
        sweep(
            &dataset,
            &detector,
            &opts,
            &Batching::default(),
            &plan,
            Some(dir.path()),
            &mut NoProgress,
        )
        .unwrap();
        let want = detector
            .score(&preprocess_rgb(&expect, opts.crop).unwrap())
            .unwrap();
        let scores = dir.path().join(p.scores_dir()).join("scores.jsonl");
        let (rows, _) = cnnspot_eval::scores::read_rows(&scores).unwrap();
        let row = rows.iter().find(|r| r.path == item.key).unwrap();
        let got = row.logit.unwrap();
        assert!(
            (got - f64::from(want.logit)).abs() <= 1e-4,
            "{p:?}: logit {got} vs {}",
            want.logit
        );
        // The unperturbed point sits in the folder itself, as eval's does.
        assert!(dir.path().join("scores.jsonl").is_file());
        let meta = cnnspot_eval::scores::read_meta(
            &dir.path().join(p.scores_dir()).join("scores.meta.json"),
        )
        .unwrap();
        assert_eq!(
            meta.settings.perturbation,
            p.describe(JpegEncoder::LibjpegTurbo)
        );
    }
}

#[test]
fn plans_start_at_the_unperturbed_images() {
    let plan = SweepPlan {
        qualities: vec![90, 50],
        sigmas: vec![1.0, 2.0],
        encoder: JpegEncoder::LibjpegTurbo,
    };
    let sweeps = plan.sweeps();
    assert_eq!(
        sweeps[0].1,
        [
            Perturbation::None,
            Perturbation::Jpeg(90),
            Perturbation::Jpeg(50)
        ]
    );
    assert_eq!(
        sweeps[1].1,
        [
            Perturbation::Blur(0.0),
            Perturbation::Blur(1.0),
            Perturbation::Blur(2.0)
        ]
    );
    // The identity is scored once for both sweeps.
    assert_eq!(plan.distinct().len(), 5);
    assert!(SweepPlan {
        qualities: vec![0],
        ..plan.clone()
    }
    .validate()
    .unwrap_err()
    .contains("quality 0"));
    assert!(SweepPlan {
        sigmas: vec![-1.0],
        ..plan.clone()
    }
    .validate()
    .unwrap_err()
    .contains("sigma -1"));
}
