//! The built-in model is the one its card describes: the embedded bytes
//! have the recorded sha256, and both engines give the logits recorded for
//! the bundled sample images when the model was exported
//! (`cnnspot weights calibrate --check-images samples`), so a rebuild cannot
//! change the model silently.

use cnnspot_core::{builtin, Arch, Detector, Engine, PreprocessOptions};
use serde_json::Value;

fn card() -> Value {
    serde_json::from_str(builtin::CARD).expect("the card is JSON")
}

#[test]
fn embedded_weights_match_the_card() {
    let card = card();
    let cal = builtin::calibration().unwrap();
    assert_eq!(
        cnnspot_files::sha256_bytes(builtin::WEIGHTS),
        cal.sha256,
        "the embedded weights are not the ones the card was made for"
    );
    assert_eq!(card["arch"], "npr");
    assert!(cal.temperature > 0.0 && cal.temperature.is_finite());
    // Small enough to embed: fp16 NPR is 2.9 MB.
    assert!(builtin::WEIGHTS.len() < 4_000_000);
}

#[test]
fn sample_logits_are_the_recorded_ones_on_both_engines() {
    let card = card();
    let checks = card["checks"]
        .as_array()
        .expect("the card records check logits");
    assert!(!checks.is_empty(), "the card records no check logits");
    let root = cnnspot_testdata::repo_root();
    for engine in [Engine::Fast, Engine::Burn] {
        let det = Detector::builtin(engine).unwrap();
        assert_eq!(det.arch(), Arch::Npr);
        for check in checks {
            let file = check["file"].as_str().unwrap();
            let want = check["logit"].as_f64().unwrap() as f32;
            let score = det
                .score_path(&root.join(file), &PreprocessOptions::default())
                .unwrap();
            assert!(
                (score.logit - want).abs() <= 1e-3,
                "{engine} {file}: logit {} but {want} was recorded",
                score.logit
            );
            let t = det.temperature();
            let p = 1.0 / (1.0 + (-score.logit / t).exp());
            assert!(
                (score.probability - p).abs() < 1e-5,
                "calibrated probability"
            );
        }
    }
}
