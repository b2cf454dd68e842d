//! The NPR detector reproduces PyTorch's logits for a random-weight NPR
//! checkpoint in NPR's own key layout (bare state dict, `fc1` head, fp16
//! storage), saved by PyTorch with the model of NPR's `networks/resnet.py`
//! (`scripts/make_npr_fixture.py`), on both engines.

use std::path::PathBuf;

use cnnspot_core::{Arch, Detector, Engine};
use serde_json::Value;

const LOGIT_TOL: f32 = 1e-4;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn expected() -> Value {
    let text = std::fs::read_to_string(fixtures().join("npr_expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The input of a case: inline (a JSON list, possibly as a string), or the
/// shared npy file it names (None when `../shared` is absent).
fn input_of(case: &Value) -> Option<Vec<f32>> {
    match case["input_kind"].as_str() {
        Some("inline") => {
            let v = &case["input"];
            let list: Vec<f32> = match v.as_str() {
                Some(s) => serde_json::from_str(s).unwrap(),
                None => serde_json::from_value(v.clone()).unwrap(),
            };
            Some(list)
        }
        Some("npy") => {
            let shared = cnnspot_testdata::shared_dir()?;
            let name = case["input_file"]
                .as_str()
                .unwrap()
                .trim_start_matches("../shared/");
            let (_, values) = cnnspot_testdata::read_npy_f32(&shared.join(name)).unwrap();
            Some(values)
        }
        other => panic!("unknown input kind {other:?}"),
    }
}

#[test]
fn npr_checkpoint_gives_pytorchs_logits_on_both_engines() {
    let path = fixtures().join("npr_random_fp16.pth");
    let exp = expected();
    let mut checked = 0;
    for engine in [Engine::Fast, Engine::Burn] {
        let det = Detector::load_with(&path, engine).unwrap();
        assert_eq!(det.arch(), Arch::Npr);
        for case in exp["cases"].as_array().unwrap() {
            let name = case["name"].as_str().unwrap();
            let Some(input) = input_of(case) else {
                eprintln!("{name}: skipped, ../shared is absent");
                continue;
            };
            let shape: Vec<usize> = serde_json::from_value(case["shape"].clone()).unwrap();
            let (n, h, w) = (shape[0], shape[2], shape[3]);
            let want: Vec<f32> = serde_json::from_value(case["logits"].clone()).unwrap();
            let got = det.logits_nchw(input, n, h, w).unwrap();
            assert_eq!(got.len(), want.len(), "{engine} {name}");
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (g - w).abs() <= LOGIT_TOL,
                    "{engine} {name}: logit {g} vs PyTorch {w}"
                );
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 4,
        "at least the inline cases ran on both engines"
    );
}

#[test]
fn odd_sizes_score_where_npr_itself_fails() {
    // NPR's reference code raises on odd sizes; here the last odd row and
    // column are their own neighbours. Both engines agree, and the result is
    // finite.
    let path = fixtures().join("npr_random_fp16.pth");
    let (h, w) = (33, 47);
    let input: Vec<f32> = (0..3 * h * w)
        .map(|i| ((i * 7919) % 255) as f32 / 127.5 - 1.0)
        .collect();
    let fast = Detector::load_with(&path, Engine::Fast).unwrap();
    let burn = Detector::load_with(&path, Engine::Burn).unwrap();
    let a = fast.logits_nchw(input.clone(), 1, h, w).unwrap();
    let b = burn.logits_nchw(input, 1, h, w).unwrap();
    assert!(a[0].is_finite());
    assert!(
        (a[0] - b[0]).abs() <= LOGIT_TOL,
        "fast {} vs burn {}",
        a[0],
        b[0]
    );
}
