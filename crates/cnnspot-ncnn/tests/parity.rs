//! Parity against the real ncnn runtime (pip `ncnn` 1.0.20261020, CPU, fp32).
//!
//! The reference outputs in `tests/fixtures/` come from
//! `scripts/ncnn_reference.py`. The model files are not in the repository:
//! they are read from `$CNNSPOT_NCNN_MODELS` (default `/work/pkgs`), the
//! directory where the PyPI packages are unpacked, by their path inside the
//! package. When they are absent the test prints a message and skips, unless
//! `CNNSPOT_NCNN_MODELS` is set (as `.ci/run` does with the one package that
//! `scripts/ci-packages.sh` downloads): then at least one model must run.

use std::path::{Path, PathBuf};

use cnnspot_ncnn::{Mat, Net};
use cnnspot_testdata::read_raw_f32;

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
fn parity_with_ncnn() {
    let models = PathBuf::from(
        std::env::var("CNNSPOT_NCNN_MODELS").unwrap_or_else(|_| "/work/pkgs".to_string()),
    );
    let index: serde_json::Value = serde_json::from_slice(
        &std::fs::read(fixtures().join("index.json")).expect("fixtures/index.json"),
    )
    .expect("index.json parses");
    let cases = index["cases"].as_array().expect("cases");
    let mut ran = 0;
    let mut failures = Vec::new();
    let mut current: Option<(String, Net)> = None;
    println!("model                          case  max(x255)  mean(x255)");
    for case in cases {
        let model = case["model"].as_str().expect("model");
        let param = models.join(case["param"].as_str().expect("param"));
        let bin = models.join(case["bin"].as_str().expect("bin"));
        if !param.exists() || !bin.exists() {
            println!(
                "SKIP {model}: {} not found (set CNNSPOT_NCNN_MODELS to the unpacked PyPI packages)",
                param.display()
            );
            continue;
        }
        if current.as_ref().map(|(m, _)| m.as_str()) != Some(model) {
            let net = Net::from_files(&param, &bin).unwrap_or_else(|e| panic!("{model}: {e}"));
            current = Some((model.to_string(), net));
        }
        let net = &current.as_ref().expect("net").1;
        let ish = shape(&case["input_shape"]);
        let osh = shape(&case["output_shape"]);
        let input = Mat::new(
            ish[0],
            ish[1],
            ish[2],
            read_raw_f32(&fixtures().join(case["input"].as_str().expect("input"))),
        )
        .expect("input shape");
        let expected = read_raw_f32(&fixtures().join(case["output"].as_str().expect("output")));
        let out = net
            .forward(
                &[(case["input_blob"].as_str().expect("blob"), &input)],
                case["output_blob"].as_str().expect("blob"),
            )
            .unwrap_or_else(|e| panic!("{model}: {e}"));
        assert_eq!(
            (out.c, out.h, out.w),
            (osh[0], osh[1], osh[2]),
            "{model}: output shape"
        );
        // Grey levels: x255 and clamped to [0, 255] as the apps do.
        let grey = |v: f32| (v * 255.0).clamp(0.0, 255.0);
        let mut max = 0.0f32;
        let mut sum = 0.0f64;
        for (a, b) in out.data.iter().zip(&expected) {
            let d = (grey(*a) - grey(*b)).abs();
            max = max.max(d);
            sum += d as f64;
        }
        let mean = sum / expected.len() as f64;
        println!(
            "{model:<30} {:>4}  {max:>9.4}  {mean:>10.5}",
            case["input"]
                .as_str()
                .unwrap_or("?")
                .rsplit('_')
                .nth(1)
                .unwrap_or("?")
        );
        if max > 2.0 {
            failures.push(format!("{model}: max diff {max} grey levels"));
        }
        ran += 1;
    }
    if ran == 0 {
        // Named explicitly (CI fetches one package for this), the models
        // must be there: a silent skip would hide a broken fetch.
        assert!(
            std::env::var_os("CNNSPOT_NCNN_MODELS").is_none(),
            "CNNSPOT_NCNN_MODELS is set but holds none of the models under {}",
            models.display()
        );
        println!("SKIP: no model files under {}", models.display());
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
