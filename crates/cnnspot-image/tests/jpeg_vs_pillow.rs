//! JPEG decoding against Pillow 13.0 (libjpeg-turbo 3.2): the decoded RGB
//! bytes must be identical (sum and FNV-1a 64 hash recorded in
//! tests/data/pillow_jpeg.json, computed once with Pillow).

mod common;

use cnnspot_image::{decode_rgb, load_rgb, DEFAULT_MAX_PIXELS};
use serde_json::Value;

fn expectations() -> Value {
    let text = std::fs::read(common::data_dir().join("pillow_jpeg.json")).unwrap();
    serde_json::from_slice(&text).unwrap()
}

fn check(name: &str, rgb: &image::RgbImage, want: &Value) {
    assert_eq!(
        u64::from(rgb.width()),
        want["width"].as_u64().unwrap(),
        "{name}: width"
    );
    assert_eq!(
        u64::from(rgb.height()),
        want["height"].as_u64().unwrap(),
        "{name}: height"
    );
    let first: Vec<u8> = want["first_pixels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u8)
        .collect();
    assert_eq!(
        &rgb.as_raw()[..first.len()],
        &first[..],
        "{name}: first pixels"
    );
    let sum: u64 = rgb.as_raw().iter().map(|&v| u64::from(v)).sum();
    assert_eq!(sum, want["sum"].as_u64().unwrap(), "{name}: sum of bytes");
    let hash = format!("{:016x}", common::fnv1a64(rgb.as_raw()));
    assert_eq!(
        hash,
        want["fnv1a64"].as_str().unwrap(),
        "{name}: hash of bytes"
    );
}

#[test]
fn local_jpegs_match_pillow_exactly() {
    // 37x29 crops of fake.png: baseline 4:2:0, progressive 4:2:2, 4:4:4,
    // greyscale and Adobe CMYK, as written by Pillow.
    let exp = expectations();
    let local = exp["local"].as_object().unwrap();
    assert_eq!(local.len(), 5);
    for (name, want) in local {
        let path = common::data_dir().join(name);
        let rgb = load_rgb(&path, DEFAULT_MAX_PIXELS).unwrap_or_else(|e| panic!("{name}: {e}"));
        check(name, &rgb, want);
    }
}

#[test]
fn shared_dev_jpegs_match_pillow_exactly() {
    let shared = cnnspot_testdata::require_shared!();
    let dev = shared.join("data/dev");
    let exp = expectations();
    let files = exp["shared_dev"].as_object().unwrap();
    assert_eq!(files.len(), 16);
    for (rel, want) in files {
        let rgb =
            load_rgb(&dev.join(rel), DEFAULT_MAX_PIXELS).unwrap_or_else(|e| panic!("{rel}: {e}"));
        check(rel, &rgb, want);
    }
}

#[test]
fn jpeg_pixel_limit_is_checked_from_the_header() {
    let bytes = std::fs::read(common::data_dir().join("s420_baseline.jpg")).unwrap();
    // 37 x 29 = 1073 pixels.
    assert!(decode_rgb(&bytes, 1073).is_ok());
    match decode_rgb(&bytes, 1072) {
        Err(cnnspot_image::ImageError::TooLarge {
            width: 37,
            height: 29,
            limit: 1072,
        }) => {}
        other => panic!("expected TooLarge, got {other:?}"),
    }
}
