//! `cnnspot robustness` end to end: it shares its unperturbed scores with
//! `cnnspot eval --out` of the same folder, reproduces eval's table there,
//! writes its tables and figures, and resumes every point.

mod common;

use cnnspot_testdata::require_shared;
use common::{cnnspot, ok, read_json};
use serde_json::Value;

#[test]
fn sweep_shares_eval_scores_and_resumes() {
    let shared = require_shared!();
    let dev = shared.join("data/dev");
    // The built-in NPR: an eighth of ResNet-50's work, and real weights.
    let weights = std::path::PathBuf::from("builtin");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    let common = [
        dev.to_str().unwrap(),
        "--weights",
        weights.to_str().unwrap(),
        "--crop",
        "224",
        "--generators",
        "pix2pix_maps,superres_espcn_x4_bsd100",
        "--out",
        out.to_str().unwrap(),
        "-q",
    ];
    let mut eval = vec!["eval"];
    eval.extend(common);
    ok(&cnnspot(&eval));
    let eval_scores = std::fs::read(out.join("scores.jsonl")).unwrap();
    let results = read_json(&out.join("results.json"));

    let mut sweep = vec!["robustness"];
    sweep.extend(common);
    sweep.extend(["--jpeg", "50", "--blur", "2", "--format", "csv"]);
    let first = cnnspot(&sweep);
    ok(&first);
    // The unperturbed point reused eval's scores: nothing was appended.
    assert_eq!(
        std::fs::read(out.join("scores.jsonl")).unwrap(),
        eval_scores
    );
    let doc = read_json(&out.join("robustness.json"));
    let sweeps = doc["sweeps"].as_array().unwrap();
    assert_eq!(sweeps.len(), 2);
    assert_eq!(sweeps[0]["perturbation"], "jpeg");
    assert_eq!(sweeps[1]["perturbation"], "blur");
    let labels = |s: &Value| -> Vec<String> {
        s["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["label"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(labels(&sweeps[0]), ["none", "50"]);
    assert_eq!(labels(&sweeps[1]), ["0", "2"]);
    let ap = |point: &Value, i: usize| point["generators"][i]["ap"].as_f64().unwrap();
    for s in sweeps {
        let base = &s["points"][0];
        for i in 0..2 {
            assert_eq!(
                base["generators"][i]["name"],
                results["generators"][i]["name"]
            );
            let want = results["generators"][i]["ap"].as_f64().unwrap();
            assert!(
                (ap(base, i) - want).abs() <= 1e-6,
                "{} vs {want}",
                ap(base, i)
            );
        }
    }
    let changed =
        |s: &Value| (0..2).any(|i| (ap(&s["points"][1], i) - ap(&s["points"][0], i)).abs() > 1e-6);
    assert!(changed(&sweeps[0]), "JPEG 50 changed no AP");
    assert!(changed(&sweeps[1]), "blur 2 changed no AP");

    // CSV on stdout equals the file; 2 sweeps x 2 points x (2 generators + mean).
    let csv = std::fs::read_to_string(out.join("robustness.csv")).unwrap();
    assert_eq!(String::from_utf8_lossy(&first.stdout), csv);
    assert_eq!(csv.lines().count(), 1 + 2 * 2 * 3);
    for name in ["robustness_jpeg.png", "robustness_blur.png"] {
        let img = image::open(out.join(name)).unwrap();
        assert_eq!((img.width(), img.height()), (1200, 560));
    }
    for name in ["robustness_jpeg.svg", "robustness_blur.svg"] {
        let svg = std::fs::read_to_string(out.join(name)).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("pix2pix_maps"));
    }

    // A rerun scores nothing again and gives the same sweeps.
    let point_files: Vec<_> = ["robustness/jpeg-q50", "robustness/blur-s2"]
        .iter()
        .map(|p| std::fs::read(out.join(p).join("scores.jsonl")).unwrap())
        .collect();
    ok(&cnnspot(&sweep));
    for (p, before) in ["robustness/jpeg-q50", "robustness/blur-s2"]
        .iter()
        .zip(&point_files)
    {
        assert_eq!(
            &std::fs::read(out.join(p).join("scores.jsonl")).unwrap(),
            before
        );
    }
    assert_eq!(
        read_json(&out.join("robustness.json"))["sweeps"],
        doc["sweeps"]
    );
}

#[test]
fn bad_sweep_values_are_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    for (flag, want) in [
        ("--jpeg=0", "JPEG quality 0 is outside 1..=100"),
        ("--blur=-1", "blur sigma -1 is outside 0..=64"),
    ] {
        let out = cnnspot(&["robustness", root, "--weights", "none.pth", flag]);
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}
