//! The pipeline against the tensors PyTorch/torchvision produced for the
//! reference repository's example images (shared/fixtures).

mod common;

use cnnspot_image::{preprocess_path, PreprocessOptions};

fn check_case(image: &str, crop: Option<u32>, npy: &str) {
    let shared = cnnspot_testdata::require_shared!();
    let fixtures = shared.join("fixtures");
    let opts = PreprocessOptions {
        crop,
        ..Default::default()
    };
    let got = preprocess_path(&fixtures.join(image), &opts).unwrap();
    let (shape, want) = common::read_npy_f32(&fixtures.join(npy));
    assert_eq!(shape, got.shape().to_vec(), "{npy}: shape");
    assert_eq!(got.data.len(), want.len());
    let mut max_diff = 0f32;
    for (i, (a, b)) in got.data.iter().zip(&want).enumerate() {
        let d = (a - b).abs();
        assert!(d <= 1e-6, "{npy}: value {i} is {a}, expected {b}");
        max_diff = max_diff.max(d);
    }
    // Same f32 operations as torchvision: expect bit equality in practice.
    assert_eq!(
        max_diff, 0.0,
        "{npy}: not bit-identical (max diff {max_diff})"
    );
    assert_eq!(got.original_width, 256);
    assert_eq!(got.original_height, 256);

    // expected.json records the tensor sums (computed in float64).
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixtures.join("expected.json")).unwrap()).unwrap();
    let case = json["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["input_file"] == npy)
        .unwrap_or_else(|| panic!("{npy} not in expected.json"));
    let sum: f64 = got.data.iter().map(|&v| f64::from(v)).sum();
    let abs_sum: f64 = got.data.iter().map(|&v| f64::from(v).abs()).sum();
    let want_sum = case["input_sum"].as_f64().unwrap();
    let want_abs = case["input_abs_sum"].as_f64().unwrap();
    assert!(
        (sum - want_sum).abs() < 1e-3,
        "{npy}: sum {sum} vs {want_sum}"
    );
    assert!(
        (abs_sum - want_abs).abs() < 1e-3,
        "{npy}: abs sum {abs_sum} vs {want_abs}"
    );
    let first8: Vec<f32> = case["input_first8"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(&got.data[..8], &first8[..], "{npy}: first values");
}

#[test]
fn real_uncropped_matches_torchvision() {
    check_case("real.png", None, "input_real_uncropped.npy");
}

#[test]
fn real_crop224_matches_torchvision() {
    check_case("real.png", Some(224), "input_real_crop224.npy");
}

#[test]
fn fake_uncropped_matches_torchvision() {
    check_case("fake.png", None, "input_fake_uncropped.npy");
}

#[test]
fn fake_crop224_matches_torchvision() {
    check_case("fake.png", Some(224), "input_fake_crop224.npy");
}

#[test]
fn bytes_and_path_entry_points_agree() {
    let shared = cnnspot_testdata::require_shared!();
    let path = shared.join("fixtures/fake.png");
    let opts = PreprocessOptions {
        crop: Some(224),
        ..Default::default()
    };
    let a = preprocess_path(&path, &opts).unwrap();
    let b = cnnspot_image::preprocess_bytes(&std::fs::read(&path).unwrap(), &opts).unwrap();
    assert_eq!(a, b);
    let rgb = cnnspot_image::load_rgb(&path, opts.max_pixels).unwrap();
    assert_eq!(cnnspot_image::preprocess_rgb(&rgb, Some(224)).unwrap(), a);
}
