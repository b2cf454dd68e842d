//! Bad inputs give the right error kind, a clear message, and never a panic.

mod common;

use std::time::{Duration, Instant};

use cnnspot_image::{
    decode_rgb, load_rgb, preprocess_bytes, ImageError, PreprocessOptions, DEFAULT_MAX_PIXELS,
};

fn sample_png() -> Vec<u8> {
    let img = image::RgbImage::from_fn(64, 48, |x, y| {
        image::Rgb([(x * 4) as u8, (y * 5) as u8, (x * y) as u8])
    });
    let mut bytes = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .unwrap();
    bytes
}

fn jpeg(name: &str) -> Vec<u8> {
    std::fs::read(common::data_dir().join(name)).unwrap()
}

/// Offset and length of the first chunk of `kind` in a PNG.
fn find_chunk(png: &[u8], kind: &[u8; 4]) -> (usize, usize) {
    let mut at = 8;
    while at + 8 <= png.len() {
        let len = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
        if &png[at + 4..at + 8] == kind {
            return (at, len);
        }
        at += 12 + len;
    }
    panic!("no chunk {kind:?}");
}

fn expect_corrupt(result: Result<image::RgbImage, ImageError>, format: &str) -> String {
    match result {
        Err(e @ ImageError::Corrupt { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.starts_with(&format!("truncated or corrupt {format} data: ")),
                "{msg}"
            );
            msg
        }
        other => panic!("expected a corrupt {format} error, got {other:?}"),
    }
}

#[test]
fn png_with_flipped_idat_bytes_is_corrupt() {
    let png = sample_png();
    let (at, len) = find_chunk(&png, b"IDAT");
    // Flip bytes in the middle of the compressed data: the CRC no longer matches.
    let mut bad = png.clone();
    for i in 0..8 {
        bad[at + 8 + len / 2 + i] ^= 0xff;
    }
    expect_corrupt(decode_rgb(&bad, DEFAULT_MAX_PIXELS), "PNG");
    // Same damage with a recomputed CRC, so that the zlib stream is what fails.
    let mut bad = png.clone();
    for i in 0..len - 2 {
        bad[at + 8 + 2 + i] ^= 0x5a;
    }
    let crc = common::crc32(&bad[at + 4..at + 8 + len]);
    bad[at + 8 + len..at + 12 + len].copy_from_slice(&crc.to_be_bytes());
    expect_corrupt(decode_rgb(&bad, DEFAULT_MAX_PIXELS), "PNG");
}

#[test]
fn truncated_png_is_corrupt() {
    let png = sample_png();
    expect_corrupt(decode_rgb(&png[..png.len() / 2], DEFAULT_MAX_PIXELS), "PNG");
    expect_corrupt(decode_rgb(&png[..20], DEFAULT_MAX_PIXELS), "PNG");
}

#[test]
fn truncated_jpegs_are_corrupt() {
    for name in [
        "s420_baseline.jpg",
        "s422_progressive.jpg",
        "gray.jpg",
        "cmyk_adobe.jpg",
    ] {
        let bytes = jpeg(name);
        // Cut halfway through the entropy-coded data after the first SOS.
        let sos = bytes
            .windows(2)
            .position(|w| w == [0xff, 0xda])
            .expect("SOS");
        let cut = (sos + bytes.len()) / 2;
        let msg = expect_corrupt(decode_rgb(&bytes[..cut], DEFAULT_MAX_PIXELS), "JPEG");
        assert!(msg.ends_with("premature end of data"), "{name}: {msg}");
        // Cut inside the headers.
        expect_corrupt(decode_rgb(&bytes[..40], DEFAULT_MAX_PIXELS), "JPEG");
    }
    // Only the EOI marker missing: Pillow 13 refuses it too ("image file is
    // truncated"), so the reference never scores such a file.
    let bytes = jpeg("s420_baseline.jpg");
    assert_eq!(&bytes[bytes.len() - 2..], &[0xff, 0xd9]);
    assert!(decode_rgb(&bytes, DEFAULT_MAX_PIXELS).is_ok());
    let msg = expect_corrupt(
        decode_rgb(&bytes[..bytes.len() - 2], DEFAULT_MAX_PIXELS),
        "JPEG",
    );
    assert!(msg.ends_with("premature end of data"), "{msg}");
    // Bytes after the EOI marker are ignored (Pillow ignores them too).
    let mut padded = bytes.clone();
    padded.extend_from_slice(b"trailing garbage");
    assert_eq!(
        decode_rgb(&padded, DEFAULT_MAX_PIXELS).unwrap(),
        decode_rgb(&bytes, DEFAULT_MAX_PIXELS).unwrap()
    );
}

