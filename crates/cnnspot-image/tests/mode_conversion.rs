//! Conversion to 8-bit RGB as PIL's `convert('RGB')` does. Every expected
//! value below was printed by Pillow 13.0.0 for the same file:
//! `list(Image.open(f).convert('RGB').get_flattened_data())` (PNGs written
//! with pypng with the same parameters; GIFs are the exact bytes below).

mod common;

use cnnspot_image::{decode_rgb, DEFAULT_MAX_PIXELS};
use png::{BitDepth, ColorType};

fn rgb_of(bytes: &[u8]) -> Vec<[u8; 3]> {
    let img = decode_rgb(bytes, DEFAULT_MAX_PIXELS).unwrap();
    img.pixels().map(|p| p.0).collect()
}

fn be16(vals: &[u16]) -> Vec<u8> {
    vals.iter().flat_map(|v| v.to_be_bytes()).collect()
}

const VALS16: [u16; 8] = [0, 1, 255, 256, 257, 1000, 32768, 65535];

#[test]
fn gray8_is_replicated() {
    let png = common::encode_png(
        4,
        1,
        ColorType::Grayscale,
        BitDepth::Eight,
        None,
        None,
        &[0, 1, 128, 255],
    );
    assert_eq!(rgb_of(&png), [[0; 3], [1; 3], [128; 3], [255; 3]]);
}

#[test]
fn low_bit_gray_is_scaled_like_pillow() {
    // Pillow mode "1" -> 0/255; "L;2" -> x85; "L;4" -> x17.
    let png = common::encode_png(
        8,
        1,
        ColorType::Grayscale,
        BitDepth::One,
        None,
        None,
        &[0b0110_1001],
    );
    let want: Vec<[u8; 3]> = [0, 255, 255, 0, 255, 0, 0, 255]
        .iter()
        .map(|&v| [v; 3])
        .collect();
    assert_eq!(rgb_of(&png), want);
    let png = common::encode_png(
        4,
        1,
        ColorType::Grayscale,
        BitDepth::Two,
        None,
        None,
        &[0b0001_1011],
    );
    assert_eq!(rgb_of(&png), [[0; 3], [85; 3], [170; 3], [255; 3]]);
    let png = common::encode_png(
        4,
        1,
        ColorType::Grayscale,
        BitDepth::Four,
        None,
        None,
        &[0x01, 0x7f],
    );
    assert_eq!(rgb_of(&png), [[0; 3], [17; 3], [119; 3], [255; 3]]);
}

#[test]
fn gray_alpha_drops_alpha() {
    let png = common::encode_png(
        3,
        1,
        ColorType::GrayscaleAlpha,
        BitDepth::Eight,
        None,
        None,
        &[10, 0, 200, 255, 77, 128],
    );
    assert_eq!(rgb_of(&png), [[10; 3], [200; 3], [77; 3]]);
}

#[test]
fn rgba_drops_alpha_without_compositing() {
    let png = common::encode_png(
        3,
        1,
        ColorType::Rgba,
        BitDepth::Eight,
        None,
        None,
        &[1, 2, 3, 0, 250, 128, 7, 255, 9, 8, 7, 100],
    );
    assert_eq!(rgb_of(&png), [[1, 2, 3], [250, 128, 7], [9, 8, 7]]);
}

#[test]
fn rgb_with_trns_keeps_colours() {
    let png = common::encode_png(
        2,
        1,
        ColorType::Rgb,
        BitDepth::Eight,
        None,
        Some(&[0, 1, 0, 2, 0, 3]),
        &[1, 2, 3, 4, 5, 6],
    );
    assert_eq!(rgb_of(&png), [[1, 2, 3], [4, 5, 6]]);
}

#[test]
fn palette_is_expanded_and_transparency_ignored() {
    let pal = [255, 0, 0, 0, 255, 0, 0, 0, 255, 12, 34, 56];
    let trns = [0u8, 128];
    let want = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [12, 34, 56]];
    let png = common::encode_png(
        4,
        1,
        ColorType::Indexed,
        BitDepth::Eight,
        Some((&pal, Some(&trns))),
        None,
        &[0, 1, 2, 3],
    );
    assert_eq!(rgb_of(&png), want);
    // 2-bit indices 3, 2, 1, 0.
    let png = common::encode_png(
        4,
        1,
        ColorType::Indexed,
        BitDepth::Two,
        Some((&pal, Some(&trns))),
        None,
        &[0b1110_0100],
    );
    let rev: Vec<[u8; 3]> = want.iter().rev().copied().collect();
    assert_eq!(rgb_of(&png), rev);
}

#[test]
fn gray16_is_clipped_like_pillow_i16() {
    // Pillow opens 16-bit grey PNGs as mode "I;16"; convert('RGB') clips
    // values above 255 to 255 (it does not scale).
    let want: Vec<[u8; 3]> = [0, 1, 255, 255, 255, 255, 255, 255]
        .iter()
        .map(|&v| [v; 3])
        .collect();
    let png = common::encode_png(
        8,
        1,
        ColorType::Grayscale,
        BitDepth::Sixteen,
        None,
        None,
        &be16(&VALS16),
    );
    assert_eq!(rgb_of(&png), want);
    // Also with a tRNS chunk (the decoder then adds an alpha channel).
    let png = common::encode_png(
        8,
        1,
        ColorType::Grayscale,
        BitDepth::Sixteen,
        None,
        Some(&1000u16.to_be_bytes()),
        &be16(&VALS16),
    );
    assert_eq!(rgb_of(&png), want);
}

