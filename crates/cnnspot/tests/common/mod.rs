//! Running the built `cnnspot` binary from the command-line tests.
#![allow(dead_code)] // each test file uses its own subset

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

/// Runs `cnnspot ARGS`, away from any weight cache set in the environment.
pub fn cnnspot(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cnnspot"))
        .args(args)
        .env_remove("CNNSPOT_CACHE_DIR")
        .output()
        .expect("cnnspot runs")
}

/// Bytes of an output stream as text.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Asserts a zero exit, showing both streams otherwise.
pub fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// A path as an argument.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// A JSON file.
pub fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// A photo-like RGB image (smooth gradients plus seeded noise), so that
/// tests need no image files.
pub fn photo(w: u32, h: u32, seed: u32) -> image::RgbImage {
    let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    image::RgbImage::from_fn(w, h, |x, y| {
        s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let noise = s >> 27;
        let c = |base: u32| ((base + noise) % 256) as u8;
        image::Rgb([c(x * 255 / w), c(y * 255 / h), c((x + y + seed) % 256)])
    })
}

/// A random ResNet-18 detector saved as the paper's checkpoints are
/// (`{"model": state_dict, "total_steps": 1234}`), by our own pth writer.
pub fn resnet18_pth(path: &Path) {
    use cnnspot_weights::{PyValue, TensorView};
    let state = cnnspot_net::random_state_dict(cnnspot_core::Arch::ResNet18, 1, 7);
    let sd = state
        .into_iter()
        .map(|(name, (shape, values))| {
            let t = TensorView::from_f32(shape, &values).unwrap();
            (name, PyValue::Tensor(t))
        })
        .collect();
    let value = PyValue::Dict(vec![
        (PyValue::Str("model".into()), PyValue::OrderedDict(sd)),
        (PyValue::Str("total_steps".into()), PyValue::Int(1234)),
    ]);
    cnnspot_weights::save_pth(&value, path).unwrap();
}

/// What the library says of `image` with `weights` (the CLI must print the
/// same).
pub fn library_score(weights: &Path, image: &Path, crop: Option<u32>) -> cnnspot_core::Score {
    let detector = cnnspot_core::Detector::load(weights).unwrap();
    let opts = cnnspot_core::PreprocessOptions {
        crop,
        ..Default::default()
    };
    detector.score_path(image, &opts).unwrap()
}