#[test]
fn empty_input_is_reported_as_empty() {
    assert!(matches!(
        decode_rgb(&[], DEFAULT_MAX_PIXELS),
        Err(ImageError::Empty)
    ));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.png");
    std::fs::write(&path, b"").unwrap();
    let err = load_rgb(&path, DEFAULT_MAX_PIXELS).unwrap_err();
    assert!(matches!(err, ImageError::Empty));
    assert_eq!(err.to_string(), "empty file");
}

#[test]
fn text_is_not_an_image() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.jpg");
    std::fs::write(&path, "these are not pixels\n").unwrap();
    let err = load_rgb(&path, DEFAULT_MAX_PIXELS).unwrap_err();
    assert!(matches!(err, ImageError::NotAnImage), "{err:?}");
    assert_eq!(err.to_string(), "not an image (unrecognised format)");
}

#[test]
fn missing_file_and_directory_are_io_errors() {
    let dir = tempfile::tempdir().unwrap();
    let err = load_rgb(&dir.path().join("missing.png"), DEFAULT_MAX_PIXELS).unwrap_err();
    assert!(matches!(err, ImageError::Io(_)), "{err:?}");
    assert!(err.to_string().starts_with("cannot read file: "), "{err}");
    let err =
        cnnspot_image::preprocess_path(dir.path(), &PreprocessOptions::default()).unwrap_err();
    assert!(matches!(err, ImageError::Io(_)), "{err:?}");
}

#[test]
fn recognised_but_unsupported_formats_say_so() {
    // QOI and farbfeld signatures: known to `image`, not enabled in this build.
    let mut qoi = b"qoif".to_vec();
    qoi.extend_from_slice(&[0, 0, 0, 40, 0, 0, 0, 40, 3, 0, 0, 0, 0, 0, 0, 0, 1]);
    let err = decode_rgb(&qoi, DEFAULT_MAX_PIXELS).unwrap_err();
    assert!(matches!(err, ImageError::Unsupported(_)), "{err:?}");
    assert_eq!(err.to_string(), "unsupported image format: QOI");
}

