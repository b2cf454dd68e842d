//! The building blocks against the reference libraries, on fixtures made by
//! `tests/data/generate.py` (SciPy 1.17.1, numpy 2.4.6, Pillow 13.0.0 with
//! libjpeg-turbo 3.2.0, OpenCV 5.0.0).

use std::path::PathBuf;

use cnnspot_augment::{
    gaussian_blur, jpeg_encode, jpeg_roundtrip, load_rgb, resize_shorter, Interp, JpegEncoder,
    RgbImage,
};
use sha2::{Digest, Sha256};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn png(name: &str) -> RgbImage {
    let path = data(name);
    load_rgb(&path, 1 << 20).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Largest absolute difference and number of differing samples.
fn diff(a: &RgbImage, b: &RgbImage) -> (u8, usize) {
    assert_eq!(a.dimensions(), b.dimensions());
    a.as_raw()
        .iter()
        .zip(b.as_raw())
        .fold((0, 0), |(m, n), (&x, &y)| {
            let d = x.abs_diff(y);
            (m.max(d), n + usize::from(d != 0))
        })
}

fn psnr(a: &RgbImage, b: &RgbImage) -> f64 {
    let se: f64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum();
    let mse = se / a.as_raw().len() as f64;
    10.0 * (255.0f64 * 255.0 / mse).log10()
}

#[test]
fn blur_matches_scipy_gaussian_filter() {
    let input = png("input_24x20.png");
    for sigma in [0.5, 1.0, 1.5, 3.0] {
        let expected = png(&format!("blur_sigma{sigma:.1}.png"));
        let got = gaussian_blur(&input, sigma);
        let (max, count) = diff(&got, &expected);
        eprintln!(
            "sigma {sigma}: max difference {max}, {count} of {} samples differ",
            got.as_raw().len()
        );
        assert!(max <= 1, "sigma {sigma}: off by {max} grey levels");
        // Bit-exact where Rust's exp agrees with the C library's (glibc).
        if cfg!(all(target_os = "linux", target_env = "gnu")) {
            assert_eq!(count, 0, "sigma {sigma}: {count} samples differ");
        }
    }
}

#[test]
fn blur_truncates_like_scipy_not_rounds() {
    // A flat 255 image: SciPy's weights sum to 1 +- an ulp, so the truncated
    // uint8 result is 255 or 254, never above; a flat 0 stays 0.
    let white = RgbImage::from_pixel(9, 7, image::Rgb([255, 255, 255]));
    assert!(gaussian_blur(&white, 1.3)
        .as_raw()
        .iter()
        .all(|&v| v >= 254));
    let black = RgbImage::new(9, 7);
    assert_eq!(gaussian_blur(&black, 2.0), black);
}

#[test]
fn libjpeg_turbo_encoder_is_byte_identical_to_pillow() {
    let img = png("input_64x48.png");
    for q in [30u8, 65, 95] {
        let ours = jpeg_encode(&img, q, JpegEncoder::LibjpegTurbo).expect("encode");
        let pil = std::fs::read(data(&format!("pil_q{q}.jpg"))).expect("fixture");
        // OpenCV's imencode produced the very same file (both bundle
        // libjpeg-turbo with the same defaults).
        let cv2 = std::fs::read(data(&format!("cv2_q{q}.jpg"))).expect("fixture");
        assert_eq!(pil, cv2, "q{q}: the reference's two encoders differ");
        let hash = |b: &[u8]| format!("{:x}", Sha256::digest(b));
        eprintln!("q{q}: ours {} bytes sha256 {}", ours.len(), hash(&ours));
        assert_eq!(hash(&ours), hash(&pil), "q{q}: bytes differ from Pillow's");
    }
}

/// A smooth photo-like 96x80 image: gradients, a soft blob, gentle texture.
fn smooth_image() -> RgbImage {
    RgbImage::from_fn(96, 80, |x, y| {
        let (xf, yf) = (f64::from(x), f64::from(y));
        let blob = (-((xf - 60.0).powi(2) + (yf - 30.0).powi(2)) / 300.0).exp();
        let r = 60.0 + 1.5 * xf + 80.0 * blob + 6.0 * (yf / 3.0).sin();
        let g = 40.0 + 2.0 * yf + 40.0 * blob;
        let b = 200.0 - 1.2 * xf - yf + 10.0 * (xf / 5.0).cos();
        image::Rgb([r, g, b].map(|v| v.round().clamp(0.0, 255.0) as u8))
    })
}

#[test]
fn the_two_encoders_differ_and_both_round_trip() {
    for (name, img) in [
        ("smooth", smooth_image()),
        ("test card", png("input_64x48.png")),
    ] {
        for q in [30u8, 65, 95, 100] {
            let a = jpeg_encode(&img, q, JpegEncoder::LibjpegTurbo).expect("libjpeg-turbo");
            let b = jpeg_encode(&img, q, JpegEncoder::PureRust).expect("pure Rust");
            assert_ne!(a, b, "{name} q{q}: same bytes from both encoders");
            let da = jpeg_roundtrip(&img, q, JpegEncoder::LibjpegTurbo).expect("round trip");
            let db = jpeg_roundtrip(&img, q, JpegEncoder::PureRust).expect("round trip");
            assert_eq!(da.dimensions(), img.dimensions());
            assert_eq!(db.dimensions(), img.dimensions());
            let (pa, pb) = (psnr(&img, &da), psnr(&img, &db));
            let (max, count) = diff(&da, &db);
            eprintln!(
                "{name} q{q}: {} vs {} bytes; PSNR libjpeg-turbo {pa:.2} dB, pure Rust {pb:.2} dB; \
                 decoded images differ in {count} of {} samples (max {max})",
                a.len(),
                b.len(),
                da.as_raw().len()
            );
            assert!(count > 0, "{name} q{q}: identical decoded pixels");
            if name == "smooth" {
                assert!(pa > 32.0 && pb > 32.0, "q{q}: PSNR {pa:.2} / {pb:.2}");
            } else {
                // 4-pixel saturated checkers: 4:2:0 chroma cannot hold them.
                assert!(pa > 15.0 && pb > 15.0, "q{q}: PSNR {pa:.2} / {pb:.2}");
            }
        }
    }
}

#[test]
fn resize_matches_pillow() {
    let img = png("input_64x48.png");
    for interp in Interp::ALL {
        for size in [30u32, 72] {
            let expected = png(&format!("resize_{}_{size}.png", interp.name()));
            let got = resize_shorter(&img, size, interp);
            assert_eq!(got.dimensions(), expected.dimensions(), "{interp} {size}");
            let (max, count) = diff(&got, &expected);
            eprintln!("{interp} to {size}: max difference {max}, {count} samples differ");
            assert_eq!((max, count), (0, 0), "{interp} {size}");
        }
    }
}

#[test]
fn resize_shorter_side_becomes_load_size() {
    let img = png("input_64x48.png");
    for interp in Interp::ALL {
        let out = resize_shorter(&img, 256, interp);
        // int(256 * 64 / 48) = 341
        assert_eq!(out.dimensions(), (341, 256), "{interp}");
        let tall = image::imageops::rotate90(&img);
        assert_eq!(resize_shorter(&tall, 256, interp).dimensions(), (256, 341));
    }
}
