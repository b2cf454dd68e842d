//! `cnnspot bench` and the engine and pixel-budget flags of `detect`.

mod common;

use std::process::Output;

use cnnspot_testdata::require_shared;
use common::{cnnspot, photo, resnet18_pth};
use serde_json::Value;

fn rows(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

#[test]
fn bench_prints_the_three_reference_settings_and_peak_memory() {
    let shared = require_shared!();
    let weights = shared.join("fixtures/cnndet_random.pth");
    let out = cnnspot(&[
        "bench",
        "--runs",
        "1",
        "--weights",
        weights.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["engine"], "fast");
    assert_eq!(v["arch"], "resnet50");
    for key in ["b1_224", "b16_224", "b1_256"] {
        let rate = v["settings"][key]["img_per_s"].as_f64().unwrap();
        assert!(rate > 0.0, "{key}: {rate}");
    }
    assert!(v["peak_rss_mib"].as_f64().unwrap() > 0.0);
    // The fixture inputs beside the weights are scored too.
    assert!(v["max_logit_gap"].as_f64().unwrap() < 1e-4, "{v}");
}

#[test]
fn both_engines_give_the_same_scores_and_oversized_images_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("resnet18.pth");
    resnet18_pth(&weights);
    let weights = weights.to_str().unwrap();
    let tiles = [photo(256, 256, 1), photo(256, 256, 2)];
    let images = ["a.png", "b.png"].map(|n| dir.path().join(n));
    for (tile, path) in tiles.iter().zip(&images) {
        tile.save(path).unwrap();
    }
    let images: Vec<&str> = images.iter().map(|p| p.to_str().unwrap()).collect();
    let mut logits = Vec::new();
    for engine in ["fast", "burn"] {
        let mut args = vec!["detect", "-q", "--format", "jsonl", "--engine", engine];
        args.extend(["--weights", weights]);
        args.extend(&images);
        let out = cnnspot(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        logits.push(
            rows(&out)
                .iter()
                .map(|r| r["logit"].as_f64().unwrap())
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(logits[0].len(), 2);
    for (a, b) in logits[0].iter().zip(&logits[1]) {
        assert!((a - b).abs() < 1e-4, "fast {a} vs burn {b}");
    }

    let mut args = vec!["detect", "-q", "--format", "jsonl"];
    args.extend(["--weights", weights, "--max-infer-pixels", "50000"]);
    args.extend(&images);
    let out = cnnspot(&args);
    assert_eq!(out.status.code(), Some(1));
    let refused_rows = rows(&out);
    assert_eq!(refused_rows.len(), 2);
    for r in refused_rows {
        let err = r["error"].as_str().unwrap();
        assert!(err.contains("256x256") && err.contains("budget"), "{err}");
    }

    // A 1040x1040 mosaic of the two images, over a 700000-pixel budget: the
    // fast engine scores it in tiles, as the whole image; burn refuses it.
    let big = dir.path().join("mosaic.png");
    let mosaic = image::RgbImage::from_fn(1040, 1040, |x, y| {
        let t = &tiles[((x / 256 + y / 256) % 2) as usize];
        *t.get_pixel(x % 256, (y * 7 + x / 256) % 256)
    });
    mosaic.save(&big).unwrap();
    let big = big.to_str().unwrap();
    let whole = cnnspot(&[
        "detect",
        "-q",
        "--format",
        "jsonl",
        "--weights",
        weights,
        big,
    ]);
    let budget = ["--max-infer-pixels", "700000"];
    let mut args = vec![
        "detect",
        "-q",
        "--format",
        "jsonl",
        "--weights",
        weights,
        big,
    ];
    args.extend(budget);
    let tiled = cnnspot(&args);
    let logit = |o: &std::process::Output| rows(o)[0]["logit"].as_f64().unwrap();
    assert!(
        (logit(&whole) - logit(&tiled)).abs() < 1e-4,
        "whole {} vs tiled {}",
        logit(&whole),
        logit(&tiled)
    );
    args.extend(["--engine", "burn"]);
    let refused = cnnspot(&args);
    assert_eq!(refused.status.code(), Some(1));
    let err = rows(&refused)[0]["error"].as_str().unwrap().to_string();
    assert!(err.contains("1040x1040") && err.contains("budget"), "{err}");

    let out = cnnspot(&["detect", "--engine", "onnx", images[0]]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("fast or burn"));
}

#[test]
fn int8_precision_follows_f32_and_is_refused_where_it_does_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let images = ["a.png", "b.png", "c.png"].map(|n| dir.path().join(n));
    for (seed, path) in images.iter().enumerate() {
        photo(320, 240, seed as u32 + 7).save(path).unwrap();
    }
    let images: Vec<&str> = images.iter().map(|p| p.to_str().unwrap()).collect();
    let mut logits = Vec::new();
    for precision in ["f32", "int8"] {
        // The built-in model: trained weights, whose activations are what
        // the quantisation is made for.
        let mut args = vec![
            "detect",
            "-q",
            "--format",
            "jsonl",
            "--precision",
            precision,
        ];
        args.extend(&images);
        let out = cnnspot(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        logits.push(
            rows(&out)
                .iter()
                .map(|r| r["logit"].as_f64().unwrap())
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(logits[1].len(), 3);
    let scale = logits[0].iter().fold(1f64, |m, l| m.max(l.abs()));
    for (f, q) in logits[0].iter().zip(&logits[1]) {
        assert!((f - q).abs() < 0.05 * scale, "f32 {f} vs int8 {q}");
    }

    let out = cnnspot(&[
        "detect",
        "--engine",
        "burn",
        "--precision",
        "int8",
        images[0],
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("int8") && err.contains("--engine burn"),
        "{err}"
    );

    let out = cnnspot(&["detect", "--precision", "fp8", images[0]]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("fp8"), "{err}");
}