fn assert_too_large(result: Result<image::RgbImage, ImageError>, w: u32, h: u32, started: Instant) {
    match result {
        Err(e @ ImageError::TooLarge { .. }) => {
            let ImageError::TooLarge {
                width,
                height,
                limit,
            } = e
            else {
                unreachable!()
            };
            assert_eq!((width, height, limit), (w, h, DEFAULT_MAX_PIXELS));
            assert!(e.to_string().starts_with(&format!(
                "image is {w}x{h} pixels, over the limit of 134217728 pixels"
            )));
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "refusal took {:?}",
        started.elapsed()
    );
}

#[test]
fn png_decompression_bomb_is_refused_from_its_header() {
    // A valid IHDR claiming 100000 x 100000 RGB pixels (30 GB decoded),
    // followed by a tiny IDAT and IEND.
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(common::png_chunk(b"IHDR", &ihdr));
    png.extend(common::png_chunk(
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    ));
    png.extend(common::png_chunk(b"IEND", &[]));
    let started = Instant::now();
    assert_too_large(
        decode_rgb(&png, DEFAULT_MAX_PIXELS),
        100_000,
        100_000,
        started,
    );
    let opts = PreprocessOptions {
        crop: Some(224),
        ..Default::default()
    };
    assert!(matches!(
        preprocess_bytes(&png, &opts),
        Err(ImageError::TooLarge { .. })
    ));
}

#[test]
fn jpeg_and_gif_bombs_are_refused_from_their_headers() {
    // Patch the SOF0 frame size of a real JPEG to 60000 x 60000.
    let mut bytes = jpeg("s420_baseline.jpg");
    let sof = bytes
        .windows(2)
        .position(|w| w == [0xff, 0xc0])
        .expect("SOF0");
    bytes[sof + 5..sof + 7].copy_from_slice(&60_000u16.to_be_bytes());
    bytes[sof + 7..sof + 9].copy_from_slice(&60_000u16.to_be_bytes());
    let started = Instant::now();
    assert_too_large(
        decode_rgb(&bytes, DEFAULT_MAX_PIXELS),
        60_000,
        60_000,
        started,
    );

    // GIF with a 65535 x 65535 logical screen.
    let mut gif = b"GIF89a".to_vec();
    gif.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x80, 0, 0, 0, 0, 0, 255, 255, 255]);
    gif.extend_from_slice(&[b',', 0, 0, 0, 0, 1, 0, 1, 0, 0, 2, 2, 0x44, 0x01, 0, b';']);
    let started = Instant::now();
    assert_too_large(
        decode_rgb(&gif, DEFAULT_MAX_PIXELS),
        65_535,
        65_535,
        started,
    );

    // GIF with a small screen whose first frame claims 65535 x 65535.
    let mut gif = b"GIF89a".to_vec();
    gif.extend_from_slice(&[1, 0, 1, 0, 0x80, 0, 0, 0, 0, 0, 255, 255, 255]);
    gif.extend_from_slice(&[
        b',', 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 2, 2, 0x44, 0x01, 0, b';',
    ]);
    let started = Instant::now();
    assert_too_large(
        decode_rgb(&gif, DEFAULT_MAX_PIXELS),
        65_535,
        65_535,
        started,
    );
}

#[test]
fn pixel_limit_is_configurable() {
    let png = sample_png(); // 64 x 48 = 3072 pixels
    assert!(decode_rgb(&png, 3072).is_ok());
    assert!(matches!(
        decode_rgb(&png, 3071),
        Err(ImageError::TooLarge {
            width: 64,
            height: 48,
            limit: 3071
        })
    ));
    let opts = PreprocessOptions {
        crop: None,
        max_pixels: 100,
    };
    assert!(matches!(
        preprocess_bytes(&png, &opts),
        Err(ImageError::TooLarge { .. })
    ));
}

/// Deterministic pseudo-random numbers (64-bit LCG, high bits).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

#[test]
fn damaged_files_never_panic() {
    let mut inputs = vec![sample_png()];
    for name in [
        "s420_baseline.jpg",
        "s422_progressive.jpg",
        "s444_q95.jpg",
        "gray.jpg",
        "cmyk_adobe.jpg",
    ] {
        inputs.push(jpeg(name));
    }
    let mut rng = Lcg(12345);
    for original in &inputs {
        // Every truncation length in steps, and random byte damage.
        for cut in (0..original.len()).step_by(7) {
            let _ = decode_rgb(&original[..cut], DEFAULT_MAX_PIXELS);
        }
        for _ in 0..300 {
            let mut bad = original.clone();
            let flips = 1 + rng.next() % 8;
            for _ in 0..flips {
                let at = (rng.next() as usize) % bad.len();
                bad[at] = rng.next() as u8;
            }
            if let Ok(img) = decode_rgb(&bad, DEFAULT_MAX_PIXELS) {
                assert!(u64::from(img.width()) * u64::from(img.height()) <= DEFAULT_MAX_PIXELS);
            }
        }
    }
}
