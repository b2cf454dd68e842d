//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// FNV-1a 64-bit hash (the fixtures were hashed with the same function in Python).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

#[allow(unused_imports)] // not every test file uses them
pub use cnnspot_testdata::png::{chunk as png_chunk, crc32};

/// The test data folder of this crate.
pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// A float32 little-endian `.npy` array: its shape and values.
pub fn read_npy_f32(path: &Path) -> (Vec<usize>, Vec<f32>) {
    cnnspot_testdata::read_npy_f32(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Encode a PNG with the `png` crate.
pub fn encode_png(
    width: u32,
    height: u32,
    color: png::ColorType,
    depth: png::BitDepth,
    palette: Option<(&[u8], Option<&[u8]>)>,
    trns: Option<&[u8]>,
    data: &[u8],
) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, width, height);
        enc.set_color(color);
        enc.set_depth(depth);
        if let Some((pal, alpha)) = palette {
            enc.set_palette(pal.to_vec());
            if let Some(a) = alpha {
                enc.set_trns(a.to_vec());
            }
        }
        if let Some(t) = trns {
            enc.set_trns(t.to_vec());
        }
        let mut w = enc.write_header().unwrap();
        w.write_image_data(data).unwrap();
    }
    out
}
