//! The port reproduces PyTorch's outputs for the fixture checkpoint
//! (shared/fixtures/expected.json, computed with PyTorch 2.15), on both
//! engines: the fast inference route and the burn reference model.

use std::path::Path;

use cnnspot_core::{Detector, Engine, PreprocessOptions};
use cnnspot_testdata::{fixture, read_npy_f32, require_shared};
use serde_json::Value;

const LOGIT_TOL: f32 = 1e-4;

fn expected() -> Value {
    let text = cnnspot_testdata::fixture_text("expected.json").expect("shared present");
    serde_json::from_str(&text).expect("expected.json parses")
}

fn detector() -> Detector {
    let path = fixture("cnndet_random.pth").expect("shared present");
    Detector::load(&path).expect("fixture checkpoint loads")
}

/// The fixture checkpoint loaded for each engine.
fn detectors() -> Vec<Detector> {
    let path = fixture("cnndet_random.pth").expect("shared present");
    [Engine::Fast, Engine::Burn]
        .into_iter()
        .map(|e| {
            let det = Detector::load_with(&path, e).expect("fixture checkpoint loads");
            assert_eq!(det.engine(), e);
            det
        })
        .collect()
}

fn crop_of(case: &Value) -> Option<u32> {
    case["crop"].as_u64().map(|c| c as u32)
}

#[test]
fn logits_match_pytorch_from_the_exact_input_tensors() {
    let shared = require_shared!();
    for det in detectors() {
        for name in [
            "input_real_uncropped.npy",
            "input_real_crop224.npy",
            "input_fake_uncropped.npy",
            "input_fake_crop224.npy",
        ] {
            let (shape, data) = read_npy_f32(&shared.join("fixtures").join(name)).unwrap();
            let exp = expected();
            let case = exp["cases"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["input_file"] == name)
                .map(|c| c["logit"].as_f64().unwrap() as f32);
            // Two of the four cases name their .npy in expected.json; the others
            // are matched by image and mode.
            let want = case.unwrap_or_else(|| {
                let (image, mode) = name
                    .trim_start_matches("input_")
                    .trim_end_matches(".npy")
                    .split_once('_')
                    .unwrap();
                exp["cases"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|c| c["image"] == format!("{image}.png") && c["mode"] == mode)
                    .map(|c| c["logit"].as_f64().unwrap() as f32)
                    .unwrap()
            });
            let got = det.logits_nchw(data, shape[0], shape[2], shape[3]).unwrap()[0];
            assert!(
                (got - want).abs() < LOGIT_TOL,
                "{} {name}: logit {got} vs PyTorch {want}",
                det.engine()
            );
        }
    }
}

#[test]
fn logits_match_pytorch_from_the_image_files() {
    let shared = require_shared!();
    for det in detectors() {
        for case in expected()["cases"].as_array().unwrap() {
            let image = shared
                .join("fixtures")
                .join(case["image"].as_str().unwrap());
            let opts = PreprocessOptions {
                crop: crop_of(case),
                ..PreprocessOptions::default()
            };
            let score = det.score_path(&image, &opts).unwrap();
            let want_logit = case["logit"].as_f64().unwrap() as f32;
            let want_prob = case["prob"].as_f64().unwrap() as f32;
            assert!(
                (score.logit - want_logit).abs() < LOGIT_TOL,
                "{} {}: logit {} vs {want_logit}",
                case["image"],
                case["mode"],
                score.logit
            );
            assert!((score.probability - want_prob).abs() < LOGIT_TOL);
            assert_eq!((score.width, score.height), (256, 256));
        }
    }
}

#[test]
fn batch_of_two_matches_pytorch() {
    let shared = require_shared!();
    for det in detectors() {
        let opts = PreprocessOptions {
            crop: Some(224),
            ..PreprocessOptions::default()
        };
        let real =
            cnnspot_core::image::preprocess_path(&shared.join("fixtures/real.png"), &opts).unwrap();
        let fake =
            cnnspot_core::image::preprocess_path(&shared.join("fixtures/fake.png"), &opts).unwrap();
        let got = det.logits(&[&real, &fake]).unwrap();
        let want = expected()["batch2_crop224_real_fake_logits"].clone();
        for (g, w) in got.iter().zip(want.as_array().unwrap()) {
            let w = w.as_f64().unwrap() as f32;
            assert!(
                (g - w).abs() < LOGIT_TOL,
                "{}: batch logit {g} vs {w}",
                det.engine()
            );
        }
    }
}

#[test]
fn safetensors_conversion_gives_identical_logits() {
    let shared = require_shared!();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cnndet.safetensors");
    let arch = cnnspot_core::weights::convert_to_safetensors(
        &shared.join("fixtures/cnndet_random.pth"),
        &out,
    )
    .unwrap();
    assert_eq!(arch, cnnspot_core::Arch::ResNet50);
    let from_st = Detector::load(&out).unwrap();
    assert_eq!(from_st.info().format, cnnspot_weights::Format::Safetensors);
    let from_pth = detector();
    let opts = PreprocessOptions::default();
    for img in ["real.png", "fake.png"] {
        let p = shared.join("fixtures").join(img);
        let a = from_pth.score_path(&p, &opts).unwrap();
        let b = from_st.score_path(&p, &opts).unwrap();
        assert_eq!(a.logit.to_bits(), b.logit.to_bits(), "{img}");
    }
}

#[test]
fn weights_info_describes_the_fixture() {
    let shared = require_shared!();
    let info =
        cnnspot_core::weights::info(Path::new(&shared.join("fixtures/cnndet_random.pth"))).unwrap();
    assert_eq!(info.arch.as_deref(), Some("resnet50"));
    assert_eq!(info.num_outputs, Some(1));
    assert_eq!(info.tensors, 320);
    // torchvision resnet50 has 25,557,032 parameters with a 1000-way fc;
    // the 1-logit head has 2048 + 1 instead of 2048000 + 1000.
    assert_eq!(info.parameters, 25_557_032 - 2_049_000 + 2_049);
    assert!(info.problem.is_none());
}