#[test]
fn gray_alpha16_keeps_high_byte() {
    // Pillow: mode RGBA via raw mode "LA;16B" (high byte).
    let data: Vec<u16> = VALS16.iter().flat_map(|&v| [v, 65535 - v]).collect();
    let png = common::encode_png(
        8,
        1,
        ColorType::GrayscaleAlpha,
        BitDepth::Sixteen,
        None,
        None,
        &be16(&data),
    );
    let want: Vec<[u8; 3]> = [0, 0, 0, 1, 1, 3, 128, 255]
        .iter()
        .map(|&v| [v; 3])
        .collect();
    assert_eq!(rgb_of(&png), want);
}

#[test]
fn rgb16_and_rgba16_keep_high_byte() {
    let want = [
        [0, 255, 0],
        [0, 255, 0],
        [0, 255, 0],
        [1, 254, 0],
        [1, 254, 0],
        [3, 252, 1],
        [128, 127, 42],
        [255, 0, 85],
    ];
    let rgb: Vec<u16> = VALS16.iter().flat_map(|&v| [v, 65535 - v, v / 3]).collect();
    let png = common::encode_png(
        8,
        1,
        ColorType::Rgb,
        BitDepth::Sixteen,
        None,
        None,
        &be16(&rgb),
    );
    assert_eq!(rgb_of(&png), want);
    let rgba: Vec<u16> = VALS16
        .iter()
        .flat_map(|&v| [v, 65535 - v, v / 3, 7])
        .collect();
    let png = common::encode_png(
        8,
        1,
        ColorType::Rgba,
        BitDepth::Sixteen,
        None,
        None,
        &be16(&rgba),
    );
    assert_eq!(rgb_of(&png), want);
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn gif_first_frame_like_pillow() {
    // Palette (10,20,30) (40,50,60) (70,80,90) (100,110,120); 4x3 screen,
    // background index 1; a 2x2 frame at (1, 1) holding indices 0 1 / 2 3.
    let (a, b, c, d) = ([10, 20, 30], [40, 50, 60], [70, 80, 90], [100, 110, 120]);
    // No transparency: the canvas starts as index 0.
    let g = hex(
        "474946383961040003008101000a141e28323c46505a646e782c010001000200020000020404437105003b",
    );
    assert_eq!(rgb_of(&g), [a, a, a, a, a, a, b, a, a, c, d, a]);
    // Transparent index 2: the canvas starts as index 2, and the
    // transparent pixel keeps its palette colour.
    let g = hex("474946383961040003008101000a141e28323c46505a646e7821f90401000002002c010001000200020000020404437105003b");
    assert_eq!(rgb_of(&g), [c, c, c, c, c, a, b, c, c, c, d, c]);
    // A 3x2 frame at (1, 1) on a 2x2 screen: Pillow grows the image to 4x3.
    let g = hex(
        "474946383961020002008100000a141e28323c46505a646e782c01000100030002000002050443710c51003b",
    );
    let img = decode_rgb(&g, DEFAULT_MAX_PIXELS).unwrap();
    assert_eq!(img.dimensions(), (4, 3));
    let px: Vec<[u8; 3]> = img.pixels().map(|p| p.0).collect();
    assert_eq!(px, [a, a, a, a, a, a, b, c, a, d, b, a]);
    // Indices past the end of a 2-colour palette are black.
    let g = hex("47494638396104000100800000ff00000000ff2c000000000400010000020404437105003b");
    assert_eq!(rgb_of(&g), [[255, 0, 0], [0, 0, 255], [0, 0, 0], [0, 0, 0]]);
}

#[test]
fn other_formats_decode_through_image() {
    let img = image::RgbImage::from_fn(40, 33, |x, y| {
        image::Rgb([(x * 5) as u8, (y * 7) as u8, (x ^ y) as u8])
    });
    for format in [
        image::ImageFormat::Bmp,
        image::ImageFormat::Tiff,
        image::ImageFormat::WebP,
        image::ImageFormat::Png,
    ] {
        let mut bytes = Vec::new();
        image::DynamicImage::ImageRgb8(img.clone())
            .write_to(&mut std::io::Cursor::new(&mut bytes), format)
            .unwrap();
        let got = decode_rgb(&bytes, DEFAULT_MAX_PIXELS).unwrap();
        assert_eq!(got, img, "{format:?} round trip");
    }
}

#[test]
fn format_comes_from_content_not_extension() {
    let dir = tempfile::tempdir().unwrap();
    let img = image::RgbImage::from_fn(33, 34, |x, y| image::Rgb([x as u8, y as u8, 7]));
    let path = dir.path().join("actually_a_png.jpg");
    img.save_with_format(&path, image::ImageFormat::Png)
        .unwrap();
    let got = cnnspot_image::load_rgb(&path, DEFAULT_MAX_PIXELS).unwrap();
    assert_eq!(got, img);
}
